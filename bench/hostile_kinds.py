"""The hostile kinds bench/hostile_requests.py sends, and the plain HTTP client they use.

Each kind is a function (server, source address) -> (outcomes, note): an outcome is the status a
request got ("0" when the server closed the connection without an answer) or what became of a
chat UI event ("event answered", "event refused").
"""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import QUESTIONS

ALLOWED_ORIGIN = "http://intranet.example:80"  # the server's QA_ALLOWED_ORIGINS
MB = 1024 * 1024


@dataclass
class Server:
    host: str
    port: int
    fn: dict[str, tuple[int, int]]  # UI event -> (fn_index, trigger id), from /config
    feedback: Path


# --- plain HTTP from a chosen source address --------------------------------------------------------

def request(s: Server, source: str, method: str, path: str, body: bytes = b"", headers: dict | None = None,
            timeout: float = 60) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(s.host, s.port, timeout=timeout, source_address=(source, 0))
    try:
        conn.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def stream(s: Server, source: str, path: str, headers: list[str], pieces, pace: float = 0.0) -> tuple[int, int]:
    """Send a request head, then body pieces while the server reads on (stopping once it answers).
    Returns (status, body bytes sent)."""
    head = f"POST {path} HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n" + "".join(h + "\r\n" for h in headers)
    sent, data = 0, b""
    try:
        with socket.create_connection((s.host, s.port), timeout=60, source_address=(source, 0)) as sock:
            sock.sendall((head + "Connection: close\r\n\r\n").encode())
            try:
                for piece in pieces:
                    if select.select([sock], [], [], 0)[0]:
                        break
                    sock.sendall(piece)
                    sent += len(piece)
                    time.sleep(pace)
            except OSError:
                pass
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        pass
    return (int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0), sent


def chunked(piece: bytes, count: int):
    framed = b"%x\r\n%s\r\n" % (len(piece), piece)
    return (framed for _ in range(count))


def multipart(name: str, content: bytes) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def upload(s: Server, source: str, name: str, content: bytes) -> tuple[int, str | None]:
    kind, body = multipart(name, content)
    status, out = request(s, source, "POST", "/gradio_api/upload", body, {"Content-Type": kind})
    return status, (json.loads(out)[0] if status == 200 else None)


# --- the chat UI's events, as its browser code sends them --------------------------------------------

def ui_events(s: Server) -> dict[str, tuple[int, int]]:
    _, body = request(s, "127.0.0.1", "GET", "/config")
    config = json.loads(body)
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    found = {}
    for fn_index, dependency in enumerate(config["dependencies"]):
        targets = [tuple(t) for t in dependency["targets"]]
        if ids["qa-question"] in dependency["inputs"] and "ask" not in found:
            found["ask"] = (fn_index, targets[0][0])
        if ids["qa-batch-upload"] in dependency["inputs"] and "batch" not in found:
            found["batch"] = (fn_index, targets[0][0])
        if (ids["qa-chat"], "like") in targets:
            found["like"] = (fn_index, ids["qa-chat"])
    return found


def ui_event(s: Server, source: str, event: str, data: list, session: str | None = None,
             event_data: dict | None = None) -> tuple[int, dict | None]:
    """(queue/join status, the event's last message or None)."""
    session = session or uuid.uuid4().hex
    fn_index, trigger = s.fn[event]
    body = json.dumps({"data": data, "fn_index": fn_index, "trigger_id": trigger, "session_hash": session,
                       "event_data": event_data}).encode()
    status, _ = request(s, source, "POST", "/gradio_api/queue/join", body)
    if status != 200:
        return status, None
    conn = http.client.HTTPConnection(s.host, s.port, timeout=120, source_address=(source, 0))
    try:
        conn.request("GET", f"/gradio_api/queue/data?session_hash={session}")
        response = conn.getresponse()
        while line := response.fp.readline():
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if message.get("msg") in ("process_completed", "unexpected_error"):
                    return status, message
    except (OSError, http.client.HTTPException, ValueError):
        pass
    finally:
        conn.close()
    return status, None


def event_outcome(status: int, message: dict | None) -> str:
    if status != 200:
        return str(status)
    if message is None:
        return "no result"
    return "event answered" if message.get("success") else "event refused"


def batch_file(s: Server, source: str, name: str, content: bytes) -> list[str]:
    status, path = upload(s, source, name, content)
    if path is None:
        return [str(status)]
    file = {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}
    return [str(status), event_outcome(*ui_event(s, source, "batch", [file, "", "same as the upload", None]))]


# --- the kinds ---------------------------------------------------------------------------------------

def length_and_chunked(s, source):
    status, sent = stream(s, source, "/gradio_api/queue/join", [
        "Content-Type: application/json", "Content-Length: 10", "Transfer-Encoding: chunked"],
        chunked(b" " * 256 * 1024, 600))
    return [str(status)], f"{sent / MB:.1f} of 150 MB sent before the server stopped reading"


