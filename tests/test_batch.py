"""Batch answering: real question files of every format in, answer files out, resumable."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from conftest import measured, wait_until, write_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.batch import (
    BatchFileError,
    BatchSummary,
    InputRow,
    QuestionFile,
    TableLimits,
    XlsxOutput,
    answer_file,
    answer_rows,
    open_output,
    read_questions,
    result_fields,
)
from qa.config import DEFAULT_MODEL
from qa.pipeline import QA, build

CORPUS = {
    "lighthouses.md": (
        "# Lighthouses\n\n"
        "The Pharos of Alexandria was built in the 3rd century BC on the island of Pharos. "
        "It stood about 100 metres tall and guided ships into the harbour for centuries.\n\n"
        "## Lenses\n\n"
        "The Fresnel lens was invented by the French physicist Augustin-Jean Fresnel in 1822. "
        "Its rings of prisms let a small lamp be seen more than 30 kilometres out at sea. "
        "The Eddystone Lighthouse, off Plymouth, was rebuilt four times after storms and fire.\n"
    ),
    "bees.txt": (
        "Honey bees live in colonies of up to 60,000 workers with a single queen. "
        "A worker bee lives about six weeks in summer, most of it spent foraging for nectar. "
        "The queen can lay around 2,000 eggs a day in spring. "
        "Bees tell each other where flowers are with the waggle dance, decoded by Karl von Frisch.\n"
    ),
    "tea.txt": (
        "Green tea and black tea come from the same plant, Camellia sinensis. "
        "Black tea is oxidised before it is dried, which darkens the leaves and deepens the flavour. "
        "Tea reached England in the 1650s and became popular after Catherine of Braganza drank it at court.\n"
    ),
}
QUESTIONS = [
    "Who invented the Fresnel lens?",
    "How long does a worker bee live in summer?",
    "When was the Pharos of Alexandria built?",
    "Which plant do green and black tea come from?",
    "How many eggs can a queen bee lay in a day?",
    "When did tea reach England?",
    "What is the capital of Mongolia?",
    "How tall was the Pharos of Alexandria?",
]
FORMATS = (".csv", ".tsv", ".jsonl", ".txt", ".xlsx")


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    build(write_corpus(folder / "corpus", CORPUS), folder / "index", DEFAULT_MODEL, embedder=embedder)
    return folder / "index"


@pytest.fixture(scope="module")
def qa(index, embedder) -> QA:
    return QA(index, embedder=embedder)


# Real files of each format, written and read with the standard libraries, not with qa.batch.


def write_questions(path: Path, rows: list[dict]) -> Path:
    suffix = path.suffix
    if suffix in (".csv", ".tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix == ".txt":
        path.write_text("".join(r["question"] + "\n" for r in rows), encoding="utf-8")
    else:
        workbook = openpyxl.Workbook()
        workbook.active.append(list(rows[0]))
        for r in rows:
            workbook.active.append(list(r.values()))
        workbook.save(path)
    return path


def read_answers(path: Path) -> list[dict] | list[str]:
    """Each output row as a dict of its columns (TXT: each line)."""
    if path.suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if path.suffix == ".txt":
        return path.read_text(encoding="utf-8").splitlines()
    values = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    return [dict(zip(values[0], row)) for row in values[1:]]


def header(path: Path) -> list[str]:
    if path.suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    if path.suffix == ".jsonl":
        return list(json.loads(path.read_text(encoding="utf-8").splitlines()[0]))
    return list(next(openpyxl.load_workbook(path).active.iter_rows(values_only=True)))


def without_timings(record: dict) -> dict:
    if record.get("result"):
        record = {**record, "result": {k: v for k, v in record["result"].items() if k != "timings_ms"}}
    return record


def sample_rows(n: int = len(QUESTIONS)) -> list[dict]:
    return [{"id": f"q{i:03d}", "question": QUESTIONS[i % len(QUESTIONS)], "owner": f"team {i % 3}"} for i in range(n)]


@pytest.mark.parametrize(
    "source, target",
    [(".csv", ".csv"), (".tsv", ".tsv"), (".jsonl", ".jsonl"), (".txt", ".txt"), (".xlsx", ".xlsx"),
     (".csv", ".xlsx"), (".xlsx", ".jsonl"), (".jsonl", ".csv"), (".txt", ".csv")],
)
def test_every_format_is_answered_in_order_with_its_columns_passed_through(tmp_path, qa, source, target):
    rows = sample_rows()
    questions = write_questions(tmp_path / f"questions{source}", rows)
    output = tmp_path / f"answers{target}"
    summary = answer_file(qa, questions, output, batch_size=3)

    assert summary.rows == summary.done == len(rows) and summary.errors == 0
    answers = read_answers(output)
    assert len(answers) == len(rows)
    if target == ".txt":
        assert all(line.strip() and "error" not in line for line in answers)
        return
    columns = ["question"] if source == ".txt" else list(rows[0])
    assert header(output)[: len(columns)] == columns
    assert header(output)[len(columns) :][:6] == ["answer", "abstained", "confidence", "citations", "error", "row"]
    first_row = 1 if source in (".txt", ".jsonl") else 2  # a line, or a row after the header
    for number, (want, got) in enumerate(zip(rows, answers)):
        assert {c: str(got[c]) for c in columns} == {c: want[c] for c in columns}
        assert int(got["row"]) == first_row + number
        assert got["answer"] and not got["error"]
        abstained = got["abstained"] in (True, "true")
        assert got["abstained"] in (True, False, "true", "false")
        assert 0.0 <= float(got["confidence"]) <= 1.0
        if not abstained:
            assert str(got["citations"]).startswith("[1] ")
            assert any(name in got["citations"] for name in CORPUS)
    if target == ".jsonl":
        assert all(a["result"]["question"] == a["question"] for a in answers)


def test_batch_answers_are_the_same_as_asking_one_by_one(tmp_path, qa):
    rows = sample_rows()
    output = tmp_path / "answers.jsonl"
    answer_file(qa, write_questions(tmp_path / "questions.csv", rows), output, batch_size=5)

    for row, got in zip(rows, read_answers(output)):
        alone = qa.ask(row["question"]).to_dict()
        batched = got["result"]
        for key in ("question", "answer", "abstained", "sentences"):
            assert batched[key] == alone[key]
        assert batched["confidence"] == pytest.approx(alone["confidence"], abs=1e-3)
        assert len(batched["citations"]) == len(alone["citations"])
        for b, a in zip(batched["citations"], alone["citations"]):
            assert {k: v for k, v in b.items() if k != "score"} == {k: v for k, v in a.items() if k != "score"}
            assert b["score"] == pytest.approx(a["score"], abs=1e-3)


def test_one_batch_call_answers_the_askable_rows_and_marks_the_rest(qa):
    lines = ["Who invented the Fresnel lens?", "   ", "x" * 5000, "When did tea reach England?"]
    results = list(answer_rows(qa, [InputRow(n, {"question": q}, q) for n, q in enumerate(lines, start=1)]))
    assert [a is not None for a, _ in results] == [True, False, False, True]
    assert results[1][1] == "the question is empty"
    assert "limit" in results[2][1]
    assert results[0][0].answer == qa.ask("Who invented the Fresnel lens?").answer


def test_bad_rows_are_reported_in_the_output_and_counted(tmp_path, qa):
    good = "Who invented the Fresnel lens?"
    too_long = "Why " + "really " * 400 + "?"
    data = (
        "id,question\n"
        f"1,{good}\n"
        "2,\n"
        f"3,{too_long}\n"
    ).encode() + b"4,Caf\xe9 au lait?\n" + b"5,When did tea reach England?\n"
    questions = tmp_path / "questions.csv"
    questions.write_bytes(data)
    output = tmp_path / "answers.csv"
    summary = answer_file(qa, questions, output)

    answers = read_answers(output)
    assert [a["id"] for a in answers] == ["1", "2", "3", "4", "5"]
    errors = {a["id"]: a["error"] for a in answers if a["error"]}
    assert set(errors) == {"2", "3", "4"}
    assert "empty" in errors["2"] and "2,000" in errors["3"] and "UTF-8" in errors["4"]
    assert answers[3]["question"] == "Caf\ufffd au lait?"  # kept, with the bad byte marked
    assert all(a["answer"] for a in answers if not a["error"])
    assert summary.errors == 3 and summary.answered + summary.abstained == 2


def test_undecodable_jsonl_lines_are_bad_rows_not_a_bad_file(tmp_path, qa):
    questions = tmp_path / "questions.jsonl"
    questions.write_bytes(
        b'{"question": "Who invented the Fresnel lens?", "tags": ["optics"]}\n'
        b"{not json\n"
        b"\n"
        b"[1, 2]\n"
        b'"When did tea reach England?"\n'
        b'{"question": "What is \\ud83d here?"}\n'
        b'"Who invented the Fresnel lens?"\n'
    )
    output = tmp_path / "answers.jsonl"
    summary = answer_file(qa, questions, output)

    answers = read_answers(output)
    assert [a["row"] for a in answers] == [1, 2, 4, 5, 6, 7]
    assert answers[0]["tags"] == ["optics"] and answers[0]["result"]["question"] == answers[0]["question"]
    assert answers[1]["error"] == "not valid JSON" and answers[1]["result"] is None
    assert answers[2]["error"] == "not a JSON object"
    assert answers[3]["question"] == "When did tea reach England?" and not answers[3]["error"]
    assert "surrogate" in answers[4]["error"] and answers[4]["question"] == "What is \ufffd here?"
    assert answers[5]["answer"] == answers[0]["answer"] and not answers[5]["error"]
    assert summary.errors == 3


def test_the_question_column_is_found_by_name_or_given(tmp_path):
    by_name = write_questions(tmp_path / "a.csv", [{"Nr": "1", "Query": "When did tea reach England?"}])
    assert read_questions(by_name).question_column == "Query"
    named = write_questions(tmp_path / "b.xlsx", [{"Frage": "Wer?", "Notiz": "x"}])
    assert read_questions(named, "frage").question_column == "Frage"
    assert [r.question for r in read_questions(named, "Frage").rows] == ["Wer?"]
    with pytest.raises(BatchFileError, match="no column 'Question' in .*columns: Frage, Notiz"):
        read_questions(named, "Question")
    with pytest.raises(BatchFileError, match="--question-column"):
        read_questions(named)


def test_a_csv_with_semicolons_and_a_bom_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffQuestion;Notes\r\nWhen did tea reach England?;a; b\r\n;\r\n".encode())
    source = read_questions(path)
    assert source.columns == ("Question", "Notes", "column 3")
    assert [(r.row, r.question, r.values["Notes"]) for r in source.rows] == [(2, "When did tea reach England?", "a")]


def test_a_question_file_is_decoded_and_split_as_a_corpus_table_is(tmp_path):
    # qa.text and qa.tables read both: spaces after each delimiter skipped, so a quoted cell stays
    # whole; a NUL byte anywhere means a binary file
    spaced = tmp_path / "spaced.csv"
    question = "Who invented the Fresnel lens, and when?"
    spaced.write_text(f'id, question\n1, "{question}"\n')
    [row] = read_questions(spaced).rows
    assert (row.values, row.question) == ({"id": "1", "question": question}, question)
    late_nul = tmp_path / "late.csv"
    late_nul.write_bytes(b"question\n" + b"When did tea reach England?\n" * 200 + b"\x00\n")
    with pytest.raises(BatchFileError, match="it is a binary file, not .csv text"):
        read_questions(late_nul)


def cli(*args: str):
    from qa.cli import main

    return CliRunner().invoke(main, list(args))


def test_unusable_files_are_one_line_errors_before_the_model_loads(tmp_path):
    good = write_questions(tmp_path / "questions.csv", sample_rows(2))
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (tmp_path / "done.csv").write_text("already here\n")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            for _ in range(60):
                sheet.write(bytes(1_000_000))
    (tmp_path / "bomb.xlsx").write_bytes(bomb.getvalue())
    cases = {
        "would unzip to 60 MB, over the 50 MB limit": [str(tmp_path / "bomb.xlsx"), "-o", str(tmp_path / "o.csv")],
        "question file not found": [str(tmp_path / "missing.csv"), "-o", str(tmp_path / "o.csv")],
        "not a valid .xlsx workbook": [str(tmp_path / "broken.xlsx"), "-o", str(tmp_path / "o.csv")],
        "questions must be in a": [str(tmp_path / "notes.pdf"), "-o", str(tmp_path / "o.csv")],
        "would overwrite the question file": [str(good), "-o", str(good)],
        "pass --resume to continue it or --overwrite": [str(good), "-o", str(tmp_path / "done.csv")],
        "no column 'Frage'": [str(good), "-o", str(tmp_path / "o.csv"), "--question-column", "Frage"],
        "the output must end in one of": [str(good), "-o", str(tmp_path / "o.docx")],
    }
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    for message, args in cases.items():
        result = cli("batch", *args, "--index", str(tmp_path / "no-index"))
        assert result.exit_code == 2, (message, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (message, result.output)
    assert not (tmp_path / "o.csv").exists()


def test_cli_batch_writes_the_file_and_a_summary(tmp_path, index, embedder, monkeypatch):
    monkeypatch.setattr("qa.pipeline.Embedder", lambda name, **_: embedder)  # share the loaded model
    rows = sample_rows() + [{"id": "blank", "question": "", "owner": "nobody"}]
    questions = write_questions(tmp_path / "questions.xlsx", rows)
    result = cli("batch", str(questions), "--index", str(index), "-k", "3")

    assert result.exit_code == 1, result.output  # one row had an error
    assert "1 error in" in result.output and "questions/s" in result.output
    answers = read_answers(tmp_path / "questions.answers.xlsx")
    assert [a["id"] for a in answers] == [r["id"] for r in rows]
    assert not (tmp_path / "questions.answers.xlsx.partial.jsonl").exists()


def interrupt_after(rows: int):
    """A progress callback that stands in for Ctrl-C once `rows` rows are done."""

    def progress(done: int, total: int) -> None:
        if done >= rows:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("suffix", FORMATS)
def test_an_interrupted_run_resumes_without_losing_or_repeating_a_row(tmp_path, qa, suffix):
    rows = sample_rows(20)
    questions = write_questions(tmp_path / "questions.csv", rows)
    reference = tmp_path / f"reference{suffix}"
    answer_file(qa, questions, reference, batch_size=4)
    output = tmp_path / f"answers{suffix}"

    with pytest.raises(KeyboardInterrupt):
        answer_file(qa, questions, output, batch_size=4, on_progress=interrupt_after(8))
    partial = read_answers(output)  # a valid file holding the finished batches
    assert len(partial) == 8
    with pytest.raises(BatchFileError, match="--resume"):
        answer_file(qa, questions, output)
    summary = answer_file(qa, questions, output, batch_size=4, resume=True)

    assert summary.earlier == 8 and summary.done == 12
    resumed, expected = read_answers(output), read_answers(reference)
    assert len(resumed) == len(rows)
    if suffix == ".txt":
        assert resumed == expected
    else:
        assert [a["id"] for a in resumed] == [r["id"] for r in rows]
        assert [without_timings(a) for a in resumed] == [without_timings(a) for a in expected]
    assert not output.with_name(output.name + ".partial.jsonl").exists()
    assert answer_file(qa, questions, output, resume=True).done == 0


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_a_torn_last_row_is_dropped_and_answered_again(tmp_path, qa, suffix):
    questions = write_questions(tmp_path / "questions.csv", sample_rows(6))
    output = tmp_path / f"answers{suffix}"
    with pytest.raises(KeyboardInterrupt):  # killed as its last row was being written...
        answer_file(qa, questions, output, on_progress=interrupt_after(6))
    complete = read_answers(output)
    output.write_bytes(output.read_bytes()[:-25])  # ...and that write cut short

    summary = answer_file(qa, questions, output, resume=True)
    assert summary.earlier == 5 and summary.done == 1
    assert [without_timings(a) if suffix == ".jsonl" else a for a in read_answers(output)] == [
        without_timings(a) if suffix == ".jsonl" else a for a in complete
    ]


def test_a_workbook_killed_before_its_first_checkpoint_resumes_from_its_journal(tmp_path, qa, monkeypatch):
    rows = sample_rows(12)
    questions = write_questions(tmp_path / "questions.csv", rows)
    output = tmp_path / "answers.xlsx"
    with monkeypatch.context() as patch:
        patch.setattr(XlsxOutput, "finish", lambda self, complete: None)  # killed: no last render
        with pytest.raises(KeyboardInterrupt):
            answer_file(qa, questions, output, batch_size=4, on_progress=interrupt_after(8))
    journal = tmp_path / "answers.xlsx.partial.jsonl"
    assert read_answers(output) == [] and len(journal.read_text().splitlines()) == 8

    summary = answer_file(qa, questions, output, batch_size=4, resume=True)
    assert (summary.earlier, summary.done) == (8, 4)
    assert [a["id"] for a in read_answers(output)] == [r["id"] for r in rows]
    assert not journal.exists()


def test_resuming_with_another_question_file_is_refused(tmp_path, qa):
    first = write_questions(tmp_path / "first.csv", sample_rows(3))
    output = tmp_path / "answers.jsonl"
    answer_file(qa, first, output)
    other = write_questions(tmp_path / "other.csv", [{**r, "question": "Why?"} for r in sample_rows(3)])
    with pytest.raises(BatchFileError, match="does not continue"):
        answer_file(qa, other, output, resume=True)
    assert answer_file(qa, other, output, overwrite=True).done == 3


def test_a_result_column_the_input_already_has_is_prefixed(tmp_path, qa):
    rows = [{"question": "Who invented the Fresnel lens?", "answer": "Fresnel", "row": "A1"}]
    output = tmp_path / "answers.csv"
    answer_file(qa, write_questions(tmp_path / "questions.csv", rows), output)
    (got,) = read_answers(output)
    assert header(output)[:4] == ["question", "answer", "row", "qa_answer"]
    assert (got["answer"], got["row"], got["qa_row"]) == ("Fresnel", "A1", "2")
    assert got["qa_answer"]


def test_a_kill_9_mid_run_leaves_a_valid_file_that_resume_completes(tmp_path, index):
    rows = sample_rows(200)
    questions = write_questions(tmp_path / "questions.csv", rows)
    output = tmp_path / "answers.csv"
    command = [sys.executable, "-c", "from qa.cli import main; main()", "batch", str(questions), "-o", str(output),
               "--index", str(index)]
    slow = {**os.environ, "OMP_NUM_THREADS": "1"}  # small batches on one thread: easy to catch mid-run
    process = subprocess.Popen([*command, "--batch-size", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=slow)
    try:
        wait_until(lambda: process.poll() is not None or (output.exists() and output.read_bytes().count(b"\n") >= 6),
                   90, "the header and some rows written", interval=0.01)
        assert process.poll() is None, "the batch finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    killed = read_answers(output)
    assert 5 <= len(killed) < len(rows)
    assert [a["id"] for a in killed] == [r["id"] for r in rows[: len(killed)]]
    assert all(a["answer"] and a["row"] for a in killed)

    subprocess.run([*command, "--resume"], check=True, capture_output=True, timeout=180)
    answers = read_answers(output)
    assert [a["id"] for a in answers] == [r["id"] for r in rows]  # complete, in order, no duplicates
    assert [int(a["row"]) for a in answers] == list(range(2, len(rows) + 2))
    assert all(a["answer"] and not a["error"] for a in answers)


def test_the_web_tab_answers_an_upload_into_a_downloadable_file(tmp_path, qa):
    import gradio as gr

    from qa.web.app import WebConfig
    from qa.web.batch_tab import answer_upload, batch_tab, error_markdown, summary_markdown

    config = WebConfig(tmp_path)

    upload = write_questions(tmp_path / "audit.csv", sample_rows(4))
    output, summary, preview = answer_upload(qa, config, upload, "", ".xlsx")
    assert output.name == "audit.answers.xlsx" and output.parent != tmp_path
    answers = read_answers(output)
    assert [a["id"] for a in answers] == [r["id"] for r in sample_rows(4)]
    # the preview shows the same rows as the file: row number, question, answer, declined, confidence, sources
    assert [p[:3] for p in preview] == [[int(a["row"]), a["question"], a["answer"]] for a in answers]
    assert all(p[3] in ("yes", "no") and p[4].endswith("%") for p in preview)
    assert "answered" in summary_markdown(summary)
    shutil.rmtree(output.parent)
    with pytest.raises(BatchFileError) as error:
        answer_upload(qa, config, upload, "Frage")
    assert error_markdown(error.value, upload) == (
        "Could not answer the file: no column 'Frage' in audit.csv (columns: id, question, owner); "
        "check the question column box"
    )
    with gr.Blocks(), gr.Tab("Batch"):
        batch_tab(lambda name, request: qa, config, gr.Dropdown(["default"], value="default"))


def test_a_formula_in_a_document_is_not_a_formula_in_the_answer_file(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"sheet.txt": (
        "The quarterly report covers sales in the northern region.\n\n"
        '=HYPERLINK("http://attacker.example/steal","Open the quarterly dashboard") is the dashboard link.\n'
    )})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    qa = QA(tmp_path / "index", embedder=embedder)
    questions = write_questions(tmp_path / "questions.csv", [{"question": "What is the dashboard link?"}])
    for suffix in (".csv", ".xlsx"):
        answer_file(qa, questions, tmp_path / f"answers{suffix}")
    [row] = read_answers(tmp_path / "answers.csv")
    assert row["answer"].startswith("'=HYPERLINK(")
    cell = openpyxl.load_workbook(tmp_path / "answers.xlsx").active["B2"]
    assert cell.value.startswith("=HYPERLINK(") and cell.data_type == "s"


# --- hostile question files: bounded memory and time, caps refused in one line -------------------

# Small caps, so that generated tables cross them; the old settings are restored after each test.
CAPS = TableLimits(rows=200, columns=600, cell_chars=20000)  # as QA_MAX_ROWS=200 ... would set


@dataclass(frozen=True)
class Shape:
    """A question table: `rows` rows of `width` short cells, one row `wide` cells wide (ragged:
    nothing pads the others), one cell `long` characters long, and `gap` empty rows before the
    last row (free in a workbook's XML, where openpyxl pads them)."""

    rows: int
    width: int
    wide_at: int
    wide: int
    long: int
    gap: int

    @property
    def columns(self) -> int:
        return max(self.width, self.wide) if self.wide_at < self.rows else self.width

    def over_caps(self, suffix: str) -> bool:
        return self.rows > 200 or self.long > 20000 or (suffix != ".txt" and self.columns > 600)

    def cells(self, r: int) -> list[str]:
        cells = [f"Question {r}?"] + [f"v{r}.{c}" for c in range(1, self.wide if r == self.wide_at else self.width)]
        if r == 0 and self.long:
            cells[0] = "x" * self.long
        return cells


shapes = st.builds(
    Shape,
    rows=st.integers(1, 260),
    width=st.integers(1, 12),
    wide_at=st.integers(0, 259),
    wide=st.integers(1, 800),
    long=st.integers(0, 30000),
    gap=st.integers(0, 20000),
)


def write_shape(path: Path, shape: Shape) -> Path:
    header = ["question"] + [f"c{c}" for c in range(1, shape.width)]
    keys = header + [f"c{c}" for c in range(shape.width, shape.wide)]
    rows = [shape.cells(r) for r in range(shape.rows)]
    lines = [[header] if path.suffix in (".csv", ".xlsx") else []] + [[row] for row in rows]
    lines.insert(-1, [[]] * shape.gap)
    rows = [row for part in lines for row in part]
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join((json.dumps(dict(zip(keys, row))) if row else "") + "\n" for row in rows))
    elif path.suffix == ".txt":
        path.write_text("".join((row[0] if row else "") + "\n" for row in rows), encoding="utf-8")
    else:
        workbook = openpyxl.Workbook()
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                workbook.active.cell(r, c, value)
        workbook.save(path)
    return path


