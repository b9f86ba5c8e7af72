"""Kill `qa index` with SIGKILL at random points, and serve questions while the corpus is
re-indexed over and over: the index must always load and answer from one whole edition of the
corpus, and the server must never fail a request.

    python bench/faults.py                     # 20 kills, then a 60 s serving soak
    python bench/faults.py --kills 5 --soak 20

The corpus changes edition by edition (12 of its 20 files and a codeword sentence change each
time). Each kill is aimed at a phase of the run (starting and loading the model, embedding,
writing the new build, the swap) at a random moment within it, measured on an unkilled run
first; after the kill the live index is opened and checked: its files, documents, chunks,
vectors and BM25 are all of the old edition or all of the new one, and it answers with that
edition's codeword. A last unkilled run must leave no orphan build and no held lock.

The soak serves the index with `qa serve` on 127.0.0.1 (bench/load.py starts it) to client
threads while `qa index` subprocesses re-index it, half of them killed at a random
moment. Prints kills survived, requests served, errors, and the server's RSS at the start and
end of the soak. tests/test_faults.py runs a short fixed schedule of the same kills (with its own copy of the kill
loop, tests/fault_helpers.py: the tests do not import bench).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import Client, rss_mb, start_server  # noqa: E402
from qa.chunk import ChunkSettings  # noqa: E402
from qa.config import DEFAULT_MODEL  # noqa: E402
from qa.pipeline import QA, build  # noqa: E402

CHUNKING = ChunkSettings(tokens=16, overlap=0)  # small chunks: many vectors, so each phase lasts long enough to hit
BULK_FILES, CHANGED_FILES, SENTENCES = 20, 12, 45
CODEWORD_Q = "What is the radio codeword?"
CODEWORD = re.compile(r"The radio codeword of edition (\d+) is")
_WORDS = ("harbour tide otter heron ferry dredging lighthouse fog horn rock pool anemone urchin ranger keeper "
          "board contract summer winter timetable quay pier gull kelp").split()


def edition(n: int) -> dict[str, str]:
    """The corpus at edition n: {file: text}."""

    def sentences(rnd: random.Random) -> str:
        return " ".join(" ".join(rnd.choice(_WORDS) for _ in range(10)).capitalize() + "." for _ in range(SENTENCES))

    files = {f"bulk/{i:02d}.txt": sentences(random.Random(f"{i}-{n if i < CHANGED_FILES else 0}"))
             for i in range(BULK_FILES)}
    files["codeword.txt"] = (f"The radio codeword of edition {n} is Kestrel{n}. "
                             "Ferry captains say the codeword when they enter the harbour.")
    return files


def write_edition(corpus: Path, n: int) -> None:
    for name, text in edition(n).items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def build_edition(corpus: Path, index: Path, n: int, embedder) -> None:
    """Write edition n and index it in this process (no kill): the starting point of a run."""
    write_edition(corpus, n)
    build(corpus, index, DEFAULT_MODEL, CHUNKING, embedder=embedder)


def index_command(corpus: Path, index: Path) -> list[str]:
    return [sys.executable, "-c", "from qa.cli import main; main()", "index", "--corpus", str(corpus),
            "--index", str(index), "--chunk-tokens", str(CHUNKING.tokens), "--chunk-overlap", str(CHUNKING.overlap)]


# What a run shows, in order: its embedding progress bar appears; a new .partial build folder
# appears (writing); that folder is renamed to a build (written); `current` points to it (swapped).
EVENTS = ("start", "embedding", "writing", "written", "swapped")


@dataclass(frozen=True)
class KillPoint:
    """SIGKILL a run `delay` seconds after `event` is seen."""

    event: str
    delay: float = 0.0

    def __str__(self) -> str:
        return f"{self.event} +{self.delay:.3f}s"


@dataclass
class Run:
    returncode: int
    events: dict[str, float]  # seconds from the start of the run at which each event was seen
    landed: str  # where the run stopped, read from what it left on disk
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


def _builds(index: Path) -> set[str]:
    try:
        return set(os.listdir(index / "builds"))
    except FileNotFoundError:
        return set()


def live_name(index: Path) -> str | None:
    """The name of the live build, from the `current` link."""
    try:
        return os.path.basename(os.readlink(index / "current"))
    except FileNotFoundError:
        return None


def run_index(corpus: Path, index: Path, kill: KillPoint | None = None, timeout: float = 600) -> Run:
    """Run `qa index` in a subprocess, SIGKILLed at `kill` if it gets there before finishing."""
    before, live = _builds(index), live_name(index)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    started = time.monotonic()
    process = subprocess.Popen(index_command(corpus, index), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env)
    seen = bytearray()

    def read_stderr():
        for block in iter(lambda: os.read(process.stderr.fileno(), 4096), b""):
            seen.extend(block)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    events = {"start": 0.0}
    while process.poll() is None:
        now = time.monotonic() - started
        if now > timeout:
            process.kill()
            raise TimeoutError(f"`qa index` ran over {timeout:.0f} s")
        new = _builds(index) - before
        if "embedding" not in events and b"embedding" in seen:
            events["embedding"] = now
        if "writing" not in events and any(name.endswith(".partial") for name in new):
            events["writing"] = now
        if "written" not in events and any(not name.endswith(".partial") for name in new):
            events["written"] = now
        if "swapped" not in events and live_name(index) != live:
            events["swapped"] = now
        if kill is not None and kill.event in events and now >= events[kill.event] + kill.delay:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    process.wait()
    reader.join(timeout=10)
    process.stderr.close()
    return Run(process.returncode, events, _landed(index, before, live), seen.decode(errors="replace"))


def _landed(index: Path, before: set[str], live: str | None) -> str:
    if live_name(index) != live:
        return "after the swap"
    new = _builds(index) - before
    if any(name.endswith(".partial") for name in new):
        return "while writing"
    return "after writing, before the swap" if new else "before writing"


def check_index(index: Path, embedder, editions: list[int]) -> int:
    """Open the live index and check that it is whole and of one of `editions`; return which.
    Raises AssertionError otherwise."""
    qa = QA(index, embedder=embedder)
    loaded = qa.index
    hashes = {file: info["sha256"] for file, info in loaded.manifest["files"].items()}
    matching = [n for n in editions
                if hashes == {f: hashlib.sha256(t.encode()).hexdigest() for f, t in edition(n).items()}]
    assert matching, f"the live index is none of editions {editions}"
    n = matching[0]
    texts = edition(n)
    assert {source: d.text for source, d in loaded.documents.items()} == texts, "documents of another edition"
    chunks = len(loaded.chunks)
    assert loaded.manifest["counts"]["chunks"] == chunks == loaded.dense.ntotal == len(loaded.sentence_ptr) - 1
    assert loaded.lexical.bm25.scores["num_docs"] == chunks and loaded.sentence_ptr[-1] == len(loaded.sentence_spans)
    answer = qa.ask(CODEWORD_Q)
    assert f"The radio codeword of edition {n} is Kestrel{n}." in answer.answer, answer.answer
    return n


def leftovers(index: Path, spare: str | None) -> list[str]:
    """What a finished run should not have left: anything but `current`, `.lock`, the live build
    and the spare (the build live before that run)."""
    extra = sorted(set(os.listdir(index)) - {".lock", "builds", "current"})
    return extra + [f"builds/{b}" for b in sorted(_builds(index) - {live_name(index), spare})]


def lock_is_free(index: Path) -> bool:
    with open(index / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


def kill_and_check(corpus: Path, index: Path, live: int, point: KillPoint, embedder) -> tuple[Run, int]:
    """Index edition live+1 over edition `live`, killed at `point`; check the index after. Returns
    the run and the edition now live."""
    write_edition(corpus, live + 1)
    run = run_index(corpus, index, point)
    assert run.killed or run.returncode == 0, f"`qa index` exited with {run.returncode}: {run.stderr[-2000:]}"
    now = check_index(index, embedder, [live, live + 1])
    swapped = run.landed == "after the swap"
    assert now == (live + 1 if swapped else live), f"landed {run.landed} but serves edition {now}"
    return run, now


def random_points(reference: Run, count: int, rnd: random.Random) -> list[KillPoint]:
    """`count` kill points, spread over the phases of a reference run, each at a random moment
    within its phase (writing and the swap are short: they get their share all the same)."""
    times = reference.events
    phases = [
        ("start", times["embedding"]),  # interpreter start, reading the corpus, loading the model
        ("embedding", times["writing"] - times["embedding"]),
        ("writing", times["written"] - times["writing"]),
        ("written", 0.002),  # the rename, the swap and the cleanup after it
    ]
    return [KillPoint(event, rnd.uniform(0, length)) for event, length in
            (phases[i % len(phases)] for i in range(count))]


def soak(index: Path, corpus: Path, live: int, embedder, seconds: float, clients: int, run_seconds: float,
         rnd: random.Random) -> dict:
    """Serve `index` to client threads for `seconds` while `qa index` re-indexes it, half the runs
    killed at a random moment within `run_seconds`. Returns counts and the server's RSS."""
    newest = [live + 1]  # every answer must name an edition written so far
    served, errors, stop = Counter(), [], threading.Event()
    lock = threading.Lock()

    def asker(n: int) -> None:
        client = Client(url, [CODEWORD_Q], offset=n)
        while not stop.is_set():
            _, status, body = client.ask()
            found = CODEWORD.search(json.loads(body).get("answer", "")) if status == 200 else None
            with lock:
                if found and int(found.group(1)) <= newest[0]:
                    served[int(found.group(1))] += 1
                else:
                    errors.append(f"{status} {body[:200]!r}")

    server, url, _ = start_server(index, corpus)
    try:
        threads = [threading.Thread(target=asker, args=(n,), daemon=True) for n in range(clients)]
        for t in threads:
            t.start()
        time.sleep(2)  # warm up before the first memory sample
        rss_start, runs, kills = rss_mb(server.pid), 0, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            write_edition(corpus, live + 1)
            newest[0] = live + 1
            point = KillPoint("start", rnd.uniform(0, run_seconds)) if rnd.random() < 0.5 else None
            run = run_index(corpus, index, point)
            runs, kills = runs + 1, kills + run.killed
            live = check_index(index, embedder, [live, live + 1])
        stop.set()
        for t in threads:
            t.join(timeout=60)
        rss_end = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"runs": runs, "kills": kills, "served": sum(served.values()), "editions": len(served),
            "errors": errors, "rss": (rss_start, rss_end)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--soak", type=float, default=60, help="seconds of serving while re-indexing (0: none)")
    parser.add_argument("--clients", type=int, default=8, help="client threads during the soak")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)

    from qa.embed import Embedder

    embedder = Embedder(DEFAULT_MODEL)
    with tempfile.TemporaryDirectory(prefix="qa-faults-") as scratch:
        corpus, index = Path(scratch) / "corpus", Path(scratch) / "index"
        build_edition(corpus, index, 0, embedder)
        write_edition(corpus, 1)
        reference = run_index(corpus, index)
        assert reference.returncode == 0, reference.stderr[-2000:]
        live = check_index(index, embedder, [1])
        shown = ", ".join(f"{e} {t:.2f}s" for e, t in reference.events.items())
        print(f"unkilled run       {shown}", flush=True)

        landed, survived = Counter(), 0
        for number, point in enumerate(random_points(reference, args.kills, rnd), start=1):
            run, now = kill_and_check(corpus, index, live, point, embedder)
            outcome = "killed" if run.killed else "finished first"
            survived += run.killed
            landed[run.landed if run.killed else "finished before the kill"] += 1
            print(f"kill {number:2d} at {str(point):22} {outcome:14} {run.landed:31} serves edition {now} "
                  f"({'new' if now > live else 'old'})", flush=True)
            live = now

        spare = live_name(index)
        write_edition(corpus, live + 1)
        final = run_index(corpus, index)
        assert final.returncode == 0, final.stderr[-2000:]
        live = check_index(index, embedder, [live + 1])
        left = leftovers(index, spare)
        print(f"last unkilled run: serves edition {live}; leftovers {left or 'none'}; "
              f"lock {'free' if lock_is_free(index) else 'HELD'}")
        print(f"kills survived     {survived} of {args.kills} runs killed "
              f"({', '.join(f'{n} {where}' for where, n in landed.most_common())})")

        if args.soak > 0:
            run_seconds = reference.events["swapped"]
            result = soak(index, corpus, live, embedder, args.soak, args.clients, run_seconds, rnd)
            start, end = result["rss"]
            print(f"soak               {args.soak:.0f} s, {args.clients} clients, {result['runs']} re-index runs "
                  f"({result['kills']} killed)")
            print(f"requests served    {result['served']} (answers from {result['editions']} editions)")
            errors = result["errors"]
            print(f"errors             {len(errors)}" + (f": {errors[:3]}" if errors else ""))
            print(f"server RSS         start {start:.0f} MB, end {end:.0f} MB ({end - start:+.0f} MB)")


if __name__ == "__main__":
    main()
