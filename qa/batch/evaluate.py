"""Answers + expected answers -> quality numbers: how an owner checks a corpus before rollout.

`score` compares each Answer with what the row expected: a hit is a gold answer string found in
the answer text (case and spacing ignored, citation markers removed); a citation hit is the
expected source among the cited ones; a row whose expected answer is empty should be declined,
which gives abstention precision and recall. `qa eval` reads the expectations from a question
file's columns; bench scripts call `score` with their own rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.batch.output import Output
from qa.batch.readers import InputRow, QuestionFile, find_column, read_questions
from qa.batch.run import run_batch
from qa.batch.writers import open_output
from qa.config import DEFAULT_BATCH_SIZE, DEFAULT_K
from qa.pipeline import QA
from qa.types import Answer, counted

ANSWER_COLUMNS = ("expected_answer", "expected answer", "expected_answers", "expected", "answers", "answer", "gold")
SOURCE_COLUMNS = ("expected_source", "expected source", "source", "sources", "document")
ANSWER_SEPARATOR = "|"  # between several acceptable answers in one cell
EVAL_FIELDS = ("answer_hit", "citation_hit")
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # --min-confidence values the report shows the effect of

_MARKER = re.compile(r"\s*\[\d+\]")


@dataclass(frozen=True)
class Expected:
    question: str
    answers: tuple[str, ...] | None = None  # () = should be declined; None = no expectation
    source: str | None = None


@dataclass(frozen=True)
class Metrics:
    rows: int
    errors: int  # rows that could not be asked; left out of every rate
    answerable: int  # rows expecting an answer
    answer_hits: int
    with_source: int  # rows naming an expected source
    citation_hits: int
    unanswerable: int  # rows expecting a refusal
    abstained: int  # among rows with an expectation
    correct_abstentions: int
    latency_p50_ms: float
    latency_p95_ms: float
    # (threshold, share of answerable rows, share of unanswerable rows, declined at that
    # --min-confidence): how to move the threshold for this corpus and model
    declined_by_threshold: tuple[tuple[float, float | None, float | None], ...] = ()

    @staticmethod
    def _rate(hits: int, total: int) -> float | None:
        return hits / total if total else None

    @property
    def answer_hit_rate(self) -> float | None:
        return self._rate(self.answer_hits, self.answerable)

    @property
    def citation_hit_rate(self) -> float | None:
        return self._rate(self.citation_hits, self.with_source)

    @property
    def abstention_precision(self) -> float | None:
        return self._rate(self.correct_abstentions, self.abstained)

    @property
    def abstention_recall(self) -> float | None:
        return self._rate(self.correct_abstentions, self.unanswerable)

    def to_dict(self) -> dict[str, Any]:
        rates = ("answer_hit_rate", "citation_hit_rate", "abstention_precision", "abstention_recall")
        return {**asdict(self), **{name: getattr(self, name) for name in rates}}

    def report(self) -> str:
        """The metrics as a few aligned lines for a terminal."""

        def show(rate: float | None, hits: int, total: int) -> str:
            return "n/a" if rate is None else f"{rate:.3f}  ({hits}/{total})"

        return "\n".join([
            f"questions             {self.rows}" + (f"  ({self.errors} could not be asked)" if self.errors else ""),
            f"answer hit rate       {show(self.answer_hit_rate, self.answer_hits, self.answerable)}",
            f"citation hit rate     {show(self.citation_hit_rate, self.citation_hits, self.with_source)}",
            f"abstention precision  {show(self.abstention_precision, self.correct_abstentions, self.abstained)}",
            f"abstention recall     {show(self.abstention_recall, self.correct_abstentions, self.unanswerable)}",
            f"latency               p50 {self.latency_p50_ms:.1f} ms, p95 {self.latency_p95_ms:.1f} ms per question",
            *self._threshold_lines(),
        ])

    def _threshold_lines(self) -> list[str]:
        if not self.declined_by_threshold:
            return []

        def row(label: str, shares: list[float | None]) -> str:
            return f"  {label:26}" + "".join("    n/a" if v is None else f"{v:7.0%}" for v in shares)

        return [
            "declined at --min-confidence" + "".join(f"{t:7.2f}" for t, _, _ in self.declined_by_threshold),
            row("answerable", [a for _, a, _ in self.declined_by_threshold]),
            row("should be declined", [u for _, _, u in self.declined_by_threshold]),
        ]


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def answer_hit(answer: Answer, gold: Sequence[str]) -> bool:
    """A gold answer string is inside the answer text (case and spacing ignored)."""
    if answer.abstained:
        return False
    text = normalize(_MARKER.sub("", answer.answer))
    return any(normalize(g) and normalize(g) in text for g in gold)


def source_matches(cited: str, expected: str) -> bool:
    """`expected` names the cited source exactly, or its file (without `#row`), or its file name."""
    expected = expected.strip().replace("\\", "/")
    file = cited.split("#", 1)[0]
    return expected in (cited, file) or cited.endswith("/" + expected) or file.endswith("/" + expected)


def citation_hit(answer: Answer, source: str) -> bool:
    return any(source_matches(c.source, source) for c in answer.citations)


def score(expected: Sequence[Expected], answers: Sequence[Answer | None]) -> Metrics:
    """Metrics of `answers` against `expected`, row by row (None = a row that failed)."""
    if len(expected) != len(answers):
        raise ValueError(f"{counted(len(expected), 'expected row')} but {counted(len(answers), 'answer')}")
    counts = dict.fromkeys(
        ("errors", "answerable", "answer_hits", "with_source", "citation_hits", "unanswerable", "abstained",
         "correct_abstentions"), 0,
    )
    latencies = []
    confidences: dict[bool, list[float]] = {True: [], False: []}  # answerable? -> confidences
    for want, answer in zip(expected, answers):
        if answer is None:
            counts["errors"] += 1
            continue
        latencies.append(answer.timings_ms.get("total", 0.0))
        if want.answers is not None:
            confidences[bool(want.answers)].append(answer.confidence)
            counts["abstained"] += answer.abstained
            if want.answers:
                counts["answerable"] += 1
                counts["answer_hits"] += answer_hit(answer, want.answers)
            else:
                counts["unanswerable"] += 1
                counts["correct_abstentions"] += answer.abstained
        if want.source:
            counts["with_source"] += 1
            counts["citation_hits"] += citation_hit(answer, want.source)
    p50, p95 = np.percentile(latencies, [50, 95]).tolist() if latencies else (0.0, 0.0)

    def declined(values: list[float], threshold: float) -> float | None:
        return float(np.mean(np.array(values) < threshold)) if values else None

    sweep = tuple(
        (t, declined(confidences[True], t), declined(confidences[False], t)) for t in THRESHOLDS
    ) if confidences[True] or confidences[False] else ()
    return Metrics(rows=len(expected), latency_p50_ms=p50, latency_p95_ms=p95, declined_by_threshold=sweep, **counts)


def _gold(value: Any, separator: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if v is not None and str(v).strip())
    return tuple(part.strip() for part in str(value).split(separator) if part.strip())


def expectations(
    source: QuestionFile, answer_column: str | None = None, source_column: str | None = None,
    separator: str = ANSWER_SEPARATOR,
) -> list[Expected]:
    """What each row of a question file expects, from its answer and source columns (found by name)."""
    columns = [c for c in source.columns if c != source.question_column]
    answers = find_column(columns, answer_column, ANSWER_COLUMNS, source.path, "--answer-column")
    sources = find_column(columns, source_column, SOURCE_COLUMNS, source.path, "--source-column")
    rows = []
    for row in source.rows:
        gold = _gold(row.values.get(answers), separator) if answers else None
        cited = row.values.get(sources) if sources else None
        rows.append(Expected(row.question, gold, str(cited).strip() if cited not in (None, "") else None))
    return rows


def evaluate(
    qa: QA,
    source: QuestionFile,
    expected: Sequence[Expected],
    output: Output,
    k: int = DEFAULT_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> Metrics:
    """Answer the rows of `source` into `output` (opened with EVAL_FIELDS), each marked, and score them."""
    by_row = {row.row: want for row, want in zip(source.rows, expected)}
    answers: dict[int, Answer | None] = {}

    def mark(row: InputRow, answer: Answer | None, error: str) -> dict:
        answers[row.row] = answer
        want = by_row[row.row]
        if answer is None:
            return {}
        return {
            "answer_hit": answer_hit(answer, want.answers) if want.answers else None,
            "citation_hit": citation_hit(answer, want.source) if want.source else None,
        }

    run_batch(qa, source, output, k=k, batch_size=batch_size, on_progress=on_progress, on_result=mark)
    return score(expected, [answers[row.row] for row in source.rows])


def evaluate_file(
    qa: QA,
    questions: Path | str,
    output: Path | str | None = None,
    question_column: str | None = None,
    answer_column: str | None = None,
    source_column: str | None = None,
    separator: str = ANSWER_SEPARATOR,
    k: int = DEFAULT_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Metrics:
    """Answer a question file and score it; with `output`, write each row's answer and marks too."""
    source = read_questions(questions, question_column)
    expected = expectations(source, answer_column, source_column, separator)
    out = open_output(output, source, overwrite=overwrite, extra_fields=EVAL_FIELDS)
    return evaluate(qa, source, expected, out, k=k, batch_size=batch_size, on_progress=on_progress)