def read_size(path: Path) -> int:
    """The bytes a reader must go through: the file, or for a workbook what it unzips to."""
    if path.suffix == ".xlsx":
        return sum(member.file_size for member in zipfile.ZipFile(path).infolist())
    return path.stat().st_size


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt", ".xlsx"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes)
def test_any_question_table_is_read_in_linear_memory_and_time_or_refused_in_one_line(tmp_path_factory, suffix, shape):
    path = write_shape(tmp_path_factory.mktemp("shape") / f"questions{suffix}", shape)
    run = measured(lambda: read_questions(path, limits=CAPS))
    size = read_size(path)
    # a row costs a few hundred bytes of Python objects whatever its size; the rows cap bounds that
    assert run.peak < 12 * size + 1_000 * shape.rows + 500_000, (run.peak, size)
    assert run.seconds < 2 + size / 500_000, run.seconds
    print(suffix, shape, size, run.peak, round(run.peak / size, 1), round(run.seconds, 3))
    if shape.over_caps(suffix):
        assert isinstance(run.outcome, BatchFileError), run.outcome
        assert "\n" not in str(run.outcome) and "QA_MAX_" in str(run.outcome)
    else:
        assert isinstance(run.outcome, QuestionFile), run.outcome
        assert [r.question for r in run.outcome.rows] == [shape.cells(r)[0] for r in range(shape.rows)]
        if suffix != ".txt":
            assert len(run.outcome.columns) == shape.columns


