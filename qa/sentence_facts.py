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
# Something typed rather than said: an option ("-u", "--depth"), a name_with_underscores, a call(),
# a path ("~/.bashrc", "/etc/sudoers"), a format code ("%j"), a macro ("\\IfNoValueTF"), a
# setting=value, a <placeholder>, a word in capitals ("PRAGMA", "NOPASSWD"), a quoted token ("'d'").
_CODE = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*|\b\w+_\w+|\b\w+\(\)|(?<!\w)[~.]?/[\w.-]+|(?<!\w)~?\.\w+rc\b|"
                   r"(?<!\w)%[A-Za-z]\b|\\[A-Za-z]{2,}|\b\w+=\S|<[a-z][\w-]*>|\b[A-Z]{4,}\b|`[^`]+`|"
                   r"(?<!\w)['\"‘“][^\s'\"’”]{1,24}['\"’”](?!\w)")
# Says what holds when nothing is chosen: "The default level is WARNING", "If the keyword is
# omitted, VIRTUAL is...", "if neither is specified".
_DEFAULT = re.compile(r"\bdefault(?:s|ed)?\b|\bomitted\b|\bnot (?:given|specified|supplied|set)\b|"
                      r"\bif (?:neither|none|nothing)\b|\bunless\b", re.I)
# Says yes or no: a negation, or a word of certainty.
_POLAR = re.compile(r"\b(?:not|no|never|cannot|only|always|must|guaranteed|yes)\b|n't\b", re.I)
_CAPITALIZED = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")
# A term a definition hangs from, on a line of its own: "--depth <depth>", "port (integer)",
# "pre-commit". Short, without a sentence's end, and neither a list item nor a table row.
TERM_MAX_WORDS = 6
MAX_TERM_LINES = 4
_NOT_A_TERM = re.compile(r"[.!?:;,]\s*$|;\s|^\s*(?:[-*+•◦▪‣●○■□–—]\s|\w[\w ]*:\s)")


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
    polar: np.ndarray  # says yes or no: "not", "never", "only", "always", "guaranteed"
    code: np.ndarray  # holds something typed (an option, a file, a setting, a macro), or its term does
    default: np.ndarray  # says what holds when nothing is chosen: "default", "if omitted"
    capitals: list[list[str]]
    terms_of: list[tuple[int, ...]]  # the term lines each sentence's line hangs from (a definition's term)


def chunk_facts(index: Index, chunk_id: int) -> ChunkFacts:
    def compute() -> ChunkFacts:
        sentences = index.sentence_texts(chunk_id)
        chunk = index.chunk(chunk_id)
        term_sets = [set(tokenize(text)) for _, _, text in sentences]
        masks: dict[str, np.ndarray] = {}
        for j, terms in enumerate(term_sets):
            for term in terms:
                masks.setdefault(term, np.zeros(len(sentences), dtype=bool))[j] = True
        terms_of = _terms_of(chunk.text, [(s - chunk.start, e - chunk.start) for s, e, _ in sentences],
                             chunk.location)
        code = [bool(_CODE.search(text)) for _, _, text in sentences]
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
            polar=np.array([bool(_POLAR.search(text)) for _, _, text in sentences]),
            code=np.array([held or any(code[i] for i in terms_of[j]) for j, held in enumerate(code)]),
            default=np.array([bool(_DEFAULT.search(text)) for _, _, text in sentences]),
            capitals=[_CAPITALIZED.findall(text) for _, _, text in sentences],
            terms_of=terms_of,
        )

    return index.memo(("answer", chunk_id), compute)


def document_text(index: Index, chunk_id: int) -> str:
    return index.document(index.chunk(chunk_id).source).text



def sentence_terms(facts: ChunkFacts, j: int) -> set[str]:
    return {term for term, mask in facts.masks.items() if mask[j]}


def _terms_of(text: str, spans: list[tuple[int, int]], heading: str) -> list[tuple[int, ...]]:
    """For each sentence of a chunk's text, the term lines its line hangs from: a definition
    list's term ("-u", "--include-untracked"), each on a line of its own just above the line the
    sentence is on (the chunk's heading, which can only open it, is none). A definition's
    sentences are about their term, though they seldom name it."""

    def gap(i: int) -> str:  # the text between sentence i - 1 and sentence i
        return text[spans[i - 1][1] : spans[i][0]] if i else "\n"

    def is_term(i: int) -> bool:
        line = text[spans[i][0] : spans[i][1]]
        return (line != heading and "\n" in gap(i) and i + 1 < len(spans) and gap(i + 1).count("\n") == 1
                and len(line.split()) <= TERM_MAX_WORDS and not _NOT_A_TERM.search(line))

    out: list[tuple[int, ...]] = []
    for j in range(len(spans)):
        if j and "\n" not in gap(j):
            out.append(out[j - 1])  # the line goes on: the same term
            continue
        first = j
        while first > 0 and j - first < MAX_TERM_LINES and is_term(first - 1):
            first -= 1
        out.append(tuple(range(first, j)) if first < j and not is_term(j) else ())
    return out
