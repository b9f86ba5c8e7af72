"""Documents -> Chunks with exact offsets, and chunks -> sentence spans.

Chunks are sized in the embedding model's tokens (langchain-text-splitters, splitting at
paragraph, line and sentence boundaries first) and overlap a little, so a sentence near a
boundary is whole in at least one chunk. A chunk never crosses a section (PDF page, DOCX or Markdown
heading), so its location is exact. Invariant: `chunk.text == doc.text[chunk.start:chunk.end]`.
A chunk is bounded in characters too (MAX_CHARS_PER_TOKEN per token of its budget), so a
megabyte-long "word", a single unknown token to the model, is cut into chunks like any text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from langchain_text_splitters import RecursiveCharacterTextSplitter

from qa.config import SETTINGS
from qa.types import Chunk, Document

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]
# A chunk holds at most this many characters per token of its budget. Prose measures 4-5
# characters a token and aligned tables or ASCII art up to 9, but a "word" the tokenizer cannot
# take apart (a run of letters, a base64 blob) is one unknown token however long it is.
MAX_CHARS_PER_TOKEN = 10


@dataclass(frozen=True)
class ChunkSettings:
    tokens: int = SETTINGS["chunk_tokens"].default_value()
    overlap: int = SETTINGS["chunk_overlap"].default_value()


class _Split(str):
    """A piece of the text that remembers where it starts."""

    offset = 0


class OffsetSplitter(RecursiveCharacterTextSplitter):
    """The recursive splitter, also telling where each chunk starts.

    Searching for a chunk's text is ambiguous when a passage repeats (overlapping chunks of
    repetitive text match in several places). The splitter merges its splits in text order and
    each chunk is joined from consecutive splits, so a chunk starts where its first split does.
    Not thread-safe: use one splitter per thread.
    """

    def _split_text(self, text: str, separators: list[str]) -> list[str]:
        if any(separator and separator in text for separator in separators):
            return super()._split_text(text, separators)
        # the last resort: the base class would make each character a split of its own
        return self._merge_splits(self._parts(text), "")

    def _parts(self, text: str) -> list[str]:
        """Text without separators cut into consecutive parts of at most a few tokens (less than
        the overlap, so that chunks still overlap), each found with a tokenizer call or two."""
        target = max(1, self._chunk_overlap // 2 or self._chunk_size // 4)
        parts, start, guess = [], 0, target * MAX_CHARS_PER_TOKEN
        while start < len(text):
            size = min(len(text) - start, guess)
            while size > 1 and (length := self._length_function(text[start : start + size])) > target:
                size = max(1, min(size - 1, size * target // length))
            parts.append(text[start : start + size])
            start += size
            guess = min(2 * size, target * MAX_CHARS_PER_TOKEN)
        return parts

    def split_with_offsets(self, text: str) -> list[tuple[int, str]]:
        self._cursor, self._placed = 0, []
        pieces = self.split_text(text)
        placed, self._placed = self._placed, []
        if [piece for _, piece in placed] != pieces:  # a splitter that merges differently: search instead
            return _search_offsets(text, pieces)
        return placed

    def _merge_splits(self, splits, separator: str) -> list[str]:
        marked = []
        for split in splits:
            marked.append(_Split(split))
            marked[-1].offset = self._cursor
            self._cursor += len(split)
        return super()._merge_splits(marked, separator)

    def _join_docs(self, docs: list[str], separator: str) -> str | None:
        joined = super()._join_docs(docs, separator)
        if joined is not None and isinstance(docs[0], _Split) and not separator:
            raw = "".join(docs)
            self._placed.append((docs[0].offset + len(raw) - len(raw.lstrip()), joined))
        return joined


def _search_offsets(text: str, pieces: list[str]) -> list[tuple[int, str]]:
    placed, search_from = [], 0
    for piece in pieces:
        start = text.find(piece, search_from)
        if start < 0:
            start = text.find(piece)
        placed.append((start, piece))
        search_from = start + 1  # the next chunk may overlap this one, but never starts before it
    return placed


def token_counter(tokenizer) -> Callable[[str], int]:
    """`len(tokenizer.tokenize(text))` for a transformers tokenizer or a `tokenizers.Tokenizer`,
    fast. The splitter measures every piece at each level of its recursion, many of them twice, and
    the transformers wrapper costs more than the count. Counts with a private copy of the Rust
    tokenizer, whose truncation no other caller can set."""
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer if hasattr(tokenizer, "to_str") else None)
    if backend is None:
        def count(text: str) -> int:
            return len(tokenizer.tokenize(text))
    else:
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()

        def count(text: str) -> int:
            return len(backend.encode(text, add_special_tokens=False))
    return lru_cache(maxsize=4096)(count)


def bounded_length(count: Callable[[str], int], tokens: int) -> Callable[[str], int]:
    """A text's length for a splitter of chunks of `tokens`: its tokens, or its characters over
    MAX_CHARS_PER_TOKEN if that is more, so that a chunk is bounded in characters too. A text too
    long to be a chunk whatever its tokens is not tokenized at all."""

    def length(text: str) -> int:
        by_characters = -(-len(text) // MAX_CHARS_PER_TOKEN)
        return by_characters if by_characters > tokens else max(count(text), by_characters)

    return length


def make_splitter(tokenizer, settings: ChunkSettings) -> OffsetSplitter:
    return OffsetSplitter(
        length_function=bounded_length(token_counter(tokenizer), settings.tokens),
        chunk_size=settings.tokens,
        chunk_overlap=settings.overlap,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def _segments(document: Document) -> list[tuple[int, int]]:
    """The sections of a document and the text between them, in order."""
    spans, position = [], 0
    for section in sorted(document.sections, key=lambda s: s.start):
        if section.start > position:
            spans.append((position, section.start))
        if section.end > max(position, section.start):
            spans.append((max(position, section.start), section.end))
        position = max(position, section.end)
    spans.append((position, len(document.text)))
    return spans


def chunk_document(document: Document, splitter: RecursiveCharacterTextSplitter) -> list[Chunk]:
    """Chunk each section (PDF page, heading) on its own, so a chunk's location is the only
    page or heading its text comes from."""
    text = document.text
    chunks = []
    for offset, segment_end in _segments(document):
        segment = text[offset:segment_end]
        if not segment.strip():
            continue
        if isinstance(splitter, OffsetSplitter):
            placed = splitter.split_with_offsets(segment)
        else:
            placed = _search_offsets(segment, splitter.split_text(segment))
        for start, piece in placed:
            start += offset
            if text[start : start + len(piece)] != piece:  # guard the invariant whatever the splitter did
                start = text.find(piece, offset)
            end = start + len(piece)
            chunks.append(Chunk(document.source, document.title, document.location(start), start, end, piece))
    return chunks


# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and an upper-case
# letter, digit or opening quote, or at a line break. Abbreviations and initials do not end one.
# A sentence ends after its closing quotes and brackets: "(It was permitted.)" keeps its ")", and
# "...by invoking make.⁸" its footnote mark.
_BOUNDARY = re.compile(r"(?<=[.!?])([\"'”’)\]]*[⁰¹²³⁴⁵⁶⁷⁸⁹]*)\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n+")
_ABBREVIATION = re.compile(
    r"(?:(?<![\w.])(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|No|Nos|vs|etc|[Ee]\.g|[Ii]\.e|cf|al|Fig|Figs|Eq|Vol|Inc|Ltd|Co|Corp|Gen|Col|Lt|Sgt|Rev|Gov|Sen|Rep|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|approx|ca)"
    r"|\b[A-Z](?:\.[A-Z])*)\.$"
)
# A section number at the start of a line ("1.", "2.3.", "A.") is not a sentence of its own.
_OUTLINE_NUMBER = re.compile(r"(?:^|\n)\s*(?:\d+\.)+\d*$|(?:^|\n)\s*[A-Z]\.$")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of text, whitespace trimmed, in order."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if "\n" not in match.group() and (
            _ABBREVIATION.search(text[start : match.start()]) or _OUTLINE_NUMBER.search(text[start : match.start()])
        ):
            continue
        spans.append((start, match.start() + len(match.group(1) or "")))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for s, e in spans:
        piece = text[s:e]
        s2 = s + len(piece) - len(piece.lstrip())
        e2 = e - (len(piece) - len(piece.rstrip()))
        if e2 > s2:
            trimmed.append((s2, e2))
    return trimmed
