"""PDF -> Document: the text of each page as prose, a section per page. Lines inside a paragraph
are joined, words hyphenated at a line end mended, running headers, footers, page numbers and
contents lines left out, and the footnotes at a page's foot read as paragraphs of their own
instead of running on from the page's last line."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from statistics import median

from qa.corpus_tables import TableFields
from qa.errors import LoadError, one_line
from qa.prose import TextBuilder, collapse, line_width, running_lines, strip_furniture, unwrap, vocabulary
from qa.text import clean_lines
from qa.types import Document

SMALL_PRINT = 0.9  # a line set this much smaller than the page's body text is small print
FONT_SAMPLE_STEP = 7
# a footnote opens with its mark: "¹ See...", "4This is...", "12 The...", "* Not...", "† Since..."
_FOOTNOTE_MARK = re.compile(r"^\s*(?:[⁰¹²³⁴⁵⁶⁷⁸⁹]+|\d{1,3}(?=\s?[A-Z(\"“‘'])|[*†‡§])")


def load_pdf(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    import pypdfium2 as pdfium

    try:
        # an encrypted PDF with an empty user password (restrictions only) opens as usual
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise LoadError("the PDF is encrypted") from None
        raise LoadError(f"not a readable PDF ({one_line(exc)})") from None
    try:
        title = collapse(pdf.get_metadata_dict().get("Title", ""))
        pages = [_page_lines(page.get_textpage()) for page in pdf]
    except pdfium.PdfiumError as exc:
        raise LoadError(f"not a readable PDF ({one_line(exc)})") from None
    finally:
        pdf.close()
    running = running_lines([body + notes for body, notes in pages])
    pages = [(strip_furniture(body, running), strip_furniture(notes, running)) for body, notes in pages]
    all_lines = [line for body, notes in pages for line in body + notes]
    width, words = line_width(all_lines), vocabulary("\n".join(all_lines))
    builder = TextBuilder()
    for number, (body, notes) in enumerate(pages, start=1):
        if not body and not notes:
            continue
        builder.start_section(f"page {number}")
        page_width = line_width(body + notes) if len(body + notes) >= 15 else width
        for i, paragraph in enumerate(unwrap(body, page_width, words, typeset=True)):
            builder.add(paragraph, tight=i > 0)
        for note in _footnotes(notes):
            builder.add(" ".join(unwrap(note, page_width, words, typeset=True)))
    return [builder.document(source, title or path.stem)]


def _page_lines(textpage) -> tuple[list[str], list[str]]:
    """A page's lines, split where its footnotes start: the first line of the small print at the
    page's foot that opens with a footnote mark. (PDFium marks a word hyphenated at a line end
    with U+FFFE and has already joined its halves.)"""
    text = textpage.get_text_range()
    cut = _footnotes_start(textpage, text)
    return tuple(clean_lines(part.replace("\ufffe", "")) for part in (text[:cut], text[cut:]))


def _footnotes_start(textpage, text: str) -> int:
    import pypdfium2.raw as pdfium_c

    count = min(len(text), textpage.count_chars())

    def size(i: int) -> float:
        return pdfium_c.FPDFText_GetFontSize(textpage, i) if i < count and text[i].strip() else 0.0

    # the body text's size from a sample of the page's letters; only the lines at its foot are read whole
    visible = Counter(round(s, 1) for s in map(size, range(0, count, FONT_SAMPLE_STEP)) if s > 0)
    if not visible:
        return len(text)
    body = visible.most_common(1)[0][0]
    cut = end = len(text)
    while end > 0:  # the page's lines from the foot up, while they are small print
        start = text.rfind("\n", 0, end - 1) + 1
        line_sizes = [s for s in map(size, range(start, end)) if s > 0]
        if line_sizes:
            if median(line_sizes) >= SMALL_PRINT * body:
                break
            if _FOOTNOTE_MARK.match(text[start:end]):
                cut = start
        end = start
    return cut


def _footnotes(lines: list[str]) -> list[list[str]]:
    """The footnotes of a page's small print, each from the line opening with its mark."""
    notes: list[list[str]] = []
    for line in lines:
        if _FOOTNOTE_MARK.match(line) or not notes:
            notes.append([])
        notes[-1].append(line)
    return notes
