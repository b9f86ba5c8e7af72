"""Load test of POST /api/ask on loopback: many concurrent clients for a fixed time.

    python bench/load.py                      # starts `qa serve` on a free port (index ./index, or
                                              # one built from ./corpus in a temp folder)
    python bench/load.py --url http://127.0.0.1:7860 --clients 16 --seconds 30

First one client asks alone (the baseline p50), then N clients ask back to back for S seconds.
Prints requests/s, p50/p95/p99 latency and errors, and checks the target: no errors and a p95
under load at most 10x the single-client p50. The server it starts has no rate limit (a real
deployment keeps QA_RATE_LIMIT). Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

QUESTIONS = [
    "What agreement was signed during Rubio's visit?",
    "By how much did joint military training events increase?",
    "Why is the U.S.-Japan alliance being modernized?",
    "What are the hurdles facing the alliance?",
    "What is the long-term trajectory of the alliance?",
    "What is the recipe for banana bread?",
    "Who argues that Japan's strategic calculations are constrained?",
    "What does the critical minerals agreement involve?",
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Client:
    """One keep-alive connection asking questions in turn."""

    def __init__(self, url: str, questions: list[str], offset: int = 0):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.questions, self.i = questions, offset
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def ask(self) -> tuple[float, int]:
        question = self.questions[self.i % len(self.questions)]
        self.i += 1
        body = json.dumps({"question": question})
        started = time.perf_counter()
        try:
            self.conn.request("POST", "/api/ask", body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            status = 0
        return time.perf_counter() - started, status


def run(url: str, clients: int, seconds: float, questions: list[str]) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(n: int) -> None:
        nonlocal errors
        client = Client(url, questions, offset=n)
        start_line.wait()
        while time.perf_counter() < deadline[0]:
            latency, status = client.ask()
            with lock:
                if status == 200:
                    latencies.append(latency)
                else:
                    errors += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_line.wait()
    for t in threads:
        t.join(timeout=seconds + 120)
    return latencies, errors, time.perf_counter() - began


def start_server(index: Path, corpus: Path) -> tuple[subprocess.Popen, str, tempfile.TemporaryDirectory | None]:
    scratch = None
    if not (index / "current").exists():
        scratch = tempfile.TemporaryDirectory(prefix="qa-load-")
        index = Path(scratch.name) / "index"
        print(f"no index at ./index: the server builds one from {corpus} in {index}", file=sys.stderr)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-c", "import sys; from qa.cli import main; main(sys.argv[1:])",
               "serve", "--port", str(port), "--index", str(index), "--corpus", str(corpus), "--rate-limit", "0"]
    env = {**os.environ, "QA_FEEDBACK": os.devnull}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}: run `qa {' '.join(command[3:])}` to see why")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    return server, url, scratch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--baseline", type=int, default=40, help="single-client requests for the baseline")
    args = parser.parse_args()

    server = scratch = None
    url = args.url
    if url and urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("only loopback targets: give --url http://127.0.0.1:PORT")
    if not url:
        server, url, scratch = start_server(args.index, args.corpus)
    try:
        warm = Client(url, QUESTIONS)
        for _ in range(len(QUESTIONS)):
            warm.ask()
        single = [warm.ask() for _ in range(args.baseline)]
        single_ok = [latency for latency, status in single if status == 200]
        if not single_ok:
            raise SystemExit(f"no successful answer from {url}/api/ask")
        single_p50 = statistics.median(single_ok)
        latencies, errors, elapsed = run(url, args.clients, args.seconds, QUESTIONS)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if scratch is not None:
            scratch.cleanup()

    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    p95 = percentile(latencies, 95) if latencies else float("inf")
    print(f"target             {url}/api/ask, {os.cpu_count()} CPUs")
    print(f"single client      p50 {ms(single_p50)} over {len(single_ok)} requests")
    rate = len(latencies) / elapsed
    print(f"{args.clients} clients, {elapsed:.0f} s  {len(latencies)} answers, {rate:.1f} requests/s")
    if latencies:
        print(f"latency            p50 {ms(percentile(latencies, 50))}  p95 {ms(p95)}  "
              f"p99 {ms(percentile(latencies, 99))}  max {ms(max(latencies))}")
    print(f"errors             {errors}")
    ratio = p95 / single_p50
    verdict = "met" if errors == 0 and ratio <= 10 else "NOT met"
    print(f"target             0 errors and p95 <= 10x single p50: p95 is {ratio:.1f}x -> {verdict}")


if __name__ == "__main__":
    main()
