"""Example questions for the chat UI, read from a bounded sample of the corpus so they cost the same
for ten documents or a million: the operator's own list when one is set; else questions the
documents ask themselves (a FAQ row's title, a heading or line that is a question); else questions
about the topics the documents keep returning to ("What do the documents say about the U.S.-Japan
alliance?"), phrased as a person would, never by quoting a title.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import islice

from qa.pipeline import STOPWORDS
from qa.types import Document

SAMPLE_DOCUMENTS = 50
SAMPLE_CHARS = 20_000  # per document
MAX_CHARS = 120

_QUESTION_START = re.compile(
    r"(?:what|how|why|when|where|who|which|can|could|do|does|did|is|are|should|will|may)\b", re.IGNORECASE
)
_LABEL = re.compile(r"^(?:q(?:uestion)?\s*\d*\s*[:.)-]\s*|\d+(?:\.\d+)*[.)]?\s+)", re.IGNORECASE)
_CLAUSE = re.compile(r"[.!?;:,()\[\]\"“”]+(?:\s|$)|\n")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*[^\W_]|[^\W\d_]")
_PROSE_WORDS = 8  # a phrase counts as a topic only when it is used in sentences this long or longer


def example_questions(documents: Iterable[Document], limit: int = 4, given: Iterable[str] = ()) -> list[str]:
    given = [q.strip() for q in given if q.strip()]
    if given:
        return given[:limit]
    sample = list(islice(documents, SAMPLE_DOCUMENTS))
    found: dict[str, str] = {}  # by its lower case: a question asked twice is offered once
    for question in [*_asked_in(sample), *(_about(topic) for topic in _topics(sample))]:
        found.setdefault(question.lower(), question)
        if len(found) == limit:
            break
    return list(found.values())


def _as_question(line: str) -> str | None:
    """A line that is a question of its own (a FAQ entry, a heading), without its "Q:" or number."""
    line = _LABEL.sub("", " ".join(line.split()))
    words = len(line.split())
    if line.endswith("?") and 3 <= words <= 20 and len(line) <= MAX_CHARS and _QUESTION_START.match(line):
        return line[0].upper() + line[1:]
    return None


def _asked_in(documents: list[Document]) -> list[str]:
    questions = []
    for document in documents:
        lines = [document.title, *(s.label for s in document.sections), *document.text[:SAMPLE_CHARS].splitlines()]
        questions.extend(q for q in map(_as_question, lines) if q)
    return questions


def _topics(documents: list[Document], limit: int = 8) -> list[str]:
    """Phrases of two or three words (with "the" when the documents say it), none of them a
    function word, used in two or more prose sentences: the longest such phrase wins over its
    parts, the most used first. A phrase always
    followed, or always preceded, by another content word is part of a longer name ("Japanese
    foreign" of "Japanese foreign policy"), not a topic."""
    counts: Counter[tuple[str, ...]] = Counter()
    ends: Counter[tuple[str, ...]] = Counter()  # uses of the phrase ending at a function word or the clause's end
    starts: Counter[tuple[str, ...]] = Counter()
    after_the: Counter[tuple[str, ...]] = Counter()
    forms: dict[tuple[str, ...], Counter[str]] = {}
    lowercase_words: set[str] = set()
    for document in documents:
        text = document.text[:SAMPLE_CHARS]
        lowercase_words.update(w for w in _WORD.findall(text) if w.islower())
        for clause in _CLAUSE.split(text):
            words = _WORD.findall(clause)
            if len(words) < _PROSE_WORDS:
                continue
            for n in (2, 3):
                for i in range(len(words) - n + 1):
                    gram = words[i : i + n]
                    if any(w.lower() in STOPWORDS or len(w) < 3 for w in gram):
                        continue
                    key = tuple(w.lower() for w in gram)
                    counts[key] += 1
                    ends[key] += i + n == len(words) or words[i + n].lower() in STOPWORDS
                    starts[key] += i == 0 or words[i - 1].lower() in STOPWORDS
                    after_the[key] += i > 0 and words[i - 1].lower() == "the"
                    forms.setdefault(key, Counter())[" ".join(gram)] += 1
    repeated = [key for key, count in counts.items() if count >= 2 and ends[key] and starts[key]]
    maximal = [
        key for key in repeated
        if not any(len(other) > len(key) and counts[other] >= counts[key] and _inside(key, other) for other in repeated)
    ]
    maximal.sort(key=lambda key: (-counts[key], -len(key)))
    return [
        ("the " if after_the[key] * 2 >= counts[key] else "") + _cased(forms[key].most_common(1)[0][0], lowercase_words)
        for key in maximal[:limit]
    ]


def _inside(part: tuple[str, ...], whole: tuple[str, ...]) -> bool:
    return any(whole[i : i + len(part)] == part for i in range(len(whole) - len(part) + 1))


def _cased(phrase: str, lowercase_words: set[str]) -> str:
    """Title Case undone for common words ("Expense Limits" -> "expense limits"), kept for names."""
    return " ".join(w.lower() if w.lower() in lowercase_words else w for w in phrase.split())


def _about(topic: str) -> str:
    return f"What do the documents say about {topic}?"