def test_a_workbook_with_one_far_cell_is_read_without_padding_to_it(tmp_path, monkeypatch):
    monkeypatch.delenv("QA_MAX_COLUMNS", raising=False)
    workbook = openpyxl.Workbook()
    workbook.active.append(["question"])
    workbook.active.append(["Who invented the Fresnel lens?"])
    workbook.active.cell(20_000, 900, "far")  # openpyxl's readers pad every row to column 900
    workbook.save(tmp_path / "far.xlsx")
    assert (tmp_path / "far.xlsx").stat().st_size < 10_000

    run = measured(lambda: read_questions(tmp_path / "far.xlsx"))
    assert run.peak < 3_000_000 and run.seconds < 2, (run.peak, run.seconds)
    assert len(run.outcome.columns) == 900 and run.outcome.columns[-1] == "column 900"
    assert [(r.row, r.question) for r in run.outcome.rows] == [(2, "Who invented the Fresnel lens?"), (20_000, "")]
    assert run.outcome.rows[1].values == {"column 900": "far"}

    workbook.active.cell(100_000, 1_500, "further")
    workbook.save(tmp_path / "further.xlsx")
    result = measured(lambda: cli("batch", str(tmp_path / "further.xlsx"), "-o", str(tmp_path / "answers.csv")))
    assert result.peak < 3_000_000, result.peak
    assert result.outcome.exit_code == 2
    assert result.outcome.output == (
        f"error: cannot read {tmp_path / 'further.xlsx'}: row 100,000 has 1,500 columns, over the 1,000-column "
        "limit (raise it with QA_MAX_COLUMNS)\n"
    )