def chunked_to_upload(s, source):
    status, sent = stream(s, source, "/gradio_api/upload", [
        "Content-Type: multipart/form-data; boundary=x", "Transfer-Encoding: chunked"], chunked(b"x" * 65536, 480))
    return [str(status)], f"{sent / MB:.1f} of 30 MB sent"


def chunked_to_api(s, source):
    status, sent = stream(s, source, "/api/ask", ["Content-Type: application/json", "Transfer-Encoding: chunked"],
                          chunked(b" " * 65536, 160))
    return [str(status)], f"{sent / MB:.1f} of 10 MB sent"


def huge_content_length(s, source):
    return [str(stream(s, source, path, ["Content-Type: application/json", "Content-Length: 1000000000000"],
                       [b"{}"])[0]) for path in ("/api/ask", "/gradio_api/upload", "/gradio_api/queue/join")], ""


def url_in_path(s, source):
    paths = ["/gradio_api/file={u}", "/gradio_api/file/{u}", "/gradio_api/file%3D{u}", "/gradio_api/proxy={u}",
             "/file={u}", "/file/{u}", "/gradio_api/file={q}", "/gradio_api/file/{q}", "/gradio_api/file=%20{u}"]
    outcomes = []
    for url in ("http://127.0.0.1:9/x.csv", "https://example.com/x.csv", "http://169.254.169.254/latest/"):
        quoted = url.replace(":", "%3A").replace("/", "%2F")
        for path in paths:
            for method in ("GET", "HEAD"):
                outcomes.append(str(request(s, source, method, path.format(u=url, q=quoted), timeout=20)[0]))
    return outcomes, ""


def url_in_ui_request(s, source):
    remote = {"path": "http://example.com/q.csv", "url": "http://example.com/q.csv", "orig_name": "q.csv",
              "meta": {"_type": "gradio.FileData"}}
    chat = [{"role": "user", "content": [{"type": "file", "file": remote}]}]
    return [event_outcome(*ui_event(s, source, "batch", [remote, "", "same as the upload", None])),
            event_outcome(*ui_event(s, source, "ask", [QUESTIONS[0], chat, None]))], ""


def forwarded_for(s, source):
    return [str(request(s, source, "POST", "/api/ask", b"{}", {"X-Forwarded-For": f"10.0.{n // 250}.{n % 250}"})[0])
            for n in range(200)], "one bucket for all: the header is not believed"


def chat_flood(s, source):
    return [str(request(s, source, "POST", "/gradio_api/queue/join", b"{}")[0]) for _ in range(200)], ""


def long_chat_and_votes(s, source):
    session, chat, outcomes = uuid.uuid4().hex, [], []
    for n in range(30):
        status, message = ui_event(s, source, "ask", [f"{QUESTIONS[n % len(QUESTIONS)]} ({n})", chat, None], session)
        outcomes.append(event_outcome(status, message))
        if message and message.get("success"):
            chat = message["output"]["data"][1]
    before = s.feedback.stat().st_size if s.feedback.exists() else 0
    for _ in range(10):
        outcomes.append(event_outcome(*ui_event(s, source, "like", [None], session,
                                                {"index": [len(chat) - 1, 0], "value": "", "liked": True})))
    added = (s.feedback.stat().st_size if s.feedback.exists() else 0) - before
    return outcomes, f"{len([m for m in chat if m['role'] == 'user'])} questions kept in the chat, 10 votes added " \
                     f"{added / 1024:.0f} KB of feedback"


def stray_uploads(s, source):
    return [str(upload(s, source, f"stray-{n}.csv", os.urandom(MB))[0]) for n in range(5)], ""


def upload_over_limit(s, source):
    kind, body = multipart("big.csv", b"x" * 25 * MB)
    status, sent = stream(s, source, "/gradio_api/upload", [f"Content-Type: {kind}", f"Content-Length: {len(body)}"],
                          (body[i:i + 65536] for i in range(0, len(body), 65536)))
    return [str(status)], "declared, so refused before it is read"


def slow_bodies(s, source):
    body = json.dumps({"question": QUESTIONS[1]}).encode()
    results = []

    def one():
        results.append(stream(s, source, "/api/ask", ["Content-Type: application/json",
                                                      f"Content-Length: {len(body)}"],
                              [body[i:i + 1] for i in range(len(body))], pace=3 / len(body))[0])

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [str(r) for r in results], "10 connections, each sending its body a byte at a time over 3 s"


def malformed_json(s, source):
    bodies = [b'{"question": "How', b'{"question": "caf\xe9"}', b"[" * 30_000 + b"]" * 30_000,
              b'{"a":' * 10_000 + b"1" + b"}" * 10_000]
    return [str(request(s, source, "POST", "/api/ask", body)[0]) for body in bodies], ""


def deep_json_to_ui(s, source):
    body = b'{"data": ' + b"[" * 400_000 + b"]" * 400_000 + b', "fn_index": 0, "session_hash": "x"}'
    return [str(request(s, source, "POST", "/gradio_api/queue/join", body)[0])], "nested 400,000 deep"


