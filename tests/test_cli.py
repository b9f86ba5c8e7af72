"""The `qa` command: index, ask, search and info, settings from flags or QA_* variables, exit codes,
and errors shown as one actionable line without a traceback."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import SEED, write_corpus

from qa.cli import main
from qa.config import MAX_QUESTION_CHARS, SETTINGS
from qa.store import open_index

QUESTIONS = [
    "How much did joint military training events increase?",
    "Who met on October 28, 2025?",
    "What does the critical minerals agreement involve?",
]


@pytest.fixture(autouse=True)
def no_qa_settings_from_the_environment(monkeypatch):
    for setting in SETTINGS.values():
        monkeypatch.delenv(setting.env, raising=False)


def qa(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(main, list(args))


def test_index_then_ask_search_and_info(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {SEED.name: SEED.read_text(encoding="utf-8")})
    index = str(tmp_path / "index")
    result = qa("index", "--corpus", str(corpus), "--index", index)
    assert result.exit_code == 0, result.output
    assert "indexed 1 file (1 document, " in result.stdout and "1 embedded" in result.stdout

    answered = [qa("ask", question, "--index", index) for question in QUESTIONS]
    assert all(r.exit_code == 0 for r in answered)
    assert any(f"[1] {SEED.name} - Deepening Entanglements" in r.stdout for r in answered)

    result = qa("search", "-k", "5", "Kadena Air Base in Okinawa", "--index", index)
    assert result.exit_code == 0
    ranks = [line.split()[0] for line in result.stdout.splitlines() if line[:1].isdigit()]
    assert ranks == ["1.", "2.", "3.", "4.", "5."]

    result = qa("search", "-k", "2", "Kadena", "--json", "--index", index)
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2]
    assert set(rows[0]) == {"rank", "score", "source", "title", "location", "start", "end", "passage"}
    assert "Kadena" in rows[0]["passage"]

    result = qa("info", "--index", index)
    assert result.exit_code == 0
    assert "all-MiniLM-L6-v2 (384 dimensions, int8)" in result.stdout
    assert "1 file, 1 document, " in result.stdout and SEED.name in result.stdout
    manifest = json.loads(qa("info", "--json", "--index", index).stdout)
    assert manifest["model"] == "all-MiniLM-L6-v2" and SEED.name in manifest["files"]


def test_a_file_name_never_sends_escape_sequences_to_the_terminal(tmp_path):
    evil = "red\x1b[31m\x1b]0;owned\x07.txt"
    corpus = write_corpus(tmp_path / "corpus", {
        evil: "The lighthouse keeper rings the fog bell every ten minutes when the fog rolls in from the sea.",
        "broken\x1b[2J.pdf": b"%PDF-1.4 not really",
    })
    index = str(tmp_path / "index")
    outputs = [
        qa("index", "--corpus", str(corpus), "--index", index),
        qa("ask", "How often does the keeper ring the fog bell?", "--index", index),
        qa("search", "fog bell", "--index", index),
        qa("info", "--index", index),
    ]
    for result in outputs:
        assert "\x1b" not in result.output and "\x07" not in result.output, result.output
    assert "skipped broken\\x1b[2J.pdf:" in outputs[0].output
    assert "[1] red\\x1b[31m\\x1b]0;owned\\x07.txt" in outputs[1].output
    answer = json.loads(qa("ask", "How often does the keeper ring the fog bell?", "--json", "--index", index).stdout)
    assert answer["citations"][0]["source"] == evil  # JSON keeps the name exact, escaped the JSON way


def test_ask_json_has_the_documented_shape_and_checkable_citations(seed_index):
    answers = [json.loads(qa("ask", question, "--json", "--index", str(seed_index)).stdout) for question in QUESTIONS]
    index = open_index(seed_index)
    for answer, question in zip(answers, QUESTIONS):
        assert {"question", "answer", "abstained", "confidence", "citations", "timings_ms"} <= set(answer)
        assert answer["question"] == question
        assert isinstance(answer["abstained"], bool) and 0 <= answer["confidence"] <= 1
        assert set(answer["timings_ms"]) >= {"total"}
        assert answer["abstained"] == (answer["citations"] == [])
        for n, citation in enumerate(answer["citations"], start=1):
            assert {"n", "source", "title", "location", "start", "end", "passage", "score"} <= set(citation)
            assert citation["n"] == n and citation["source"] == SEED.name
            text = index.document(citation["source"]).text
            assert citation["passage"] == text[citation["start"] : citation["end"]]
            assert f"[{n}]" in answer["answer"]
    assert any(not a["abstained"] for a in answers)


def test_the_minimum_confidence_decides_what_is_declined(seed_index):
    def ask(question, *args, env=None):
        return json.loads(qa("ask", question, "--json", "--index", str(seed_index), *args, env=env).stdout)

    answered = ask(QUESTIONS[1])
    assert not answered["abstained"] and 0.5 <= answered["confidence"] < 1
    stricter = f"{(answered['confidence'] + 1) / 2:.4f}"
    assert ask(QUESTIONS[1], "--min-confidence", stricter)["abstained"]
    assert ask(QUESTIONS[1], env={"QA_MIN_CONFIDENCE": stricter})["abstained"]

    off_topic = ask("What is the boiling point of water at sea level?")
    assert off_topic["abstained"] and off_topic["confidence"] > 0
    kept = ask("What is the boiling point of water at sea level?", "--min-confidence", "0")
    assert not kept["abstained"] and kept["citations"] and kept["confidence"] == off_topic["confidence"]

    result = qa("ask", QUESTIONS[1], "--index", str(seed_index), env={"QA_MIN_CONFIDENCE": "high"})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output == "error: --min-confidence / QA_MIN_CONFIDENCE must be a number from 0 to 1, not 'high'\n"


def test_corpus_and_index_can_come_from_qa_corpus_and_qa_index(tmp_path):
    corpus = write_corpus(tmp_path / "docs", {SEED.name: SEED.read_text(encoding="utf-8")})
    env = {"QA_CORPUS": str(corpus), "QA_INDEX": str(tmp_path / "my-index")}
    assert qa("index", env=env).exit_code == 0
    assert (tmp_path / "my-index" / "current" / "manifest.json").is_file()
    assert SEED.name in qa("info", env=env).stdout
    assert qa("search", "Kadena", env=env).exit_code == 0
    assert qa("ask", QUESTIONS[0], env=env).exit_code == 0
    # a flag wins over the variable
    assert "no index at" in qa("info", "--index", str(tmp_path / "other"), env=env).stderr


def test_index_exits_1_when_files_were_skipped_and_0_when_all_were_indexed(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        SEED.name: SEED.read_text(encoding="utf-8"),
        "binary.txt": b"\x7fELF\x02\x01\x01\x00\x00",
        "empty.md": "",
        ".draft.txt": "hidden",
        "photo.jpg": b"\xff\xd8",
    })
    os.symlink(tmp_path / "gone.pdf", corpus / "dangling.pdf")
    index = str(tmp_path / "index")
    result = qa("index", "--corpus", str(corpus), "--index", index)
    assert result.exit_code == 1
    assert "skipped binary.txt: binary file, not text" in result.stderr
    assert "skipped empty.md: the file is empty" in result.stderr
    assert "skipped dangling.pdf: broken symlink" in result.stderr
    assert "indexed 1 file (" in result.stdout and "3 skipped, 2 ignored (1 hidden, 1 .jpg)" in result.stdout
    assert "Traceback" not in result.output

    for name in ("binary.txt", "empty.md", "dangling.pdf"):
        (corpus / name).unlink()
    write_corpus(corpus, {"notes.md": "# Notes\n\nThe alliance was reviewed in October."})
    result = qa("index", "--corpus", str(corpus), "--index", index)
    assert result.exit_code == 0, result.output
    assert "1 embedded, 1 unchanged" in result.stdout and "0 skipped" in result.stdout


def _busy(index):
    lock = open(index / ".lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return lock


ERRORS = {
    "missing-corpus": (lambda t, i: ["index", "--corpus", str(t / "nowhere"), "--index", str(i)], "--corpus"),
    "empty-corpus": (lambda t, i: ["index", "--corpus", str(write_corpus(t / "empty", {"a.png": b"x"})),
                                   "--index", str(i)], "add .txt"),
    "only-unreadable-files": (lambda t, i: ["index", "--corpus", str(write_corpus(t / "bad", {"a.txt": b"\xfe\x00"})),
                                            "--index", str(i)], "a.txt (binary file, not text)"),
    "missing-index": (lambda t, i: ["ask", "Where?", "--index", str(t / "nowhere")], "build one with `qa index"),
    "info-without-index": (lambda t, i: ["info", "--index", str(t / "nowhere")], "build one with `qa index"),
    "other-model": (lambda t, i: ["ask", "Where?", "--index", str(i), "--model", "all-mpnet-base-v2"],
                    "rebuild it with `qa index --model all-mpnet-base-v2`"),
    "empty-question": (lambda t, i: ["ask", "", "--index", str(i)], "ask something"),
    "blank-question": (lambda t, i: ["ask", "   \n ", "--index", str(i)], "ask something"),
    "huge-question": (lambda t, i: ["ask", "why " * 2500, "--index", str(i)], f"limit is {MAX_QUESTION_CHARS:,}"),
    "undecodable-question": (lambda t, i: ["ask", "Caf\udce9?", "--index", str(i)], "not valid Unicode text"),
    "empty-search": (lambda t, i: ["search", "", "--index", str(i)], "ask something"),
    "index-busy": (lambda t, i: ["index", "--corpus", str(i.parent / "corpus"), "--index", str(i)], "wait for it"),
}


NEEDS_AN_INDEX = {"other-model", "index-busy"}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_actionable_line_without_a_traceback(request, tmp_path, case):
    args, fix = ERRORS[case]
    index = request.getfixturevalue("seed_index") if case in NEEDS_AN_INDEX else tmp_path / "index"
    lock = _busy(index) if case == "index-busy" else None
    try:
        result = qa(*args(tmp_path, index))
    finally:
        if lock:
            lock.close()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and fix in line
    assert result.stdout == ""


def test_a_model_that_cannot_be_loaded_is_one_error_line_naming_it(tmp_path):
    corpus = write_corpus(tmp_path / "notes", {"a.txt": "Tea is grown on terraced hills."})
    missing = tmp_path / "no-such-model"
    result = qa("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--model", str(missing))
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]  # after the reading progress bar
    assert last.startswith(f"error: cannot load embedding model '{missing}' offline (") and "--model" in last


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    done = subprocess.run(
        [sys.executable, "-c", "from qa.cli import main; main()", "info", "--index", str(tmp_path / "nowhere")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    missing = tmp_path / "nowhere"
    assert done.stderr.strip() == f"error: no index at {missing}: build one with `qa index --index {missing}`"