def test_a_line_of_commas_is_not_padded_into_every_row(tmp_path, monkeypatch):
    monkeypatch.delenv("QA_MAX_COLUMNS", raising=False)
    rows = "".join(f"{i},Question number {i}?\n" for i in range(500))
    path = tmp_path / "commas.csv"
    path.write_text("id,question\n" + rows + "," * 10_000 + "\n")  # 10,000 empty cells: nothing to pad to
    run = measured(lambda: read_questions(path))
    assert run.peak < 10 * path.stat().st_size + 1_000_000, run.peak
    assert run.outcome.columns == ("id", "question") and len(run.outcome.rows) == 500

    path.write_text("id,question\n" + rows + "," * 10_000 + "kept?\n")  # a cell in column 10,001
    result = cli("batch", str(path), "-o", str(tmp_path / "answers.csv"))
    assert result.exit_code == 2
    assert result.output == (f"error: cannot read {path}: row 502 has 10,001 columns, over the 1,000-column limit "
                             "(raise it with QA_MAX_COLUMNS)\n")


def test_thousands_of_columns_of_one_name_are_named_in_linear_time(tmp_path, monkeypatch):
    path = tmp_path / "same.csv"
    path.write_text("question," + ",".join(["a"] * 2_000) + "\nWhen did tea reach England?\n")
    run = measured(lambda: read_questions(path, limits=TableLimits(columns=5000)))
    assert run.seconds < 1, run.seconds
    columns = run.outcome.columns
    assert columns[:4] == ("question", "a", "a (2)", "a (3)") and columns[-1] == "a (2000)"
    assert len(set(columns)) == len(columns) == 2_001


