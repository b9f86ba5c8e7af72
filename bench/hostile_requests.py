"""Hostile requests and files against a real server, alongside normal clients asking questions.

    python bench/hostile_requests.py               # 60 s against `qa serve` on ./index
    python bench/hostile_requests.py --seconds 10

With no ./index, `qa index` first builds one from ./corpus (the shipped article) in a temporary
folder, in a process of its own, so the server's memory is that of serving alone. The server runs
in its own process too (bench/load.py's start_server) with a rate limit of 120/minute,
QA_ALLOWED_ORIGINS=http://intranet.example:80 and its own feedback file and upload folder. Eight
normal clients ask the shipped corpus real questions through /api/ask, one a second each, while
one hostile client goes through KINDS in turn, over and over until the time is up (every kind at
least once): bodies over their limit in every framing, URLs in paths and in UI requests, forged
X-Forwarded-For, floods of the chat UI, a long chat with votes, stray and oversized uploads, slow
bodies, malformed and deeply nested JSON, giant questions and histories, a many-column CSV and a
wide-cell XLSX for the Batch tab, path traversal, origins with a default port. Every client
connects from an address of its own on 127.0.0.0/8, so each has its own rate-limit bucket.

Prints, per kind, the statuses seen (0: the server closed the connection without an answer) and
the server's peak RSS while that kind ran, with the most it rose during one run of it (memory the
server's allocator keeps after a kind shows up in the peaks of the kinds after it), then whether
the normal clients saw 0 errors and the peak RSS stayed under 600 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.hostile_kinds import ALLOWED_ORIGIN, KINDS, MB, Server, request, ui_events  # noqa: E402
from bench.load import QUESTIONS, start_server  # noqa: E402

RATE_LIMIT = "120/minute"
PEAK_RSS_TARGET_MB = 600


# --- the run -----------------------------------------------------------------------------------------

class Normal:
    """Normal clients, each on its own address, asking one question a second through /api/ask."""

    def __init__(self, s: Server, clients: int):
        self.s, self.stop = s, threading.Event()
        self.latencies: list[float] = []
        self.errors: Counter = Counter()
        self.threads = [threading.Thread(target=self._ask, args=(n,), daemon=True) for n in range(clients)]

    def _ask(self, n: int) -> None:
        source, i = f"127.0.0.{10 + n}", n
        while not self.stop.is_set():
            began = time.perf_counter()
            body = json.dumps({"question": QUESTIONS[i % len(QUESTIONS)]}).encode()
            status, _ = request(self.s, source, "POST", "/api/ask", body)
            took = time.perf_counter() - began
            if status == 200:
                self.latencies.append(took)
            else:
                self.errors[status] += 1
            i += 1
            self.stop.wait(max(0.0, 1.0 - took))

    def __enter__(self) -> Normal:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


class Memory:
    """The server's RSS, sampled every 0.1 s; the peak and the rise are also kept per running kind."""

    def __init__(self, pid: int):
        self.process, self.running, self.run_began_mb = psutil.Process(pid), None, 0.0
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def sample(self) -> float:
        mb = self.process.memory_info().rss / MB
        self.samples.append(mb)
        if self.running is not None:
            self.running.peak_mb = max(self.running.peak_mb, mb)
            self.running.rise_mb = max(self.running.rise_mb, mb - self.run_began_mb)
        return mb

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.1)

    def __enter__(self) -> Memory:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def attack(s: Server, memory: Memory, seconds: float) -> int:
    """Every kind at least once, then again in turn until `seconds` have passed; rounds run."""
    deadline, rounds = time.monotonic() + seconds, 0
    while rounds == 0 or time.monotonic() < deadline:
        for number, kind in enumerate(KINDS, start=1):
            if rounds and time.monotonic() >= deadline:
                break
            memory.run_began_mb = memory.sample()
            memory.running = kind
            # a kind's own address each round: one round's requests never use up the next one's bucket
            outcomes, kind.note = kind.run(s, f"127.1.{rounds % 256}.{number}")
            kind.outcomes.update(outcomes)
            memory.sample()
            memory.running = None
        rounds += 1
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8, help="normal clients")
    parser.add_argument("--index", type=Path, default=Path("index"))
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="qa-hostile-") as scratch:
        index = args.index
        if not (index / "current").exists():
            index = Path(scratch) / "index"
            print(f"no index at {args.index}: building one from {args.corpus} in {index}", file=sys.stderr)
            built = subprocess.run([sys.executable, "-c", "import sys; from qa.cli import main; main(sys.argv[1:])",
                                    "index", "--corpus", str(args.corpus), "--index", str(index)], capture_output=True,
                                   text=True)
            if built.returncode:
                raise SystemExit(f"qa index failed:\n{built.stderr[-2000:]}")
        feedback = Path(scratch) / "feedback.jsonl"
        env = {"QA_FEEDBACK": str(feedback), "GRADIO_TEMP_DIR": str(Path(scratch) / "uploads")}
        server, url, index_scratch = start_server(
            index, args.corpus, ["--rate-limit", RATE_LIMIT, "--allowed-origins", ALLOWED_ORIGIN], env)
        try:
            port = int(url.rsplit(":", 1)[1])
            s = Server("127.0.0.1", port, {}, feedback)
            s.fn = ui_events(s)
            request(s, "127.0.0.2", "POST", "/api/ask", json.dumps({"question": QUESTIONS[0]}).encode())  # warm up
            began = time.monotonic()
            with Memory(server.pid) as memory, Normal(s, args.clients) as normal:
                start_mb = memory.process.memory_info().rss / MB
                rounds = attack(s, memory, args.seconds)
            elapsed = time.monotonic() - began
            end_mb = memory.process.memory_info().rss / MB
            alive = server.poll() is None
        finally:
            server.terminate()
            server.wait(timeout=30)
            if index_scratch is not None:
                index_scratch.cleanup()

    print(f"target    {url}, {os.cpu_count()} CPUs, {elapsed:.0f} s, {rounds} rounds of {len(KINDS)} hostile kinds, "
          f"rate limit {RATE_LIMIT} per client")
    width = max(len(k.name) for k in KINDS)
    print(f"{'kind':{width}}  {'statuses seen':34}  peak RSS (rise)   verdict")
    for kind in KINDS:
        seen = ", ".join(f"{outcome} x{count}" for outcome, count in sorted(kind.outcomes.items()))
        print(f"{kind.name:{width}}  {seen:34}  {kind.peak_mb:4.0f} MB ({kind.rise_mb:+4.0f})  {kind.verdict()}")
        if kind.note:
            print(f"{'':{width}}    {kind.note}")
    answered = normal.latencies
    errors = sum(normal.errors.values())
    latency = (f"p50 {statistics.median(answered) * 1000:.0f} ms, max {max(answered) * 1000:.0f} ms"
               if answered else "no answers")
    print(f"normal clients  {args.clients} clients: {len(answered)} answers, {errors} errors "
          f"{dict(normal.errors) if errors else ''}({latency})")
    peak = max(memory.samples)
    print(f"server RSS      start {start_mb:.0f} MB, peak {peak:.0f} MB, end {end_mb:.0f} MB; "
          f"{'still running' if alive else 'DIED'} at the end")
    met = errors == 0 and peak < PEAK_RSS_TARGET_MB and alive and all(k.verdict() == "as expected" for k in KINDS)
    print(f"target          normal clients 0 errors, peak RSS < {PEAK_RSS_TARGET_MB} MB, every kind as expected "
          f"-> {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
