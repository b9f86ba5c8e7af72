"""Settings: each declared once in qa.config, documented in the README, refused in one line naming
its flag and variable when its value is bad, and honoured by every face that has it."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest
from click.testing import CliRunner
from conftest import ROOT, SEED
from web_helpers import (
    LEAVE_Q,
    ServerThread,
    batch_call,
    build_test_index,
    free_port,
    gradio_dependency,
    ui_event,
    wait_until_serving,
)

import qa.batch
import qa.web.batch_tab
from qa.cli import main
from qa.config import SETTINGS, Names, Text, read_settings
from qa.errors import BadSetting
from qa.pipeline import QA
from qa.web.app import WebConfig, create_app

COMMANDS = ("index", "ask", "search", "info", "serve", "batch", "eval")
ARGUMENTS = {"ask": ["What is it?"], "search": ["it"], "batch": ["questions.csv"], "eval": ["questions.csv"]}
BAD_VALUES = ("many", "0", "-1", "100000000", "")


@pytest.fixture(autouse=True)
def no_qa_settings_from_the_environment(monkeypatch):
    for setting in SETTINGS.values():
        monkeypatch.delenv(setting.env, raising=False)


def bad_value(setting) -> str | None:
    """A value the setting refuses, if it refuses any (any text is a name or a list of names)."""
    for text in BAD_VALUES:
        try:
            setting.read(text)
        except BadSetting:
            return text
    return None


def test_every_setting_is_declared_for_a_face_and_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for s in SETTINGS.values():
        assert set(s.faces) <= set(COMMANDS) and s.faces, s.name
        assert s.env in readme and s.flag in readme, s.name
        assert s.default_value() is not None  # the default passes its own parser


def test_every_setting_with_a_type_has_a_value_it_refuses():
    for s in SETTINGS.values():
        assert isinstance(s.parse, Text | Names) or bad_value(s) is not None, s.name


@pytest.mark.parametrize("name", [s.name for s in SETTINGS.values() if bad_value(s) is not None])
def test_a_bad_value_is_refused_in_one_line_naming_the_flag_and_the_variable(name, tmp_path):
    s = SETTINGS[name]
    bad = bad_value(s)
    for command in s.faces:
        args = [command, *ARGUMENTS.get(command, [])]
        for result in (CliRunner(env={s.env: bad}).invoke(main, args), CliRunner().invoke(main, [*args, s.flag, bad])):
            assert result.exit_code == 2, (command, result.output)
            lines = result.output.splitlines()
            assert len(lines) == 1 and "Traceback" not in result.output, (command, result.output)
            assert s.flag in lines[0] and s.env in lines[0] and repr(bad) in lines[0], (command, lines)
    with pytest.raises(BadSetting, match=f"{s.flag} / {s.env}"):
        read_settings(s.faces[0], environ={s.env: bad})


def test_a_flag_wins_over_its_variable_which_wins_over_the_default():
    assert read_settings("ask", environ={}).k == 5
    assert read_settings("ask", environ={"QA_K": "7"}).k == 7
    assert read_settings("ask", {"k": "9"}, environ={"QA_K": "7"}).k == 9
    assert read_settings("search", {"k": "100"}).k == 100  # search has its own bounds
    with pytest.raises(BadSetting):
        read_settings("ask", {"k": "100"})


# --- QA_K and QA_BATCH_SIZE honoured by every face that has them ------------------------------------

@pytest.fixture
def cli_index(tmp_path, embedder, monkeypatch):
    """The seed article indexed; the CLI shares the loaded model."""
    from qa.pipeline import build

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / SEED.name).write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    build(tmp_path / "corpus", tmp_path / "index", "all-MiniLM-L6-v2", embedder=embedder)
    monkeypatch.setattr("qa.pipeline.Embedder", lambda name, **_: embedder)
    return tmp_path / "index"


def test_qa_k_is_honoured_by_qa_search_and_qa_ask(cli_index, monkeypatch):
    env = {"QA_K": "3", "QA_INDEX": str(cli_index)}
    rows = json.loads(CliRunner(env=env).invoke(main, ["search", "Kadena", "--json"]).stdout)
    assert len(rows) == 3
    asked = spy(monkeypatch, QA, "answer_stream")
    assert CliRunner(env=env).invoke(main, ["ask", "Who met on October 28, 2025?"]).exit_code == 0
    assert [call["k"] for call in asked] == [3]


def spy(monkeypatch, owner, name: str) -> list[dict]:
    """Record the arguments, by name, of each call of `owner.name` (still made)."""
    real = getattr(owner, name)
    calls = []

    def recorded(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls


def test_qa_batch_size_is_honoured_by_qa_batch_and_qa_eval(cli_index, tmp_path, monkeypatch):
    questions = tmp_path / "questions.csv"
    questions.write_text("question,expected_answer\nWho met on October 28, 2025?,\nWhat is Kadena?,\n"
                         "Where is Okinawa?,\n", encoding="utf-8")
    batches = spy(monkeypatch, qa.batch, "run_batch")
    env = {"QA_BATCH_SIZE": "2", "QA_K": "4", "QA_INDEX": str(cli_index)}
    result = CliRunner(env=env).invoke(main, ["batch", str(questions), "-o", str(tmp_path / "answers.csv")])
    assert result.exit_code == 0, result.output
    assert [(c["batch_size"], c["k"]) for c in batches] == [(2, 4)]
    evaluated = spy(monkeypatch, qa.batch, "evaluate")
    assert CliRunner(env=env).invoke(main, ["eval", str(questions)]).exit_code == 0, result.output
    assert [(c["batch_size"], c["k"]) for c in evaluated] == [(2, 4)]


def test_qa_k_is_the_web_apps_k_for_the_api_the_chat_and_the_batch_tab(tmp_path, embedder, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    index = build_test_index(tmp_path, embedder)
    settings = read_settings("serve", {"index": str(index)}, environ={"QA_K": "3", "QA_BATCH_SIZE": "7",
                                                                       "QA_RATE_LIMIT": "0"})
    app = create_app(WebConfig.from_settings(settings), embedder)
    assert app.state.config.k == 3
    answered = spy(monkeypatch, QA, "answer_stream")
    batches = spy(monkeypatch, qa.web.batch_tab, "run_batch")
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=60) as api:
        assert len(api.post("/api/search", json={"query": "annual leave"}).json()["results"]) == 3
        assert len(api.post("/api/search", json={"query": "annual leave", "k": 4}).json()["results"]) == 4
        assert api.post("/api/ask", json={"question": LEAVE_Q}).status_code == 200
        assert [c["k"] for c in answered] == [3]
        fn_index, trigger = gradio_dependency(api, "qa-question")
        assert ui_event(api, fn_index, trigger, [LEAVE_Q, [], None], uuid.uuid4().hex)["success"]
        assert [c["k"] for c in answered] == [3, 3]
        sent = api.post("/gradio_api/upload", files={"files": ("q.csv", f"question\n{LEAVE_Q}\n".encode())}).json()
        assert batch_call(api, sent[0])["success"]
        assert [(c["k"], c["batch_size"]) for c in batches] == [(3, 7)]
        assert [c["k"] for c in answered] == [3, 3, 3]


def test_qa_serve_answers_api_searches_with_qa_k(tmp_path, embedder):
    index = build_test_index(tmp_path, embedder)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QA_")}, "QA_K": "2", "QA_INDEX": str(index),
           "QA_PORT": str(port), "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", proc, tmp_path / "serve.log")
        found = httpx.post(f"http://127.0.0.1:{port}/api/search", json={"query": "annual leave"}, timeout=30)
        assert found.status_code == 200, (tmp_path / "serve.log").read_text()
        assert len(found.json()["results"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_flag_whose_value_means_none_is_not_taken_for_a_flag_left_out(monkeypatch):
    # "--rate-limit 0" is "no limit"; read as a flag left out, it fell back to 30/minute
    import click

    from qa.cli import face_options, settings_of

    @click.command()
    @face_options("serve")
    def probe(**_):
        click.echo(repr(settings_of("serve").rate_limit))

    monkeypatch.delenv("QA_RATE_LIMIT", raising=False)
    assert CliRunner().invoke(probe, ["--rate-limit", "0"]).output.strip() == "None"
    assert CliRunner().invoke(probe, []).output.strip() == "(30, 60.0)"
    monkeypatch.setenv("QA_RATE_LIMIT", "off")
    assert CliRunner().invoke(probe, []).output.strip() == "None"
