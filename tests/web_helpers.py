"""Shared by the web API and browser tests: a small corpus with clear answers (and one document
full of markup payloads), a free-port finder, and a static server for "intranet" host pages."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import write_corpus

from qa.config import DEFAULT_MODEL
from qa.pipeline import build

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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostPages:
    """Serves {path: html} from 127.0.0.1 on its own port: a page of another origin."""

    def __init__(self, pages: dict[str, str], port: int | None = None):
        self.pages = pages
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
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
