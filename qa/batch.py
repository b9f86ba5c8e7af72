"""Question files -> answer files: the batch face over qa.pipeline.

A questionnaire (CSV/TSV, JSONL, TXT or XLSX) is read whole (in time and memory linear in its
size, within the QA_MAX_* limits: see qa.tables), its questions are streamed through
`QA.answer_stream` (encoded in batches, ahead of the answering), and every input row gets one output
row, in input order, with all its columns passed through and the answer, abstention, confidence,
citations and any error added.
Each batch is made durable before the next one starts, so an interrupted run leaves a valid
partial file that a resumed run continues without repeating or losing a row: CSV, TSV, JSONL and
TXT outputs are appended to in place; a workbook cannot be appended to, so XLSX rows go to a JSONL
journal beside it (`answers.xlsx.partial.jsonl`) and the workbook is rewritten atomically at
checkpoints and at the end. A resumed run checks each row already written against the input's row
number and question; TXT lines hold only answers, so a TXT output keeps such a journal too until
its run completes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa.config import SETTINGS
from qa.errors import BatchFileError, QAError, one_line
from qa.load import zip_refusal
from qa.pipeline import QA, check_question
from qa.tables import (
    SHEET_COLUMNS,
    SHEET_ROWS,
    ColumnNames,
    TableLimits,
    TableTooLarge,
    csv_records,
    sniff_delimiter,
    trim,
    xlsx_rows,
)
from qa.types import Answer

SUFFIXES = (".csv", ".tsv", ".jsonl", ".txt", ".xlsx")
# Names a question column goes by, tried in order (case-insensitive).
QUESTION_COLUMNS = ("question", "questions", "query", "queries", "q", "prompt", "text")
# What each output row adds to the input's columns; a name the input already uses gets "qa_" in front.
RESULT_FIELDS = ("answer", "abstained", "confidence", "citations", "error", "row")
BATCH_SIZE = int(SETTINGS["batch_size"].default)
# A CSV cell starting with one of these is a formula to Excel and LibreOffice; answer text taken
# from a document gets a leading apostrophe instead (the OWASP advice for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHECKPOINT_SECONDS = 30.0  # how often a workbook is rewritten while its journal grows
MAX_WORKBOOK_BYTES = 50_000_000  # unzipped: far beyond any questionnaire, far below a zip bomb
ProgressCallback = Callable[[int, int], None]


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


# ---------------------------------------------------------------------------------------------
# Reading question files


def _decode(data: bytes, path: Path) -> str:
    """Text with undecodable bytes kept as surrogates, so one bad row does not sink the file."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise BatchFileError(f"cannot read {path}: it starts like UTF-16 text but is not") from None
    if b"\x00" in data[:4096]:
        raise BatchFileError(f"cannot read {path}: it is a binary file, not {path.suffix.lower()} text")
    return data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8", errors="surrogateescape")


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _undecodable(text: str) -> bool:
    return _UNDECODABLE.search(text) is not None


