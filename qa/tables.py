"""Tables read with bounded memory and time, one reader per format shared by question files
(qa.batch: CSV/TSV, JSONL, XLSX) and the corpus's .csv/.tsv/.jsonl tables (qa.corpus_tables).

A table may be hostile: a line of 10,000 commas, 3,000 columns of one name, a 5 KB workbook whose
one cell sits at row 100,000 and column 1,500. So no row is padded to the widest one or to a
sheet's declared size, every step is linear in the file, and the caps of `TableLimits` (settings
in qa/config.py) refuse a file past them with a one-line reason (`TableTooLarge`).

The rules both callers follow: a TSV is split at tabs, a CSV at the delimiter its first line uses
most (with the spaces after it skipped when each one there has one); a JSON Lines text is split at
"\n" only, its blank lines skipped.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qa.config import SETTINGS
from qa.errors import megabytes

DELIMITERS = ",;\t|"  # what a CSV's cells may be separated by, the commonest first
# What a worksheet can hold at most; a sheet's XML claiming more is not one Excel wrote.
SHEET_ROWS, SHEET_COLUMNS = 1_048_576, 16_384


class TableError(Exception):
    """A table that cannot be read; the message is the one-line reason."""


class TableTooLarge(TableError):
    """A table past one of its limits."""


@dataclass(frozen=True)
class TableLimits:
    rows: int = SETTINGS["max_rows"].default_value()
    columns: int = SETTINGS["max_columns"].default_value()
    cell_chars: int = SETTINGS["max_cell_chars"].default_value()

    def check_rows(self, count: int) -> None:
        if count > self.rows:
            raise TableTooLarge(f"it has more than {self.rows:,} rows (raise the limit with QA_MAX_ROWS)")

    def check_width(self, row: int, width: int) -> None:
        if width > self.columns:
            raise TableTooLarge(f"row {row:,} has {width:,} columns, over the {self.columns:,}-column limit "
                                "(raise it with QA_MAX_COLUMNS)")

    def check_cell(self, row: int, chars: int) -> None:
        if chars > self.cell_chars:
            raise TableTooLarge(f"row {row:,} has a cell of {chars:,} characters, over the {self.cell_chars:,}-"
                                "character limit (raise it with QA_MAX_CELL_CHARS)")


class ColumnNames:
    """Unique names for a table's columns, in order: the header's own (trimmed), "column N" for a
    blank one, "name (2)", "name (3)"... for a repeated one. Linear in the number of columns: a
    repeated name goes on counting where the last of its kind stopped."""

    def __init__(self, header: list[Any] | tuple[Any, ...] = ()):
        self.names: list[str] = []
        self._taken: set[str] = set()
        self._next: dict[str, int] = {}
        for raw in header:
            self.add(raw)

    def add(self, raw: Any) -> str:
        text = "" if raw is None else str(raw).strip()
        base = name = text or f"column {len(self.names) + 1}"
        n = self._next.get(base, 2)
        while name in self._taken:
            name, n = f"{base} ({n})", n + 1
        self._next[base] = n
        self._taken.add(name)
        self.names.append(name)
        return name

    def extend_to(self, width: int) -> list[str]:
        while len(self.names) < width:
            self.add(None)
        return self.names


def trim(cells: list[str]) -> list[str]:
    """The cells without the empty ones at the end (a spreadsheet's untouched columns)."""
    end = len(cells)
    while end and cells[end - 1] == "":
        end -= 1
    return cells if end == len(cells) else cells[:end]


def _sniff_delimiter(text: str) -> tuple[str, bool]:
    """The delimiter of a CSV text, the one of DELIMITERS its first line holds most often outside
    quotes (ties go to the earlier one, none at all to the first), and whether each one is followed
    by a space. One pass over the line: csv.Sniffer's patterns take minutes on a crafted one."""
    candidates = DELIMITERS
    end = text.find("\n")
    outside = text[: end if end >= 0 else len(text)].split('"')[::2]
    counts = {c: sum(part.count(c) for part in outside) for c in candidates}
    delimiter = max(candidates, key=lambda c: (counts[c], -candidates.index(c)))
    spaced = counts[delimiter] > 0 and counts[delimiter] == sum(part.count(delimiter + " ") for part in outside)
    return delimiter, spaced


# a line ends at "\r\n", "\n" or a lone "\r" (CSV saved by Excel for Mac), as with open(newline="")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """The lines of a text with their endings, one at a time: io.StringIO would hold a copy of the
    whole text at four bytes a character."""
    return (match.group() for match in _LINE.finditer(text))


def _csv_records(text: str, delimiter: str, skipinitialspace: bool) -> Iterator[list[str]]:
    """The records of a CSV text. Raises csv.Error for malformed quoting."""
    # the csv module refuses fields over 128 KiB by default; a cell is bounded by the text itself
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    return csv.reader(_lines(text), delimiter=delimiter, skipinitialspace=skipinitialspace)


def csv_table(text: str, tab_separated: bool, limits: TableLimits) -> Iterator[tuple[int, list[str]]]:
    """(record number, cells) of each record of a CSV or TSV text, a blank line being a record of
    no cells. Raises TableTooLarge for a record whose cells, without the empty ones at the end
    (trim), are more than `limits` allow, and TableError for malformed quoting."""
    delimiter, spaced = ("\t", False) if tab_separated else _sniff_delimiter(text)
    try:
        for number, record in enumerate(_csv_records(text, delimiter, spaced), start=1):
            limits.check_width(number, len(trim(record)))
            yield number, record
    except csv.Error as exc:
        raise TableError(f"not valid CSV ({exc})") from None


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each line of a JSON Lines text that holds something."""
    # Split on "\n" only: JSON strings may hold other line separators (U+2028, U+0085, a lone "\r").
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def json_value(line: str) -> tuple[Any, str]:
    """(the JSON value of one line, "") or (None, why it is not JSON)."""
    try:
        return json.loads(line), ""
    except json.JSONDecodeError:
        return None, "not valid JSON"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"


def zip_refusal(data: bytes, kind: str, limit: int) -> str:
    """Why the zip archive (a DOCX, a workbook) in data must not be opened, or "" if it may be:
    it would unzip past `limit` bytes (a zip bomb) or uses an unusual compression. Raises
    zipfile.BadZipFile if data is not a zip."""
    members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    unzipped = sum(member.file_size for member in members)
    if unzipped > limit:
        return (f"the {kind} would unzip to {megabytes(unzipped)}, over the {megabytes(limit)} limit "
                f"for a {kind} (a zip bomb?)")
    if any(m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) for m in members):
        return f"not a readable {kind} file (unusual zip compression)"
    return ""


