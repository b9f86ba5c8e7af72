"""SIGKILL `qa index` at a chosen point of a run and check the index after: the corpus changes
edition by edition (12 of its 20 files and a codeword sentence each time), and the live index
must always be one whole edition that answers with its codeword. bench/faults.py drives the same
loop with random kill points and a serving soak."""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from qa.chunk import ChunkSettings
from qa.config import DEFAULT_MODEL
from qa.pipeline import QA, build

CHUNKING = ChunkSettings(tokens=16, overlap=0)  # small chunks: many vectors, so each phase lasts long enough to hit
BULK_FILES, CHANGED_FILES, SENTENCES = 20, 12, 45
CODEWORD_Q = "What is the radio codeword?"
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
        time.sleep(0.001)  # watch the run every ms: a kill aimed at a short phase lands inside it
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
    assert {d.source: d.text for d in loaded.documents()} == texts, "documents of another edition"
    chunks = len(list(loaded.chunks()))
    assert loaded.manifest["counts"]["chunks"] == chunks == loaded.chunk_count == loaded.lexical.n_docs
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


