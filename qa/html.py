"""An HTML page -> the text of its content, laid out as a browser shows it.

Whitespace is collapsed as a browser collapses it (the source's line breaks are not the page's),
except inside <pre>; headings, paragraphs, list items, table rows and <br> breaks are the
boundaries. Headings become sections. A data table's rows carry their column headers.

What is not content is left out by structure, not by a list of phrases: scripts and styles,
hidden elements, forms, navigation landmarks (<nav>, role="navigation", a page's own <header>,
<footer> and <aside>), elements whose class or id names them as chrome (menu, sidebar,
breadcrumbs...), and blocks that are mostly links (menus, "previous / next" bars, link lists).
When the page marks its content (<main>, role="main", a single <article>), only that is read.
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html

from qa.prose import TextBuilder, collapse, table_lines

_DROP = {
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "canvas", "form",
    "button", "select", "input", "textarea", "nav", "dialog", "head", "map", "audio", "video",
}
_CHROME_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary", "menu", "menubar", "dialog"}
_CHROME_NAME = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|navheader|navfooter|menu|breadcrumbs?|sidebar|sidenav|footer|"
    r"banner|related|share|sharing|social|cookies?|pagination|pager|skip|masthead|toolbar|subscribe|"
    r"newsletter|advert|ads|comments?|replies|respond)(?:$|[\s_-])",
    re.I,
)
_BLOCK = {
    "p", "div", "section", "article", "main", "blockquote", "li", "dd", "dt", "dl", "ul", "ol", "pre", "table",
    "tr", "figure", "figcaption", "address", "hr", "caption", "details", "summary", "header", "footer", "aside",
    "center", "body", "html", "h1", "h2", "h3", "h4", "h5", "h6", "tbody", "thead", "tfoot", "fieldset", "legend",
}
_ANCHOR_MARKS = {"¶", "#", "§", "🔗", "⁋", "\uf0c1"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_TIGHT = {"li", "dt", "dd"}
# Blocks that are mostly link text, and short: a menu, a "previous / up / next" bar, a link list.
LINK_SHARE = 0.6
LINK_BLOCK_MAX_WORDS = 200


def _text_of(element) -> str:
    return "".join(element.itertext())


def _is_chrome(element, page_words: int) -> bool:
    if element.tag in _DROP:
        return True
    if element.tag == "a" and _text_of(element).strip() in _ANCHOR_MARKS:  # a heading's permalink
        return True
    attrs = element.attrib
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if re.search(r"display\s*:\s*none|visibility\s*:\s*hidden", attrs.get("style", ""), re.I):
        return True
    if attrs.get("role", "").lower() in _CHROME_ROLES:
        return True
    names = f"{attrs.get('class', '')} {attrs.get('id', '')}"
    # a name is only a hint ("wy-nav-content" wraps a whole manual page): chrome is never most of the page
    return bool(_CHROME_NAME.search(names)) and _words(element) <= page_words / 2


def _words(element) -> int:
    return len(_text_of(element).split())


def _link_heavy(element) -> bool:
    """A block whose words are mostly inside links."""
    if element.tag not in _BLOCK or element.tag in ("html", "body", "main", "article"):
        return False
    words = _words(element)
    if not words or words > LINK_BLOCK_MAX_WORDS:
        return False
    links = list(element.iter("a"))
    linked = sum(_words(a) for a in links)
    return len(links) >= 2 and linked / words >= LINK_SHARE


def _prune(root) -> None:
    page_words = _words(root)
    for element in list(root.iter()):
        if element.getparent() is None:
            continue
        if _is_chrome(element, page_words) or _link_heavy(element) or _page_header(element):
            _remove(element)


def _page_header(element) -> bool:
    """A <header>, <footer> or <aside> of the page, not one inside its article."""
    if element.tag not in ("header", "footer", "aside"):
        return False
    return element.tag != "header" or not any(a.tag in ("article", "main") for a in element.iterancestors())


def _remove(element) -> None:
    """Remove an element but keep its tail, the text that follows it."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    previous = element.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _content_root(body):
    mains = body.xpath(".//main | .//*[@role='main']")
    if len(mains) == 1:
        return mains[0]
    articles = body.xpath(".//article")
    if len(articles) == 1:
        return articles[0]
    return body


