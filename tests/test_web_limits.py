"""The server's limits, tried as an attacker would, against the real server on 127.0.0.1: bodies
over their limit whatever their framing, routes that would make the server fetch a URL, forwarded
headers from clients that are not proxies, the chat UI's rate limit, history and feedback size,
files left on disk, and origins written with or without their default port.

Raw sockets send what HTTP clients refuse to (Content-Length together with chunked framing)."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
import safehttpx
from conftest import wait_until
from load_clients import rss_mb
from web_helpers import (
    LEAVE_A,
    LEAVE_Q,
    HostPages,
    ServerThread,
    batch_call,
    build_test_index,
    free_port,
    gradio_dependency,
    join_event,
    raw_http,
    request_bytes,
    ui_event,
    wait_until_serving,
)

from qa.config import MAX_HISTORY_TURNS, SETTINGS
from qa.errors import QAError
from qa.feedback import MAX_RECORD_BYTES, FeedbackStore
from qa.types import Turn
from qa.web import WebConfig, create_app
from qa.web.guard import MAX_UI_BODY, parse_origins, parse_proxies

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder) -> Path:
    return build_test_index(tmp_path_factory.mktemp("limits"), embedder)


@pytest.fixture
def start(index, embedder, tmp_path):
    """Start a server (the full app unless ui=False) with the given settings; stopped after the test."""
    started = []

    def run(**settings) -> tuple[ServerThread, httpx.Client]:
        settings = {"rate_limit": None, "feedback": tmp_path / "feedback.jsonl", **settings}
        running = ServerThread(create_app(WebConfig(index, **settings), embedder)).__enter__()
        client = httpx.Client(base_url=running.url, timeout=30)
        started.append((running, client))
        return running, client

    yield run
    for running, client in started:
        client.close()
        running.__exit__()


# --- bodies: a hard limit whatever the framing -----------------------------------------------------

def stream_body(url: str, target: str, headers: list[bytes], chunks: int, chunk: bytes,
                opening: bytes = b"") -> tuple[int, int]:
    """Send a request head and `opening`, then up to `chunks` body pieces while the server keeps
    reading. Returns (status, bytes of body sent); status 0 when the server cut the connection
    unanswered."""
    parts = urlsplit(url)
    head = request_bytes(url, "POST", target, headers) + opening
    sent = len(opening)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(head)
        try:
            for _ in range(chunks):
                if select.select([s], [], [], 0)[0]:
                    break  # the server has answered (or closed): stop sending
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while piece := s.recv(65536):
                data += piece
        except (ConnectionResetError, TimeoutError):
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, sent


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNK = chunk(b" " * 256 * 1024)
FILE_PART = b'--x\r\nContent-Disposition: form-data; name="files"; filename="q.txt"\r\n\r\n'
OPENINGS = {  # the start of a body each route reads on: a JSON string, a file of an upload form
    "/gradio_api/queue/join": (b"application/json", chunk(b'{"data": ["')),
    "/gradio_api/upload": (b"multipart/form-data; boundary=x", chunk(FILE_PART)),
    "/api/ask": (b"application/json", chunk(b'{"question": "')),
}


@pytest.mark.parametrize("target", list(OPENINGS))
def test_a_body_framed_both_by_length_and_chunked_is_refused_unread(start, target):
    # Content-Length says 10 bytes; the chunked framing (which wins) streams 100 MB.
    server, api = start()
    kind, opening = OPENINGS[target]
    memory = rss_mb(os.getpid())  # the server runs in this process
    status, sent = stream_body(server.url, target, [
        b"Content-Type: " + kind, b"Content-Length: 10", b"Transfer-Encoding: chunked"], 400, CHUNK, opening)
    assert status in (0, 400), status
    assert sent < 16 * 1024 * 1024, f"the server read {sent:,} bytes of a body it should refuse"
    assert rss_mb(os.getpid()) - memory < 64
    assert api.post("/api/ask", json={"question": LEAVE_Q}).json()["answer"].startswith(LEAVE_A)


def test_a_chunked_body_is_cut_off_at_the_limit_of_its_route(start):
    server, api = start()
    status, sent = stream_body(server.url, "/api/ask", [b"Content-Type: application/json",
                                                        b"Transfer-Encoding: chunked"], 400, CHUNK)
    assert status in (0, 413) and sent < 16 * 1024 * 1024, (status, sent)
    # A chat UI event is no upload: its body is held to the smaller limit, declared or not.
    status, _, body = raw_http(server.url, request_bytes(server.url, "POST", "/gradio_api/queue/join", [
        b"Content-Type: application/json", b"Content-Length: %d" % (MAX_UI_BODY + 1)], b" " * (MAX_UI_BODY + 1)))
    assert status == 413 and b"bytes" in body
    assert api.post("/api/ask", json={"question": LEAVE_Q}).status_code == 200


# --- no route fetches a URL --------------------------------------------------------------------------

@pytest.fixture
def remote(monkeypatch):
    """A page server on 127.0.0.1 standing in for a public host: this machine has no route to one,
    so Gradio's own filter (which fetches public addresses only) is told that every address is
    public. Any fetch the server makes then shows up in `remote.requests`."""
    monkeypatch.setattr(safehttpx, "is_public_ip", lambda ip: True)
    with HostPages({"/q.csv": "question\nWhat is the secret?\n"}) as pages:
        yield pages


def url_routes(remote_url: str) -> list[str]:
    encoded = quote(remote_url, safe="")
    bare = remote_url.removeprefix("http://")
    return [
        f"/gradio_api/file={remote_url}", f"/gradio_api/file/{remote_url}", f"/gradio_api/file={encoded}",
        f"/gradio_api/file/{encoded}", f"/gradio_api/file%3D{remote_url}", f"/gradio_api/file%3d{encoded}",
        f"/gradio_api/fil%65={remote_url}", f"/gradio_api/%66ile/{remote_url}", f"/Gradio_api/File={remote_url}",
        f"/gradio_api/file={remote_url.upper()}", f"/gradio_api/file= {remote_url}", f"/gradio_api/file=http:/{bare}",
        f"/gradio_api/file=http:%2F%2F{bare}", f"/gradio_api//file={remote_url}", f"/gradio_api/./file={remote_url}",
        f"/file={remote_url}", f"/file/{remote_url}", f"/gradio_api/proxy={remote_url}", f"/proxy={remote_url}",
        f"/gradio_api/file=https://{bare}", f"/gradio_api/file/https://{bare}",
    ]


def test_no_route_makes_the_server_fetch_a_url(start, remote):
    server, api = start()
    for target in url_routes(remote.origin + "/q.csv"):
        for method in ("GET", "HEAD"):
            status, _, _ = raw_http(server.url, request_bytes(server.url, method, target), timeout=15)
            assert status in (400, 403, 404, 405), (method, target, status)
    assert remote.requests == []


def test_a_ui_request_naming_a_file_by_url_is_not_fetched(start, remote):
    server, api = start()
    url = remote.origin + "/q.csv"
    done = batch_call(api, url)
    assert not done.get("success"), done
    fn_index, trigger = gradio_dependency(api, "qa-question")
    remote_file = {"path": url, "url": url, "orig_name": "q.csv", "meta": {"_type": "gradio.FileData"}}
    chat = [{"role": "user", "content": [{"type": "file", "file": remote_file}]}]
    ui_event(api, fn_index, trigger, [LEAVE_Q, chat, None])
    assert remote.requests == []


# --- forwarded headers -----------------------------------------------------------------------------

def test_forwarded_for_from_a_client_that_is_not_a_listed_proxy_is_ignored(start):
    _, api = start(ui=False, rate_limit=(3, 3600.0))
    statuses = [api.post("/api/ask", json={"question": LEAVE_Q}, headers={"X-Forwarded-For": f"10.0.0.{n}"})
                .status_code for n in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_forwarded_for_from_a_listed_proxy_names_the_client(start):
    _, api = start(ui=False, rate_limit=(2, 3600.0), trusted_proxies=parse_proxies("127.0.0.1, 10.1.0.0/16"))
    ask = lambda client: api.post("/api/ask", json={"question": LEAVE_Q},  # noqa: E731
                                  headers={"X-Forwarded-For": client}).status_code
    assert [ask("198.51.100.7") for _ in range(3)] == [200, 200, 429]
    assert ask("198.51.100.8") == 200
    # The client is the last address no listed proxy added: a client cannot prepend its own.
    assert ask("203.0.113.1, 198.51.100.7") == 429
    assert ask("198.51.100.7, 10.1.2.3") == 429


def test_trusted_proxies_are_declared_and_parsed_strictly():
    assert SETTINGS["trusted_proxies"].default == ""
    assert parse_proxies("") == ()
    assert parse_proxies(" 127.0.0.1, ::1 , 10.0.0.0/8") == ("127.0.0.1", "::1", "10.0.0.0/8")
    for bad in ("*", "proxy.example", "10.0.0.0/33", "127.0.0.1:80"):
        with pytest.raises(QAError):
            parse_proxies(bad)


def test_qa_serve_believes_no_forwarded_header_by_default(index, tmp_path):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("QA_")}, "QA_RATE_LIMIT": "2/hour",
           "QA_FEEDBACK": str(tmp_path / "feedback.jsonl"), "FORWARDED_ALLOW_IPS": "*",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    command = [sys.executable, "-c", "import sys; from qa.cli import main; main(sys.argv[1:])",
               "serve", "--port", str(port), "--index", str(index)]
    with open(tmp_path / "out.log", "w") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, proc, tmp_path / "out.log")
        statuses = [httpx.post(url + "/api/ask", json={"question": LEAVE_Q}, timeout=30,
                               headers={"X-Forwarded-For": f"10.0.0.{n}"}).status_code for n in range(3)]
        assert statuses == [200, 200, 429], (tmp_path / "out.log").read_text()[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# --- the chat UI shares the API's limits -----------------------------------------------------------

def ask_in_chat(api: httpx.Client, question: str, chat: list, session: str) -> dict:
    fn_index, trigger = gradio_dependency(api, "qa-question")
    return ui_event(api, fn_index, trigger, [question, chat, None], session)


def test_chat_questions_votes_and_uploads_share_the_api_rate_limit(start):
    _, api = start(rate_limit=(4, 3600.0))
    fn_index, trigger = gradio_dependency(api, "qa-question")  # GETs are not counted
    session = uuid.uuid4().hex
    assert api.post("/api/ask", json={"question": LEAVE_Q}).status_code == 200
    assert join_event(api, fn_index, trigger, [LEAVE_Q, [], None], session).status_code == 200
    assert api.post("/gradio_api/upload", files={"files": ("q.csv", b"question\nx\n")}).status_code == 200
    assert join_event(api, fn_index, trigger, [LEAVE_Q, [], None], session).status_code == 200
    refused = join_event(api, fn_index, trigger, [LEAVE_Q, [], None], session)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert api.post("/gradio_api/upload", files={"files": ("q.csv", b"question\nx\n")}).status_code == 429
    assert api.post("/api/ask", json={"question": LEAVE_Q}).status_code == 429


def test_a_long_chat_keeps_a_bounded_history_and_feedback_record(start, tmp_path):
    _, api = start()
    session, chat = uuid.uuid4().hex, []
    asked = MAX_HISTORY_TURNS + 5
    for n in range(asked):
        done = ask_in_chat(api, f"{LEAVE_Q} turn {n}", chat, session)
        assert done["success"], done
        chat = done["output"]["data"][1]
    questions = [m for m in chat if m["role"] == "user"]
    assert len(questions) == MAX_HISTORY_TURNS and questions[-1]["content"][0]["text"].endswith(f"turn {asked - 1}")
    fn_index, trigger = gradio_dependency(api, "qa-chat", "like")
    for _ in range(3):
        ui_event(api, fn_index, trigger, [None], session, {"index": [len(chat) - 1, 0], "value": "", "liked": True})
    lines = (tmp_path / "feedback.jsonl").read_bytes().splitlines()
    assert len(lines) == 3
    for line in lines:
        record = json.loads(line)
        assert len(line) <= MAX_RECORD_BYTES and len(record["history"]) == MAX_HISTORY_TURNS
        assert record["question"].endswith(f"turn {asked - 1}")
        assert record["history"][-1]["question"].endswith(f"turn {asked - 2}")


def test_a_feedback_record_is_cut_to_its_size_cap_oldest_history_first(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    history = [Turn(f"question {n} " + "q" * 1900, "a" * 20_000) for n in range(40)]
    record = store.add("up", "last question", "x" * 60_000, history=history, comment="c" * 60_000)
    (line,) = (tmp_path / "feedback.jsonl").read_bytes().splitlines()
    assert len(line) <= MAX_RECORD_BYTES and json.loads(line) == record
    assert record["question"] == "last question" and record["answer"].startswith("x" * 1000)
    assert all(h["question"].startswith("question 3") for h in record["history"])  # the newest turns are kept


def test_uploads_and_answered_files_are_removed_after_a_short_time(start, tmp_path, monkeypatch):
    uploads = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))  # Gradio's folder for this server alone
    before = set(Path(tempfile.gettempdir()).glob("qa-batch-*"))
    _, api = start(keep_files_seconds=2)
    sent = [api.post("/gradio_api/upload", files={"files": (name, f"question\n{LEAVE_Q}\n".encode())}).json()[0]
            for name in ("answered.csv", "never-answered.csv")]
    done = batch_call(api, sent[0])
    assert done["success"], done
    answered = Path(done["output"]["data"][0]["path"])
    assert LEAVE_A in answered.read_text(encoding="utf-8")
    assert set(Path(tempfile.gettempdir()).glob("qa-batch-*")) == before  # no copy left in the system's temp
    assert answered.is_relative_to(uploads) and all(Path(p).is_relative_to(uploads) for p in sent)
    wait_until(lambda: not any(uploads.iterdir()), 30, lambda: f"removal of {list(uploads.rglob('*'))}")
    assert not list(uploads.rglob("*"))  # the files, then the folders they left empty


# --- origins ---------------------------------------------------------------------------------------

def test_origins_match_whatever_case_or_default_port_they_are_written_with(start):
    allowed = parse_origins("http://intranet.example:80, HTTPS://Docs.Example:443/, http://[::1]:8080")
    assert allowed == ("http://intranet.example", "https://docs.example", "http://[::1]:8080")
    _, api = start(allowed_origins=allowed)
    for origin in ("http://intranet.example", "http://INTRANET.example:80", "https://docs.example",
                   "https://docs.example:443", "http://[::1]:8080"):
        r = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": origin})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin, origin
    for origin in ("http://intranet.example:8080", "https://intranet.example", "http://docs.example",
                   "http://intranet.example:80@evil.example", "http://intranet.example.evil.example"):
        assert api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Origin": origin}).status_code == 403
    # The server's own origin, whether Host or Origin carries the default port.
    for host, origin in (("qa.example", "http://qa.example:80"), ("qa.example:80", "http://qa.example"),
                         ("QA.example", "http://qa.EXAMPLE"), ("qa.example", "https://qa.example")):
        r = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Host": host, "Origin": origin})
        assert r.status_code == 200, (host, origin)
    r = api.post("/api/ask", json={"question": LEAVE_Q}, headers={"Host": "qa.example", "Origin": "http://qa.example:81"})
    assert r.status_code == 403
