"""Every error a user can see is declared in qa/errors.py with the exit code `qa` ends with and the
HTTP status the web app answers; the CLI and the web report each error by what it declares."""

from __future__ import annotations

import importlib
import pkgutil

import httpx
import pytest
from click.testing import CliRunner
from web_helpers import ServerThread, build_test_index

import qa
from qa import errors
from qa.cli import main
from qa.errors import (
    BadQuestion,
    BadSetting,
    BatchFileError,
    DiskFull,
    IndexBusy,
    IndexDamaged,
    IndexNotFound,
    LoadError,
    QAError,
)
from qa.web import WebConfig, create_app


def _all_subclasses(cls: type) -> set[type]:
    return {sub for direct in cls.__subclasses__() for sub in {direct, *_all_subclasses(direct)}}


def _qa_error_classes() -> set[type]:
    for module in pkgutil.walk_packages(qa.__path__, "qa."):
        importlib.import_module(module.name)  # so that an error declared anywhere is seen
    return {QAError, *_all_subclasses(QAError)}


def test_every_error_is_declared_in_errors_py_with_an_exit_code_and_an_http_status():
    classes = _qa_error_classes()
    assert {LoadError, BatchFileError, BadSetting, BadQuestion} <= classes
    for cls in classes:
        assert cls.__module__ == "qa.errors", f"{cls.__qualname__} is declared in {cls.__module__}"
        declared = vars(cls)
        assert isinstance(declared.get("exit_code"), int) and 1 <= declared["exit_code"] <= 125, cls
        assert isinstance(declared.get("http_status"), int) and 400 <= declared["http_status"] <= 599, cls


def test_the_modules_that_raise_them_still_name_them():
    from qa.batch import BatchFileError as from_batch
    from qa.load import LoadError as from_load

    assert from_batch is errors.BatchFileError and from_load is errors.LoadError


def test_the_cli_exits_with_the_declared_code(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["info", "--index", str(tmp_path / "nowhere")])
    assert missing.exit_code == IndexNotFound.exit_code and "no index at" in missing.stderr
    empty = runner.invoke(main, ["ask", "   ", "--index", str(tmp_path / "nowhere")])
    assert empty.exit_code == BadQuestion.exit_code and "the question is empty" in empty.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    index = build_test_index(tmp_path_factory.mktemp("errors"), embedder)
    config = WebConfig(index, rate_limit=None, ui=False, feedback=index.parent / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as running:
        yield running


ERRORS = [
    BadQuestion("the question is empty"),
    BatchFileError("no questions in /srv/questions.csv"),
    LoadError("binary file, not text"),
    BadSetting("QA_MAX_ROWS must be a whole number of at least 1, not 'many'"),
    IndexNotFound("/srv/qa/index"),
    IndexDamaged("/srv/qa/index", "dense.faiss: truncated"),
    IndexBusy("/srv/qa/index"),
    DiskFull("/srv/qa/index", "No space left on device"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_the_web_answers_with_the_declared_status(server, monkeypatch, error):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(server.app.state.qa, "search", failing)
    r = httpx.post(server.url + "/api/search", json={"query": "annual leave"}, timeout=30)
    assert r.status_code == type(error).http_status
    if r.status_code < 500:  # the client's to fix: told what is wrong
        assert r.json() == {"error": str(error)}
    else:  # the server's: its folders stay out of the answer
        assert "server log" in r.json()["error"] and "/srv" not in r.text


def test_an_unexpected_exception_is_still_a_500(server, monkeypatch):
    def failing(*args, **kwargs):
        raise KeyError("/srv/secret")

    monkeypatch.setattr(server.app.state.qa, "search", failing)
    r = httpx.post(server.url + "/api/search", json={"query": "annual leave"}, timeout=30)
    assert r.status_code == 500 and "secret" not in r.text
