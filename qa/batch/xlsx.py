"""The XLSX answer file: a workbook cannot be appended to, so each batch of rows goes to a JSONL
journal beside it (`answers.xlsx.partial.jsonl`) and the workbook is rewritten atomically from it
every CHECKPOINT_SECONDS and at the end; the journal is removed when the run completes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qa.batch.output import Journal, Output, cell_text
from qa.batch.readers import MAX_WORKBOOK_BYTES, BatchFileError, InputRow, QuestionFile
from qa.errors import one_line
from qa.tables import SHEET_COLUMNS, SHEET_ROWS, TableLimits, xlsx_rows, zip_refusal
from qa.types import Answer

CHECKPOINT_SECONDS = 30.0  # how often a workbook is rewritten while its journal grows


class XlsxOutput(Output):
    """A workbook rewritten atomically from a JSONL journal of the finished rows."""

    def __init__(self, path: Path, source: QuestionFile, fields: Sequence[str]):
        super().__init__(path, source, fields)
        self.log = Journal(path)
        self.journal = self.log.path
        self.fields = tuple(fields)
        self.done: dict[int, dict] = {}
        self.rendered_at = 0.0

    def start(self) -> None:
        self.log.start()
        self.done = {}
        self.render()

    def read_done(self) -> list[tuple[int, str]]:
        if self.log.path.exists():
            records = self.log.read()
        else:
            records = self._read_workbook()
            self.log.start(records)
        self.done = {r["row"]: r for r in records}
        return [(r["row"], r.get("question")) for r in records]

    def _read_workbook(self) -> list[dict]:
        # the file need not be one this wrote: streamed like a question file, within a worksheet's limits
        limits = TableLimits(rows=SHEET_ROWS, columns=SHEET_COLUMNS, cell_chars=MAX_WORKBOOK_BYTES)
        try:
            data = self.path.read_bytes()
            refused = zip_refusal(data, "workbook", MAX_WORKBOOK_BYTES)
            if refused:
                raise ValueError(refused)
            rows = xlsx_rows(data, limits)
            first = next(rows, (0, {}))[1]
            header = [cell_text(first.get(c)) for c in range(1, len(self.header) + 1)]
            if header != self.header:
                raise BatchFileError(
                    f"{self.path} has other columns than this input gives; pass --overwrite to replace it"
                )
            records = []
            for _, cells in rows:
                record = {name: cells.get(c) for c, name in enumerate(self.header, start=1)}
                fields = {f: record[self.names[f]] for f in self.fields}
                records.append({**fields, "question": cell_text(record[self.source.question_column])})
        except BatchFileError:
            raise
        except Exception as exc:  # any failure: the workbook is not one this can continue
            raise BatchFileError(
                f"cannot continue {self.path}: not a readable workbook ({one_line(exc)}); pass --overwrite"
            ) from None
        return records

    def append(self, rows: Sequence[tuple[InputRow, dict, Answer | None]]) -> None:
        records = []
        for row, fields, _ in rows:
            record = {**{f: fields.get(f) for f in self.fields}, "row": row.row}
            records.append({**record, "question": cell_text(row.values.get(self.source.question_column))})
        self.log.append(records)
        self.done.update((r["row"], r) for r in records)
        if time.monotonic() - self.rendered_at > CHECKPOINT_SECONDS:
            self.render()

    def finish(self, complete: bool) -> None:
        self.render()
        if complete:
            self.log.remove()

    def render(self) -> None:
        import openpyxl
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Alignment, Font
        from openpyxl.utils import get_column_letter

        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.title = "answers"
        wrap = Alignment(wrap_text=True, vertical="top")
        position = {name: c for c, name in enumerate(self.header, start=1)}
        wide = {position[n] for n in (self.source.question_column, self.names["answer"], self.names["citations"])}

        def put(r: int, c: int, value: Any):
            if isinstance(value, (dict, list)):
                value = json.dumps(value, ensure_ascii=False)
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
            cell = sheet.cell(r, c, value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # text, not a formula
            return cell

        for c, name in enumerate(self.header, start=1):
            put(1, c, name).font = Font(bold=True)
            sheet.column_dimensions[get_column_letter(c)].width = 60 if c in wide else max(10, min(30, len(name) + 2))
        r = 1
        for row in self.source.rows:
            if row.row not in self.done:
                continue
            r += 1
            # the cells that hold something, never a whole row of empty ones: the input may be sparse
            for name, value in self._cells(row, self.done[row.row]):
                if value is not None:
                    cell = put(r, position[name], value)
                    if position[name] in wide:
                        cell.alignment = wrap
        sheet.freeze_panes = "A2"
        partial = self.files()[-1]
        workbook.save(partial)
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, self.path)
        self.rendered_at = time.monotonic()

    def files(self) -> list[Path]:
        return super().files() + [self.path.with_name(self.path.name + ".tmp")]

    def _cells(self, row: InputRow, fields: dict) -> Iterator[tuple[str, Any]]:
        """The output row's cells as _record gives them, but only the input cells the row has."""
        yield from row.values.items()
        yield from ((self.names[f], fields.get(f)) for f in self.names)
        yield self.names["row"], row.row
