"""Load test of POST /api/ask on loopback: many concurrent clients for a fixed time.

    python bench/load.py                      # starts `qa serve` on a free port (index ./index, or
                                              # one built from ./corpus in a temp folder)
    python bench/load.py --seconds 60 --slow-clients 2
    python bench/load.py --url http://127.0.0.1:7860 --clients 16 --seconds 30

First one client asks alone (the baseline p50), then N clients ask back to back for S seconds
while the slow clients each send one request a byte at a time, spread over the whole run (a
stalled or very slow client holding a connection open). Prints requests/s, p50/p95/p99 latency,
errors, the server's RSS at the start, middle and end of the run (when this script started the
server), and checks the targets: no errors, a p95 under load at most 10x the single-client p50,
and the slow clients answered once they finish. The server it starts has no rate limit (a real
deployment keeps QA_RATE_LIMIT). Only loopback addresses are accepted as targets.
tests/test_web_load.py runs a short version of the same run against a server in the test process,
with the clients of tests/load_clients.py; this script takes its slow client, questions and rss_mb
from there (the tests do not import bench).
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the clients the load tests use
from load_clients import QUESTIONS, SlowClient, rss_mb  # noqa: E402


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

    def ask(self) -> tuple[float, int, bytes]:
        """(seconds, status, body) of the next question; status 0 when the connection failed."""
        question = self.questions[self.i % len(self.questions)]
        self.i += 1
        body = json.dumps({"question": question})
        started = time.perf_counter()
        try:
            self.conn.request("POST", "/api/ask", body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            status, data = 0, str(exc).encode()
        return time.perf_counter() - started, status, data


@dataclass
class LoadRun:
    latencies: list[float]  # seconds, of the answers with status 200
    errors: int
    seconds: float
    per_client: list[int]  # answers each client got
    rss: list[float] = field(default_factory=list)  # server RSS (MB), sampled every second


def run(url: str, clients: int, seconds: float, questions: list[str], server_pid: int | None = None) -> LoadRun:
    latencies: list[float] = []
    per_client = [0] * clients
    errors = 0
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(n: int) -> None:
        nonlocal errors
        client = Client(url, questions, offset=n)
        start_line.wait()
        while time.perf_counter() < deadline[0]:
            latency, status, _ = client.ask()
            with lock:
                if status == 200:
                    latencies.append(latency)
                    per_client[n] += 1
                else:
                    errors += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    rss = []
    began = time.perf_counter()
    deadline[0] = began + seconds
    start_line.wait()
    while server_pid is not None and time.perf_counter() < deadline[0]:
        rss.append(rss_mb(server_pid))
        time.sleep(min(1.0, max(0.0, deadline[0] - time.perf_counter())))
    for t in threads:
        t.join(timeout=seconds + 120)
    if server_pid is not None:
        rss.append(rss_mb(server_pid))
    return LoadRun(latencies, errors, time.perf_counter() - began, per_client, rss)


def start_server(
    index: Path, corpus: Path, options: Sequence[str] = ("--rate-limit", "0"), env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, str, tempfile.TemporaryDirectory | None]:
    """`qa serve` in its own process on a free port, with `options` and `env` added (by default no
    rate limit and feedback to /dev/null); (process, url, scratch folder or None)."""
    scratch = None
    if not (index / "current").exists():
        scratch = tempfile.TemporaryDirectory(prefix="qa-load-")
        index = Path(scratch.name) / "index"
        print(f"no index at ./index: the server builds one from {corpus} in {index}", file=sys.stderr)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-c", "import sys; from qa.cli import main; main(sys.argv[1:])",
               "serve", "--port", str(port), "--index", str(index), "--corpus", str(corpus), *options]
    env = {**os.environ, "QA_FEEDBACK": os.devnull, **(env or {})}
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
    parser.add_argument("--slow-clients", type=int, default=1, help="clients sending a request a byte at a time")
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
        single_ok = [latency for latency, status, _ in single if status == 200]
        if not single_ok:
            raise SystemExit(f"no successful answer from {url}/api/ask")
        single_p50 = statistics.median(single_ok)
        slow = [SlowClient(url, args.seconds).start() for _ in range(args.slow_clients)]
        result = run(url, args.clients, args.seconds, QUESTIONS, server.pid if server is not None else None)
        for client in slow:
            client.join(timeout=60)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if scratch is not None:
            scratch.cleanup()

    latencies = result.latencies
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    p95 = percentile(latencies, 95) if latencies else float("inf")
    print(f"target             {url}/api/ask, {os.cpu_count()} CPUs")
    print(f"single client      p50 {ms(single_p50)} over {len(single_ok)} requests")
    rate = len(latencies) / result.seconds
    print(f"{args.clients} clients, {result.seconds:.0f} s  {len(latencies)} answers, {rate:.1f} requests/s "
          f"(fewest for one client: {min(result.per_client)})")
    if latencies:
        print(f"latency            p50 {ms(percentile(latencies, 50))}  p95 {ms(p95)}  "
              f"p99 {ms(percentile(latencies, 99))}  max {ms(max(latencies))}")
    print(f"errors             {result.errors}")
    if result.rss:
        start, middle, end = result.rss[0], result.rss[len(result.rss) // 2], result.rss[-1]
        print(f"server RSS         start {start:.0f} MB, middle {middle:.0f} MB, end {end:.0f} MB, "
              f"max {max(result.rss):.0f} MB: {end - start:+.0f} MB ({(end - start) / start:+.1%}) over the run")
    for n, client in enumerate(slow, start=1):
        print(f"slow client {n}      sent {client.sent} of {len(client.request)} bytes in "
              f"{client.sending_seconds:.0f} s, then got status {client.status}")
    ratio = p95 / single_p50
    slow_ok = all(c.status == 200 for c in slow)
    verdict = "met" if result.errors == 0 and ratio <= 10 and slow_ok else "NOT met"
    print(f"target             0 errors, p95 <= 10x single p50 and slow clients answered: p95 is {ratio:.1f}x "
          f"-> {verdict}")


if __name__ == "__main__":
    main()
