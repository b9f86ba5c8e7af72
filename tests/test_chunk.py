"""Chunking: exact offsets into the document, the metadata every chunk carries, sentence spans."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.chunk import MAX_CHARS_PER_TOKEN, ChunkSettings, chunk_document, make_splitter, sentence_spans
from qa.types import Document, Section

WORDS = ["the", "tide", "pool", "Otter", "rocks", "9", "ÄŒ", "naïve", "東京", "U.S.", "Dr.", "e.g.", "-", "…"]
PUNCTUATION = [" ", " ", " ", "\n", "\n\n", ". ", "? ", "! ", "; ", ", ", "\t", "  "]

# Random text of two kinds: arbitrary characters, and words from a small vocabulary (which repeats
# phrases, the case that trips a chunker that finds its chunks by searching).
random_text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=600),
    st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(PUNCTUATION)), min_size=1, max_size=300).map(
        lambda pairs: "".join(w + p for w, p in pairs)
    ),
)
chunk_settings = st.sampled_from(
    [ChunkSettings(16, 0), ChunkSettings(16, 4), ChunkSettings(40, 8), ChunkSettings(64, 16)]
)


def _first_text_at_or_after(text: str, position: int) -> int:
    return len(text) - len(text[position:].lstrip())


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=random_text, chunking=chunk_settings)
def test_chunk_text_is_the_document_text_at_its_offsets(embedder, text, chunking):
    document = Document("notes.txt", "Notes", text)
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, chunking))
    for chunk in chunks:
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert chunk.text.strip() == chunk.text != ""


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=random_text, chunking=chunk_settings)
def test_chunks_cover_the_document_in_order_without_gaps(embedder, text, chunking):
    document = Document("notes.txt", "Notes", text)
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, chunking))
    if not text.strip():
        assert chunks == []
        return
    assert chunks[0].start == _first_text_at_or_after(text, 0)
    assert chunks[-1].end == len(text.rstrip())
    for before, after in zip(chunks, chunks[1:]):
        assert before.start < after.start
        assert before.end < after.end
        # overlapping or touching: nothing but whitespace is left between two chunks
        assert after.start <= _first_text_at_or_after(text, before.end)


def test_repeated_sentences_are_cited_where_each_chunk_really_is(embedder):
    text = "Alpha beta gamma. " * 30 + "\n\nThe unique ending sentence."
    document = Document("loop.txt", "Loop", text.strip())
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, ChunkSettings(20, 5)))
    assert len(chunks) > 5
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(document.text) if not ch.isspace())


def test_every_chunk_keeps_source_title_and_location(embedder):
    pages = [f"Page {n} is about harbour number {n}. " * 12 for n in range(1, 5)]
    text, sections, offset = "", [], 0
    for n, page in enumerate(pages, start=1):
        page = page.strip()
        sections.append(Section(f"page {n}", offset, offset + len(page)))
        text += page + "\n\n"
        offset += len(page) + 2
    document = Document("report.pdf", "Harbour report", text.strip(), tuple(sections))
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, ChunkSettings(32, 8)))
    assert len(chunks) >= 4
    assert {c.location for c in chunks} == {"page 1", "page 2", "page 3", "page 4"}
    for chunk in chunks:
        assert (chunk.source, chunk.title) == ("report.pdf", "Harbour report")
        assert chunk.location == document.location(chunk.start)
        [section] = [s for s in sections if s.label == chunk.location]
        assert section.start <= chunk.start < chunk.end <= section.end


def test_a_chunk_never_spans_two_pages_or_headings(embedder):
    parts = ["A preface without a heading.", "Page one is short.", "Page two is short too.", "Page three."]
    text = "\n\n".join(parts)
    sections = []
    for n, part in enumerate(parts[1:], start=1):
        start = text.index(part)
        sections.append(Section(f"page {n}", start, start + len(part)))
    document = Document("short.pdf", "Short", text, tuple(sections))
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, ChunkSettings(200, 32)))
    assert [(c.location, c.text) for c in chunks] == [("", parts[0])] + [(f"page {n}", parts[n]) for n in (1, 2, 3)]


def test_chunks_stay_within_the_token_budget(embedder):
    text = " ".join(f"Sentence number {i} describes a different rock pool creature." for i in range(80))
    chunks = chunk_document(Document("a.txt", "A", text), make_splitter(embedder.tokenizer, ChunkSettings(50, 10)))
    assert len(chunks) > 5
    assert all(len(embedder.tokenizer.tokenize(c.text)) <= 50 for c in chunks)


def test_sentences_split_at_sentence_ends_but_not_after_abbreviations():
    text = "Dr. Tanaka met Mr. Ito at 9 a.m. in Tokyo. They signed the U.S. deal!  Was it 37% more?\nYes"
    sentences = [text[s:e] for s, e in sentence_spans(text)]
    assert sentences == [
        "Dr. Tanaka met Mr. Ito at 9 a.m. in Tokyo.",
        "They signed the U.S. deal!",
        "Was it 37% more?",
        "Yes",
    ]


def test_a_sentence_keeps_its_closing_bracket_and_quote_and_e_g_does_not_end_one():
    text = '(Only permitted in a page range.) He said "stop." E.g. The first one. Edit sendmail.cf. Then restart.'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "(Only permitted in a page range.)",
        'He said "stop."',
        "E.g. The first one.",
        "Edit sendmail.cf.",
        "Then restart.",
    ]



def test_a_sentence_keeps_its_footnote_mark_and_ends_there():
    text = "Most programs are built by invoking make.\u2078 Some run their tests with make check. " \
           "A room of 10 m\u00b2 is small."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Most programs are built by invoking make.\u2078",
        "Some run their tests with make check.",
        "A room of 10 m\u00b2 is small.",
    ]

@settings(max_examples=50, deadline=None)
@given(text=random_text)
def test_sentence_spans_are_ordered_trimmed_and_inside_the_text(text):
    spans = sentence_spans(text)
    position = 0
    for start, end in spans:
        assert position <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        position = end
    inside = {i for s, e in spans for i in range(s, e)}
    assert all(i in inside for i, ch in enumerate(text) if not ch.isspace())


def test_a_word_longer_than_a_chunk_is_cut_into_chunks_within_the_budget(embedder):
    # one unknown token to the model however long, so a budget in tokens alone let it through whole
    text = "The harbour log begins here. " + "x" * 1_000_000 + " The log ends with the tide tables."
    document = Document("log.txt", "Log", text)
    started = time.perf_counter()
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, ChunkSettings(200, 32)))
    assert time.perf_counter() - started < 10
    assert max(len(c.text) for c in chunks) <= 200 * MAX_CHARS_PER_TOKEN
    assert all(c.text == text[c.start : c.end] for c in chunks)
    assert chunks[0].text.startswith("The harbour log begins here.") and chunks[-1].text.endswith("tide tables.")
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert len(covered) == len(text.replace(" ", "")) + text.count(" ") - 2  # all but the spaces between chunks


# Words and runs without a space: of letters (one unknown token however long), CJK, punctuation.
runs = st.builds(lambda piece, n: piece * n, st.sampled_from(["x", "QmFz", "東京", "a-b/"]), st.integers(1, 1500))
long_runs = st.lists(st.one_of(st.sampled_from(WORDS), runs), min_size=1, max_size=30).map(" ".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(random_text, long_runs), chunking=chunk_settings)
def test_a_chunk_never_holds_more_characters_than_its_budget_allows(embedder, text, chunking):
    document = Document("notes.txt", "Notes", text)
    chunks = chunk_document(document, make_splitter(embedder.tokenizer, chunking))
    for chunk in chunks:
        assert len(chunk.text) <= chunking.tokens * MAX_CHARS_PER_TOKEN
        assert chunk.text == text[chunk.start : chunk.end]
        assert len(embedder.tokenizer.tokenize(chunk.text)) <= chunking.tokens
