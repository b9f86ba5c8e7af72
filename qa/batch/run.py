"""The run loop: a question file's rows answered through `QA.answer_stream` (encoded in batches,
ahead of the answering) and appended to an Output batch by batch, in input order, so that an
interruption loses no finished batch and a resumed run starts where the file ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from qa.batch.output import Output, result_fields
from qa.batch.readers import InputRow, QuestionFile, read_questions
from qa.batch.writers import open_output
from qa.config import DEFAULT_BATCH_SIZE, DEFAULT_K
from qa.errors import QAError, one_line
from qa.pipeline import QA, check_question
from qa.types import Answer, counted

ProgressCallback = Callable[[int, int], None]
# Rows -> (answer, "") or (None, error) for each, in order: `answer_rows` over one opened QA, or
# the same spread over Ray workers (qa.batch.ray_answers).
Answerer = Callable[[Sequence[InputRow], int], Iterator[tuple[Answer | None, str]]]


def _row_error(row: InputRow) -> str:
    if row.error:
        return row.error
    if not row.question.strip():
        return "the question is empty"
    try:
        check_question(row.question)
    except QAError as exc:
        return str(exc)
    return ""


def _one_by_one(qa: QA, questions: Sequence[str], k: int) -> Iterator[tuple[Answer | None, str]]:
    for question in questions:
        try:
            yield qa.ask(question, k=k), ""
        except Exception as exc:
            yield None, f"could not answer: {one_line(exc)}"


def answer_rows(qa: QA, rows: Sequence[InputRow], k: int = DEFAULT_K) -> Iterator[tuple[Answer | None, str]]:
    """(answer, "") or (None, error) for each row, in order: the askable ones streamed through
    `QA.answer_stream`, so encoding runs ahead while answers are written."""
    errors = [_row_error(r) for r in rows]
    askable = [r.question for r, error in zip(rows, errors) if not error]
    stream = ((answer, "") for answer in qa.answer_stream(askable, k=k))
    asked = 0
    for error in errors:
        if error:
            yield None, error
            continue
        try:
            result = next(stream)
        except Exception:  # find the question that fails and report it on its row alone
            stream = _one_by_one(qa, askable[asked:], k)
            result = next(stream)
        asked += 1
        yield result


@dataclass(frozen=True)
class BatchSummary:
    output: Path
    rows: int  # in the input
    earlier: int  # already in the output when this run started (--resume)
    answered: int  # by this run, not abstaining
    abstained: int
    errors: int
    seconds: float

    @property
    def done(self) -> int:
        return self.answered + self.abstained + self.errors

    def line(self) -> str:
        if not self.done:
            return f"{self.output} already holds every row ({counted(self.rows, 'row')}): nothing to do"
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"wrote {self.output}: {self.answered} answered, {self.abstained} declined, "
            f"{counted(self.errors, 'error')} "
            f"in {self.seconds:.1f}s ({rate:.1f} questions/s)"
        )
        if not self.earlier:
            return text
        return text + f"; {counted(self.earlier, 'row')} {'was' if self.earlier == 1 else 'were'} already done"


def run_batch(
    qa: QA | None,
    source: QuestionFile,
    output: Output,
    k: int = DEFAULT_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    on_result: Callable[[InputRow, Answer | None, str], dict | None] | None = None,
    answerer: Answerer | None = None,
) -> BatchSummary:
    """Answer the rows not yet in `output` (opened with open_output) and append them in order,
    with `qa` or, when given, `answerer` (qa may then be None).

    `on_result` may return extra fields for the row (e.g. evaluation marks). An interruption
    leaves `output` valid and holding every batch finished before it.
    """
    started = time.perf_counter()
    earlier = output.earlier
    todo = source.rows[earlier:]
    counts = {"answered": 0, "abstained": 0, "errors": 0}
    if on_progress:
        on_progress(earlier, len(source.rows))
    complete = False
    try:
        results = (answerer or partial(answer_rows, qa))(todo, k)
        for at in range(0, len(todo), batch_size):
            rows = todo[at : at + batch_size]
            done = []
            for row, (answer, error) in zip(rows, results):
                fields = result_fields(answer, error)
                counts["errors" if answer is None else "abstained" if answer.abstained else "answered"] += 1
                if on_result:
                    fields.update(on_result(row, answer, error) or {})
                done.append((row, fields, answer))
            output.append(done)
            if on_progress:
                on_progress(earlier + at + len(rows), len(source.rows))
        complete = True
    finally:
        output.finish(complete)
    return BatchSummary(output.path, len(source.rows), earlier, seconds=time.perf_counter() - started, **counts)


def answer_file(
    qa: QA,
    questions: Path | str,
    output: Path | str,
    question_column: str | None = None,
    k: int = DEFAULT_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
) -> BatchSummary:
    """Read a question file and write (or continue) its answer file: the whole batch in one call."""
    source = read_questions(questions, question_column)
    out = open_output(output, source, resume=resume, overwrite=overwrite)
    return run_batch(qa, source, out, k=k, batch_size=batch_size, on_progress=on_progress)
