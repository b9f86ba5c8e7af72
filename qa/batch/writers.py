"""The answer files that are appended to, row by row: CSV/TSV, JSONL and TXT, and `open_output`,
which picks the format by suffix (XLSX in qa.batch.xlsx) and creates or resumes the file.

Each batch of rows is one write per row and one fsync, so an interrupted run leaves a valid
partial file; resuming drops a row torn by a kill and checks the rest against the input.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qa.batch.output import RESULT_FIELDS, Journal, Output, byte_lines, cell_text, citations_text
from qa.batch.readers import SUFFIXES, BatchFileError, InputRow, QuestionFile
from qa.batch.xlsx import XlsxOutput
from qa.types import Answer

# A CSV cell starting with one of these is a formula to Excel and LibreOffice; answer text taken
# from a document gets a leading apostrophe instead (the OWASP advice for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
        csv.writer(buffer, delimiter=self.delimiter, lineterminator="\n").writerow([cell_text(c) for c in cells])
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
        lines = byte_lines(data)
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
        for line in byte_lines(data):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not isinstance(record, dict) or not isinstance(record.get(row_name), int):
                break
            done.append((record[row_name], cell_text(record.get(self.source.question_column))))
            good += len(line)
        if good < len(data):
            self._truncate(good)
        return done


class TxtOutput(_AppendOutput):
    """One line per input row: the answer and its sources, or the error. The lines do not say which
    question they answer, so until the run completes its journal does."""

    def __init__(self, path: Path, source: QuestionFile, fields: Sequence[str]):
        super().__init__(path, source, fields)
        self.log = Journal(path)
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
        self.log.append([{"row": row.row, "question": cell_text(row.values.get(question))} for row, _, _ in rows])
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
            return [(row.row, cell_text(row.values.get(self.source.question_column))) for row in self.source.rows]
        records = self.log.read()
        done = min(len(records), lines)  # a kill between the journal's write and the file's
        self.log.keep(done)
        self._truncate(sum(len(line) for line in byte_lines(data)[:done]))
        return [(r["row"], r.get("question")) for r in records[:done]]


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
