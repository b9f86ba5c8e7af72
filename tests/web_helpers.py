"""Shared by the web API and browser tests: a small corpus with clear answers (and one document
full of markup payloads), a free-port finder, the app served in a background thread, a static
server for "intranet" host pages, raw HTTP over a socket, and the chat UI's events driven as the
browser drives them."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import uvicorn
from conftest import wait_until, write_corpus
from fastapi import FastAPI

from qa.config import DEFAULT_MODEL
from qa.pipeline import build
from qa.web.app import server_options

CORPUS = {
    "leave.md": (
        "# Annual leave\n\n"
        "Every employee gets 28 days of paid annual leave per year. "
        "Unused leave days can be carried over until the end of March.\n"
    ),
    "travel.md": (
        "# The Harbour Agreement\n\n"
        "The Harbour Agreement gives staff a 30% discount on train tickets in Norway. "
        "The Harbour Agreement was signed with Nordic Rail on 4 May 2021 in Oslo.\n"
    ),
    "airport.md": (
        "# The Airport Agreement\n\n"
        "The Airport Agreement gives staff free parking at Bergen airport. "
        "The Airport Agreement was signed with Avinor on 9 June 2019 in Bergen.\n"
    ),
    "equipment.md": (
        "# Equipment\n\n"
        "Each new employee receives a laptop and a headset on the first day. "
        "Lost equipment must be reported to the IT desk within 24 hours.\n"
    ),
    # Every string of this document must reach a browser as text: none of it may run. A .txt file
    # keeps its text verbatim (a Markdown file's inline HTML would be read away).
    "payload.txt": (
        '# Zebra <img src=x onerror="window.__pwned=1"> **bold** [click](javascript:window.__pwned=4)\n\n'
        "The launch code of Project Zebra is 4471 <script>window.__pwned=2</script> and it was set by "
        '<img src=x onerror="window.__pwned=3"> the Zebra committee in 2019.\n\n'
        "    Indented line that could become a code block <b>bold</b>.\n\n"
        "More about zebras: ![pic](http://example.invalid/x.png) and `code` and $$x^2$$ and | a | b |.\n"
    ),
}

LEAVE_Q = "How many days of paid annual leave do employees get?"
LEAVE_A = "Every employee gets 28 days of paid annual leave per year."
HARBOUR_Q = "What discount does the Harbour Agreement give?"
FOLLOW_UP_Q = "When was it signed?"
SIGNED_A = "4 May 2021"
OFF_TOPIC_Q = "What is the recipe for banana bread?"
ZEBRA_Q = "What is the launch code of Project Zebra?"
PAYLOAD_Q = ZEBRA_Q + ' <img src=x onerror="window.__pwned=9"> <script>window.__pwned=8</script>'


def build_test_index(folder: Path, embedder) -> Path:
    corpus = write_corpus(folder / "corpus", CORPUS)
    build(corpus, folder / "index", DEFAULT_MODEL, embedder=embedder)
    return folder / "index"


def free_port() -> int:
    """A port free now, chosen below the kernel's ephemeral range: a port the kernel handed out
    (bind to port 0) can be handed out again to the next bind to port 0, such as a host page
    server started before the app takes its port."""
    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = list(range(max(1024, ephemeral_start - 10000), ephemeral_start))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 150) -> httpx.Response:
    """Wait for a server started in `process` (its output in `log`) to answer /api/health, and
    return that answer; fail with the end of its log if it exits or does not answer in time."""

    def health() -> httpx.Response | None:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            return httpx.get(url + "/api/health", timeout=2)
        except httpx.TransportError:
            return None  # not listening yet

    return wait_until(health, timeout, lambda: f"{url} answering: {log.read_text()[-3000:]}", interval=0.2)


class ServerThread:
    """An app served by uvicorn in a background thread, as `qa serve` serves it:
    `with ServerThread(app) as server: httpx.get(server.url + "/api/health")`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        port = port or free_port()
        self.app = app
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", **server_options()))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start")
            return self.server.started

        wait_until(started, 60, f"the server at {self.url} to start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class HostPages:
    """Serves {path: html} from 127.0.0.1 on its own port: a page of another origin. `requests`
    lists the paths asked for, in order."""

    def __init__(self, pages: dict[str, str], port: int | None = None):
        self.pages = pages
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.requests.append(self.path)
                body = outer.pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HostPages:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- raw HTTP: what a client library would not send ------------------------------------------------

def raw_http(url: str, request: bytes, timeout: float = 20) -> tuple[int, list[bytes], bytes]:
    """Send bytes as they are; return the status, the raw header lines and the body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before all of it was sent: the answer is waiting
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return int(lines[0].split()[1]), lines[1:], body


def request_bytes(url: str, method: str, target: str, headers: list[bytes] = (), body: bytes = b"") -> bytes:
    host = urlsplit(url).netloc.encode()
    return (f"{method} {target} HTTP/1.1\r\n".encode() + b"Host: " + host + b"\r\n"
            + b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n" + body)


# --- the chat UI's events, as the browser sends them -----------------------------------------------

def gradio_dependency(api: httpx.Client, elem_id: str, event: str | None = None) -> tuple[int, int]:
    """(fn_index, trigger id) of the UI event taking the component with this elem_id as input, or,
    given `event` ("like", "click", ...), of that event of the component itself."""
    config = api.get("/config").json()
    component = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == elem_id)
    for fn_index, dependency in enumerate(config["dependencies"]):
        if event is None and component in dependency["inputs"]:
            return fn_index, dependency["targets"][0][0]
        if event is not None and [component, event] in [list(t) for t in dependency["targets"]]:
            return fn_index, component
    raise AssertionError(f"no event {event or 'takes'} {elem_id}")


def join_event(api: httpx.Client, fn_index: int, trigger: int, data: list, session: str,
               event_data: dict | None = None) -> httpx.Response:
    return api.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index, "trigger_id": trigger, "session_hash": session, "event_data": event_data})


def ui_event(api: httpx.Client, fn_index: int, trigger: int, data: list, session: str | None = None,
             event_data: dict | None = None) -> dict:
    """Run one UI event as the browser does (queue/join, then the event stream): its last message."""
    session = session or uuid.uuid4().hex
    joined = join_event(api, fn_index, trigger, data, session, event_data)
    assert joined.status_code == 200, joined.text
    with api.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") in ("process_completed", "unexpected_error"):
                    return message
    raise AssertionError("the event stream ended without a result")


def batch_call(api: httpx.Client, path: str) -> dict:
    """Run the Batch tab on a file named by its path on the server."""
    fn_index, trigger = gradio_dependency(api, "qa-batch-upload")
    upload = {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}
    return ui_event(api, fn_index, trigger, [upload, "", "same as the upload", None])  # None: the first collection


def run_batch_tab(page, questions: Path) -> None:
    """In the chat UI open in a Playwright page: answer a question file in the Batch tab."""
    page.get_by_role("tab", name="Batch").click()
    page.locator("#qa-batch-upload input[type=file]").set_input_files(str(questions))
    page.locator("#qa-batch-run").click()


PHONE = {"width": 360, "height": 640}  # a small phone's viewport, in CSS pixels


def phone_context(browser):
    """A Playwright browser context the size of a phone, touch included."""
    return browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)


def assert_on_first_screen(page, selectors) -> None:
    """Each element lies wholly inside a phone's first screen, without scrolling."""
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], (selector, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)