def test_the_delimiter_of_a_crafted_first_line_is_found_in_linear_time(tmp_path, monkeypatch):
    path = tmp_path / "crafted.csv"
    path.write_text("question" + ';"a' * 4_000 + "\nWhen did tea reach England?\n")  # csv.Sniffer: minutes
    run = measured(lambda: read_questions(path, "question", TableLimits(columns=100000)))
    assert run.seconds < 1, run.seconds
    assert [r.question for r in run.outcome.rows] == ["When did tea reach England?"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_resuming_an_answer_file_of_another_question_file_is_refused(tmp_path, qa, index, embedder, monkeypatch,
                                                                    suffix):
    monkeypatch.setattr("qa.pipeline.Embedder", lambda name, **_: embedder)  # if it went on, share the model
    first = write_questions(tmp_path / "first.txt", sample_rows(3))
    output = tmp_path / f"answers{suffix}"
    answer_file(qa, first, output)
    before = output.read_bytes()
    second = write_questions(tmp_path / "second.txt", [{"question": q} for q in reversed(QUESTIONS[:5])])

    result = cli("batch", str(second), "-o", str(output), "--resume", "--index", str(index))
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--overwrite" in lines[0], result.output
    assert output.read_bytes() == before


def test_an_interrupted_txt_answer_file_is_checked_against_its_questions_on_resume(tmp_path, qa):
    first = write_questions(tmp_path / "first.txt", sample_rows(6))
    output = tmp_path / "answers.txt"
    with pytest.raises(KeyboardInterrupt):
        answer_file(qa, first, output, batch_size=2, on_progress=interrupt_after(4))
    assert len(output.read_text().splitlines()) == 4
    second = write_questions(tmp_path / "second.txt", [{"question": "Why?"}] + sample_rows(6)[1:])
    with pytest.raises(BatchFileError, match=r"does not continue .*second.txt \(row 1 differs\)"):
        answer_file(qa, second, output, resume=True)
    summary = answer_file(qa, first, output, resume=True)
    assert (summary.earlier, summary.done) == (4, 2)


@pytest.mark.parametrize("output_name", ["answers.xlsx", "answers.txt"])
def test_an_output_whose_journal_would_be_the_question_file_is_refused(tmp_path, output_name):
    questions = tmp_path / f"{output_name}.partial.jsonl"
    questions.write_text('{"question": "Who invented the Fresnel lens?"}\n')
    result = cli("batch", str(questions), "-o", str(tmp_path / output_name), "--overwrite",
                 "--index", str(tmp_path / "no-index"))
    assert result.exit_code == 2
    assert result.output == (f"error: the output's journal {questions} would overwrite the question file; "
                             "choose another -o/--output\n")
    assert questions.read_text() == '{"question": "Who invented the Fresnel lens?"}\n'


def test_a_sparse_wide_question_file_is_written_to_a_workbook_without_its_empty_cells(tmp_path):
    path = tmp_path / "sparse.csv"
    path.write_text("question," + ",".join(f"note {c}" for c in range(1, 1000)) + "\n"
                    + "".join(f"Question {r}?,seen\n" for r in range(300)))
    source = read_questions(path)
    output = open_output(tmp_path / "answers.xlsx", source)
    output.append([(row, result_fields(None, "not asked"), None) for row in source.rows])
    run = measured(output.render)  # the workbook is rebuilt whole, at checkpoints and at the end
    assert run.peak < 10_000_000, run.peak
    answers = read_answers(tmp_path / "answers.xlsx")
    assert len(answers) == 300 and len(answers[0]) == 1000 + 6
    assert (answers[7]["question"], answers[7]["note 1"], answers[7]["note 2"]) == ("Question 7?", "seen", None)
    assert (answers[7]["error"], answers[7]["row"]) == ("not asked", 9)


def test_the_summary_line_counts_one_of_a_thing_in_the_singular():
    one = BatchSummary(Path("out.csv"), rows=2, earlier=1, answered=0, abstained=0, errors=1, seconds=1.0)
    assert one.line() == (
        "wrote out.csv: 0 answered, 0 declined, 1 error in 1.0s (1.0 questions/s); 1 row was already done"
    )
    done = BatchSummary(Path("out.csv"), rows=1, earlier=1, answered=0, abstained=0, errors=0, seconds=0.0)
    assert done.line() == "out.csv already holds every row (1 row): nothing to do"
    many = BatchSummary(Path("out.csv"), rows=5, earlier=2, answered=1, abstained=0, errors=2, seconds=1.0)
    assert many.line().endswith("2 errors in 1.0s (3.0 questions/s); 2 rows were already done")