def giant_question(s, source):
    api = request(s, source, "POST", "/api/ask", json.dumps({"question": "leave " * 10_000}).encode())[0]
    return [str(api), event_outcome(*ui_event(s, source, "ask", ["leave " * 150_000, [], None]))], \
        "60,000 characters to the API, 900,000 in the chat"


def huge_history(s, source):
    body = json.dumps({"question": QUESTIONS[0], "history": ["x"] * 10_000}).encode()
    return [str(request(s, source, "POST", "/api/ask", body)[0])], "10,000 earlier turns"


def many_column_csv(s, source):
    header = ",".join(["question"] + [f"c{n}" for n in range(5_000)])
    row = ",".join([QUESTIONS[0]] + ["value"] * 5_000)
    content = (header + "\n" + "\n".join([row] * 300) + "\n").encode()
    return batch_file(s, source, "wide.csv", content), f"300 rows x 5,001 columns, {len(content) / MB:.1f} MB"


def wide_cell_xlsx(s, source):
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(["question", "notes"])
    sheet.append([QUESTIONS[0], "x" * 40_000_000])
    out = io.BytesIO()
    workbook.save(out)
    return batch_file(s, source, "wide.xlsx", out.getvalue()), \
        f"one 40,000,000-character cell, {len(out.getvalue()) / 1024:.0f} KB zipped"


def traversal(s, source):
    targets = ["/source?source=../../../../etc/passwd", "/source?source=%2Fetc%2Fpasswd",
               "/gradio_api/file=/etc/passwd", "/gradio_api/file=..%2f..%2f..%2fetc%2fpasswd",
               "/assets/..%2f..%2f..%2fetc%2fpasswd", "/static/../../../etc/passwd", "/gradio_api/file=file:///etc/passwd"]
    outcomes = []
    for target in targets:
        status, body = request(s, source, "GET", target)
        outcomes.append("LEAKED" if b"root:x:0:0" in body else str(status))
    return outcomes, ""


def origins(s, source):
    body = json.dumps({"question": QUESTIONS[0]}).encode()
    return [f"{request(s, source, 'POST', '/api/ask', body, {'Origin': origin})[0]} {label}"
            for origin, label in (("http://intranet.example", "allowed"), ("http://evil.example", "foreign"))], \
        f"QA_ALLOWED_ORIGINS={ALLOWED_ORIGIN}, Origin without the port"


@dataclass
class Kind:
    name: str
    run: Callable[[Server, str], tuple[list[str], str]]
    allowed: set[str]  # outcomes that are fine
    required: set[str] = field(default_factory=set)  # outcomes that must appear
    outcomes: Counter = field(default_factory=Counter)
    note: str = ""
    peak_mb: float = 0.0  # the server's RSS at its highest while this kind ran
    rise_mb: float = 0.0  # the most it rose during one run of this kind

    def verdict(self) -> str:
        seen = set(self.outcomes)
        return "as expected" if seen <= self.allowed and self.required <= seen else "UNEXPECTED"


KINDS = [
    Kind("Content-Length: 10 + chunked, 150 MB to the chat UI", length_and_chunked, {"400"}),
    Kind("chunked without a length to the upload route", chunked_to_upload, {"411"}),
    Kind("chunked 10 MB to /api/ask", chunked_to_api, {"413"}),
    Kind("Content-Length: 10^12", huge_content_length, {"413"}),
    Kind("URL in a file route's path (file=, file/, encoded)", url_in_path, {"403", "404", "405"}),
    Kind("URL as a file in a UI request", url_in_ui_request, {"event refused"}),
    Kind("X-Forwarded-For rotated, 200 POSTs", forwarded_for, {"422", "429"}, {"429"}),
    Kind("chat UI flood, 200 queue/join", chat_flood, {"422", "429"}, {"429"}),
    Kind("30-question chat, then 10 votes", long_chat_and_votes, {"event answered"}),
    Kind("uploads never used, 5 x 1 MB", stray_uploads, {"200", "429"}),
    Kind("upload of 25 MB", upload_over_limit, {"413"}),
    Kind("slow bodies (slowloris)", slow_bodies, {"200", "429"}),
    Kind("malformed and 30,000-deep JSON to /api/ask", malformed_json, {"400"}),
    Kind("deep JSON to the chat UI", deep_json_to_ui, {"400", "422"}),
    Kind("giant question", giant_question, {"422", "event answered"}),
    Kind("huge history list", huge_history, {"422"}),
    Kind("many-column CSV to the Batch tab", many_column_csv, {"200", "event answered", "event refused"}),
    Kind("wide-cell XLSX to the Batch tab", wide_cell_xlsx, {"200", "event answered", "event refused"}),
    Kind("path traversal (/source, file=, assets)", traversal, {"403", "404", "422"}),
    Kind("origin without its default port", origins, {"200 allowed", "403 foreign"}, {"200 allowed"}),
]
