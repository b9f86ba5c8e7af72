"""Question files -> rows: CSV/TSV, JSONL, TXT and XLSX read whole, in time and memory linear in
their size within the QA_MAX_* limits (qa.tables), decoded by qa.text's rule. Each row keeps every
column the file gives it; a row that cannot be asked (bytes that are not UTF-8, a line that is not
JSON) carries the reason instead of sinking the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.errors import BatchFileError, one_line
from qa.tables import (
    ColumnNames,
    TableError,
    TableLimits,
    TableTooLarge,
    csv_table,
    json_value,
    jsonl_lines,
    trim,
    xlsx_rows,
    zip_refusal,
)
from qa.text import NotText, decode, has_bad_bytes, replace_bad_bytes

SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt", ".xlsx")
# Names a question column goes by, tried in order (case-insensitive).
QUESTION_COLUMNS = ("question", "questions", "query", "queries", "q", "prompt", "text")
MAX_WORKBOOK_BYTES = 50_000_000  # unzipped: far beyond any questionnaire, far below a zip bomb


@dataclass(frozen=True)
class InputRow:
    row: int  # the question's line (TXT, JSONL) or row (CSV, TSV, XLSX; the header is row 1)
    values: dict[str, Any]  # the input's columns, as read
    question: str
    error: str = ""  # why the row cannot be asked at all (undecodable, not JSON)


@dataclass(frozen=True)
class QuestionFile:
    path: Path
    columns: tuple[str, ...]  # passed through to the output, in this order
    question_column: str
    rows: tuple[InputRow, ...]


def _decode(data: bytes, path: Path) -> str:
    """Text with bytes that are not UTF-8 kept marked (qa.text), so one bad row does not sink the file."""
    try:
        return decode(data)
    except NotText as exc:
        if exc.binary:
            raise BatchFileError(f"cannot read {path}: it is a binary file, not {path.suffix.lower()} text") from None
        raise BatchFileError(f"cannot read {path}: it starts like UTF-16 text but is not") from None


BAD_BYTES = "not valid UTF-8 text (save the file as UTF-8)"
BAD_ESCAPE = "not valid Unicode text (a \\u escape is half of a surrogate pair)"
# a JSON escape that may be half of a surrogate pair: only a line holding one needs a closer look
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _without_surrogates(value: Any) -> Any:
    """A JSON value with each lone surrogate (which JSON escapes allow) replaced by U+FFFD."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


# Each reader gives the columns and (row, {column: value}, error) of each row that holds something.
# A row holds only the cells the file gives it: a short row is never padded to the widest one.
RawRows = tuple[tuple[str, ...], list[tuple[int, dict, str]]]


def _read_csv(path: Path, data: bytes, limits: TableLimits) -> RawRows:
    names, rows = None, []
    for number, record in csv_table(_decode(data, path), path.suffix.lower() == ".tsv", limits):
        record = trim(record)
        limits.check_cell(number, max(map(len, record), default=0))
        if names is None:
            names = ColumnNames([replace_bad_bytes(cell) for cell in record])
            continue
        if not any(cell.strip() for cell in record):
            continue
        limits.check_rows(len(rows) + 1)
        error = BAD_BYTES if any(has_bad_bytes(cell) for cell in record) else ""
        rows.append((number, dict(zip(names.extend_to(len(record)), map(replace_bad_bytes, record))), error))
    return (tuple(names.names) if names else ()), rows


def _read_jsonl(path: Path, data: bytes, limits: TableLimits) -> RawRows:
    columns: dict[str, None] = {}
    rows = []
    for number, line in jsonl_lines(_decode(data, path)):
        limits.check_rows(len(rows) + 1)
        error = BAD_BYTES if has_bad_bytes(line) else ""
        value, not_json = json_value(replace_bad_bytes(line))
        if not_json:
            rows.append((number, {}, error or not_json))
            continue
        if isinstance(value, str):
            value = {"question": value}
        if _SURROGATE_ESCAPE.search(line):
            readable = _without_surrogates(value)
            if readable != value:  # a lone "\ud83d" escape: not text that can be asked or written out
                value, error = readable, error or BAD_ESCAPE
        if not isinstance(value, dict):
            rows.append((number, {}, error or "not a JSON object"))
            continue
        limits.check_width(number, len(value))
        if len(line) > limits.cell_chars:  # only then may one of its values be too long
            limits.check_cell(number, max(_json_chars(v) for v in value.values()))
        columns.update(dict.fromkeys(value))
        if len(columns) > limits.columns:
            raise TableTooLarge(f"its rows have more than {limits.columns:,} different columns "
                                "(raise the limit with QA_MAX_COLUMNS)")
        rows.append((number, value, error))
    return tuple(columns), rows


