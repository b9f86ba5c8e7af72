"""Questions asked at the same time share one query-encoding pass.

Encoding is most of an answer's cost and a batch of questions encodes in little more time than
one, so API requests go through a single worker thread that takes every question waiting when
it is free and answers them with `QA.ask_many`. An idle server answers a lone question at once
(nothing waits for a batch to fill); a busy one answers 16 concurrent clients in a few passes
instead of 16 contending ones.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from qa.config import DEFAULT_K
from qa.pipeline import QA, check_question
from qa.types import Answer, Turn

MAX_BATCH = 32


@dataclass
class _Request:
    question: str
    k: int
    history: Sequence[str | Turn]  # earlier questions, or earlier turns with their answers
    future: Future = field(default_factory=Future)


class AskQueue:
    def __init__(self, get_qa: Callable[[], QA], max_batch: int = MAX_BATCH):
        self.get_qa = get_qa
        self.max_batch = max_batch
        self.waiting: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self.worker = threading.Thread(target=self._work, name="qa-ask-queue", daemon=True)
        self.worker.start()

    def submit(self, question: str, k: int = DEFAULT_K, history: Sequence[str | Turn] = ()) -> Future[Answer]:
        """A future of QA.ask's answer (or of its error)."""
        request = _Request(question, k, history)
        self.waiting.put(request)
        return request.future

    def ask(self, question: str, k: int = DEFAULT_K, history: Sequence[str | Turn] = ()) -> Answer:
        return self.submit(question, k, history).result()

    def _work(self) -> None:
        while True:
            batch = [self.waiting.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._answer(batch)
            except Exception as exc:  # the worker must outlive any error: each request reports it
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)

    def _answer(self, batch: list[_Request]) -> None:
        valid = []
        for request in batch:  # a bad question fails alone, not its whole batch
            try:
                check_question(request.question)
                valid.append(request)
            except Exception as exc:
                request.future.set_exception(exc)
        if not valid:
            return
        qa = self.get_qa()
        for k in sorted({r.k for r in valid}):
            group = [r for r in valid if r.k == k]
            answers = qa.ask_many([r.question for r in group], k=k, histories=[r.history for r in group])
            for r, answer in zip(group, answers):
                r.future.set_result(answer)