def _clean(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
    text = _decode(data, path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(text)[0]
    names, rows = None, []
    try:
        for number, record in enumerate(csv_records(text, delimiter), start=1):
            record = trim(record)
            limits.check_width(number, len(record))
            limits.check_cell(number, max(map(len, record), default=0))
            if names is None:
                names = ColumnNames([_clean(cell) for cell in record])
                continue
            if not any(cell.strip() for cell in record):
                continue
            limits.check_rows(len(rows) + 1)
            error = BAD_BYTES if any(_undecodable(cell) for cell in record) else ""
            rows.append((number, dict(zip(names.extend_to(len(record)), map(_clean, record))), error))
    except csv.Error as exc:
        raise BatchFileError(f"cannot read {path}: not valid CSV ({exc})") from None
    return (tuple(names.names) if names else ()), rows


def _read_jsonl(path: Path, data: bytes, limits: TableLimits) -> RawRows:
    columns: dict[str, None] = {}
    rows = []
    # Split on "\n" only: JSON strings may hold other line separators.
    for number, line in enumerate(_decode(data, path).split("\n"), start=1):
        if not line.strip():
            continue
        limits.check_rows(len(rows) + 1)
        error = BAD_BYTES if _undecodable(line) else ""
        try:
            value = json.loads(_clean(line))
        except json.JSONDecodeError:
            rows.append((number, {}, error or "not valid JSON"))
            continue
        except RecursionError:
            rows.append((number, {}, error or "not valid JSON (nested too deeply)"))
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
            rows.append((number, {"question": _clean(line)}, BAD_BYTES if _undecodable(line) else ""))
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
    except (BatchFileError, TableTooLarge):
        raise
    except Exception as exc:  # zip, XML and openpyxl errors all mean "not a workbook we can read"
        raise BatchFileError(f"cannot read {path}: not a valid .xlsx workbook ({one_line(exc)})") from None
    return (tuple(names.names) if names else ()), rows


def _cell_name(value: Any) -> str | None:
    return None if value is None else _clean(str(value))


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
        columns, raw = READERS[suffix](path, data, limits or TableLimits.from_settings())
    except TableTooLarge as exc:
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


# ---------------------------------------------------------------------------------------------
# Answering


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


def answer_rows(qa: QA, rows: Sequence[InputRow], k: int = 5) -> Iterator[tuple[Answer | None, str]]:
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
            return f"{self.output} already holds all {self.rows} rows: nothing to do"
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"wrote {self.output}: {self.answered} answered, {self.abstained} declined, {self.errors} errors "
            f"in {self.seconds:.1f}s ({rate:.1f} questions/s)"
        )
        return text + (f"; {self.earlier} rows were already done" if self.earlier else "")


def run_batch(
    qa: QA,
    source: QuestionFile,
    output: Output,
    k: int = 5,
    batch_size: int = BATCH_SIZE,
    on_progress: ProgressCallback | None = None,
    on_result: Callable[[InputRow, Answer | None, str], dict | None] | None = None,
) -> BatchSummary:
    """Answer the rows not yet in `output` (opened with open_output) and append them in order.

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
        results = answer_rows(qa, todo, k)
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
    k: int = 5,
    batch_size: int = BATCH_SIZE,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
) -> BatchSummary:
    """Read a question file and write (or continue) its answer file: the whole batch in one call."""
    source = read_questions(questions, question_column)
    out = open_output(output, source, resume=resume, overwrite=overwrite)
    return run_batch(qa, source, out, k=k, batch_size=batch_size, on_progress=on_progress)


# ---------------------------------------------------------------------------------------------
# Writing answer files


def _lines(data: bytes) -> list[bytes]:
    """Lines ending in b"\\n" (the last one may not): a quoted CSV cell may hold a lone \\r."""
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
                or question != _text(expected.values.get(self.source.question_column))
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


def _text(value: Any) -> str:
    """A value as a text cell: how CSV and TXT write it, and how questions are compared on resume."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _AppendOutput(Output):
    """A text file appended to row by row; each row is one write, fsynced per batch."""

    def start(self) -> None:
        with open(self.path, "wb") as f:
            f.write(self._begin())
            f.flush()
            os.fsync(f.fileno())

    def _begin(self) -> bytes:
        return b""

    def _encode(self, row: InputRow, fields: dict, answer: Answer | None) -> bytes:
        raise NotImplementedError

    def append(self, rows: Sequence[tuple[InputRow, dict, Answer | None]]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            for row, fields, answer in rows:
                _write_all(fd, self._encode(row, fields, answer))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _truncate(self, size: int) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(size)


class CsvOutput(_AppendOutput):
    def __init__(self, path: Path, source: QuestionFile, fields: Sequence[str]):
        super().__init__(path, source, fields)
        self.delimiter = "\t" if path.suffix.lower() == ".tsv" else ","

    def _line(self, cells: Sequence[Any]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=self.delimiter, lineterminator="\n").writerow([_text(c) for c in cells])
        return buffer.getvalue().encode("utf-8")

    def _begin(self) -> bytes:
        return b"\xef\xbb\xbf" + self._line(self.header)  # the BOM makes Excel read UTF-8

    def _encode(self, row: InputRow, fields: dict, answer: Answer | None) -> bytes:
        record = self._record(row, fields)
        for field in ("answer", "citations"):  # document text: a spreadsheet must not run it
            name = self.names[field]
            if str(record[name] or "").startswith(FORMULA_STARTS):
                record[name] = "'" + record[name]
        return self._line(list(record.values()))

    def read_done(self) -> list[tuple[int, str]]:
        data = self.path.read_bytes()
        lines = _lines(data)
        consumed = [0]

        def feed() -> Iterator[str]:
            for line in lines:
                consumed[0] += len(line)
                yield line.decode("utf-8-sig" if consumed[0] == len(line) else "utf-8", errors="replace")

        reader = csv.reader(feed(), delimiter=self.delimiter)
        good, done = 0, []
        row_at, question_at = self.header.index(self.names["row"]), self.header.index(self.source.question_column)
        try:
            for i, record in enumerate(reader):
                if data[consumed[0] - 1 : consumed[0]] != b"\n":
                    break  # a torn last row
                if i == 0:
                    if record != self.header:
                        raise BatchFileError(
                            f"{self.path} has other columns than this input gives; pass --overwrite to replace it"
                        )
                elif len(record) == len(self.header) and record[row_at].isdigit():
                    done.append((int(record[row_at]), record[question_at]))
                else:
                    break
                good = consumed[0]
        except csv.Error:
            pass  # a quoted cell cut off by the interruption
        if good == 0:
            self.start()
        elif good < len(data):
            self._truncate(good)
        return done


class JsonlOutput(_AppendOutput):
    def _encode(self, row: InputRow, fields: dict, answer: Answer | None) -> bytes:
        record = self._record(row, fields)
        record[self.names.get("result", "result")] = answer.to_dict() if answer else None
        return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")

    def read_done(self) -> list[tuple[int, str]]:
        data = self.path.read_bytes()
        good, done = 0, []
        row_name = self.names["row"]
        for line in _lines(data):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not isinstance(record, dict) or not isinstance(record.get(row_name), int):
                break
            done.append((record[row_name], _text(record.get(self.source.question_column))))
            good += len(line)
        if good < len(data):
            self._truncate(good)
        return done


class _Journal:
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
        for line in _lines(data):
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


class TxtOutput(_AppendOutput):
    """One line per input row: the answer and its sources, or the error. The lines do not say which
    question they answer, so until the run completes its journal does."""

    def __init__(self, path: Path, source: QuestionFile, fields: Sequence[str]):
        super().__init__(path, source, fields)
        self.log = _Journal(path)
        self.journal = self.log.path

    def start(self) -> None:
        super().start()
        self.log.start()

    def _encode(self, row: InputRow, fields: dict, answer: Answer | None) -> bytes:
        if answer is None:
            line = f"error: {fields['error']}"
        else:
            line = answer.answer + (f"  (sources: {citations_text(answer, '; ')})" if answer.citations else "")
        return (" ".join(line.split()) + "\n").encode("utf-8")

    def append(self, rows: Sequence[tuple[InputRow, dict, Answer | None]]) -> None:
        question = self.source.question_column
        self.log.append([{"row": row.row, "question": _text(row.values.get(question))} for row, _, _ in rows])
        super().append(rows)

    def finish(self, complete: bool) -> None:
        if complete:
            self.log.remove()

    def read_done(self) -> list[tuple[int, str]]:
        if not self.path.exists():
            super().start()
        data = self.path.read_bytes()
        lines = data.count(b"\n")
        if not self.log.path.exists():  # a finished run's file, or one written before journals
            if lines != len(self.source.rows):
                raise BatchFileError(
                    f"cannot tell which questions {self.path} answers (a .txt answer file records them only "
                    f"while its run is unfinished); pass --overwrite to answer {self.source.path} again"
                )
            return [(row.row, _text(row.values.get(self.source.question_column))) for row in self.source.rows]
        records = self.log.read()
        done = min(len(records), lines)  # a kill between the journal's write and the file's
        self.log.keep(done)
        self._truncate(sum(len(line) for line in _lines(data)[:done]))
        return [(r["row"], r.get("question")) for r in records[:done]]


class XlsxOutput(Output):
    """A workbook rewritten atomically from a JSONL journal of the finished rows."""

    def __init__(self, path: Path, source: QuestionFile, fields: Sequence[str]):
        super().__init__(path, source, fields)
        self.log = _Journal(path)
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
            header = [_text(first.get(c)) for c in range(1, len(self.header) + 1)]
            if header != self.header:
                raise BatchFileError(
                    f"{self.path} has other columns than this input gives; pass --overwrite to replace it"
                )
            records = []
            for _, cells in rows:
                record = {name: cells.get(c) for c, name in enumerate(self.header, start=1)}
                fields = {f: record[self.names[f]] for f in self.fields}
                records.append({**fields, "question": _text(record[self.source.question_column])})
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
            records.append({**record, "question": _text(row.values.get(self.source.question_column))})
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


class _NoOutput(Output):
    """Keeps nothing: for evaluation runs without a results file."""

    def __init__(self, source: QuestionFile):
        super().__init__(Path(os.devnull), source, RESULT_FIELDS)

    def append(self, rows) -> None:
        pass


OUTPUTS: dict[str, type[Output]] = {
    ".csv": CsvOutput, ".tsv": CsvOutput, ".jsonl": JsonlOutput, ".txt": TxtOutput, ".xlsx": XlsxOutput,
}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def open_output(
    path: Path | str | None,
    source: QuestionFile,
    resume: bool = False,
    overwrite: bool = False,
    extra_fields: Sequence[str] = (),
) -> Output:
    """The answer file for `source`, created, or opened to continue when `resume` is set.

    Nothing slow happens here, so a wrong output is reported before the model loads.
    """
    if path is None:
        return _NoOutput(source)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUTS:
        raise BatchFileError(f"cannot write {path}: the output must end in one of {', '.join(SUFFIXES)}")
    if not path.parent.is_dir():
        raise BatchFileError(f"cannot write {path}: folder {path.parent} does not exist")
    fields = list(RESULT_FIELDS[:-1]) + list(extra_fields) + [RESULT_FIELDS[-1]]
    if suffix == ".jsonl":
        fields.append("result")
    output = OUTPUTS[suffix](path, source, fields)
    for written in output.files():
        if _same_file(written, source.path) or written.resolve() == source.path.resolve():
            what = "the output" if written == path else f"the output's journal {written}"
            raise BatchFileError(f"{what} would overwrite the question file; choose another -o/--output")
    if output.exists() and resume and not overwrite:
        output.resume()
    elif output.exists() and not overwrite:
        raise BatchFileError(f"{path} exists: pass --resume to continue it or --overwrite to replace it")
    else:
        output.start()
    return output
