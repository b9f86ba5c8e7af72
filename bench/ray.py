"""`qa index` and `qa batch` against their `--ray` runs on this machine (a local Ray with every CPU).

Each command runs as a user runs it, in its own process, so a `--ray` run pays for starting Ray,
its workers and their model: on one machine Ray cannot be faster, and this shows what it costs
before a cluster adds CPUs. Corpora: the shipped `corpus/` and the first N SciFact abstracts of
../shared/data as one JSONL file; questions: the SciFact train claims. Prints wall seconds, the
ratio, and whether the outputs agree (answer files byte for byte, indexes by their answers).

    python bench/ray.py                 # 600 abstracts, 809 claims, 1 round
    python bench/ray.py --docs 1500 --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import DATA, scifact  # noqa: E402


def qa(*args: str) -> float:
    """Wall seconds of one `qa` command in a fresh process; its failure stops the bench."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from qa.cli import main; main()", *args], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"qa {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def scifact_corpus(folder: Path, docs: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt") as f, open(folder / "scifact.jsonl", "w") as out:
        for _, line in zip(range(docs), f):
            out.write(line)
    return folder


def answers_agree(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=600, help="SciFact abstracts in the bigger corpus.")
    parser.add_argument("--rounds", type=int, default=1, help="Times each way runs, alternating which goes first.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qa-bench-ray-"))
    claims = [q.query for q in scifact(work / "scifact-full")]
    shutil.rmtree(work / "scifact-full")
    questions = work / "claims.csv"
    with open(questions, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question"])
        writer.writerows([c] for c in claims)
    bigger = scifact_corpus(work / "sci", args.docs)
    corpora = {"shipped corpus": ROOT / "corpus", f"{args.docs} SciFact abstracts": bigger}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    for name, corpus in corpora.items():
        times: dict[str, list[float]] = {"index": [], "index --ray": [], "batch": [], "batch --ray": []}
        for round_ in range(args.rounds):
            ways = ["", "--ray"] if round_ % 2 == 0 else ["--ray", ""]
            for way in ways:
                index = work / f"index{way}"
                shutil.rmtree(index, ignore_errors=True)
                times[f"index {way}".strip()].append(qa("index", "--corpus", str(corpus), "--index", str(index),
                                                        *([way] if way else [])))
            for way in ways:
                output = work / f"answers{way}.csv"
                times[f"batch {way}".strip()].append(qa("batch", str(questions), "-o", str(output), "--overwrite",
                                                        "--index", str(work / "index"), *([way] if way else [])))
        same_index = answers_agree(*(work / f"answers{w}.csv" for w in ("", "--ray")))
        # Both batches answered from the local index; answer from the Ray-built one too.
        qa("batch", str(questions), "-o", str(work / "answers-ray-index.csv"), "--overwrite",
           "--index", str(work / "index--ray"))
        same_built = answers_agree(work / "answers.csv", work / "answers-ray-index.csv")
        print(f"\n{name} ({len(claims)} questions), best of {args.rounds}:")
        for command in ("index", "batch"):
            local, ray = min(times[command]), min(times[f"{command} --ray"])
            print(f"  qa {command:5}  {local:6.1f} s   --ray {ray:6.1f} s   ray / local {ray / local:.2f}x")
        print(f"  answer files identical: batch --ray vs batch {same_index}; "
              f"from the index built with --ray vs without {same_built}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
