"""The saved-conversation store (qa/conversations.py) at its caps: how long saving a turn, listing
an owner's conversations, reading a full conversation and exporting it take, from one thread and
from several, and how big the SQLite file grows per turn.

    python bench/saved_conversations.py                  # 8 owners, 500 conversations of 4 turns each
    python bench/saved_conversations.py --owners 10 --threads 8

Turns are shaped like real answers: five citations of about 1,500 characters of passage each.
One owner also gets a conversation of QA_MAX_TURNS (200) turns, read and exported whole. Prints
milliseconds (p50 and p95) per operation, turns per second with several threads against one, and
bytes of file per turn.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.config import DEFAULT_MAX_CONVERSATIONS, DEFAULT_MAX_TURNS  # noqa: E402
from qa.pipeline import ConversationStore, SavedTurn  # noqa: E402
from qa.web.conversation_routes import export_markdown  # noqa: E402

PASSAGE = ("The Harbour Agreement gives staff a 30% discount on train tickets in Norway. " * 20)[:1500]


def turn(n: int) -> SavedTurn:
    citations = [{"n": i, "source": f"doc-{i}.md", "title": f"Document {i}", "location": "Section 2",
                  "start": 100 * i, "end": 100 * i + len(PASSAGE), "passage": PASSAGE, "score": 0.8,
                  "highlights": [[100 * i, 100 * i + 75]]} for i in range(1, 6)]
    return SavedTurn(f"Question number {n} about the agreement?", "The Harbour Agreement gives staff a 30% "
                     "discount on train tickets in Norway. [1]", False, 0.91, citations)


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def fill(store: ConversationStore, owners: list[str], conversations: int, turns: int) -> list[float]:
    took = []
    for owner in owners:
        for c in range(conversations):
            conversation_id = None
            for t in range(turns):
                started = time.perf_counter()
                conversation_id = store.add_turn(owner, conversation_id, turn(c * turns + t))
                took.append(time.perf_counter() - started)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--owners", type=int, default=8)
    parser.add_argument("--conversations", type=int, default=DEFAULT_MAX_CONVERSATIONS)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "conversations.sqlite"
        store = ConversationStore(path, DEFAULT_MAX_TURNS, DEFAULT_MAX_CONVERSATIONS)
        owners = [f"session:{n}" for n in range(args.owners)]
        half = len(owners) // 2

        started = time.perf_counter()
        one = fill(store, owners[:half], args.conversations, args.turns)
        one_rate = len(one) / (time.perf_counter() - started)

        took: list[list[float]] = [[] for _ in range(args.threads)]
        rest = owners[half:]
        groups = [rest[i::args.threads] for i in range(args.threads)]
        threads = [threading.Thread(target=lambda i=i: took[i].extend(fill(store, groups[i], args.conversations,
                                                                            args.turns)))
                   for i in range(args.threads)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        many = [s for samples in took for s in samples]
        many_rate = len(many) / (time.perf_counter() - started)

        full_id = None
        for t in range(DEFAULT_MAX_TURNS):
            full_id = store.add_turn(owners[0], full_id, turn(t))
        listing = []
        for _ in range(50):
            started = time.perf_counter()
            listed = store.list(owners[0])
            listing.append(time.perf_counter() - started)
        reading, exporting = [], []
        for _ in range(20):
            started = time.perf_counter()
            full = store.get(owners[0], full_id)
            reading.append(time.perf_counter() - started)
            started = time.perf_counter()
            export_markdown(full)
            exporting.append(time.perf_counter() - started)
        store.close()
        saved_turns = len(one) + len(many) + DEFAULT_MAX_TURNS
        size = sum(f.stat().st_size for f in Path(folder).iterdir())

    print(f"{args.owners} owners x {args.conversations} conversations x {args.turns} turns "
          f"({saved_turns:,} turns saved, 5 citations each)")
    print(f"save a turn, 1 thread: {ms(one)} ({one_rate:,.0f} turns/s)")
    print(f"save a turn, {args.threads} threads: {ms(many)} ({many_rate:,.0f} turns/s, "
          f"{many_rate / one_rate:.2f}x one thread)")
    print(f"list an owner's {len(listed)} conversations: {ms(listing)}")
    print(f"read a {DEFAULT_MAX_TURNS}-turn conversation: {ms(reading)}")
    print(f"export it as Markdown: {ms(exporting)}")
    print(f"file: {size / 1e6:.1f} MB, {size / saved_turns:,.0f} bytes per turn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
