"""What answer selection reads of the sentences of a chunk: their spans, their stemmed terms,
and whether each holds a number, a date, a name, a reason or an instruction. Computed once per
chunk and opened build (Index.memo), since popular chunks come back question after question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qa.lexical import tokenize
from qa.store import Index

_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|dozen)\b", re.I
)
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December|century|decade)\b"
)
# What answers a "why" question, and what answers a "how do I" one.
_REASON = re.compile(r"\b(because|since|hence|therefore|thus|so that|due to|in order to|as a result|reasons?|causes?|"
                     r"caused|imposes?|otherwise|means that)\b|,\s+so\b", re.I)
# An instruction: "To X, use Y", an imperative opening, "you can ...", "by adding", "using the", "-S".
_STEPS = re.compile(r"^\W*(?:to \w+\b[^.]*,|(?:use|run|set|add|delete|remove|put|type|call|pass|enable|disable|specify|"
                    r"install|configure|edit|create|open|select|click|press|choose|change|write|invoke|send|mail|contact|ask|"
                    r"check|go|visit|download|copy|move|rename|restart|reboot|log|sign|subscribe|register)\b)|"
                    r"\b(?:you|one|users?|applications?) (?:can|should|must|need to|may) \w+|\bby \w+ing\b|"
                    r"\busing (?:the|a|an)\b|(?<![\w-])--?[a-z]", re.I)
_CAPITALIZED = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


@dataclass(frozen=True)
class Candidate:
    chunk_id: int
    rank: int  # of its passage, from 0
    start: int  # document offsets of the sentence
    end: int
    features: np.ndarray
    score: float


@dataclass(frozen=True)
class ChunkFacts:
    """What answer selection reads of a chunk's sentences; computed once per opened index."""

    spans: list[tuple[int, int]]
    masks: dict[str, np.ndarray]  # stemmed term -> which sentences hold it
    words: np.ndarray  # distinct terms per sentence
    first: np.ndarray
    short: np.ndarray
    number: np.ndarray
    date: np.ndarray
    reason: np.ndarray  # says why: "because", "hence", "so that", "due to", "causes"
    steps: np.ndarray  # says how: "use", "run", "set", "by adding", "with the --x option"
    capitals: list[list[str]]


def chunk_facts(index: Index, chunk_id: int) -> ChunkFacts:
    def compute() -> ChunkFacts:
        sentences = index.sentence_texts(chunk_id)
        term_sets = [set(tokenize(text)) for _, _, text in sentences]
        masks: dict[str, np.ndarray] = {}
        for j, terms in enumerate(term_sets):
            for term in terms:
                masks.setdefault(term, np.zeros(len(sentences), dtype=bool))[j] = True
        return ChunkFacts(
            spans=[(s, e) for s, e, _ in sentences],
            masks=masks,
            words=np.array([len(t) for t in term_sets], dtype=np.float32),
            first=np.arange(len(sentences)) == 0,
            short=np.array([len(text.split()) < 5 for _, _, text in sentences]),
            number=np.array([bool(_NUMBER.search(text)) for _, _, text in sentences]),
            date=np.array([bool(_YEAR.search(text) or _MONTH.search(text)) for _, _, text in sentences]),
            reason=np.array([bool(_REASON.search(text)) for _, _, text in sentences]),
            steps=np.array([bool(_STEPS.search(text)) for _, _, text in sentences]),
            capitals=[_CAPITALIZED.findall(text) for _, _, text in sentences],
        )

    return index.memo(("answer", chunk_id), compute)


def document_text(index: Index, chunk_id: int) -> str:
    return index.document(index.chunk(chunk_id).source).text



def sentence_terms(facts: ChunkFacts, j: int) -> set[str]:
    return {term for term, mask in facts.masks.items() if mask[j]}

