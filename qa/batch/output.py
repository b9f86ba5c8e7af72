"""The answer file's interface: what each output row holds (the input's columns, then
RESULT_FIELDS) and `Output`, which each format implements (qa.batch.writers, qa.batch.xlsx), with
the resume check they share and the journal that a format which cannot show or append its rows
keeps beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.batch.readers import BatchFileError, InputRow, QuestionFile
from qa.types import Answer

# What each output row adds to the input's columns; a name the input already uses gets "qa_" in front.
RESULT_FIELDS = ("answer", "abstained", "confidence", "citations", "error", "row")


def citations_text(answer: Answer, separator: str = "\n") -> str:
    """The citations as `[n] source, location`, readable in a spreadsheet cell."""
    parts = []
    for c in answer.citations:
        where = c.location or f"chars {c.start}-{c.end}"
        title = f" ({c.title})" if c.title and c.title not in c.source else ""
        parts.append(f"[{c.n}] {c.source}, {where}{title}")
    return separator.join(parts)


def result_fields(answer: Answer | None, error: str) -> dict[str, Any]:
    """The columns an answered (or failed) row adds, before the row number."""
    if answer is None:
        return {"answer": "", "abstained": None, "confidence": None, "citations": "", "error": error}
    return {
        "answer": answer.answer,
        "abstained": answer.abstained,
        "confidence": round(answer.confidence, 4),
        "citations": citations_text(answer),
        "error": None,
    }


def byte_lines(data: bytes) -> list[bytes]:
    """Lines ending in b"\\n" (the last one may not): a quoted CSV cell may hold a lone \\r."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def cell_text(value: Any) -> str:
    """A value as a text cell: how CSV and TXT write it, and how questions are compared on resume."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class Output:
    """An answer file being written: rows appended in input order, durable after each append.

    `earlier` is how many of the input's rows the file already held when opened for resuming.
    """

    journal: Path | None = None

    def __init__(self, path: Path, source: QuestionFile, fields: Sequence[str]):
        self.path, self.source = path, source
        self.names = {f: f"qa_{f}" if f in source.columns else f for f in fields}
        self.header = list(source.columns) + list(self.names.values())
        self.earlier = 0

    # Each format implements these three.
    def start(self) -> None:
        """Create the file afresh (header only)."""
        raise NotImplementedError

    def read_done(self) -> list[tuple[int, str]]:
        """(row, question) of the rows already written, dropping a torn last row."""
        raise NotImplementedError

    def append(self, rows: Sequence[tuple[InputRow, dict, Answer | None]]) -> None:
        raise NotImplementedError

    def finish(self, complete: bool) -> None:
        """Called once at the end of a run, finished or interrupted."""

    def exists(self) -> bool:
        return self.path.exists() or bool(self.journal and self.journal.exists())

    def files(self) -> list[Path]:
        """Every file a run writes: the answer file, and its journal and temporary copy if any."""
        return [self.path] + ([self.journal] if self.journal else [])

    def resume(self) -> None:
        done = self.read_done()
        rows = self.source.rows
        for i, (row, question) in enumerate(done):
            expected = rows[i] if i < len(rows) else None
            if (
                expected is None
                or row != expected.row
                or question != cell_text(expected.values.get(self.source.question_column))
            ):
                where = f"row {row}"
                raise BatchFileError(
                    f"{self.path} does not continue {self.source.path} ({where} differs); "
                    "pass --overwrite to start it again"
                )
        self.earlier = len(done)

    def _record(self, row: InputRow, fields: dict) -> dict[str, Any]:
        """The output row: input columns, then the result fields under their output names."""
        record = {c: row.values.get(c) for c in self.source.columns}
        record.update({self.names[f]: fields.get(f) for f in self.names})
        record[self.names["row"]] = row.row
        return record


class Journal:
    """A JSONL file beside an answer file that does not show which questions it answers (TXT) or
    cannot be appended to (XLSX): one line per finished row with its row number and question (and
    for a workbook its result fields). It is what a resumed run checks the input against; it is
    removed when the run completes."""

    def __init__(self, answers: Path):
        self.path = answers.with_name(answers.name + ".partial.jsonl")
        self._ends: list[int] = []  # where each record read ends, in bytes

    def start(self, records: Sequence[dict] = ()) -> None:
        self.path.write_bytes(b"")
        self.append(records)

    def read(self) -> list[dict]:
        """The complete records; a line torn by a kill is cut off."""
        data = self.path.read_bytes()
        records, self._ends = [], []
        for line in byte_lines(data):
            try:
                record = json.loads(line) if line.endswith(b"\n") else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict) or not isinstance(record.get("row"), int):
                break
            records.append(record)
            self._ends.append((self._ends[-1] if self._ends else 0) + len(line))
        self.keep(len(records))
        return records

    def keep(self, count: int) -> None:
        """Cut the file after its first `count` records (as last read)."""
        size = self._ends[count - 1] if count else 0
        if self.path.stat().st_size > size:
            with open(self.path, "r+b") as f:
                f.truncate(size)

    def append(self, records: Sequence[dict]) -> None:
        with open(self.path, "ab") as f:
            f.write(b"".join((json.dumps(r, ensure_ascii=False, default=str) + "\n").encode("utf-8") for r in records))
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
