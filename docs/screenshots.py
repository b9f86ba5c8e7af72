"""Remake the screenshots in docs/ from the shipped corpus: the chat UI (chat-ui.png), on a phone
(phone.png), its Documents tab (documents.png), the widget (widget.png) and the sign-in page
(signin.png).

    python docs/screenshots.py

Builds an index of ./corpus in a temporary folder, serves it with `qa serve` on a free loopback
port, and drives Debian's headless Chromium through the chat UI and through the widget on an
"intranet" page of another origin.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

from qa.config import DEFAULT_MODEL
from qa.pipeline import build

DOCS = Path(__file__).resolve().parent
CORPUS = DOCS.parent / "corpus"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ("chat-ui.png", "phone.png", "documents.png", "widget.png", "signin.png")
UI_QUESTION = "What agreement was signed during Rubio's visit?"
WIDGET_QUESTION = "Why has China altered the regional security calculus?"

INTRANET = """<!doctype html><html><head><meta charset="utf-8"><title>Intranet: Policy desk</title>
<style>
body {{ margin: 0; font: 16px/1.5 Georgia, serif; background: #f4f1ea; color: #222; }}
nav {{ background: #1e3a5f; color: #fff; padding: 14px 32px; font: 600 15px system-ui, sans-serif; }}
nav span {{ margin-right: 28px; opacity: .85; }}
main {{ max-width: 640px; margin: 32px; }}
h1 {{ font-size: 30px; margin: 0 0 12px; }}
.card {{ background: #fff; border: 1px solid #ddd5c4; padding: 16px 20px; margin: 14px 0; border-radius: 4px; }}
</style></head><body>
<nav><span>Intranet</span><span>News</span><span>Policy desk</span><span>People</span></nav>
<main><h1>Policy desk</h1>
<div class="card">
<b>This week's briefing</b><p>The U.S.-Japan alliance: what changed this autumn and why it matters.</p></div>
<div class="card">
<b>Reading list</b><p>Background papers on supply chains, critical minerals and regional security.</p></div>
<div class="card">
<b>Ask the briefing</b><p>Use the chat button at the bottom right: every answer shows its sources.</p></div>
</main>
<script src="{server}/widget.js" data-title="Ask the policy briefing" data-accent="#1e3a5f"
  data-greeting="Hi! Ask me about this week's briefing." data-open="true" defer></script>
</body></html>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_page(html: str) -> tuple[ThreadingHTTPServer, str]:
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            data = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_server(index: Path, port: int, allowed_origin: str, feedback: Path, *extra: str) -> subprocess.Popen:
    """`qa serve` in its own process, once it answers /api/health."""
    command = [sys.executable, "-c", "import sys; from qa.cli import main; main(sys.argv[1:])", "serve",
               "--port", str(port), "--index", str(index), "--allowed-origins", allowed_origin, "--rate-limit", "0",
               "--feedback", str(feedback), *extra]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while server.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the server did not start: run `qa {' '.join(command[3:])}` to see why")


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        index = Path(scratch) / "index"
        build(CORPUS, index, DEFAULT_MODEL)
        port = free_port()
        host, host_url = serve_page(INTRANET.format(server=f"http://127.0.0.1:{port}"))
        server = start_server(index, port, host_url, Path(scratch) / "fb.jsonl")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 860})
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#qa-question textarea").fill(UI_QUESTION)
                page.locator("#qa-ask").click()
                page.locator("#qa-chat .qa-confidence").wait_for(timeout=60_000)
                page.locator("#qa-chat .qa-cite").first.click()  # the [1] marker opens its passage
                page.wait_for_timeout(800)
                page.screenshot(path=DOCS / "chat-ui.png")

                page.get_by_role("tab", name="Documents").click()
                page.locator("#qa-doc-list").wait_for(timeout=30_000)
                page.wait_for_timeout(800)
                page.screenshot(path=DOCS / "documents.png")

                phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
                page = phone.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#qa-question textarea").fill(UI_QUESTION)
                page.locator("#qa-ask").tap()
                page.locator("#qa-chat .qa-confidence").wait_for(timeout=60_000)
                page.wait_for_timeout(600)
                page.screenshot(path=DOCS / "phone.png")
                phone.close()

                page = browser.new_page(viewport={"width": 1100, "height": 760})
                page.goto(host_url + "/")
                widget = page.locator("qa-widget")
                widget.locator("textarea").fill(WIDGET_QUESTION)
                widget.locator("textarea").press("Enter")
                widget.locator(".answer").wait_for(timeout=60_000)
                page.wait_for_timeout(400)
                page.screenshot(path=DOCS / "widget.png")

                signing_port = free_port()  # a server with keys: the browser is sent to its sign-in page
                signing = start_server(index, signing_port, host_url, Path(scratch) / "fb2.jsonl",
                                       "--admin-key", "screenshot-admin-key-0123456789")
                try:
                    page = browser.new_page(viewport={"width": 900, "height": 560})
                    page.goto(f"http://127.0.0.1:{signing_port}/")
                    page.wait_for_url("**/signin**")
                    page.wait_for_timeout(300)
                    page.screenshot(path=DOCS / "signin.png")
                finally:
                    signing.terminate()
                    signing.wait(timeout=30)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
            host.shutdown()
    print(f"wrote {', '.join(str(DOCS / n) for n in SHOTS)}")

if __name__ == "__main__":
    main()
