"""Files -> Documents. One loader per format, chosen by suffix; a file that cannot be read
raises LoadError with a one-line reason, and the caller reports it and goes on.

A corpus may hold anything, so reading is defensive: a file is read once, up to a size limit,
only if it is a regular file inside the corpus folder; text that is not UTF-8 falls back to
Windows-1252; a .docx that would unzip to an absurd size is refused before it is unzipped."""

from __future__ import annotations

import codecs
import csv
import errno
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from qa.boilerplate import main_content
from qa.errors import one_line
from qa.types import Document, Section


class LoadError(Exception):
    """A file that cannot be turned into documents; the message is the one-line reason."""


@dataclass(frozen=True)
class TableFields:
    """Which fields of a .jsonl/.csv row hold the text, the title and the row id."""

    text: str = "text"
    title: str = "title"
    id: str = "id"


# A .docx is a zip whose parts python-docx holds in memory at once; the sizes a zip declares are
# the most it can unzip to (zipfile stops there), so checking them refuses a zip bomb unopened.
MAX_UNZIPPED_BYTES = 200_000_000
_NOT_ASCII = re.compile("[^\x00-\x7f\ufffd]")
# control characters other than tab and newline: garbage in text, and escape sequences in a terminal
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def _decode(data: bytes) -> str:
    """Text from bytes: UTF-16 or UTF-8 when a byte order mark says so, else UTF-8, else (a file
    saved by an older Windows program) Windows-1252. A NUL byte means binary data."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise LoadError("not valid UTF-16 text") from None
    if b"\x00" in data:
        raise LoadError("binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8-sig", errors="replace")
    if _NOT_ASCII.search(text):  # UTF-8 with a few damaged bytes: they become U+FFFD, the rest stays right
        return text
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
        return data.decode("latin-1")


def _normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\v", "\n")
    text = _CONTROL.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def load_text(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    headline, text = main_content(_normalize(_decode(data)))
    return [Document(source, headline or path.stem, text)]


def load_markdown(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    text = _normalize(_decode(data))
    sections, title, heading, heading_start = [], "", "", 0
    offset = 0
    for line in text.split("\n"):
        if line.startswith("#"):
            label = line.lstrip("#").strip()
            if heading or offset > heading_start:
                sections.append(Section(heading, heading_start, offset))
            heading, heading_start = label, offset
            title = title or label
        offset += len(line) + 1
    sections.append(Section(heading, heading_start, len(text)))
    return [Document(source, title or path.stem, text, tuple(s for s in sections if s.label))]


def load_html(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import trafilatura

    # trafilatura falls back to any text it finds when a page has no article (a menu-only page, or
    # one whose article is rendered by JavaScript); pruning <nav>/<footer> keeps menus out of that.
    extracted = trafilatura.bare_extraction(
        _decode(data), include_comments=False, include_tables=True, with_metadata=True,
        prune_xpath=["//nav", "//footer"],
    )
    text = _normalize(extracted.text or "") if extracted else ""
    if not text:
        raise LoadError("no main text found in the HTML")
    return [Document(source, (extracted.title or "").strip() or path.stem, text)]


def load_pdf(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    # pypdf logs warnings and errors about a damaged file; the one-line reason we report is enough
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)

    try:
        # an encrypted PDF with an empty user password (restrictions only) opens as usual
        reader = PdfReader(io.BytesIO(data))
        pages = [_normalize(page.extract_text() or "") for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except (FileNotDecryptedError, DependencyError):  # DependencyError: AES needs a crypto package
        raise LoadError("the PDF is encrypted") from None
    except Exception as exc:  # pypdf raises many types for a damaged file
        raise LoadError(f"not a readable PDF ({one_line(exc)})") from None
    parts, sections, offset = [], [], 0
    for number, page in enumerate(pages, start=1):
        if not page:
            continue
        sections.append(Section(f"page {number}", offset, offset + len(page)))
        parts.append(page)
        offset += len(page) + 2
    return [Document(source, str(title).strip() or path.stem, "\n\n".join(parts), tuple(sections))]


def zip_refusal(data: bytes, kind: str, limit: int) -> str:
    """Why the zip archive (a DOCX, a workbook) in data must not be opened, or "" if it may be:
    it would unzip past `limit` bytes (a zip bomb) or uses an unusual compression. Raises
    zipfile.BadZipFile if data is not a zip."""
    members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    unzipped = sum(member.file_size for member in members)
    if unzipped > limit:
        return (f"the {kind} would unzip to {_megabytes(unzipped)}, over the {_megabytes(limit)} limit "
                f"for a {kind} (a zip bomb?)")
    if any(m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) for m in members):
        return f"not a readable {kind} file (unusual zip compression)"
    return ""


def load_docx(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import docx
    from docx.table import Table

    try:
        refused = zip_refusal(data, "DOCX", MAX_UNZIPPED_BYTES)
        if refused:
            raise LoadError(refused)
        document = docx.Document(io.BytesIO(data))
    except LoadError:
        raise
    except Exception as exc:  # python-docx raises many types for a broken zip/XML
        raise LoadError(f"not a readable DOCX file ({type(exc).__name__})") from None
    parts, sections, offset = [], [], 0
    title, heading, heading_start = "", "", 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            text = "\n".join(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
            style = ""
        else:
            text, style = block.text.strip(), (block.style.name if block.style is not None else "")
        text = _CONTROL.sub("", text).strip()
        if not text:
            continue
        if style.startswith("Heading") or style == "Title":
            if heading:
                sections.append(Section(heading, heading_start, offset - 2))
            heading, heading_start = text, offset
            title = title or text
        parts.append(text)
        offset += len(text) + 2
    if heading:
        sections.append(Section(heading, heading_start, offset - 2))
    core_title = document.core_properties.title
    return [Document(source, core_title or title or path.stem, "\n\n".join(parts), tuple(sections))]


def _rows_to_documents(rows: Iterator[dict], source: str, fields: TableFields) -> list[Document]:
    documents, saw_text_field, used = [], False, set()
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or fields.text not in row:
            continue
        saw_text_field = True
        text = _normalize(str(row[fields.text] or ""))
        if not text:
            continue
        ids = [str(row.get(f)).strip() for f in (fields.id, "_id") if row.get(f) is not None]
        row_id = next((i for i in ids if i), str(number))
        if row_id in used:  # the source keys the document in the index, so a repeated id gets the row number
            row_id = f"{row_id}~{number}"
        used.add(row_id)
        title = str(row.get(fields.title) or "").strip()
        section = Section(f"row {number}", 0, len(text))
        documents.append(Document(f"{source}#{row_id}", title or row_id, text, (section,)))
    if not saw_text_field:
        raise LoadError(f"no row has a {fields.text!r} field (choose the field with --text-field)")
    return documents


def load_jsonl(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    def rows():
        for number, line in enumerate(_decode(data).splitlines(), start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    raise LoadError(f"line {number} is not valid JSON") from None

    return _rows_to_documents(rows(), source, fields)


def load_csv(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    text = _decode(data)
    # a whole article in one cell is normal here; the csv module refuses fields over 128 KiB by default
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    try:
        return _rows_to_documents(csv.DictReader(io.StringIO(text), dialect=dialect), source, fields)
    except csv.Error as exc:
        raise LoadError(f"not valid CSV ({exc})") from None


LOADERS: dict[str, Callable[[Path, str, bytes, TableFields], list[Document]]] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".jsonl": load_jsonl,
    ".csv": load_csv,
    ".tsv": load_csv,
}


def _megabytes(size: float) -> str:
    mb = size / 1e6
    return (f"{mb:,.1f}".removesuffix(".0") if mb >= 0.1 else f"{mb:g}") + " MB"


def load_file(path: Path, source: str, data: bytes, fields: TableFields = TableFields()) -> list[Document]:
    """Turn one file's bytes into Documents, or raise LoadError saying why not."""
    if not data.strip():
        raise LoadError("the file is empty")
    try:
        documents = [d for d in LOADERS[path.suffix.lower()](path, source, data, fields) if d.text.strip()]
    except LoadError:
        raise
    except Exception as exc:  # a parser bug on one odd file must not stop the others
        raise LoadError(f"could not be parsed ({one_line(exc)})") from None
    if not documents:
        raise LoadError("no text found")
    # a title is shown on one line, in a terminal too: no newlines or escape sequences
    return [replace(d, title=" ".join(_CONTROL.sub("", d.title).split()) or path.stem) for d in documents]


