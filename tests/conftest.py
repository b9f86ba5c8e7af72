"""Shared fixtures: the real embedding model, loaded once per test session, and small corpora
written to tmp_path by each test that needs one; `wait_until`, how a test waits for something
to happen instead of sleeping a fixed time."""

from __future__ import annotations

import gc
import io
import shutil
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa.config import DEFAULT_MODEL
from qa.embed import Embedder

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "us-japan-alliance.txt"


def wait_until(condition: Callable[[], object], timeout: float, what: str | Callable[[], str] = "the condition",
               interval: float = 0.05):
    """Call `condition` until it returns something truthy and return that, as soon as it does;
    fail the test when `timeout` seconds pass first. `what` (or what it returns) names what was
    awaited in the failure. For a check that something did NOT happen, wait for a later event
    that shows the input was processed, then assert."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {what() if callable(what) else what}")
        time.sleep(interval)  # the pause between polls: the condition decides, not the time
    return result


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(DEFAULT_MODEL)


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write {relative path: content} under folder and return it."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture
def seed_index(tmp_path, embedder):
    """A fresh index of the shipped seed article, built in this test's tmp dir."""
    from qa.pipeline import build

    corpus = write_corpus(tmp_path / "corpus", {SEED.name: SEED.read_text(encoding="utf-8")})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    return tmp_path / "index"


def open_corpus(root: Path, files: dict[str, str | bytes], embedder: Embedder):
    """Write files as a corpus under root, index it there and open it."""
    from qa.pipeline import QA, build

    write_corpus(root / "corpus", files)
    build(root / "corpus", root / "index", DEFAULT_MODEL, embedder=embedder)
    return QA(root / "index", embedder=embedder)


@dataclass
class Measured:
    outcome: object  # what the call returned, or the exception it raised
    peak: int  # bytes allocated at the peak (tracemalloc)
    seconds: float


def measured(call) -> Measured:
    """Run call() and say what it returned (or raised), its peak memory and its time."""
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        outcome = call()
    except Exception as exc:  # the caller checks which
        outcome = exc
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Measured(outcome, peak, seconds)


# --- a real headless Chromium (Debian's), for the browser tests ------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A page of a fresh browser profile (no cookie, nothing stored), its dialogs and console kept."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.console = []
    page.on("console", lambda m: page.console.append(m.text))
    yield page
    context.close()


ODF_NAMESPACES = " ".join(f'xmlns:{p}="urn:oasis:names:tc:opendocument:xmlns:{u}"' for p, u in [
    ("office", "office:1.0"), ("text", "text:1.0"), ("table", "table:1.0"), ("draw", "drawing:1.0"),
    ("presentation", "presentation:1.0")])


def odf(body: str, mimetype: str) -> bytes:
    """An OpenDocument file as LibreOffice writes it, with `body` as its office:body."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), f"application/vnd.oasis.opendocument.{mimetype}")
        archive.writestr("content.xml", f'<?xml version="1.0" encoding="UTF-8"?><office:document-content '
                                        f'{ODF_NAMESPACES} office:version="1.3"><office:body>{body}</office:body>'
                                        f"</office:document-content>")
    return buffer.getvalue()
