"""Files -> Documents. One loader per format, chosen by suffix; a file that cannot be read
raises LoadError with a one-line reason, and the caller reports it and goes on."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from qa.boilerplate import main_content
from qa.types import Document, Section


class LoadError(Exception):
    """A file that cannot be turned into documents; the message is the one-line reason."""


@dataclass(frozen=True)
class TableFields:
    """Which fields of a .jsonl/.csv row hold the text, the title and the row id."""

    text: str = "text"
    title: str = "title"
    id: str = "id"


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LoadError("not valid UTF-8 text")


def _normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
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
    from pypdf.errors import PdfReadError

    # pypdf logs warnings about a damaged file; the one-line reason we report is enough
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise LoadError("the PDF is encrypted")
        pages = [_normalize(page.extract_text() or "") for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"not a readable PDF ({exc})") from None
    parts, sections, offset = [], [], 0
    for number, page in enumerate(pages, start=1):
        if not page:
            continue
        sections.append(Section(f"page {number}", offset, offset + len(page)))
        parts.append(page)
        offset += len(page) + 2
    return [Document(source, str(title).strip() or path.stem, "\n\n".join(parts), tuple(sections))]


def load_docx(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
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
        if not text.strip():
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


def load_file(path: Path, source: str, data: bytes, fields: TableFields = TableFields()) -> list[Document]:
    """Turn one file's bytes into Documents, or raise LoadError saying why not."""
    if not data.strip():
        raise LoadError("the file is empty")
    documents = [d for d in LOADERS[path.suffix.lower()](path, source, data, fields) if d.text.strip()]
    if not documents:
        raise LoadError("no text found")
    return documents


def read_file(path: Path) -> bytes:
    """The bytes of a corpus file, or LoadError saying why it cannot be read."""
    if not path.is_file():  # never open a pipe or device: reading it could block
        raise LoadError("broken symlink: its target is missing" if path.is_symlink() else "not a regular file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    source: str  # relative to the corpus folder, with forward slashes


def walk_corpus(root: Path) -> tuple[list[CorpusFile], int]:
    """The indexable files under root (recursively) and the count of skipped ones
    (hidden, or of an unknown suffix)."""
    files, skipped = [], 0
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            skipped += path.is_file()
            continue
        if path.is_dir():
            continue
        if path.suffix.lower() in LOADERS:  # broken symlinks and pipes too: reading reports them
            files.append(CorpusFile(path, relative.as_posix()))
        else:
            skipped += 1
    return files, skipped
