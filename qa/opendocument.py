"""OpenDocument files (LibreOffice's .odt, .ods, .odp) -> Documents, read as their Word, Excel and
PowerPoint counterparts are (qa.office).

Each is a zip, checked before it is opened (a zip bomb is refused unopened), whose content.xml is
parsed without resolving entities. A text reads as its paragraphs, headings as sections, list
items as lines, tables row by row with their headers and footnotes as paragraphs of their own (a
table of contents is left out); a spreadsheet as a document per row of each sheet; a presentation
as a section per slide, its title, text boxes and tables, and its speaker notes (slide numbers,
dates and footers left out).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from qa.corpus_tables import TableFields
from qa.office import opened, sheet_documents
from qa.prose import TextBuilder, collapse, table_lines
from qa.tables import TableLimits
from qa.types import Document

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}


def _tag(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{_NS[prefix]}}}{local}"


def _attribute(element, name: str, default: str = "") -> str:
    return element.get(_tag(name), default)


# never content: a table of contents or an index, a slide's number, date or footer
_LEFT_OUT = {_tag(t) for t in ("text:table-of-content", "text:alphabetical-index", "text:illustration-index",
                               "text:table-index", "text:object-index", "text:user-index", "text:bibliography")}
_FURNITURE_FRAMES = {"page-number", "date-time", "footer", "header"}


def _content(data: bytes, kind: str, body: str) -> tuple[Any, str]:
    """The document's body element (office:text, office:spreadsheet, office:presentation), and
    its title if its metadata give one."""

    def parse():
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found = etree.fromstring(archive.read("content.xml"), parser).find(f"office:body/{body}", _NS)
            meta = archive.read("meta.xml") if "meta.xml" in archive.namelist() else b""
        if found is None:
            raise ValueError(f"no {body}")
        title = etree.fromstring(meta, parser).find("office:meta/dc:title", _NS) if meta else None
        return found, collapse(title.text or "") if title is not None else ""

    return opened(data, kind, parse)


# A line break inside a paragraph, told apart from the XML's own line ends (whitespace, as spaces
# are); collapse() reads it as a space.
_LINE_BREAK = "\u2028"


def _lines(element, notes: list[str] | None = None) -> str:
    """A paragraph's text, each of its lines (a line break inside it, as in a code listing) with
    its whitespace collapsed."""
    return "\n".join(filter(None, (collapse(line) for line in _text(element, notes).split(_LINE_BREAK))))


def _text(element, notes: list[str] | None = None) -> str:
    """The text of a paragraph or heading as it reads: spans, links and fields in place, a run of
    spaces (text:s) as its count of spaces, a tab as a space, a line break as one; a footnote's
    body goes to `notes` (the reader finds it after the paragraph), its mark stays."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == _tag("text:note"):
            citation = child.find("text:note-citation", _NS)
            parts.append(citation.text or "" if citation is not None else "")
            body = child.find("text:note-body", _NS)
            if notes is not None and body is not None:
                notes.append(" ".join(_text(p) for p in body.iter(_tag("text:p"), _tag("text:h"))))
        elif child.tag == _tag("text:s"):
            parts.append(" " * min(int(_attribute(child, "text:c", "1") or 1), 100))
        elif child.tag == _tag("text:tab"):
            parts.append(" ")
        elif child.tag == _tag("text:line-break"):
            parts.append(_LINE_BREAK)
        elif isinstance(child.tag, str):
            parts.append(_text(child, notes))
        parts.append(child.tail or "")
    return "".join(parts)


def _table_rows(table) -> tuple[list[list[str]], int | None]:
    """A text table's rows (a cell's paragraphs joined) and its header rows, or None to guess."""
    rows, header_rows = [], 0
    for row in table.iter(_tag("table:table-row")):
        rows.append([" ".join(collapse(_text(p)) for p in cell.iter(_tag("text:p")))
                     for cell in row if cell.tag == _tag("table:table-cell")])
        header_rows += row.getparent().tag == _tag("table:table-header-rows")
    return rows, header_rows or None