def xlsx_rows(data: bytes, limits: TableLimits) -> Iterator[tuple[int, dict[int, Any]]]:
    """(row number, {column number: value}) of each row of a workbook's first sheet that holds a
    value (see xlsx_sheets)."""
    sheets = xlsx_sheets(data, limits)
    try:
        for _, rows in sheets:
            yield from rows
            return
    finally:
        sheets.close()  # the workbook, now rather than when the generator is collected


# openpyxl warns about what a workbook lacks or gets wrong (no stylesheet, a bad print area) as it
# reads it; none of it is the reader's concern, and a build must not print it for every such file.
warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl\.")


def xlsx_sheets(data: bytes, limits: TableLimits) -> Iterator[tuple[str, Iterator[tuple[int, dict[int, Any]]]]]:
    """(name, rows) of each sheet of a workbook, in order; rows are (row number, {column number:
    value}) of each row that holds a value, streamed from the sheet's XML, and must be read before
    the next sheet is.

    openpyxl's own row readers pad every row to the sheet's declared size (or its last cell) and
    build a whole row's XML before reading it, so a few KB of XML can cost gigabytes. Here its cell
    parser (shared strings, numbers, dates, booleans) reads one cell at a time, only the cells the
    file holds are looked at, and each element is dropped once read. Raises TableTooLarge past
    `limits` and openpyxl's, zipfile's or the XML parser's errors for a broken file."""
    import openpyxl
    from openpyxl.worksheet._reader import WorkSheetParser

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in workbook.worksheets:
            cells = WorkSheetParser(None, sheet._shared_strings, data_only=True, epoch=workbook.epoch,
                                    date_formats=workbook._date_formats,
                                    timedelta_formats=workbook._timedelta_formats)
            with sheet._get_source() as xml:
                yield sheet.title, _sheet_rows(xml, cells, limits)
    finally:
        workbook.close()


def _sheet_rows(xml, cells, limits: TableLimits) -> Iterator[tuple[int, dict[int, Any]]]:
    from openpyxl.worksheet._reader import CELL_TAG, DATA_TAG, ROW_TAG
    from openpyxl.xml.functions import iterparse

    open_elements, in_cell, elements, number, row, width = [], False, 0, 0, {}, 0
    for event, element in iterparse(xml, events=("start", "end")):
        if event == "start":
            if element.tag == ROW_TAG:
                number = _row_number(element.get("r"), number)
                cells.row_counter, cells.col_counter = number, 0
                row, width, elements = {}, 0, elements + 1
                if elements > SHEET_ROWS or number > SHEET_ROWS:
                    raise ValueError(f"the sheet claims more than {SHEET_ROWS:,} rows")
            in_cell = in_cell or element.tag == CELL_TAG
            open_elements.append(element)
            continue
        open_elements.pop()
        if element.tag == CELL_TAG:
            in_cell, width = False, width + 1
            if width > SHEET_COLUMNS:
                raise ValueError(f"row {number:,} claims more than {SHEET_COLUMNS:,} cells")
            cell = cells.parse_cell(element)
            value = cell["value"]
            if value is not None:
                limits.check_width(number, cell["column"])
                if isinstance(value, str):
                    limits.check_cell(number, len(value))
                row[cell["column"]] = value
        elif element.tag == ROW_TAG and row:
            yield number, row
        elif element.tag == DATA_TAG:
            return  # the rest of the sheet is formatting
        if open_elements and not in_cell:  # read: let it go (a cell's parts wait for the cell)
            open_elements[-1].remove(element)


def _row_number(r: str | None, previous: int) -> int:
    if r is None:
        return previous + 1
    number = float(r)
    if not number.is_integer():
        raise ValueError(f"{r} is not a row number")
    return int(number)
