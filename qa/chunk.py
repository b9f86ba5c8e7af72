"""Documents -> Chunks with exact offsets, and chunks -> sentence spans.

Chunks are sized in the embedding model's tokens (langchain-text-splitters, splitting at
paragraph, line and sentence boundaries first) and overlap a little, so a sentence near a
boundary is whole in at least one chunk. Invariant: `chunk.text == doc.text[chunk.start:chunk.end]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from qa.types import Chunk, Document

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class ChunkSettings:
    tokens: int = 200
    overlap: int = 32


def make_splitter(tokenizer, settings: ChunkSettings) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer,
        chunk_size=settings.tokens,
        chunk_overlap=settings.overlap,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_document(document: Document, splitter: RecursiveCharacterTextSplitter) -> list[Chunk]:
    chunks, search_from = [], 0
    for piece in splitter.split_text(document.text):
        start = document.text.find(piece, search_from)
        if start < 0:  # cannot happen with strip_whitespace splitting; guard the invariant anyway
            start = document.text.find(piece)
        end = start + len(piece)
        chunks.append(Chunk(document.source, document.title, document.location(start), start, end, piece))
        # the next chunk may overlap this one, but never starts before it
        search_from = start + 1
    return chunks


# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and an upper-case
# letter, digit or opening quote, or at a line break. Abbreviations and initials do not end one.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|\n+")
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|No|Nos|vs|etc|e\.g|i\.e|cf|al|Fig|Figs|Eq|Vol|Inc|Ltd|Co|Corp|Gen|Col|Lt|Sgt|Rev|Gov|Sen|Rep|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|approx|ca)"
    r"|\b[A-Z](?:\.[A-Z])*)\.$"
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of text, whitespace trimmed, in order."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if "\n" not in match.group() and _ABBREVIATION.search(text[start : match.start()]):
            continue
        spans.append((start, match.start()))
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