def load_odt(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    body, title = _content(data, "ODT", "office:text")
    blocks = _Blocks()
    blocks.read(body)
    return [blocks.builder.document(source, title or blocks.first_heading or path.stem)]


@dataclass
class _Blocks:
    """A text's blocks read into a TextBuilder, in order: the items of a list one per line."""

    builder: TextBuilder = field(default_factory=TextBuilder)
    first_heading: str = ""
    previous_item: bool = False

    def read(self, element, in_list: bool = False) -> None:
        for child in element:
            notes: list[str] = []
            if child.tag in _LEFT_OUT:
                continue
            if child.tag == _tag("text:h"):
                text = collapse(_text(child, notes))
                self.builder.heading(text)
                self.first_heading = self.first_heading or text
                self.previous_item = False
            elif child.tag == _tag("text:p"):
                self.builder.add(_lines(child, notes), tight=in_list and self.previous_item)
                self.previous_item = in_list
            elif child.tag == _tag("table:table"):
                for i, line in enumerate(table_lines(*_table_rows(child))):
                    self.builder.add(line, tight=i > 0)
                self.previous_item = False
            elif child.tag in (_tag("text:list"), _tag("text:list-item")):
                self.read(child, in_list=True)
            elif isinstance(child.tag, str):  # a section, a frame's text box: read what it holds
                self.read(child, in_list)
            for note in notes:
                self.builder.add(collapse(note))
                self.previous_item = False


def load_odp(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    body, deck_title = _content(data, "ODP", "office:presentation")
    builder = TextBuilder()
    for number, page in enumerate(body.iter(_tag("draw:page")), start=1):
        builder.start_section(f"slide {number}")
        for shape in sorted(_shapes(page), key=_position):
            kind = _attribute(shape, "presentation:class")
            if kind in _FURNITURE_FRAMES:
                continue
            tables = list(shape.iter(_tag("table:table")))
            for table in tables:
                for i, line in enumerate(table_lines(*_table_rows(table))):
                    builder.add(line, tight=i > 0)
            lines = [] if tables else [_lines(p) for p in shape.iter(_tag("text:p"), _tag("text:h"))]
            if kind == "title":
                title = collapse(" ".join(lines))
                builder.add(title)
                deck_title = deck_title or title
                continue
            for i, line in enumerate(line for line in lines if line):
                builder.add(line, tight=i > 0)  # a text box's paragraphs are its lines, often bullets
        for notes in page.iter(_tag("presentation:notes")):
            for frame in notes.iter(_tag("draw:frame")):
                if _attribute(frame, "presentation:class") == "notes":
                    builder.add("\n".join(_lines(p) for p in frame.iter(_tag("text:p"))))
    return [builder.document(source, deck_title or path.stem)]


def _shapes(page) -> Iterator[Any]:
    """The shapes of a slide that may hold text (frames, custom shapes; a group's in their place),
    not its speaker notes."""
    for child in page:
        if not isinstance(child.tag, str) or child.tag == _tag("presentation:notes"):
            continue
        if child.tag == _tag("draw:g"):
            yield from _shapes(child)
        else:
            yield child


_CENTIMETRES = {"cm": 1.0, "mm": 0.1, "in": 2.54, "pt": 2.54 / 72, "pc": 2.54 / 6}


def _position(frame) -> tuple[float, float]:
    """Where a frame sits on its slide, top to bottom then left to right, as a reader takes it in
    ("2.5cm", "1in"; a frame placed nowhere goes first)."""
    def centimetres(length: str) -> float:
        number = re.match(r"-?[\d.]+", length)
        return float(number.group()) * _CENTIMETRES.get(length[number.end():], 1.0) if number else 0.0

    return centimetres(_attribute(frame, "svg:y")), centimetres(_attribute(frame, "svg:x"))


def load_ods(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    body, _ = _content(data, "ODS", "office:spreadsheet")
    limits = TableLimits(columns=fields.max_columns)
    sheets = ((_attribute(sheet, "table:name"), _sheet_rows(sheet, limits)) for sheet in body.iter(_tag("table:table")))
    return sheet_documents(sheets, source, fields, "ODS")  # a malformed value (a date, a repeat count) is refused


def _sheet_rows(sheet, limits: TableLimits) -> Iterator[tuple[int, dict[int, Any]]]:
    """(row number, {column number: value}) of each row holding a value. A row or cell repeated
    (number-rows-repeated, number-columns-repeated: how a sheet writes a run of empty ones) counts
    once, its columns advanced by its count."""
    number = 0
    for row in sheet.iter(_tag("table:table-row")):
        number += 1
        values, column = {}, 1
        for cell in row:
            if cell.tag not in (_tag("table:table-cell"), _tag("table:covered-table-cell")):
                continue
            value = _cell_value(cell)
            if value is not None:
                limits.check_width(number, column)
                values[column] = value
            column += int(_attribute(cell, "table:number-columns-repeated", "1"))
        if values:
            yield number, values
        number += int(_attribute(row, "table:number-rows-repeated", "1")) - 1


def _cell_value(cell) -> Any:
    kind = _attribute(cell, "office:value-type")
    if kind in ("float", "percentage", "currency"):
        return float(_attribute(cell, "office:value"))
    if kind == "date":
        return _attribute(cell, "office:date-value").removesuffix("T00:00:00")
    if kind == "boolean":
        return _attribute(cell, "office:boolean-value")
    return "\n".join(collapse(_text(p)) for p in cell.iter(_tag("text:p"))) or None
