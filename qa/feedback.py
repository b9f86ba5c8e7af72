"""Thumbs up/down on answers, appended to a JSONL file the owner can review.

One line per vote: when, up or down, where it came from (chat UI, API), the question, the
conversation before it (earlier questions, with their answers when known), the answer and its
citations (without passage text, which the index holds). Writers in several threads or processes
append under a lock, so lines never interleave. A line holds at most MAX_RECORD_BYTES: the oldest
history turns are left out first, then long texts are cut, so votes cannot fill the disk faster
than the rate limit lets them in.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from qa.config import MAX_HISTORY_TURNS
from qa.types import Turn

CITATION_FIELDS = ("n", "source", "title", "location", "start", "end", "score")
MAX_RECORD_BYTES = 64 * 1024


def default_path(index: Path, chosen: str = "") -> Path:
    """The file chosen (the feedback setting), else feedback.jsonl beside the index folder."""
    return Path(chosen or Path(index).resolve().parent / "feedback.jsonl")


def _earlier(turn: str | Turn) -> str | dict:
    """A history entry as JSON: a question alone stays a string, a turn becomes
    {"question", "answer"}."""
    return {"question": turn.question, "answer": turn.answer} if isinstance(turn, Turn) else turn


def _size(record: dict) -> int:
    return len(json.dumps(record, ensure_ascii=False).encode())


def _fitted_line(record: dict) -> str:
    """The record as one JSON line of at most MAX_RECORD_BYTES, made to fit in place: the oldest
    history turns go first, then the texts are cut, then the last citations."""
    while record["history"] and _size(record) > MAX_RECORD_BYTES:
        record["history"].pop(0)
    for field in ("comment", "answer", "question"):
        over = _size(record) - MAX_RECORD_BYTES
        if over > 0 and record[field]:  # each character cut saves a byte at least; "…" takes 3
            record[field] = record[field][: max(0, len(record[field]) - over - 3)] + "…"
    while record["citations"] and _size(record) > MAX_RECORD_BYTES:
        record["citations"].pop()
    return json.dumps(record, ensure_ascii=False) + "\n"


class FeedbackStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def add(
        self,
        rating: str,
        question: str,
        answer: str,
        citations: Sequence[dict] = (),
        *,
        abstained: bool | None = None,
        confidence: float | None = None,
        history: Sequence[str | Turn] = (),
        comment: str = "",
        via: str = "api",
        collection: str = "",
    ) -> dict:
        if rating not in ("up", "down"):
            raise ValueError("rating must be 'up' or 'down'")
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rating": rating,
            "via": via,
            "question": question,
            "history": [_earlier(h) for h in list(history)[-MAX_HISTORY_TURNS:]],
            "answer": answer,
            "abstained": abstained,
            "confidence": confidence,
            "citations": [{k: c.get(k) for k in CITATION_FIELDS if k in c} for c in citations],
            "comment": comment,
            **({"collection": collection} if collection else {}),
        }
        line = _fitted_line(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # other server processes append to the same file
            try:
                f.write(line)
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return record

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
