"""Documents added and removed over the web: how long until they are answered from, and what a
background build costs the questions asked meanwhile.

    python bench/documents.py                 # a corpus of 300 one-paragraph files
    python bench/documents.py --files 1000 --big-mb 2

Builds the corpus, serves it as a collection (a real server on loopback, no chat UI), then
prints: seconds from uploading one file to its first cited answer, from uploading 20 files in
one request to all indexed, from removing one to its question declined; and /api/ask latency
(p50/p95) while idle and while a build of a --big-mb text file runs, with their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from qa.config import DEFAULT_MODEL  # noqa: E402
from qa.pipeline import Embedder, build  # noqa: E402
from qa.web import WebConfig, create_app  # noqa: E402
from qa.web.app import server_options  # noqa: E402

WORDS = "harbour tide otter heron ferry lighthouse anemone urchin ranger keeper quay pier gull kelp".split()


def paragraph(i: int) -> str:
    return f"# Note {i}\n\nNote {i} says the {WORDS[i % len(WORDS)]} of dock {i} is inspected every {i % 7 + 1} days.\n"


def wait_built(api: httpx.Client, builds_before: str | None) -> float:
    started = time.perf_counter()
    while True:
        status = api.get("/api/collections/docs/status").json()
        last = status["last_build"]
        if last and last["finished_at"] + str(last.get("changed")) != builds_before and not status["building"] \
                and not status["queued"]:
            return time.perf_counter() - started
        time.sleep(0.02)


def marker(api: httpx.Client) -> str | None:
    last = api.get("/api/collections/docs/status").json()["last_build"]
    return last and last["finished_at"] + str(last.get("changed"))


def ask_latencies(api: httpx.Client, until, limit: int = 5000) -> list[float]:
    times = []
    while until() and len(times) < limit:
        t = time.perf_counter()
        api.post("/api/ask", json={"question": f"How often is dock {len(times) % 50} inspected?"})
        times.append((time.perf_counter() - t) * 1000)
    return times


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 2 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--big-mb", type=float, default=1.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="qa-bench-documents-"))
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(args.files):
        (corpus / f"note{i:05d}.md").write_text(paragraph(i), encoding="utf-8")
    embedder = Embedder(DEFAULT_MODEL)
    started = time.perf_counter()
    build(corpus, root / "index", DEFAULT_MODEL, embedder=embedder)
    print(f"corpus: {args.files} files indexed in {time.perf_counter() - started:.1f} s")
    config = WebConfig(root / "index", rate_limit=None, ui=False, collections=(("docs", root / "index"),))
    server = uvicorn.Server(uvicorn.Config(create_app(config, embedder), host="127.0.0.1", port=0,
                                           log_level="warning", **server_options()))
    server.config.port = 0
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as api:
        text = "# Walrus\n\nThe walrus colony on Skerry Nine counts forty-one animals.\n"
        before = marker(api)
        t = time.perf_counter()
        api.post("/api/collections/docs/documents", files=[("files", ("walrus.md", text.encode()))])
        wait_built(api, before)
        answer = api.post("/api/ask", json={"question": "How many animals does the walrus colony count?"}).json()
        assert answer["citations"][0]["source"] == "walrus.md", answer
        print(f"one file uploaded -> cited: {time.perf_counter() - t:.2f} s")

        before = marker(api)
        t = time.perf_counter()
        batch = [("files", (f"batch{i}.md", paragraph(10_000 + i).encode())) for i in range(20)]
        api.post("/api/collections/docs/documents", files=batch)
        wait_built(api, before)
        print(f"20 files in one upload -> indexed: {time.perf_counter() - t:.2f} s")

        before = marker(api)
        t = time.perf_counter()
        api.delete("/api/collections/docs/documents/walrus.md")
        wait_built(api, before)
        gone = api.post("/api/ask", json={"question": "How many animals does the walrus colony count?"}).json()
        print(f"one file removed -> declined ({gone['abstained']}): {time.perf_counter() - t:.2f} s")

        deadline = time.perf_counter() + 5
        idle = ask_latencies(api, lambda: time.perf_counter() < deadline)
        sentences = (paragraph(20_000 + i).split("\n\n")[1].strip() for i in range(int(args.big_mb * 1e6 / 60)))
        big = "\n\n".join(" ".join(group) for group in zip(*[sentences] * 8))  # prose paragraphs, no headings
        before = marker(api)
        api.post("/api/collections/docs/documents", files=[("files", ("big.txt", big.encode()))])
        building = lambda: marker(api) == before  # noqa: E731
        busy = ask_latencies(api, building)
        seconds = wait_built(api, before)
        last = api.get("/api/collections/docs/status").json()["last_build"]
        print(f"big file ({len(big) / 1e6:.1f} MB; the index now {last['chunks']} chunks): built in "
              f"{last['seconds']:.1f} s (+{seconds:.1f} s after the asking stopped)")
        print(f"/api/ask idle: p50 {p(idle, 50):.1f} ms, p95 {p(idle, 95):.1f} ms ({len(idle)} questions)")
        print(f"/api/ask during the build: p50 {p(busy, 50):.1f} ms, p95 {p(busy, 95):.1f} ms ({len(busy)} questions)")
        print(f"ratio during/idle: p50 {p(busy, 50) / p(idle, 50):.2f}x, p95 {p(busy, 95) / p(idle, 95):.2f}x")
    server.should_exit = True
    thread.join(timeout=15)


if __name__ == "__main__":
    main()