def _title(tree) -> str:
    for xpath in ("//meta[@property='og:title']/@content", "//title//text()", "//h1//text()"):
        found = collapse(" ".join(tree.xpath(xpath)))
        if found:
            return found
    return ""


class _Walker:
    """Walks the content tree in document order, gathering inline text into blocks."""

    def __init__(self, builder: TextBuilder):
        self.builder = builder
        self.line: list[str] = []  # inline text of the block being read
        self.lines: list[str] = []  # its earlier lines, when it holds <br> breaks
        self.tight = False

    def flush(self, tight_next: bool = False) -> None:
        lines = [*self.lines, collapse("".join(self.line))]
        text = "\n".join(line for line in lines if line)
        if text:
            self.builder.add(text, tight=self.tight)
        self.line, self.lines = [], []
        self.tight = tight_next

    def walk(self, element) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _HEADINGS:
            self.flush()
            self.builder.heading(_text_of(element))
        elif tag == "pre":
            self.flush()
            self.builder.add(_text_of(element).expandtabs(8).strip("\n"))
        elif tag == "table" and _is_data_table(element):
            self.flush()
            for i, line in enumerate(_table(element)):
                self.builder.add(line, tight=i > 0)
        elif tag == "br":
            self.lines.append(collapse("".join(self.line)))
            self.line = []
        elif tag in _BLOCK:
            self.flush(tight_next=tag in _TIGHT or self.tight)
            if element.text:
                self.line.append(element.text)
            for child in element:
                self.walk(child)
            self.flush(tight_next=tag in _TIGHT)
        else:
            if element.text:
                self.line.append(element.text)
            for child in element:
                self.walk(child)
        if element.tail:
            self.line.append(element.tail)


def _is_data_table(table) -> bool:
    """A table of data, not one used for layout: no tables or block content inside its cells,
    and at least two columns."""
    if table.xpath(".//table | .//td//div | .//td//p[2] | .//td//ul | .//td//pre"):
        return False
    return any(len(row.xpath("./th | ./td")) >= 2 for row in table.xpath(".//tr"))


def _span(cell) -> int:
    value = cell.get("colspan", "1")
    return min(int(value), 50) if value.isdigit() and int(value) > 0 else 1


def _table(table) -> list[str]:
    """The table's caption, then each row as a line, named by the header rows (<thead>, or rows
    of <th> cells at the top) when there are any."""
    rows, header_rows = [], 0
    for tr in table.xpath(".//tr"):
        cells = tr.xpath("./th | ./td")
        if header_rows == len(rows):
            in_head = tr.getparent() is not None and tr.getparent().tag == "thead"
            if in_head or (cells and all(c.tag == "th" for c in cells)):
                header_rows += 1
        rows.append([collapse(_text_of(cell)) for cell in cells for _ in range(_span(cell))])
    caption = [collapse(_text_of(c)) for c in table.xpath("./caption")]
    return [c for c in caption if c] + table_lines(rows, header_rows or None)


def html_text(markup: str) -> tuple[str, TextBuilder]:
    """(title, text builder holding the page's content) of an HTML page."""
    builder = TextBuilder()
    if not markup.strip():
        return "", builder
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:
        tree = lxml.html.document_fromstring(markup.encode("utf-8", errors="replace"), parser=parser)
    except lxml.etree.ParserError:  # markup with no element at all, e.g. only a comment
        return "", builder
    title = _title(tree)
    body = tree.find("body")
    root = _content_root(body if body is not None else tree)
    _prune(root)
    _Walker(builder).walk(root)
    return title, builder
