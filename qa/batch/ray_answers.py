"""`qa batch --ray`: the rows still to answer go out to Ray workers in batches; each worker opens
the index once (at the same path on every node) and answers its rows with `answer_rows`, exactly
as a local run would; the answers come back to the driver, which hands them to `run_batch` in
input order. So the output file, its checkpoints and `--resume` are those of a local run: only
the driver writes, row after row.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from qa.batch.readers import InputRow
from qa.batch.run import Answerer, answer_rows
from qa.pipeline import QA, Embedder, on_workers, read_manifest, require_ray, worker_path
from qa.types import Answer

ROWS_PER_TASK = 64  # questions a worker answers at once: several encoding passes, and enough tasks to share


class RowAnswerer:
    """A Ray actor: the index, opened once, answering batches of rows on its one CPU."""

    def __init__(self, index: str, model: str, cache: str, min_confidence: float, k: int):
        self.index, self.model, self.cache, self.min_confidence, self.k = index, model, cache, min_confidence, k
        self.qa: QA | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Opened by the first batch, not the constructor: Ray retries a constructor that fails and
        # reports it to the terminal, while a batch's error ends the job and reaches the driver.
        if self.qa is None:
            embedder = Embedder(read_manifest(self.index)["model"], cache=self.cache, threads=1)
            self.qa = QA(self.index, model=self.model or None, embedder=embedder, min_confidence=self.min_confidence)
        rows = [InputRow(0, {}, str(q), str(e)) for q, e in zip(batch["question"], batch["error"])]
        results = [pickle.dumps(result) for result in answer_rows(self.qa, rows, self.k)]
        return {"i": batch["i"], "result": np.array(results, dtype=object)}


def ray_answerer(address: str, index: Path, model: str, cache: str, min_confidence: float) -> Answerer:
    """An Answerer for `run_batch` that spreads the rows over the Ray at `address`."""
    require_ray()
    read_manifest(index)  # no index (or an unreadable one) fails here, before Ray starts
    options = {"index": worker_path(str(index)), "model": model, "cache": worker_path(cache),
               "min_confidence": min_confidence}

    def answers(rows: Sequence[InputRow], k: int) -> Iterator[tuple[Answer | None, str]]:
        if not rows:
            return
        items = [{"i": i, "question": r.question, "error": r.error} for i, r in enumerate(rows)]
        arrived: dict[int, tuple[Answer | None, str]] = {}
        next_out = 0
        for batch in on_workers(address, items, RowAnswerer, {**options, "k": k}, ROWS_PER_TASK):
            for i, packed in zip(batch["i"], batch["result"]):
                arrived[int(i)] = pickle.loads(packed)
            while next_out in arrived:
                yield arrived.pop(next_out)
                next_out += 1

    return answers