def read_file(path: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of a corpus file, read once, or LoadError saying why it cannot be read.

    Nothing outside `root` is opened (a symlink may point anywhere), nor a pipe or device
    (reading one could block forever), and no more than `max_bytes` are held, even if the
    file grows while it is read."""
    try:
        target = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        raise LoadError("broken symlink: its target is missing" if path.is_symlink()
                        else "the file disappeared while indexing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("symlink loop: the link leads back to itself") from None
        raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None
    if not target.is_relative_to(os.path.realpath(root)):
        raise LoadError("points outside the corpus folder")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise LoadError("the file disappeared while indexing") from None
    except OSError as exc:
        raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LoadError("not a regular file")
        if info.st_size > max_bytes:
            raise LoadError(f"the file is {_megabytes(info.st_size)}, over the {_megabytes(max_bytes)} limit "
                            "(raise it with --max-file-mb or QA_MAX_FILE_MB)")
        try:
            data = f.read(info.st_size + 1)  # the whole file, and one byte more if it grew since fstat
            if len(data) > info.st_size:
                data += f.read(max_bytes + 1 - len(data))
        except OSError as exc:
            raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise LoadError(f"the file grew past the {_megabytes(max_bytes)} limit while it was read")
    return data


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    source: str  # relative to the corpus folder, with forward slashes


def walk_corpus(root: Path) -> tuple[list[CorpusFile], int]:
    """The indexable files under root (recursively) and the count of skipped ones
    (hidden, or of an unknown suffix).

    Symlinked folders are not walked (Path.rglob does not follow them), so a link loop cannot
    trap the walk: one that points inside the corpus would only repeat files indexed under their
    own path, and one that points outside is listed so that reading it reports why it is skipped."""
    files, skipped = [], 0
    inside = os.path.realpath(root)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            skipped += path.is_file()
            continue
        if path.is_dir():
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(inside):
                files.append(CorpusFile(path, relative.as_posix()))
            continue
        if path.suffix.lower() in LOADERS:  # broken symlinks and pipes too: reading reports them
            files.append(CorpusFile(path, relative.as_posix()))
        else:
            skipped += 1
    return files, skipped
