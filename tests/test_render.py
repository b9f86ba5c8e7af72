"""What a browser is shown of documents and answers: every document or user string escaped, only
qa's own tags are markup, and highlights land on the cited characters."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from qa.types import Document, Section
from qa.web.render import (
    citation_label,
    embed_page,
    escape_md,
    parse_spans,
    passage_markdown,
    source_page,
    source_url,
)

HOSTILE = '<img src=x onerror=alert(1)> ![x](javascript:alert(2)) **bold** `code` [link](http://evil)'


def test_markdown_text_is_shown_verbatim_and_never_markup():
    escaped = escape_md(HOSTILE)
    assert "<" not in escaped and ">" not in escaped
    assert "&lt;img" in escaped and r"\*\*bold\*\*" in escaped and r"\`code\`" in escaped
    assert r"\!\[x\]\(javascript\:alert\(2\)\)" in escaped and r"\[link\]\(http\://evil\)" in escaped


def test_a_passage_marks_exactly_its_answer_sentences_and_escapes_the_rest():
    passage = "Intro line.\n<b>The limit is $600.</b> More text."
    start = 100  # the passage's offset in its document
    answer = passage.index("<b>")
    marked = passage_markdown(passage, start, [(start + answer, start + answer + len("<b>The limit is $600.</b>"))])
    assert marked.startswith("Intro line\\.\n")
    assert "<mark>&lt;b&gt;The limit is \\$600\\.&lt;/b&gt;</mark>" in marked
    assert marked.count("<mark>") == 1 and "<b>" not in marked


def test_a_mark_never_spans_a_paragraph_break():
    passage = "First part\n\nsecond part"
    marked = passage_markdown(passage, 0, [(0, len(passage))])
    assert marked.split("\n") == ["<mark>First part</mark>", "", "<mark>second part</mark>"]


def test_highlight_spans_from_a_url_are_kept_only_when_sane():
    assert parse_spans("10-20, 30-40", 100) == [(10, 20), (30, 40)]
    assert parse_spans("20-10,5-500,-3-4,a-b,7-7", 100) == []
    assert len(parse_spans(",".join(["1-2"] * 50), 100)) == 20  # at most 20 spans


def test_citation_label_and_source_link_name_the_passage():
    citation = {"n": 2, "source": "policy.pdf", "title": "Travel", "location": "page 3", "start": 5, "end": 40,
                "highlights": [(10, 20)]}
    assert citation_label(citation) == "[2] policy.pdf · Travel · page 3"
    url = source_url(citation, base="/base")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("/base/source?") and url.endswith("#hit")
    assert query == {"source": ["policy.pdf"], "start": ["5"], "end": ["40"], "hl": ["10-20"]}


def test_the_source_page_escapes_the_document_and_marks_the_cited_passage():
    text = f"Preface. {HOSTILE} The cited sentence. After."
    start = text.index("The cited")
    document = Document("a<b>.txt", "<script>alert(3)</script>", text, (Section("Part <1>", 0, len(text)),))
    page = source_page(document, start, start + len("The cited sentence."), [(start, start + 10)])
    assert "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page and "&lt;img src=x" in page
    assert '<span id="hit"><mark>The cited </mark>sentence.</span>' in page
    assert "Part &lt;1&gt;" in page and f"passage at characters {start:,}-{start + 19:,}" in page


def test_the_embed_page_quotes_its_options():
    page = embed_page({"title": '"><script>alert(4)</script>', "accent": "#0af", "other": "ignored"})
    assert "<script>alert(4)" not in page and 'data-accent="#0af"' in page and "other" not in page
