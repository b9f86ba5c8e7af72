"""The records passed between stages: documents -> chunks -> passages -> answers.

Offsets are what make a citation checkable: `chunk.text == document.text[chunk.start:chunk.end]`,
and every answer sentence carries the span it was copied from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PLACE = re.compile(r"(?:page|row) \d+")  # a location that is a place in the file, not a heading


@dataclass(frozen=True)
class Section:
    """A labelled span of a document: a PDF page, a DOCX heading, a table row."""

    label: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus folder, plus "#row" for table/JSONL rows
    title: str
    text: str
    sections: tuple[Section, ...] = ()

    def location(self, start: int) -> str:
        """The label of the section holding character `start` ("" when there are none)."""
        for section in self.sections:
            if section.start <= start < section.end:
                return section.label
        return ""


@dataclass(frozen=True)
class Chunk:
    source: str
    title: str
    location: str
    start: int
    end: int
    text: str

    @property
    def heading(self) -> str:
        """The heading the chunk's text falls under when the text does not start with it (the
        second chunk of a long section, a definition far below its heading), else "": a part
        of what the chunk is about that its text no longer says."""
        heading = self.location
        if not heading or _PLACE.fullmatch(heading) or heading == self.title or self.text.startswith(heading):
            return ""
        return heading


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    chunk: Chunk
    score: float

    def to_dict(self, rank: int) -> dict:
        """The JSON shape shared by `qa search --json` and the web API's search results."""
        c = self.chunk
        return {"rank": rank, "score": round(self.score, 4), "source": c.source, "title": c.title,
                "location": c.location, "start": c.start, "end": c.end, "passage": c.text}


@dataclass(frozen=True)
class Turn:
    """An earlier exchange of a conversation: what was asked and the answer text given ("" when
    only the question is known, or when it was declined)."""

    question: str
    answer: str = ""
    declined: bool = False

    @classmethod
    def answered(cls, question: str, answer: str, declined: bool) -> Turn:
        """A turn as it went: the answer text given, or "" when it was declined."""
        return cls(question, "" if declined else answer, declined)


@dataclass(frozen=True)
class Citation:
    n: int
    source: str
    title: str
    location: str
    start: int
    end: int
    passage: str
    score: float
    # Spans (document offsets) of the answer sentences taken from this passage.
    highlights: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    citation: int  # the n of the Citation it came from
    start: int  # document offsets of the sentence
    end: int


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    sentences: tuple[AnswerSentence, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON shape shared by `qa ask --json`, the web API and batch output."""
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "confidence": round(self.confidence, 4),
            "citations": [
                {**vars(c), "score": round(c.score, 4), "highlights": [list(h) for h in c.highlights]}
                for c in self.citations
            ],
            "sentences": [dict(vars(s)) for s in self.sentences],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def counted(n: int, noun: str, plural: str = "") -> str:
    """`1 file`, `2 files`, `1,200 chunks`: a count as every face prints it (plural: noun + "s" unless given)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
