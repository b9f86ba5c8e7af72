"""Answers and documents -> text a browser shows, with every document and user string escaped.

Chat messages are Markdown, so document text is HTML-escaped *and* has its Markdown punctuation
backslash-escaped: a passage holding `<img onerror=...>` or `![x](javascript:...)` shows those
characters and does nothing. Only the tags written here (`<mark>`, `<span>`) are markup.
The full-source page is plain HTML built the same way and served with a CSP that runs no script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from urllib.parse import urlencode

from qa.types import Document

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~=$:])")
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


def escape_md(text: str) -> str:
    """Text that Markdown renders verbatim and HTML shows as text."""
    return html.escape(_MD_SPECIAL.sub(r"\\\1", text), quote=False)


def _segments(text: str, offset: int, highlights: Sequence[Sequence[int]]) -> list[tuple[str, bool]]:
    """Split text (starting at document offset `offset`) into (piece, highlighted) runs."""
    cuts, pos = [], 0
    for s, e in sorted(highlights):
        s, e = max(s - offset, pos), min(e - offset, len(text))
        if s >= e:
            continue
        cuts += [(text[pos:s], False), (text[s:e], True)]
        pos = e
    cuts.append((text[pos:], False))
    return [c for c in cuts if c[0]]


def passage_markdown(passage: str, start: int, highlights: Sequence[Sequence[int]]) -> str:
    """A cited passage as Markdown, the answer sentences marked. Each line is tidied (leading
    spaces would make a code block) and marks never span a paragraph break."""
    out = []
    for piece, marked in _segments(passage, start, highlights):
        lines = [escape_md(_SPACES.sub(" ", line)) for line in piece.split("\n")]
        if marked:
            lines = [f"<mark>{line}</mark>" if line.strip() else line for line in lines]
        out.append("\n".join(lines))
    return "\n".join(line.strip() for line in "".join(out).split("\n"))


def citation_marker(c: dict, preview_chars: int = 300) -> str:
    """`[n]` as a marker the chat UI's script opens the passage from on a click, with the source and
    the passage from its first marked sentence as hover text (an attribute, on one line: escaped
    with its quotes, and a blank line would end the Markdown paragraph around it)."""
    first = min((s for s, _ in c["highlights"]), default=c["start"])
    passage = " ".join(c["passage"][max(0, first - c["start"]) :].split())
    if len(passage) > preview_chars:
        passage = passage[:preview_chars].rsplit(" ", 1)[0] + " …"
    preview = html.escape(f"{citation_label(c)}: {passage}", quote=True)
    return f'<span class="qa-cite" role="button" tabindex="0" title="{preview}">[{c["n"]}]</span>'


def answer_markdown(answer: dict) -> str:
    """An answer's sentences, escaped, each followed by its clickable [n] marker."""
    by_n = {c["n"]: c for c in answer["citations"]}
    return " ".join(f"{escape_md(s['text'])} {citation_marker(by_n[s['citation']])}" for s in answer["sentences"])


def citation_label(c: dict) -> str:
    """`[1] handbook.pdf · Leave policy · page 3` as plain text."""
    parts = [c["source"]]
    if c.get("title") and c["title"] != c["source"]:
        parts.append(c["title"])
    if c.get("location") and c["location"] not in parts:
        parts.append(c["location"])
    return f"[{c['n']}] " + " · ".join(parts)


def source_url(c: dict, base: str = "", collection: str = "") -> str:
    hl = ",".join(f"{s}-{e}" for s, e in c.get("highlights", ()))
    query = {"source": c["source"], "start": c["start"], "end": c["end"]}
    if hl:
        query["hl"] = hl
    if collection:
        query["collection"] = collection
    return f"{base}/source?{urlencode(query)}#hit"


def parse_spans(hl: str, limit: int) -> list[tuple[int, int]]:
    """"10-20,30-40" -> [(10, 20), (30, 40)], keeping only sane spans inside [0, limit]."""
    spans = []
    for item in hl.split(",")[:20]:
        m = re.fullmatch(r"\s*(\d+)-(\d+)\s*", item)
        if m and int(m.group(1)) < int(m.group(2)) <= limit:
            spans.append((int(m.group(1)), int(m.group(2))))
    return spans


def _html_run(text: str, offset: int, highlights: Sequence[Sequence[int]]) -> str:
    return "".join(
        f"<mark>{html.escape(piece)}</mark>" if marked else html.escape(piece)
        for piece, marked in _segments(text, offset, highlights)
    )


SOURCE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.6 system-ui, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }}
header {{ position: sticky; top: 0; background: #fff; border-bottom: 1px solid #d0d7de; padding: .75rem 1.5rem; }}
h1 {{ font-size: 1.15rem; margin: 0; }}
header p {{ margin: .2rem 0 0; color: #57606a; font-size: .9rem; }}
main {{ max-width: 52rem; margin: 1rem auto; background: #fff; padding: 1.5rem 2rem; border: 1px solid #d0d7de;
  border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; }}
#hit {{ background: #fff8c5; outline: 2px solid #d4a72c; border-radius: 2px; scroll-margin-top: 6rem; }}
mark {{ background: #ffd33d; }}
</style></head>
<body><header><h1>{title}</h1><p>{meta}</p></header>
<main>{body}</main></body></html>
"""


def source_page(document: Document, start: int | None, end: int | None, highlights: Sequence[Sequence[int]]) -> str:
    """The whole document as HTML; the cited passage is #hit (the link's fragment scrolls to it)."""
    text = document.text
    meta = [document.source]
    if start is not None and end is not None and 0 <= start < end <= len(text):
        location = document.location(start)
        if location:
            meta.append(location)
        meta.append(f"passage at characters {start:,}-{end:,}")
        body = (
            html.escape(text[:start])
            + f'<span id="hit">{_html_run(text[start:end], start, highlights)}</span>'
            + html.escape(text[end:])
        )
    else:
        body = _html_run(text, 0, highlights)
    title = html.escape(document.title or document.source)
    return _PAGE.format(title=title, meta=html.escape(" · ".join(meta)), body=body)


EMBED_OPTIONS = ("title", "greeting", "accent", "key", "collection")

_EMBED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html, body {{ margin: 0; height: 100%; background: #fff; }}</style></head>
<body><script src="widget.js" data-mode="inline" {attrs}></script></body></html>
"""


def embed_page(params: dict[str, str]) -> str:
    """/embed: the widget filling the page, for an <iframe>. Query parameters title, greeting,
    accent and key become the script's data-* options."""
    given = {k: params[k][:200] for k in EMBED_OPTIONS if params.get(k)}
    attrs = " ".join(f'data-{"api-key" if k == "key" else k}="{html.escape(v, quote=True)}"' for k, v in given.items())
    return _EMBED.format(title=html.escape(given.get("title", "Ask the documents")), attrs=attrs)
