"""Strip page chrome from scraped plain text: the menus, "related posts" lists, comment forms
and footers that surround an article when a web page is saved as text.

The rule is structural, not a list of phrases. A page's article is its run of prose blocks
(paragraphs of sentences), anchored on its long paragraphs: it spans from the first long paragraph
to the last, widened over the shorter prose blocks that directly touch it. Blocks before or after
that span are chrome, except the headline that directly introduces it; so is a lone one-sentence
blurb ("Get our stories in your inbox every Friday.") cut off from the article by chrome. Inside
the article nothing is removed, so headings and lists in a real document survive. A text with no
prose block at all (a list, a table dump), or with only a few short blocks around its prose (a
note's date, attendees or contact line), is left whole.
"""

from __future__ import annotations

import re

_BLOCK_SPLIT = re.compile(r"\n\s*\n")
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_UNDERLINE = re.compile(r"^(=+|-+)$")
_LIST_ITEM = re.compile(r"^\s*(?:[*+\u2022-]+|\d+[.)])\s+(?=\S)")  # "* ", "** ", "- ", "1. "
LIST_ITEM_WORDS = 4  # a menu's items are a word or two ("* Home"); a release note's or a step's are longer


LONG_PARAGRAPH = 25  # words; page chrome (menus, blurbs, form labels) is shorter
# Fewer blocks than this around the article are kept: a saved page has menus, share buttons and
# forms around its article, while notes with a date line or a "Contact:" line are not pages.
MIN_CHROME_BLOCKS = 4


def is_prose(block: str) -> bool:
    """A paragraph of running text: several sentences, or one long sentence."""
    words = len(_WORD.findall(block))
    sentences = len(re.findall(r"[.!?](?:\s|$)", block))
    return words >= LONG_PARAGRAPH or (words >= 12 and sentences >= 1 and bool(_SENTENCE_END.search(block.strip())))


def _part_of_a_document(block: str) -> bool:
    """A block no page chrome looks like, so it joins the article it touches: an indented code
    block, one that announces the next ("...the conflict would look as follows:"), a heading
    underlined with = or -, or a list item of several words ("** Fix compilation on MacOS")."""
    lines = [line for line in block.split("\n") if line.strip()]
    indented = all(line[:1] in (" ", "\t") for line in lines)
    underlined = len(lines) == 2 and bool(_UNDERLINE.match(lines[1].strip()))
    item = _LIST_ITEM.match(lines[0])
    long_item = bool(item) and len(_WORD.findall(lines[0][item.end():])) >= LIST_ITEM_WORDS
    return indented or block.rstrip().endswith(":") or underlined or long_item


def _blocks(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for sep in _BLOCK_SPLIT.finditer(text):
        spans.append((pos, sep.start()))
        pos = sep.end()
    spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def main_content(text: str) -> tuple[str, str]:
    """Return (headline, article text) with the chrome around the article removed.

    The article text begins with the headline, which is "" when no short block directly
    introduces the article.
    """
    blocks = _blocks(text)
    prose = [is_prose(text[s:e]) for s, e in blocks]
    if not any(prose):
        return "", text.strip("\n")
    # Anchor on the long paragraphs; a short text whose paragraphs are all short keeps them all.
    anchors = [i for i, (s, e) in enumerate(blocks) if prose[i] and len(_WORD.findall(text[s:e])) >= LONG_PARAGRAPH]
    anchors = anchors or [i for i, is_p in enumerate(prose) if is_p]
    first, last = anchors[0], anchors[-1]
    part = [prose[i] or _part_of_a_document(text[s:e]) for i, (s, e) in enumerate(blocks)]
    while first > 0 and part[first - 1]:
        first -= 1
    while last + 1 < len(blocks) and part[last + 1]:
        last += 1
    headline = ""
    if first > 0:
        s, e = blocks[first - 1]
        candidate = text[s:e].strip()
        if len(_WORD.findall(candidate)) >= 3 and "\n" not in candidate:
            headline = candidate
            first -= 1
    if first + (len(blocks) - 1 - last) < MIN_CHROME_BLOCKS:  # a note's title or sign-off, not a page's chrome
        return headline, text.strip("\n")
    start, end = blocks[first][0], blocks[last][1]
    return headline, text[start:end].strip("\n")