def _json_chars(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False))


def _read_txt(path: Path, data: bytes, limits: TableLimits) -> RawRows:
    rows = []
    for number, line in enumerate(_decode(data, path).split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            limits.check_rows(len(rows) + 1)
            limits.check_cell(number, len(line))
            rows.append((number, {"question": replace_bad_bytes(line)}, BAD_BYTES if has_bad_bytes(line) else ""))
    return ("question",), rows


def _read_xlsx(path: Path, data: bytes, limits: TableLimits) -> RawRows:
    names, rows = None, []
    try:
        refused = zip_refusal(data, "workbook", MAX_WORKBOOK_BYTES)
        if refused:
            raise BatchFileError(f"cannot read {path}: {refused}")
        for number, cells in xlsx_rows(data, limits):
            if names is None:  # the first row holding anything
                names = ColumnNames([_cell_name(cells.get(c)) for c in range(1, max(cells) + 1)])
                continue
            if not any(str(v).strip() for v in cells.values()):
                continue
            limits.check_rows(len(rows) + 1)
            columns = names.extend_to(max(cells))
            rows.append((number, {columns[c - 1]: v for c, v in cells.items()}, ""))
    except (BatchFileError, TableError):
        raise
    except Exception as exc:  # zip, XML and openpyxl errors all mean "not a workbook we can read"
        raise BatchFileError(f"cannot read {path}: not a valid .xlsx workbook ({one_line(exc)})") from None
    return (tuple(names.names) if names else ()), rows


def _cell_name(value: Any) -> str | None:
    return None if value is None else replace_bad_bytes(str(value))


READERS = {".csv": _read_csv, ".tsv": _read_csv, ".jsonl": _read_jsonl, ".txt": _read_txt, ".xlsx": _read_xlsx}


def _listed(columns: Sequence[str], most: int = 20) -> str:
    """Column names for an error line, which stays short however many there are."""
    more = f" and {len(columns) - most:,} more" if len(columns) > most else ""
    return ", ".join(c if len(c) <= 60 else c[:57] + "..." for c in columns[:most]) + more


def find_column(columns: Sequence[str], wanted: str | None, names: Sequence[str], path: Path, flag: str) -> str | None:
    """The column called `wanted`, or else the first one going by one of `names`."""
    folded = {c.strip().lower(): c for c in reversed(columns)}
    if wanted:
        if wanted in columns:
            return wanted
        if wanted.strip().lower() in folded:
            return folded[wanted.strip().lower()]
        raise BatchFileError(f"no column {wanted!r} in {path} (columns: {_listed(columns)}); check {flag}")
    for name in names:
        if name in folded:
            return folded[name]
    return None


def read_questions(
    path: Path | str, question_column: str | None = None, limits: TableLimits | None = None
) -> QuestionFile:
    """Read a question file; the question column is `question_column` or found by its name.

    Memory and time stay linear in the file's size; a file past `limits` (default: the QA_MAX_*
    settings) is refused with a BatchFileError saying which limit."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise BatchFileError(f"cannot read {path}: questions must be in a {', '.join(SUFFIXES)} file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BatchFileError(f"question file not found: {path}") from None
    except OSError as exc:
        raise BatchFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        columns, raw = READERS[suffix](path, data, limits or TableLimits())
    except TableError as exc:
        raise BatchFileError(f"cannot read {path}: {exc}") from None
    if not raw:
        raise BatchFileError(f"no questions in {path}")
    if suffix == ".txt":
        column = "question"
    else:
        column = find_column(columns, question_column, QUESTION_COLUMNS, path, "--question-column")
        if column is None:
            fuzzy = [c for c in columns if "question" in c.lower() or "query" in c.lower()]
            if len(fuzzy) == 1 or len(columns) == 1:
                column = (fuzzy or list(columns))[0]
            else:
                raise BatchFileError(
                    f"cannot tell which column of {path} holds the questions (columns: {_listed(columns)}); "
                    "name it with --question-column"
                )
    rows = []
    for number, values, error in raw:
        question = values.get(column)
        if question is None:
            question = ""
        elif isinstance(question, (dict, list)):
            error = error or "the question is not text"
            question = ""
        rows.append(InputRow(number, values, str(question), error))
    return QuestionFile(path, columns, column, tuple(rows))
