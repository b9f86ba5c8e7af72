"""Indexing a hostile corpus: many tiny files, and one huge file beside a normal one.

    python bench/hostile.py                 # 10,000 tiny files, a 200 MB text file
    python bench/hostile.py --files 2000 --huge-mb 50

Each case runs `qa index` in its own process and prints its wall time and peak RSS:
- N tiny .txt files (one sentence each): a first build, then a second run with nothing changed;
- the seed article indexed, re-indexed unchanged, then re-indexed beside a new text file over the
  size limit, which must be skipped unread: the peak RSS of the last two runs (neither loads the
  model) should differ by a few MB, not by the size of the file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "us-japan-alliance.txt"
# the peak RSS of the process, printed at exit by the child
RUN = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "from qa.cli import main\n"
    "main()\n"
)
WORDS = "harbour ferry lighthouse otter heron quay tide anchor buoy pier locker keeper lamp fog".split()


def qa_index(corpus: Path, index: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and the summary line of one `qa index` run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, "index", "--corpus", str(corpus), "--index", str(index)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"qa index failed:\n{done.stderr[-2000:]}")
    maxrss = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("maxrss_kb"))
    return seconds, maxrss / 1024, done.stdout.strip().splitlines()[-1]


def tiny_files(work: Path, count: int) -> None:
    corpus = work / "tiny"
    for i in range(count):
        folder = corpus / f"{i // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b = WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)]
        (folder / f"note-{i:05d}.txt").write_text(f"Note {i}: the {a} by the {b} is number {i * 37 % 1000}.\n")
    first = qa_index(corpus, work / "tiny-index")
    again = qa_index(corpus, work / "tiny-index")
    print(f"{count:,} tiny files, first build: {first[0]:.1f}s ({count / first[0]:,.0f} files/s), "
          f"peak RSS {first[1]:,.0f} MB\n    {first[2]}")
    print(f"{count:,} tiny files, nothing changed: {again[0]:.1f}s, peak RSS {again[1]:,.0f} MB\n    {again[2]}")


def huge_file(work: Path, megabytes: int) -> None:
    corpus = work / "huge"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    index = work / "huge-index"
    qa_index(corpus, index)
    # with nothing to embed the model is not loaded, so the peak RSS is the one of reading the corpus
    alone = qa_index(corpus, index)
    line = b"The harbour ferry leaves the north pier every forty minutes.\n" * 16384
    with open(corpus / "huge.txt", "wb") as f:
        while f.tell() < megabytes * 1_000_000:
            f.write(line)
    beside = qa_index(corpus, index)
    print(f"re-indexing the unchanged seed article: {alone[0]:.1f}s, peak RSS {alone[1]:,.0f} MB")
    print(f"the same + a new {megabytes} MB text file: {beside[0]:.1f}s, peak RSS {beside[1]:,.0f} MB "
          f"({beside[1] - alone[1]:+,.0f} MB)\n    {beside[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="tiny files to index")
    parser.add_argument("--huge-mb", type=int, default=200, help="size of the huge text file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-hostile-") as work:
        tiny_files(Path(work), args.files)
        huge_file(Path(work), args.huge_mb)


if __name__ == "__main__":
    main()
