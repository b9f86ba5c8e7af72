"""The text of a document as a reader sees it: paragraphs, headings, list items and table rows,
each on lines of its own, with the line breaks of the file's layout undone.

Files break lines for their own reasons: an HTML source wraps at 80 columns, a PDF at the edge of
its column, a plain-text file at 72 characters, and a word that did not fit is hyphenated across
the break. A sentence split at those breaks is a fragment, so every loader builds its text here:
blocks are separated by a blank line (consecutive list items and table rows by one line break),
wrapped lines inside a paragraph are joined, and a table row carries its column headers
("Limit: $600 per flight"), so it can be found and read on its own. Page furniture (running
headers and footers, page numbers, contents lines with dot leaders) never enters the text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from qa.types import Document, Section

# A list item's marker: a bullet, or a number or letter followed by "." or ")".
LIST_MARKER = re.compile(r"^\s*(?:[-*+•◦▪‣●○■□–—o]\s+|\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,4})[.)]\s+)")
# A contents line: a title, then dot leaders, then a page number ("Installation . . . . . 12").
CONTENTS_LINE = re.compile(r"(?:\.\s?){4,}\s*(?:\d+|[ivxlcdm]+)\s*$|(?:\s?\.){4,}\s*$|…{2,}\s*\d+\s*$", re.I)
# A line that is only a page number: "12", "- 12 -", "Page 3", "Page 3 of 10", "3/10", "iv".
PAGE_NUMBER = re.compile(r"^\W*(?:page\s+)?(?:\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?|[ivxlcdm]{1,6})\W*$", re.I)
# Text wrapped to fit a page or a terminal has lines at least this long; shorter ones are a list,
# a poem, an address: broken by their writer, line by line.
MIN_WRAP_WIDTH = 30
# A writer's fill column varies by a few characters (paragraphs re-filled at 70, 72, 75), so a
# break is taken as the writer's own only when the next word would have fitted with this room.
WRAP_TOLERANCE = 3
FULL_LINE = 0.8
_ENDS_SENTENCE = re.compile(r"[.!?:;)\]\"'”’]\s*$")
# control characters other than tab and newline: garbage in text, and escape sequences in a terminal
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A short label a paragraph hangs from: "Q:  ", "A:  ", "Note:  ".
_LABEL = re.compile(r"^\s*\w{1,12}:\s+")
_HYPHENATED = re.compile(r"(\w+)-$")
_WORD = re.compile(r"\w+")


def collapse(text: str) -> str:
    """Whitespace as a browser shows it: every run of spaces, tabs and line breaks is one space."""
    return " ".join(CONTROL.sub("", text).split())


@dataclass
class TextBuilder:
    """Assembles a document's text block by block, with the sections (headings, pages) that
    locate each block."""

    parts: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    length: int = 0
    _label: str | None = None
    _label_start: int = 0

    def add(self, text: str, tight: bool = False) -> None:
        """Append a block; `tight` puts it on the next line instead of after a blank line (the
        next item of a list, the next row of a table)."""
        text = CONTROL.sub("", text).strip("\n")
        if not text.strip():
            return
        if self.parts:
            separator = "\n" if tight else "\n\n"
            self.parts.append(separator)
            self.length += len(separator)
        self.parts.append(text)
        self.length += len(text)

    def start_section(self, label: str) -> None:
        """The blocks added from now on belong to `label` (a heading, a page)."""
        self._close_section()
        self._label = label
        self._label_start = self.length + (2 if self.parts else 0)

    def heading(self, text: str) -> None:
        text = collapse(text)
        if text:
            self.start_section(text)
            self.add(text)

    def _close_section(self) -> None:
        if self._label is not None and self.length > self._label_start:
            self.sections.append(Section(self._label, self._label_start, self.length))
        self._label = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def document(self, source: str, title: str) -> Document:
        self._close_section()
        return Document(source, title, self.text, tuple(self.sections))


def is_furniture(line: str) -> bool:
    """A contents line with dot leaders: never a sentence of the document."""
    return bool(CONTENTS_LINE.search(line))


def table_lines(rows: Sequence[Sequence[str]], header_rows: int | None = None) -> list[str]:
    """Each row of a table as one line. With a header row, every cell is named by its column
    ("Expense Category: Flights; Limit: $600 per flight"); without one, cells are joined by " | ".
    `header_rows` None means: guess whether the first row is a header."""
    rows = [[collapse(cell) for cell in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    if header_rows is None:
        header_rows = 1 if looks_like_header(rows) else 0
    if not header_rows or len(rows) <= header_rows:
        return [" | ".join(cell for cell in row if cell) for row in rows]
    width = max(len(row) for row in rows)
    headers = [""] * width
    for row in rows[:header_rows]:  # a header spread over two rows names a column by both
        for i, cell in enumerate(row):
            if cell and cell not in headers[i]:
                headers[i] = f"{headers[i]} {cell}".strip()
    lines = []
    for row in rows[header_rows:]:
        named = [f"{headers[i]}: {cell}" if headers[i] and headers[i] != cell else cell
                 for i, cell in enumerate(row) if cell]
        lines.append("; ".join(named))
    return lines


def looks_like_header(rows: Sequence[Sequence[str]]) -> bool:
    """Whether the first row names the columns: two or more rows, every cell of the first one
    filled, short and distinct, and none of them a number or amount."""
    if len(rows) < 2 or len(rows[0]) < 2:
        return False
    first = rows[0]
    return (
        all(first)
        and len(set(first)) == len(first)
        and all(len(cell.split()) <= 6 and not re.fullmatch(r"[\d\s.,$€£%:/-]+", cell) for cell in first)
    )


def vocabulary(text: str) -> set[str]:
    """The lower-cased words and hyphenated words of a text, to mend words hyphenated at a line end."""
    return {w.lower() for w in re.findall(r"\w+(?:-\w+)*", text)}


def _dehyphenate(left: str, right: str, words: set[str], soft_by_default: bool) -> str:
    """Join a line ending in "infor-" to one starting "mation...": drop the hyphen when the whole
    word is known (or, in typeset text, unless the hyphenated form is)."""
    match = _HYPHENATED.search(left)
    first = _WORD.match(right)
    if not match or not first or not right[:1].islower():
        return ""
    stem, rest = match.group(1), first.group()
    if (stem + rest).lower() in words:
        return left[:-1] + right
    if f"{stem}-{rest}".lower() in words or not soft_by_default:
        return left + right
    return left[:-1] + right


def unwrap(lines: Sequence[str], width: int, words: set[str] = frozenset(), typeset: bool = False) -> list[str]:
    """The paragraphs and items of a block of hard-wrapped lines: a line break is undone when the
    next line's first word would not have fitted on the line before (the writer, or the layout,
    had to break there), unless the next line starts a list item or steps further in.
    `width` is the block's column width in characters; `typeset` text (a PDF) is measured with
    some slack, its letters having different widths, and its line-end hyphens are soft."""
    slack = 0.85 if typeset else 1.0
    if width < MIN_WRAP_WIDTH:  # lines this short were not wrapped: each is meant as it is
        return [line.strip() for line in lines if line.strip()]
    out: list[str] = []
    last_line, last_indent = "", 0
    item_indent = -1  # the column where the current list item's text starts
    for line in (raw.rstrip() for raw in lines):
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(stripped)
        marker = LIST_MARKER.match(line)
        if out and not marker:
            broke_early = len(last_line) + 1 + len(stripped.split()[0]) <= width * slack - WRAP_TOLERANCE
            if broke_early and len(last_line) >= FULL_LINE * width and not _ENDS_SENTENCE.search(last_line):
                broke_early = False  # a full line that stops mid-sentence was wrapped (fmt breaks early)
            steps_in = indent > last_indent and indent != item_indent
            if not broke_early and not steps_in:
                out[-1] = _dehyphenate(out[-1], stripped, words, typeset) or f"{out[-1]} {stripped}"
                last_line, last_indent = line, indent
                continue
        out.append(stripped)
        label = marker or _LABEL.match(line)  # "A:  Nothing. They are..." goes on under "Nothing"
        item_indent = label.end() if label else -1
        last_line, last_indent = line, indent
    return out


# A plain-text heading: a numbered title ("3.2.  Message Format", "A. Glossary") or a title in
# capitals ("SECURITY CONSIDERATIONS"), alone on its line, short and without closing punctuation.
_NUMBERED_TITLE = re.compile(
    r"^(?:\d{1,2}(?:\.\d{1,2})*\.?|[A-Z]\.|(?:chapter|section|appendix)\s+\w+\.?)\s+[A-Z]", re.I
)
_UNDERLINE = re.compile(r"^\s*([=\-~*#^])\1{2,}\s*$")


def text_heading(block: Sequence[str]) -> str | None:
    """The heading a plain-text block is, if it is one: a line underlined with "===" or "---", a
    numbered title, or a title in capitals, on a line of its own."""
    lines = [line.strip() for line in block if line.strip()]
    if len(lines) == 2 and _UNDERLINE.match(lines[1]) and len(lines[1]) >= 0.6 * len(lines[0]):
        title = lines[0]
    elif len(lines) == 1:
        title = lines[0]
        letters = [c for c in title if c.isalpha()]
        capitals = len(letters) >= 4 and all(c.isupper() for c in letters)
        numbered = bool(_NUMBERED_TITLE.match(title))
        if not (capitals or numbered) or LIST_MARKER.match(title) and not numbered:
            return None
    else:
        return None
    words = title.split()
    if not 1 <= len(words) <= 10 or len(title) > 80 or title[-1] in ".,;:!?" or is_furniture(title):
        return None
    return title


def line_width(lines: Iterable[str]) -> int:
    """The column width a text was wrapped at: the length most of its long lines reach."""
    lengths = sorted(len(line.rstrip()) for line in lines if line.strip())
    if not lengths:
        return 0
    return lengths[int(0.9 * (len(lengths) - 1))]


def running_lines(pages: Sequence[Sequence[str]], edge: int = 2) -> set[str]:
    """The running headers and footers of a paginated text: lines at the top or bottom of a page
    that recur, digits aside, at the same edge of another page ("Chapter 3. Networking  41")."""
    seen: Counter[str] = Counter()
    for page in pages:
        lines = [line for line in page if line.strip()]
        seen.update({"top " + _shape(line) for line in lines[:edge]})
        seen.update({"bottom " + _shape(line) for line in lines[-edge:]})
    return {key.split(" ", 1)[1] for key, count in seen.items() if count >= 2}


def _shape(line: str) -> str:
    """A line with its numbers left out: a running header or footer is the same on every page
    but for its page number."""
    return collapse(re.sub(r"\d+", " ", line)).lower()


def strip_furniture(page: Sequence[str], running: set[str], edge: int = 2, keep_blank: bool = False) -> list[str]:
    """A page's lines without its running header and footer, page number and contents lines
    (and without blank lines at its edges; inside it they are kept when `keep_blank`). On a
    contents page, an entry without dot leaders ("3 Debian Developer's Duties 9") goes too."""
    filled = [i for i, line in enumerate(page) if line.strip()]
    top, bottom = set(filled[:edge]), set(filled[-edge:])
    contents_page = sum(is_furniture(line) for line in page) >= 5
    kept: list[str] = []
    for i, line in enumerate(page):
        if not line.strip():
            if keep_blank and kept:
                kept.append("")
            continue
        if (i in top or i in bottom) and (_shape(line) in running or PAGE_NUMBER.match(line.strip())):
            continue
        if is_furniture(line) or (contents_page and re.search(r"\s(?:\d+|[ivxlc]+)$", line.strip())):
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept
