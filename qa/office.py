"""Office files -> Documents: Word (.docx), PowerPoint (.pptx) and Excel (.xlsx).

Each is a zip, checked before it is opened: one that would unzip to an absurd size (a zip bomb) or
uses an unusual compression is refused unopened. A Word file reads as its paragraphs, headings as
sections and tables row by row with their headers; a slide deck as a section per slide, its text
boxes in reading order, its tables like Word's and its speaker notes; a workbook as a corpus table
(qa.corpus_tables), a document per row of each sheet.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, time
from pathlib import Path
from typing import Any

from qa.corpus_tables import TableFields, rows_to_documents
from qa.errors import LoadError
from qa.prose import CONTROL, TextBuilder, collapse, is_furniture, table_lines
from qa.tables import TableError, TableLimits, xlsx_sheets, zip_refusal
from qa.types import Document

# An office file is a zip whose parts its reader holds in memory at once; the sizes a zip declares
# are the most it can unzip to (zipfile stops there), so checking them refuses a zip bomb unopened.
MAX_UNZIPPED_BYTES = 200_000_000


def opened(data: bytes, kind: str, open_file: Callable[[], Any]) -> Any:
    """The file opened by `open_file`, once its zip passed the check; LoadError if it is refused
    or cannot be read."""
    try:
        refused = zip_refusal(data, kind, MAX_UNZIPPED_BYTES)
        if refused:
            raise LoadError(refused)
        return open_file()
    except LoadError:
        raise
    except Exception as exc:  # the readers raise many types for a broken zip or XML
        raise LoadError(f"not a readable {kind} file ({type(exc).__name__})") from None


def load_docx(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import docx
    from docx.table import Table

    document = opened(data, "DOCX", lambda: docx.Document(io.BytesIO(data)))
    builder, title, previous_item = TextBuilder(), "", False
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines = table_lines(*_docx_table(block))
            for i, line in enumerate(lines):
                builder.add(CONTROL.sub("", line), tight=i > 0)
            previous_item = False
            continue
        style = block.style.name if block.style is not None else ""
        text = CONTROL.sub("", block.text).strip()
        if not text or style.lower().startswith("toc") or is_furniture(text):
            continue
        if style.startswith("Heading") or style == "Title":
            builder.heading(text)
            title = title or collapse(text)
            previous_item = False
            continue
        item = "List" in style or block._p.pPr is not None and block._p.pPr.numPr is not None
        builder.add(text, tight=item and previous_item)
        previous_item = item
    core_title = document.core_properties.title
    return [builder.document(source, core_title or title or path.stem)]


def _docx_table(table) -> tuple[list[list[str]], int | None]:
    """A Word table's rows (a merged cell counted once) and its header rows: those marked to
    repeat on each page, or None to guess."""
    rows, header_rows = [], 0
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(cell.text)
        if header_rows == len(rows) and row._tr.trPr is not None and row._tr.trPr.xpath("./w:tblHeader"):
            header_rows += 1
        rows.append(cells)
    return rows, header_rows or None


def load_pptx(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import pptx

    deck = opened(data, "PPTX", lambda: pptx.Presentation(io.BytesIO(data)))
    builder, deck_title = TextBuilder(), ""
    for number, slide in enumerate(deck.slides, start=1):
        builder.start_section(f"slide {number}")
        title_shape = slide.shapes.title  # a placeholder, which may hold a picture instead of text
        title = ""
        if title_shape is not None and title_shape.has_text_frame:
            title = collapse(_unbroken(title_shape.text_frame.text))
        if title:
            builder.add(title)
            deck_title = deck_title or title
        for shape in _in_reading_order(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id or _is_slide_furniture(shape):
                continue
            if shape.has_table:
                table = shape.table
                rows = [[_unbroken(cell.text) for cell in row.cells] for row in table.rows]
                for i, line in enumerate(table_lines(rows, 1 if table.first_row else None)):
                    builder.add(line, tight=i > 0)
            elif shape.has_text_frame:
                lines = [collapse(_unbroken(p.text)) for p in shape.text_frame.paragraphs]
                for i, line in enumerate(line for line in lines if line):
                    builder.add(line, tight=i > 0)  # a text box's paragraphs are its lines, often bullets
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            builder.add(_unbroken(slide.notes_slide.notes_text_frame.text))
    return [builder.document(source, deck.core_properties.title or deck_title or path.stem)]


def _unbroken(text: str) -> str:
    """python-pptx gives a line break inside a paragraph as a vertical tab: it wraps the line, as
    a space would."""
    return text.replace("\v", " ")


def _is_slide_furniture(shape) -> bool:
    """A slide's number, date or footer: the same on every slide, never content."""
    from pptx.enum.shapes import PP_PLACEHOLDER

    return shape.is_placeholder and shape.placeholder_format.type in (
        PP_PLACEHOLDER.SLIDE_NUMBER, PP_PLACEHOLDER.DATE, PP_PLACEHOLDER.FOOTER)


def _in_reading_order(shapes) -> Iterator[Any]:
    """A slide's shapes top to bottom, then left to right, the shapes of a group in its place."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _in_reading_order(shape.shapes)
        else:
            yield shape


def load_xlsx(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    opened(data, "XLSX", lambda: None)  # refuses a zip bomb unopened
    return sheet_documents(xlsx_sheets(data, TableLimits(columns=fields.max_columns)), source, fields, "XLSX")


def sheet_documents(sheets: Iterator[tuple[str, Iterator[tuple[int, dict[int, Any]]]]], source: str,
                    fields: TableFields, kind: str) -> list[Document]:
    """A workbook's (sheet name, rows) as a table each, its rows named by its header (see
    named_rows); a row of the first sheet is `file#row`, of another `file#Sheet:row`."""
    documents: list[Document] = []
    try:
        for i, (name, rows) in enumerate(sheets):
            documents += rows_to_documents(named_rows(rows, fields), source, fields, sheet=name if i else "")
    except TableError:
        raise
    except Exception as exc:  # the readers, zipfile and the XML parser raise many types for a broken file
        raise LoadError(f"not a readable {kind} file ({type(exc).__name__})") from None
    return documents


HEADER_WITHIN = 10  # rows a sheet's header may sit under, below a title ("SIMPLE MONTHLY BUDGET")


def named_rows(rows: Iterator[tuple[int, dict[int, Any]]], fields: TableFields) -> Iterator[dict]:
    """A sheet's rows as {column name: text}. Its header is its first row of two or more values
    within its first rows (a title above it is passed over), else its first row; a column the
    header leaves blank is named by its letter."""
    from openpyxl.utils import get_column_letter

    cells = (row for _, row in rows)
    first = list(itertools.islice(cells, HEADER_WITHIN))
    at = next((i for i, row in enumerate(first) if len(row) >= 2), 0)
    header = {column: collapse(_cell_text(value)) for column, value in first[at].items()} if first else {}
    for row in itertools.chain(first[at + 1 :], cells):
        named: dict[str, str | None] = {header.get(c) or get_column_letter(c): _cell_text(v)
                                        for c, v in sorted(row.items())}
        if fields.text in header.values():  # so that a row without its text is one without text
            named.setdefault(fields.text, None)
        yield named


def _cell_text(value: Any) -> str:
    """A cell as Excel shows it by default: a whole number without ".0", others to ten significant
    digits (0.6229333333, not 0.6229333333333333), a date without a midnight time."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.10g}"
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date().isoformat()
    return str(value)
