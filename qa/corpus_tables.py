"""Corpus tables (.csv, .tsv, .jsonl, and the sheets of an .xlsx: see qa.office) -> one Document
per row, read by the readers of qa.tables.

A row's text is its text field or, in a table without one (a FAQ of question and answer columns),
each of its values named by its column; its source is `file#id`, the id being the row's id field or
else its row number. A table that cannot be read raises TableError (qa.load reports it like any
file it cannot load).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qa.config import SETTINGS
from qa.prose import collapse
from qa.tables import TableError, TableLimits, csv_table, json_value, jsonl_lines
from qa.text import clean_text, decode_or_windows_1252
from qa.types import Document, Section


@dataclass(frozen=True)
class TableFields:
    """Which fields of a .jsonl/.csv row hold the text, the title and the row id, and how many
    columns a row may have (not part of how the index was built: see qa.ingest)."""

    text: str = SETTINGS["text_field"].default
    title: str = SETTINGS["title_field"].default
    id: str = SETTINGS["id_field"].default
    max_columns: int = TableLimits.columns


def load_jsonl(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    limits = TableLimits(columns=fields.max_columns)

    def rows():
        for number, line in jsonl_lines(decode_or_windows_1252(data)):
            row, error = json_value(line)
            if error:
                raise TableError(f"line {number} is not valid JSON")
            if isinstance(row, dict):
                limits.check_width(number, len(row))
            yield row

    return rows_to_documents(rows(), source, fields)


def load_csv(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    text = decode_or_windows_1252(data)
    limits = TableLimits(columns=fields.max_columns)

    def rows():
        header = None
        for _, record in csv_table(text, path.suffix.lower() == ".tsv", limits):
            if header is None:
                header = record
            elif record:
                row = dict(zip(header, record))  # not padded: a short row has fewer keys
                if fields.text in header:  # so that a row without its text is one without text
                    row.setdefault(fields.text, None)
                yield row

    return rows_to_documents(rows(), source, fields)


def _row_text(row: dict, fields: TableFields) -> str:
    """A row's text: its text field, or, in a table without one, each of its other values named
    by its column ("question: ...", "answer: ...")."""
    if fields.text in row:
        return clean_text(str(row[fields.text] or ""))
    named = [f"{key}: {collapse(str(value))}" for key, value in row.items()
             if key not in (fields.id, "_id") and isinstance(value, (str, int, float)) and not isinstance(value, bool)
             and str(value).strip() and key]
    return clean_text("\n".join(named))


def rows_to_documents(rows: Iterator[dict], source: str, fields: TableFields, sheet: str = "") -> list[Document]:
    """A Document per row that has text, `file#id`, or `file#sheet:id` for a row of a workbook's
    `sheet` other than its first."""
    documents, used = [], set()
    place = f"{sheet}, " if sheet else ""
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            continue
        text = _row_text(row, fields)
        if not text:
            continue
        ids = [str(row.get(f)).strip() for f in (fields.id, "_id") if row.get(f) is not None]
        row_id = next((i for i in ids if i), str(number))
        if row_id in used:  # the source keys the document in the index, so a repeated id gets the row number
            row_id = f"{row_id}~{number}"
        used.add(row_id)
        title = str(row.get(fields.title) or "").strip()
        if not title and fields.text not in row:  # a FAQ row is titled by its first value, its question
            first = next((collapse(str(v)) for k, v in row.items() if k != fields.id and isinstance(v, str)), "")
            title = first if len(first) <= 200 else ""
        section = Section(f"{place}row {number}", 0, len(text))
        documents.append(Document(f"{source}#{sheet + ':' if sheet else ''}{row_id}", title or row_id, text,
                                  (section,)))
    return documents
