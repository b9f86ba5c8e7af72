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
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the kill loop the tests drive
from fault_helpers import (  # noqa: E402
    CODEWORD_Q,
    KillPoint,
    Run,
    build_edition,
    check_index,
    kill_and_check,
    leftovers,
    live_name,
    lock_is_free,
    run_index,
    write_edition,
)

from bench.load import Client, rss_mb, start_server  # noqa: E402
from qa.config import DEFAULT_MODEL  # noqa: E402

BULK_FILES, CHANGED_FILES, SENTENCES = 20, 12, 45
CODEWORD = re.compile(r"The radio codeword of edition (\d+) is")


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
