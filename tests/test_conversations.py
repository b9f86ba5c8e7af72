"""Saved conversations: asked, continued, listed, read, exported and deleted over the JSON API of a
real server on 127.0.0.1 (real model, an index built here, the SQLite file in tmp), kept per
browser session (its cookie) or signed-in user, and never shown to anyone else."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import write_corpus
from starlette.requests import Request
from web_helpers import (
    CORPUS,
    FOLLOW_UP_Q,
    HARBOUR_Q,
    LEAVE_Q,
    OFF_TOPIC_Q,
    SIGNED_A,
    ServerThread,
    build_test_index,
)

from qa.cli import main
from qa.config import DEFAULT_MODEL
from qa.pipeline import ConversationStore, SavedTurn, build
from qa.web import WebConfig, create_app
from qa.web.sessions import SESSION_COOKIE, request_owner

OTHER_ORIGIN = "http://127.0.0.1:8124"


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder) -> Path:
    return build_test_index(tmp_path_factory.mktemp("conversations"), embedder)


@pytest.fixture(scope="module")
def server(index, embedder):
    """The API with small caps: 3 questions a conversation, 3 conversations an owner."""
    config = WebConfig(index, ui=False, rate_limit=None, allowed_origins=(OTHER_ORIGIN,), max_turns=3,
                       max_conversations=3)
    with ServerThread(create_app(config, embedder)) as running:
        yield running


@pytest.fixture
def client(server):
    """A client keeping its cookies, as a browser does: one session."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def other(server):
    """A second browser, with its own session."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def ask(c: httpx.Client, question: str, **body) -> dict:
    r = c.post("/api/ask", json={"question": question, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_asking_starts_a_conversation_that_its_id_continues_with_its_history(client):
    first = ask(client, HARBOUR_Q)
    conversation_id = first["conversation_id"]
    assert len(conversation_id) >= 24
    follow_up = ask(client, FOLLOW_UP_Q, conversation_id=conversation_id)
    assert follow_up["conversation_id"] == conversation_id
    assert SIGNED_A in follow_up["answer"]  # read with the saved question before it

    listed = client.get("/api/conversations").json()["conversations"]
    assert [(c["id"], c["title"], c["turns"]) for c in listed] == [(conversation_id, HARBOUR_Q, 2)]
    saved = client.get(f"/api/conversations/{conversation_id}").json()
    assert [t["question"] for t in saved["turns"]] == [HARBOUR_Q, FOLLOW_UP_Q]
    for turn, answer in zip(saved["turns"], (first, follow_up), strict=True):
        assert turn["answer"] == answer["answer"] and turn["citations"] == answer["citations"]
        assert turn["sentences"] == answer["sentences"]
        assert turn["confidence"] == pytest.approx(answer["confidence"])
        assert turn["abstained"] is False and turn["collection"] == "default"


def test_a_follow_up_in_a_saved_conversation_passes_over_a_declined_turn(client):
    conversation_id = ask(client, HARBOUR_Q)["conversation_id"]
    assert ask(client, OFF_TOPIC_Q, conversation_id=conversation_id)["abstained"]
    follow_up = ask(client, FOLLOW_UP_Q, conversation_id=conversation_id)
    assert SIGNED_A in follow_up["answer"], follow_up["answer"]  # read with the harbour question, not banana bread


def test_conversations_are_listed_newest_first_and_a_declined_answer_is_saved_as_declined(client):
    older = ask(client, LEAVE_Q)["conversation_id"]
    newer = ask(client, OFF_TOPIC_Q)["conversation_id"]
    assert [c["id"] for c in client.get("/api/conversations").json()["conversations"]] == [newer, older]
    ask(client, FOLLOW_UP_Q, conversation_id=older)  # updating one brings it to the top
    assert [c["id"] for c in client.get("/api/conversations").json()["conversations"]] == [older, newer]
    declined = client.get(f"/api/conversations/{newer}").json()["turns"][0]
    assert declined["abstained"] is True and declined["citations"] == []


def test_export_is_markdown_with_each_answer_and_its_numbered_citations(client):
    answer = ask(client, HARBOUR_Q)
    r = client.get(f"/api/conversations/{answer['conversation_id']}/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.headers["content-disposition"] == 'attachment; filename="what-discount-does-the-harbour-agreement-give.md"'
    text = r.text
    assert text.startswith(f"# {HARBOUR_Q}\n")
    assert f"## 1. {HARBOUR_Q}" in text and answer["answer"] in text
    first = answer["citations"][0]
    assert f"[1] {first['source']}" in text
    assert "> " + first["passage"].splitlines()[0] in text


def test_a_deleted_conversation_is_gone(client):
    conversation_id = ask(client, LEAVE_Q)["conversation_id"]
    assert client.delete(f"/api/conversations/{conversation_id}").json() == {"deleted": conversation_id}
    assert client.get(f"/api/conversations/{conversation_id}").status_code == 404
    assert conversation_id not in [c["id"] for c in client.get("/api/conversations").json()["conversations"]]
    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 404
    r = client.post("/api/ask", json={"question": FOLLOW_UP_Q, "conversation_id": conversation_id})
    assert r.status_code == 404 and "no such conversation" in r.json()["error"]


def test_another_session_cannot_see_continue_export_or_delete_it(client, other):
    conversation_id = ask(client, HARBOUR_Q)["conversation_id"]
    ask(other, LEAVE_Q)  # the other browser has a session of its own
    assert client.cookies[SESSION_COOKIE] != other.cookies[SESSION_COOKIE]
    assert conversation_id not in [c["id"] for c in other.get("/api/conversations").json()["conversations"]]
    for r in (other.get(f"/api/conversations/{conversation_id}"),
              other.get(f"/api/conversations/{conversation_id}/export"),
              other.delete(f"/api/conversations/{conversation_id}"),
              other.post("/api/ask", json={"question": FOLLOW_UP_Q, "conversation_id": conversation_id})):
        assert r.status_code == 404, r.text  # exactly as if it did not exist
        assert r.json() == {"error": "no such conversation (it was deleted, or belongs to another user or browser)"}
    assert client.get(f"/api/conversations/{conversation_id}").json()["turns"][0]["question"] == HARBOUR_Q


def test_a_client_without_a_session_owns_nothing_and_a_forged_cookie_is_replaced(server, client):
    conversation_id = ask(client, HARBOUR_Q)["conversation_id"]
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.get("/api/conversations").json() == {"conversations": []}
        assert anonymous.get(f"/api/conversations/{conversation_id}").status_code == 404
        assert SESSION_COOKIE not in anonymous.cookies  # a GET never starts a session
    with httpx.Client(base_url=server.url, timeout=30, cookies={SESSION_COOKIE: "not-a-session"}) as forged:
        r = forged.post("/api/ask", json={"question": LEAVE_Q})
        assert r.status_code == 200 and r.cookies[SESSION_COOKIE] != "not-a-session"


def test_the_session_cookie_is_http_only_and_same_site_strict(server):
    r = httpx.post(server.url + "/api/ask", json={"question": LEAVE_Q}, timeout=30)
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    again = httpx.post(server.url + "/api/ask", json={"question": LEAVE_Q}, timeout=30, cookies=r.cookies)
    assert "set-cookie" not in again.headers  # a session, once given, is kept


def test_an_allowed_origin_may_send_its_cookie(client):
    r = client.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": OTHER_ORIGIN})
    assert r.headers["access-control-allow-origin"] == OTHER_ORIGIN
    assert r.headers["access-control-allow-credentials"] == "true"
    preflight = client.options("/api/conversations/x", headers={
        "Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "DELETE"})
    assert "DELETE" in preflight.headers["access-control-allow-methods"]


def test_a_full_conversation_refuses_the_next_question(client):
    conversation_id = ask(client, LEAVE_Q)["conversation_id"]
    ask(client, HARBOUR_Q, conversation_id=conversation_id)
    ask(client, FOLLOW_UP_Q, conversation_id=conversation_id)
    r = client.post("/api/ask", json={"question": LEAVE_Q, "conversation_id": conversation_id})
    assert r.status_code == 409 and "QA_MAX_TURNS" in r.json()["error"]
    assert client.get(f"/api/conversations/{conversation_id}").json()["turns"][-1]["question"] == FOLLOW_UP_Q


def test_past_the_cap_an_owners_least_recently_updated_conversation_is_dropped(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        made = [ask(c, q)["conversation_id"] for q in (LEAVE_Q, HARBOUR_Q, OFF_TOPIC_Q)]
        ask(c, FOLLOW_UP_Q, conversation_id=made[0])  # the first is now the most recently updated
        newest = ask(c, LEAVE_Q)["conversation_id"]
        kept = [x["id"] for x in c.get("/api/conversations").json()["conversations"]]
        assert kept == [newest, made[0], made[2]]
        assert c.get(f"/api/conversations/{made[1]}").status_code == 404


@pytest.mark.parametrize("bad", ["unknown-but-well-formed-id0", "x" * 65, "%2e%2e%2fetc", "a%00b", "a b"])
def test_bad_or_unknown_ids_in_a_path_get_a_json_404(client, bad):
    for r in (client.get(f"/api/conversations/{bad}"), client.delete(f"/api/conversations/{bad}"),
              client.get(f"/api/conversations/{bad}/export")):
        assert r.status_code == 404 and "error" in r.json(), (bad, r.text)


@pytest.mark.parametrize(("body", "says"), [
    ({"conversation_id": "a b"}, "conversation_id: String should match pattern"),
    ({"conversation_id": "x" * 65}, "conversation_id: String should match pattern"),
    ({"conversation_id": 5}, "conversation_id: Input should be a valid string"),
    ({"conversation_id": "abc", "history": ["What is it?"]}, "either history or conversation_id"),
])
def test_bad_conversation_ids_in_a_question_get_a_422(client, body, says):
    r = client.post("/api/ask", json={"question": LEAVE_Q, **body})
    assert r.status_code == 422 and says in r.json()["error"], r.text


def test_conversations_outlive_the_server_in_a_file_beside_the_index(index, embedder):
    config = WebConfig(index, ui=False, rate_limit=None)
    with ServerThread(create_app(config, embedder)) as first, httpx.Client(base_url=first.url, timeout=30) as c:
        conversation_id = ask(c, HARBOUR_Q)["conversation_id"]
        cookie = c.cookies[SESSION_COOKIE]
    assert (index.parent / "conversations.sqlite").is_file()
    with ServerThread(create_app(config, embedder)) as again, \
            httpx.Client(base_url=again.url, timeout=30, cookies={SESSION_COOKIE: cookie}) as c:
        assert [x["id"] for x in c.get("/api/conversations").json()["conversations"]][0] == conversation_id


def test_a_conversations_file_that_cannot_be_used_stops_serve_with_one_line(index, tmp_path):
    (tmp_path / "notes.sqlite").write_text("not a database")
    for unusable in (tmp_path, tmp_path / "notes.sqlite"):
        result = CliRunner().invoke(main, ["serve", "--index", str(index), "--conversations", str(unusable)])
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and "--conversations / QA_CONVERSATIONS" in result.output, result.output


def test_with_sign_in_the_signed_in_user_owns_the_conversations(index, embedder, tmp_path):
    reader, admin = "reader-key-0123456789", "admin-key-0123456789"
    config = WebConfig(index, ui=False, rate_limit=None, api_key=reader, admin_key=admin,
                       conversations=tmp_path / "signed.sqlite")
    with ServerThread(create_app(config, embedder)) as running, \
            httpx.Client(base_url=running.url, timeout=30, headers={"X-API-Key": reader}) as as_reader, \
            httpx.Client(base_url=running.url, timeout=30, headers={"X-API-Key": admin}) as as_admin:
        r = as_reader.post("/api/ask", json={"question": HARBOUR_Q})
        assert r.status_code == 200 and "set-cookie" not in r.headers  # sign-in's qa_session is not ours to set
        conversation_id = r.json()["conversation_id"]
        assert SIGNED_A in ask(as_reader, FOLLOW_UP_Q, conversation_id=conversation_id)["answer"]
        assert [c["id"] for c in as_reader.get("/api/conversations").json()["conversations"]] == [conversation_id]
        assert as_admin.get("/api/conversations").json() == {"conversations": []}
        assert as_admin.get(f"/api/conversations/{conversation_id}").status_code == 404
        assert httpx.get(f"{running.url}/api/conversations", timeout=30).status_code == 401


def test_each_turn_keeps_the_collection_it_asked(index, embedder, tmp_path):
    write_corpus(tmp_path / "travel" / "corpus", {"travel.md": CORPUS["travel.md"]})
    build(tmp_path / "travel" / "corpus", tmp_path / "travel" / "index", DEFAULT_MODEL, embedder=embedder)
    config = WebConfig(index, collections=(("all", index), ("travel", tmp_path / "travel" / "index")), ui=False,
                       rate_limit=None, conversations=tmp_path / "c.sqlite")
    with ServerThread(create_app(config, embedder)) as running, httpx.Client(base_url=running.url, timeout=30) as c:
        conversation_id = ask(c, HARBOUR_Q, collection="travel")["conversation_id"]
        ask(c, LEAVE_Q, conversation_id=conversation_id)  # the first collection, when none is named
        turns = c.get(f"/api/conversations/{conversation_id}").json()["turns"]
        assert [t["collection"] for t in turns] == ["travel", "all"]


# --- the store and the owner, without a server ------------------------------------------------------

def turn(question: str) -> SavedTurn:
    return SavedTurn(question, "an answer", False, 0.9, [{"n": 1, "source": "a.md", "passage": "p"}])


def test_the_store_is_in_wal_mode_and_safe_from_several_threads(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite", max_turns=1000, max_conversations=1000)
    ids = [store.add_turn(f"session:{n}", None, turn("first")) for n in range(8)]

    def add(n: int) -> None:
        for i in range(25):
            store.add_turn(f"session:{n}", ids[n], turn(f"question {i}"))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(8):
        saved = store.get(f"session:{n}", ids[n])
        assert saved.turn_count == len(saved.turns) == 26
        assert [t.question for t in saved.turns][1:] == [f"question {i}" for i in range(25)]
    store.close()
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def request_with(user: str | None = None, cookie: str | None = None) -> Request:
    headers = [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                    "state": {"user": user} if user else {}})


def test_the_signed_in_user_owns_the_request_before_the_session_cookie():
    token = "A" * 43
    assert request_owner(request_with(user="alice", cookie=token)) == "user:alice"
    by_session = request_owner(request_with(cookie=token))
    assert by_session.startswith("session:") and token not in by_session  # the cookie itself is not stored
    assert request_owner(request_with(cookie="short")) is None
    assert request_owner(request_with()) is None
