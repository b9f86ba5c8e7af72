"""The JSON API, its gate (origins, key, rate limit, body size) and the pages around it, tested
against the real server on 127.0.0.1 (uvicorn in a thread, real model, an index built here)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import ROOT, write_corpus
from web_helpers import (
    CORPUS,
    FOLLOW_UP_Q,
    HARBOUR_Q,
    LEAVE_A,
    LEAVE_Q,
    OFF_TOPIC_Q,
    SIGNED_A,
    ServerThread,
    batch_call,
    build_test_index,
    free_port,
    raw_http,
    request_bytes,
    wait_until_serving,
)

from qa.cli import main
from qa.config import MAX_QUESTION_CHARS, SETTINGS
from qa.errors import QAError
from qa.types import Document, Turn
from qa.web import WebConfig, create_app
from qa.web.guard import RateLimiter, parse_origins
from qa.web.render import escape_md, passage_markdown

WIDGET_ORIGIN = "http://127.0.0.1:8123"  # a page of another origin that may use the API


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder) -> Path:
    return build_test_index(tmp_path_factory.mktemp("web"), embedder)


@pytest.fixture(scope="module")
def server(index, embedder):
    """The full app (API, widget, chat UI) as `qa serve` runs it, without a rate limit."""
    config = WebConfig(index, allowed_origins=(WIDGET_ORIGIN,), rate_limit=None,
                       feedback=index.parent / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as running:
        yield running


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def start_api(index, embedder):
    """Start an API-only server with the given settings; stopped after the test."""
    started = []

    def start(**settings) -> httpx.Client:
        running = ServerThread(create_app(WebConfig(index, ui=False, **settings), embedder)).__enter__()
        client = httpx.Client(base_url=running.url, timeout=30)
        started.append((running, client))
        return client

    yield start
    for running, client in started:
        client.close()
        running.__exit__()


def ask(client: httpx.Client, question: str, **body) -> httpx.Response:
    return client.post("/api/ask", json={"question": question, **body})


# --- asking --------------------------------------------------------------------------------------

def indexed_text(server, source: str) -> str:
    """A document's text as the index holds it (offsets count in it, not in the file's bytes)."""
    return server.app.state.qa.document(source).text


def test_ask_answers_with_citations_whose_offsets_check_out(api, server):
    r = ask(api, LEAVE_Q)
    assert r.status_code == 200
    answer = r.json()
    assert set(answer) >= {"question", "answer", "abstained", "confidence", "citations", "sentences", "timings_ms"}
    assert not answer["abstained"]
    assert LEAVE_A in answer["answer"] and "[1]" in answer["answer"]
    cited = answer["citations"][0]
    assert cited["source"] == "leave.md" and cited["title"] == "Annual leave"
    document = indexed_text(server, "leave.md")
    assert cited["passage"] == document[cited["start"] : cited["end"]]
    (start, end), = cited["highlights"]
    assert document[start:end] == LEAVE_A


def test_follow_up_question_uses_the_conversation_history(api):
    # two agreements were signed: the history decides which one "it" is
    harbour = ask(api, FOLLOW_UP_Q, history=[HARBOUR_Q]).json()
    airport = ask(api, FOLLOW_UP_Q, history=["What does the Airport Agreement give staff?"]).json()
    assert not harbour["abstained"] and SIGNED_A in harbour["answer"] and "9 June 2019" not in harbour["answer"]
    assert harbour["citations"][0]["source"] == "travel.md"
    assert not airport["abstained"] and "9 June 2019" in airport["answer"] and SIGNED_A not in airport["answer"]


def test_history_may_carry_the_answers_given(api):
    harbour = ask(api, HARBOUR_Q).json()
    turns = [{"question": LEAVE_Q, "answer": LEAVE_A}, {"question": HARBOUR_Q, "answer": harbour["answer"]}]
    for history in (turns, [turns[0], HARBOUR_Q], [{"question": OFF_TOPIC_Q, "answer": ""}, {"question": HARBOUR_Q}]):
        r = ask(api, FOLLOW_UP_Q, history=history)
        assert r.status_code == 200, r.text
        assert not r.json()["abstained"] and SIGNED_A in r.json()["answer"]


def test_history_turns_reach_the_pipeline_as_turns(server, api, monkeypatch):
    seen = []
    qa = server.app.state.qa
    ask_many = qa.ask_many
    monkeypatch.setattr(qa, "ask_many", lambda qs, **kw: seen.append(kw["histories"]) or ask_many(qs, **kw))
    r = ask(api, FOLLOW_UP_Q, history=["What does the Airport Agreement give staff?",
                                       {"question": HARBOUR_Q, "answer": "A 30% discount. [1]"}, {"question": "x"}])
    assert r.status_code == 200
    assert seen == [[[Turn("What does the Airport Agreement give staff?", ""),
                      Turn(HARBOUR_Q, "A 30% discount. [1]"), Turn("x", "")]]]


def test_off_topic_question_abstains_without_citations(api):
    answer = ask(api, OFF_TOPIC_Q).json()
    assert answer["abstained"] and answer["citations"] == [] and answer["confidence"] < 0.5


def test_k_sets_how_many_passages_search_returns(api, server):
    r = api.post("/api/search", json={"query": "annual leave days", "k": 2})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["rank"] for x in results] == [1, 2]
    assert results[0]["source"] == "leave.md"
    assert results[0]["passage"] == indexed_text(server, "leave.md")[results[0]["start"] : results[0]["end"]]


def test_health_reports_the_loaded_index(api):
    r = api.get("/api/health")
    assert r.status_code == 200
    assert r.json() | {"built_at": None} == {
        "status": "ok", "model": "all-MiniLM-L6-v2", "files": len(CORPUS), "documents": len(CORPUS),
        "chunks": len(CORPUS), "built_at": None,
    }


# --- bad requests --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "body, status, says",
    [
        ({"question": ""}, 422, "empty"),
        ({"question": "   "}, 422, "empty"),
        ({"question": "x" * (MAX_QUESTION_CHARS + 1)}, 422, "limit"),
        ({}, 422, "question"),
        ({"question": LEAVE_Q, "k": 0}, 422, "k"),
        ({"question": LEAVE_Q, "k": 51}, 422, "k"),
        ({"question": LEAVE_Q, "k": "five"}, 422, "k"),
        ({"question": LEAVE_Q, "history": "not a list"}, 422, "history"),
        ({"question": LEAVE_Q, "history": ["q"] * 21}, 422, "history"),
        ({"question": LEAVE_Q, "history": [{"question": "q"}] * 21}, 422, "history"),
        ({"question": LEAVE_Q, "history": [{"question": HARBOUR_Q, "answer": 30}]}, 422, "history.0.answer"),
        ({"question": LEAVE_Q, "history": [{"question": HARBOUR_Q, "answer": None}]}, 422, "history.0.answer"),
        ({"question": LEAVE_Q, "history": [HARBOUR_Q, {"answer": "30%"}]}, 422, "history.1.question: Field required"),
        ({"question": LEAVE_Q, "history": [{"question": ["q"]}]}, 422, "history.0.question"),
        ({"question": LEAVE_Q, "history": [{"question": "x" * (MAX_QUESTION_CHARS + 1)}]}, 422, "history.0.question"),
        ({"question": LEAVE_Q, "history": [{"question": "q", "answer": "x" * 20_001}]}, 422, "history.0.answer"),
        ({"question": LEAVE_Q, "history": [5]}, 422, "history.0: Input should be a question string or an object"),
        ({"question": LEAVE_Q, "history": [["q", "a"]]}, 422, "history.0"),
        ({"question": LEAVE_Q, "history": [None]}, 422, "history.0"),
        ([1, 2], 422, "body"),
    ],
)
def test_bad_questions_get_a_json_422(api, body, status, says):
    r = api.post("/api/ask", json=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert says in r.json()["error"] and "\n" not in r.json()["error"]


def test_wrong_content_type_gets_415(api):
    r = api.post("/api/ask", content=json.dumps({"question": LEAVE_Q}), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "JSON" in r.json()["error"]


def test_malformed_json_gets_400(api):
    r = api.post("/api/ask", content=b'{"question": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "the request body is not valid JSON"}


def test_body_over_the_size_limit_gets_413(api):
    big = json.dumps({"question": LEAVE_Q, "history": ["x" * 2000] * 40}).encode()
    assert api.post("/api/ask", content=big, headers={"Content-Type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(100):
            yield b" " * 1024

    r = api.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "bytes" in r.json()["error"]


def test_unknown_api_path_gets_a_json_404(api):
    r = api.get("/api/nothing-here")
    assert r.status_code == 404 and "/docs" in r.json()["error"]


def test_unexpected_errors_are_json_without_a_stack_trace(api, server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(server.app.state.qa, "ask_many", broken)
    r = ask(api, LEAVE_Q)
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (details are in the server log)"}
    assert "secret" not in r.text and "Traceback" not in r.text


# --- feedback ------------------------------------------------------------------------------------

def test_feedback_is_appended_to_a_jsonl_file(api, index):
    answer = ask(api, LEAVE_Q).json()
    body = {"rating": "down", "question": answer["question"], "answer": answer["answer"],
            "citations": answer["citations"], "comment": "too short"}
    r = api.post("/api/feedback", json=body)
    assert r.status_code == 201 and r.json() == {"stored": True}
    records = [json.loads(line) for line in (index.parent / "feedback.jsonl").read_text().splitlines()]
    mine = [x for x in records if x["comment"] == "too short"]
    assert len(mine) == 1
    assert mine[0]["rating"] == "down" and mine[0]["via"] == "api" and mine[0]["question"] == LEAVE_Q
    assert mine[0]["answer"] == answer["answer"]
    assert mine[0]["citations"][0]["source"] == "leave.md" and "passage" not in mine[0]["citations"][0]
    assert api.post("/api/feedback", json={**body, "rating": "meh"}).status_code == 422


def test_feedback_keeps_the_history_in_the_form_it_was_sent(api, index):
    history = [HARBOUR_Q, {"question": FOLLOW_UP_Q, "answer": "On 4 May 2021. [1]"}, {"question": OFF_TOPIC_Q}]
    body = {"rating": "up", "question": LEAVE_Q, "answer": LEAVE_A, "history": history, "comment": "forms"}
    assert api.post("/api/feedback", json=body).status_code == 201
    records = [json.loads(line) for line in (index.parent / "feedback.jsonl").read_text().splitlines()]
    mine = [x for x in records if x["comment"] == "forms"]
    assert mine[-1]["history"] == [HARBOUR_Q, {"question": FOLLOW_UP_Q, "answer": "On 4 May 2021. [1]"}, OFF_TOPIC_Q]
    r = api.post("/api/feedback", json={**body, "history": [{"question": LEAVE_Q, "answer": 1}]})
    assert r.status_code == 422 and r.json()["error"].startswith("history.0.answer")


# --- origins, key, rate limit --------------------------------------------------------------------

def test_allowed_origin_gets_cors_headers(api):
    preflight = api.options("/api/ask", headers={
        "Origin": WIDGET_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == WIDGET_ORIGIN
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    r = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": WIDGET_ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WIDGET_ORIGIN
    assert "origin" in r.headers["vary"].lower()


@pytest.mark.parametrize("origin", ["http://127.0.0.1:9", "http://evil.example", "null"])
def test_other_origins_are_refused(api, origin):
    preflight = api.options("/api/ask", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    r = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": origin})
    assert r.status_code == 403 and "QA_ALLOWED_ORIGINS" in r.json()["error"]
    # The chat UI's own endpoints refuse them too, and the widget script stays public.
    assert api.post("/gradio_api/queue/join", json={}, headers={"Origin": origin}).status_code == 403
    assert api.get("/widget.js", headers={"Origin": origin}).status_code == 200



def test_a_refused_origin_is_logged_with_the_setting_that_allows_it(api, caplog):
    origin = "http://intranet-not-yet-allowed.example"
    with caplog.at_level(logging.WARNING, logger="qa.web"):
        assert api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": origin}).status_code == 403
        assert api.get("/embed", headers={"Origin": origin}).status_code == 403
    said = [r.getMessage() for r in caplog.records if r.name == "qa.web"]
    assert len(said) == 1, said  # once per origin, not once per request
    assert origin in said[0] and "QA_ALLOWED_ORIGINS" in said[0] and "--allowed-origins" in said[0]


def test_same_origin_requests_are_served(api, server):
    r = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": server.url})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # Behind a TLS-terminating proxy the page is https while the server sees http.
    https = server.url.replace("http://", "https://")
    assert api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": https}).status_code == 200


def test_empty_allowed_origins_means_same_origin_only(start_api):
    client = start_api(allowed_origins=())
    assert client.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": WIDGET_ORIGIN}).status_code == 403
    own = str(client.base_url).rstrip("/")
    assert client.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": own}).status_code == 200
    assert "frame-ancestors 'self'" in client.get("/embed").headers.get_list("content-security-policy")


def test_api_key_is_required_when_set(start_api):
    client = start_api(api_key="s3cret")
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        r = client.post("/api/ask", json={"question": LEAVE_Q}, headers=headers)
        assert r.status_code == 401 and "API key" in r.json()["error"]
    assert client.post("/api/ask", json={"question": LEAVE_Q}, headers={"X-API-Key": "s3cret"}).status_code == 200
    r = client.post("/api/search", json={"query": "leave"}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    assert client.get("/api/health").status_code == 200  # probes need no key


def test_rate_limit_answers_429_with_retry_after(start_api):
    client = start_api(rate_limit=(3, 60.0))
    codes = [client.post("/api/search", json={"query": "leave"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = client.post("/api/ask", json={"question": LEAVE_Q})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 20
    assert "try again" in r.json()["error"]
    assert client.get("/api/health").status_code == 200


# --- pages ---------------------------------------------------------------------------------------

def test_source_page_serves_only_indexed_documents_as_escaped_text(api):
    r = api.get("/source", params={"source": "payload.txt", "start": 0, "end": 60, "hl": "10-20"})
    assert r.status_code == 200
    assert "<script>window" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in r.text and 'id="hit"' in r.text
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none': nothing runs
    assert "default-src 'none'" in r.headers["content-security-policy"]
    for outside in ["../../etc/passwd", "/etc/passwd", "leave.md/../../../etc/passwd", "corpus/leave.md"]:
        assert api.get("/source", params={"source": outside}).status_code == 404


def test_embed_page_may_be_framed_only_by_allowed_origins(api):
    r = api.get("/embed", params={"title": '<script>alert(1)</script>"'})
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in r.text
    policies = " ".join(r.headers.get_list("content-security-policy"))
    assert f"frame-ancestors 'self' {WIDGET_ORIGIN}" in policies
    assert '<script src="widget.js" data-mode="inline"' in r.text


def test_docs_are_served_without_a_cdn(api):
    page = api.get("/docs")
    assert page.status_code == 200 and "cdn." not in page.text
    assert api.get("/qa-static/docs/swagger-ui-bundle.js").status_code == 200
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/ask", "/api/search", "/api/health", "/api/feedback"} <= set(paths)


def test_openapi_documents_both_history_forms(api):
    schema = api.get("/openapi.json").json()
    history = schema["components"]["schemas"]["AskRequest"]["properties"]["history"]
    forms = history["items"]["anyOf"]
    assert {"type": "string", "maxLength": MAX_QUESTION_CHARS} in forms
    turn = schema["components"]["schemas"][forms[1]["$ref"].split("/")[-1]]
    assert set(turn["properties"]) == {"question", "answer"} and turn["required"] == ["question"]
    assert history["maxItems"] == 20 and '"answer"' in history["description"]


def test_chat_ui_and_widget_are_served_by_the_same_server(api):
    assert "gradio" in api.get("/").text.lower()
    widget = api.get("/widget.js")
    assert widget.status_code == 200 and widget.headers["content-type"].startswith("text/javascript")
    assert not re.search(r"\.innerHTML\s*=|insertAdjacentHTML|document\.write", widget.text)
    assert "attachShadow" in widget.text



@pytest.mark.parametrize("target", [
    "/", "/api/health", "/source?source=leave.md", "/widget.js", "/embed?title=Help", "/docs", "/openapi.json",
    "/api/collections", "/api/collections/default/documents", "/api/collections/default/status", "/api/conversations",
])
def test_head_answers_wherever_get_does_with_its_headers_and_no_body(api, server, target):
    got = api.get(target)
    status, lines, body = raw_http(server.url, request_bytes(server.url, "HEAD", target))
    assert (status, body) == (got.status_code, b"") == (200, b"")
    head = [line.decode().split(": ", 1) for line in lines]
    for name in ("content-type", "content-length", "content-security-policy", "x-content-type-options"):
        assert [v for k, v in head if k.lower() == name] == got.headers.get_list(name), name



def test_batch_tab_summary_counts_one_question_and_one_error_in_the_singular(api):
    for rows, says in ((f"{LEAVE_Q}\n", "**1 question**: **1** answered"),
                       (f"{LEAVE_Q}\n{'x' * (MAX_QUESTION_CHARS + 1)}\n", "**1 error** (see the `error` column)")):
        (uploaded,) = api.post("/gradio_api/upload", files={"files": ("q.csv", f"question\n{rows}".encode())}).json()
        done = batch_call(api, uploaded)
        assert done["success"], done
        summary = done["output"]["data"][1]
        summary = summary.get("value", summary) if isinstance(summary, dict) else summary
        assert says in summary, summary


# --- starting the server -------------------------------------------------------------------------

def test_a_server_keeps_numpys_blas_to_one_thread():
    from threadpoolctl import threadpool_info

    from qa.web.app import single_threaded_blas

    limit = single_threaded_blas()
    try:
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(pool["num_threads"] == 1 for pool in blas)
    finally:
        limit.restore_original_limits()


def test_serve_help_lists_every_web_setting():
    out = CliRunner().invoke(main, ["serve", "--help"]).output
    for name in ("host", "port", "index", "corpus", "allowed_origins", "allowed_hosts", "api_key", "rate_limit",
                 "trusted_proxies", "feedback"):
        assert SETTINGS[name].flag in out and SETTINGS[name].env in out


def test_app_py_builds_the_index_from_the_corpus_then_serves(tmp_path):
    write_corpus(tmp_path / "corpus", {"leave.md": CORPUS["leave.md"]})
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QA_")}, "GRADIO_TEMP_DIR": str(tmp_path / "up")}
    with open(tmp_path / "out.log", "w") as log:
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        health = wait_until_serving(f"http://127.0.0.1:{port}", proc, tmp_path / "out.log")
        output = (tmp_path / "out.log").read_text()
        assert health.status_code == 200, output
        assert health.json()["documents"] == 1
        assert "building it from corpus" in output and "embedding" in output  # progress in the terminal
        assert (tmp_path / "index" / "current" / "manifest.json").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --- the pieces ----------------------------------------------------------------------------------

def test_concurrent_questions_get_the_answers_they_would_get_alone(index, embedder):
    from concurrent.futures import ThreadPoolExecutor

    from qa.errors import BadQuestion
    from qa.pipeline import QA
    from qa.web.ask_queue import AskQueue

    qa = QA(index, embedder=embedder)
    asking = AskQueue(lambda: qa)
    questions = [LEAVE_Q, HARBOUR_Q, OFF_TOPIC_Q, FOLLOW_UP_Q] * 4
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(asking.ask, q, 5, [HARBOUR_Q] if q == FOLLOW_UP_Q else []) for q in questions]
        bad = pool.submit(asking.ask, "  ")
        answers = [f.result() for f in futures]
    with pytest.raises(BadQuestion):
        bad.result()  # fails alone; the others in its batch are answered
    for q, got in zip(questions, answers):
        alone = qa.ask(q, history=[HARBOUR_Q] if q == FOLLOW_UP_Q else [])
        assert (got.answer, got.abstained, [c.source for c in got.citations]) == (
            alone.answer, alone.abstained, [c.source for c in alone.citations])
        assert got.confidence == pytest.approx(alone.confidence, abs=1e-3)


def test_allowed_origins_are_parsed_strictly():
    assert parse_origins("") == ()
    assert parse_origins(" http://Intranet.Local:8080/ , https://a.b ") == ("http://intranet.local:8080", "https://a.b")
    for bad in ("*", "intranet.local", "ftp://x", "http://x/path"):
        with pytest.raises(QAError):
            parse_origins(bad)


def test_rate_limits_are_parsed():
    parse_rate = SETTINGS["rate_limit"].read
    assert parse_rate("30/minute") == (30, 60.0)
    assert parse_rate("5 / seconds") == (5, 1.0)
    assert parse_rate("0") is None and parse_rate("") is None
    with pytest.raises(QAError):
        parse_rate("lots")


def test_rate_limiter_refills_evenly_per_client():
    now = [0.0]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(30.0)
    assert limiter.take("b") == 0.0  # another client has its own bucket
    now[0] = 30.0
    assert limiter.take("a") == 0.0


def test_markdown_escaping_leaves_no_markup():
    text = '<img src=x onerror="alert(1)"> **b** [l](javascript:x) ![i](y) `c` # h'
    escaped = escape_md(text)
    assert "<" not in escaped and "](" not in escaped and "**" not in escaped
    marked = passage_markdown("One. Two <b>. Three.", 100, [(105, 113)])
    assert marked == "One\\. <mark>Two &lt;b&gt;\\.</mark> Three\\."


def test_example_questions_are_the_documents_own_questions_then_their_topics():
    from qa.web.examples import example_questions

    prose = (
        "The travel policy sets the meal allowance for every city we visit. "
        "Staff booking the meal allowance online get it on the next payroll. "
        "Nobody may claim the meal allowance twice for one day of travel abroad. "
    )
    documents = [
        Document("faq.csv#1", "How do I reset my password?", "..."),
        Document("faq.csv#2", "2", "..."),  # a row titled by its number only
        Document("guide.md", "Guide", "Q: can I work from home on Fridays?\nYes, with your manager's consent."),
        Document("policy.md", "Deepening Entanglements: A Long Title", prose),
    ]
    assert example_questions(documents) == [
        "How do I reset my password?",
        "Can I work from home on Fridays?",
        "What do the documents say about the meal allowance?",
    ]
    # no quoted titles, whatever the corpus
    assert not any("“" in q or "say?" in q and "about" not in q for q in example_questions(documents))
    assert example_questions(documents, given=["What is covered?", "  "]) == ["What is covered?"]


def test_a_phrase_that_is_part_of_a_longer_name_is_no_topic():
    from qa.web.examples import example_questions

    text = (
        "The report praised Japanese foreign policy in the region for many years now. "
        "Critics said Japanese foreign ministers changed their minds about it every year. "
    )
    assert example_questions([Document("a.txt", "A", text)]) == []


def test_the_chat_ui_hands_a_declined_turn_on_as_declined():
    from qa.web.chat_ui import earlier_turn

    declined = {"question": OFF_TOPIC_Q, "answer": {"abstained": True, "answer": "I could not find this."}}
    answered = {"question": HARBOUR_Q, "answer": {"abstained": False, "answer": "A 30% discount. [1]"}}
    assert earlier_turn(declined) == Turn(OFF_TOPIC_Q, "", declined=True)
    assert earlier_turn(answered) == Turn(HARBOUR_Q, "A 30% discount. [1]", declined=False)
