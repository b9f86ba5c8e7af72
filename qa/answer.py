"""Passages -> an Answer: the sentences that answer, copied verbatim and cited, or an abstention.

Every sentence of the top passages is scored by a few cheap, corpus-independent features (its
similarity to the question, the share of the question's weighted words it contains, how well its
passage ranked, whether it holds the kind of thing asked for). The weights and the abstention
threshold were fitted on SQuAD and off-topic questions by bench/fit_answer.py; no model is run
per sentence, so an answer costs one query encoding plus arithmetic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from qa.config import DEFAULT_K
from qa.lexical import tokenize
from qa.prose import LIST_MARKER
from qa.retrieve import Ranking
from qa.store import Index
from qa.types import Answer, AnswerSentence, Citation

NOT_FOUND = "I could not find this in the documents."

FEATURES = ("dense", "overlap", "context", "passage", "first", "novel", "type", "short", "passage_overlap")
# Pairwise logistic regression on SQuAD (the sentence holding the gold answer should outrank the
# others of the same question); only differences between sentences matter, so there is no bias.
SENTENCE_WEIGHTS = np.array([6.221, 3.839, 0.914, 0.516, 0.087, 1.16, 1.721, -3.185, 1.588])
# A second sentence, from another passage, joins the answer when it scores within this margin of
# the best: the reader then sees both candidate answers, each with its own citation.
SECOND_SENTENCE_MARGIN = 1.5
# Confidence that the documents answer the question: logistic regression of answerable SQuAD
# questions against off-topic ones, on [top passage cosine, best sentence cosine, share of the
# question's weighted words in the best sentence, the same in its passage]. The bias puts 0.5 (the
# default QA_MIN_CONFIDENCE) at the point that declines 3% of answerable questions.
CONFIDENCE_WEIGHTS = np.array([5.764, 6.226, 3.94, 5.011])
CONFIDENCE_BIAS = -8.108


# A follow-up alone whose cosine with the best sentence is at the floor lends no confidence to the
# answer; at floor + span it lends all (unrelated pairs measure below 0.1, a follow-up and the
# sentence answering it 0.2-0.4).
OWN_COSINE_FLOOR = 0.10
OWN_COSINE_SPAN = 0.15
# What a word a follow-up takes from the turn before weighs, against one of its own.
CONTEXT_TERM_WEIGHT = 0.3
# A best sentence of at most this many words, holding at most this many words the question does not,
# restates the question; the answer is read on in the sentences after it (or the list items it
# introduces), up to these limits.
ECHO_MAX_WORDS = 16
ECHO_MAX_NEW_TERMS = 3
# A question written out in a FAQ: "Q: ...", "Q. ...", "Question: ...".
_QUESTION_LABEL = re.compile(r"^\s*(?:Q|Question)\s*[:.)]\s", re.I)
FOLLOWING_SENTENCES = 2
MAX_LIST_ITEMS = 8
MAX_FOLLOWING_CHARS = 700

_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|dozen)\b", re.I
)
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December|century|decade)\b"
)
# A sentence that refers back to the one before: "the/this/such <noun>" naming something that
# sentence mentioned (the noun is checked against it), or a pronoun.
_REFERS_BACK = re.compile(
    r"(?:(the|this|these|that|those|such)\s+(\w+)|(?:it|its|they|their|them|he|she|his|her|this|these|that|those)\b)",
    re.I,
)
# "this/these/such <noun>" inside a sentence's opening words.
_POINTS_BACK = re.compile(r"\b(this|these|such)\s+(\w+)", re.I)
OPENING_WORDS = 8
# A sentence announcing what comes next: "...are given in the following table.", "...as follows".
_ANNOUNCES = re.compile(r"\b(?:the following|as follows)\b|\bbelow\W*$", re.I)
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


def _question_type(question: str) -> str:
    q = question.lower()
    if re.search(
        r"\b(how (many|much|long|old|far|large|big|tall|often)|what (percentage|percent|number|amount|size))\b", q
    ):
        return "number"
    if re.search(r"\b(when|what year|which year|what date|what century|what decade)\b", q):
        return "date"
    if re.search(r"\b(who|whom|whose|where)\b", q):
        return "name"
    if re.match(r"\W*why\b", q) or re.search(r"[.?!]\s+why\b", q):
        return "reason"
    if re.search(r"\bhow (do|can|should|would|could) (i|we|you|one)\b|\bhow to\b|\bwhat (do|should|must) (i|we) \w+",
                 q):
        return "steps"
    return ""


@dataclass(frozen=True)
class Candidate:
    chunk_id: int
    rank: int  # of its passage, from 0
    start: int  # document offsets of the sentence
    end: int
    features: np.ndarray
    score: float


@dataclass(frozen=True)
class _ChunkFacts:
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


def _chunk_facts(index: Index, chunk_id: int) -> _ChunkFacts:
    def compute() -> _ChunkFacts:
        sentences = index.sentence_texts(chunk_id)
        term_sets = [set(tokenize(text)) for _, _, text in sentences]
        masks: dict[str, np.ndarray] = {}
        for j, terms in enumerate(term_sets):
            for term in terms:
                masks.setdefault(term, np.zeros(len(sentences), dtype=bool))[j] = True
        return _ChunkFacts(
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


def _document_text(index: Index, chunk_id: int) -> str:
    return index.document(index.chunk(chunk_id).source).text


def _type_match(facts: _ChunkFacts, kind: str, question: str) -> np.ndarray:
    """Whether each sentence holds the kind of thing asked for (0.5 when the kind is unknown)."""
    if kind == "number":
        return facts.number.astype(np.float32)
    if kind == "date":
        return facts.date.astype(np.float32)
    if kind in ("reason", "steps"):
        return getattr(facts, kind).astype(np.float32)
    if kind == "name":
        asked = set(re.findall(r"[A-Z][a-z]+", question))
        return np.array([any(w not in asked for w in caps) for caps in facts.capitals], dtype=np.float32)
    return np.full(len(facts.spans), 0.5, dtype=np.float32)


def sentence_candidates(
    index: Index, ranking: Ranking, question: str, query_vector: np.ndarray, terms: list[str], k: int = DEFAULT_K,
    own_terms: list[str] | None = None, own_vector: np.ndarray | None = None,
) -> list[Candidate]:
    """Every sentence of the top k passages, scored, best first. For a follow-up, the words it
    took from the turn before (`terms` beyond its `own_terms`) count for less than its own: in
    "And for flights?" after a question on the hotel limit, "flights" decides the row."""
    own = set(own_terms) if own_terms else None
    weights = {t: index.idf(t) * (1.0 if own is None or t in own else CONTEXT_TERM_WEIGHT)
               for t in set(terms)}
    total = sum(weights.values()) or 1.0
    kind = _question_type(question)
    read = min(len(ranking.ids), k)
    top, low = float(ranking.scores[0]), float(ranking.scores[read - 1])
    chunk_ids = ranking.ids[:read].tolist()
    facts = [_chunk_facts(index, chunk_id) for chunk_id in chunk_ids]
    sizes = [len(f.spans) for f in facts]
    if not sum(sizes):
        return []
    starts = np.cumsum([0, *sizes[:-1]])
    # which question terms each sentence holds (terms x sentences), and the weight of each term
    present = np.zeros((len(weights), sum(sizes)), dtype=bool)
    for t, term in enumerate(weights):
        for f, at, n in zip(facts, starts, sizes):
            mask = f.masks.get(term)
            if mask is not None:
                present[t, at : at + n] = mask
    term_weights = np.array(list(weights.values()), dtype=np.float64)
    # a term in the sentence before or after, within the same passage
    near = np.zeros_like(present)
    same_passage = np.ones(sum(sizes), dtype=bool)
    nonempty = [i for i, n in enumerate(sizes) if n]
    same_passage[starts[nonempty]] = False  # a passage's first sentence has no "before" in it
    near[:, 1:] |= present[:, :-1] & same_passage[1:]
    near[:, :-1] |= present[:, 1:] & same_passage[1:]
    passage_overlap = term_weights @ np.logical_or.reduceat(present, starts[nonempty], axis=1)
    asked_terms = present.sum(axis=0)
    words = np.concatenate([f.words for f in facts])

    matrix = np.empty((sum(sizes), len(FEATURES)), dtype=np.float32)
    sentence_vectors = index.sentence_vectors(chunk_ids).astype(np.float32)
    matrix[:, 0] = sentence_vectors @ query_vector
    if own_vector is not None:
        matrix[:, 0] = (matrix[:, 0] + sentence_vectors @ own_vector) / 2
    matrix[:, 1] = term_weights @ present / total
    matrix[:, 2] = term_weights @ (near & ~present) / total
    matrix[:, 5] = (words - asked_terms) / np.maximum(1, words)
    owners = []
    for slot, rank in enumerate(nonempty):
        chunk, at, n = facts[rank], starts[rank], sizes[rank]
        block = matrix[at : at + n]
        block[:, 3] = (float(ranking.scores[rank]) - low) / (top - low) if top > low else 1.0
        block[:, 4] = chunk.first
        block[:, 6] = _type_match(chunk, kind, question)
        block[:, 7] = chunk.short
        block[:, 8] = passage_overlap[slot] / total
        owners.extend((chunk_ids[rank], rank, s, e) for s, e in chunk.spans)
    scores = matrix @ SENTENCE_WEIGHTS
    order = np.argsort(-scores, kind="stable")
    return [Candidate(*owners[i], features=matrix[i], score=float(scores[i])) for i in order]


def confidence_signals(best_features: np.ndarray, top_cosine: float) -> np.ndarray:
    """What the confidence reads (see CONFIDENCE_WEIGHTS): the top passage's cosine and the best
    sentence's cosine, word share and passage word share."""
    picked = [FEATURES.index(name) for name in ("dense", "overlap", "passage_overlap")]
    return np.array([top_cosine, *best_features[picked]], dtype=np.float64)


def confidence(best: Candidate, ranking: Ranking) -> float:
    signals = confidence_signals(best.features, float(ranking.dense.max()))
    return 1.0 / (1.0 + math.exp(-(float(signals @ CONFIDENCE_WEIGHTS) + CONFIDENCE_BIAS)))


def _sentence_terms(facts: _ChunkFacts, j: int) -> set[str]:
    return {term for term, mask in facts.masks.items() if mask[j]}


def _refers_back(text: str, facts: _ChunkFacts, j: int, by_the: bool) -> bool:
    """Whether sentence j of a chunk (of document text `text`) opens by referring to sentence
    j - 1: a pronoun ("He appointed..."), or "this/these/such <noun>" naming something sentence
    j - 1 holds, at its start or within its opening words ("The default value of this macro
    is..."), and, when `by_the`, also "the <noun>" doing so ("The agreement is understood to...")."""
    start, end = facts.spans[j]
    sentence = text[start:end]
    before = _sentence_terms(facts, j - 1)
    opening_words = " ".join(sentence.split()[:OPENING_WORDS])
    if any(set(tokenize(m.group(2))) & before for m in _POINTS_BACK.finditer(opening_words)):
        return True
    opening = _REFERS_BACK.match(sentence)
    if opening is None:
        return False
    if not opening.group(1):  # a pronoun
        return True
    named = set(tokenize(opening.group(2)))
    if opening.group(1).lower() == "the":
        return by_the and bool(named & before)
    return not named or bool(named & before)  # "this is..." or "this agreement..."


def _read_with_best(text: str, facts: _ChunkFacts, j: int, terms: list[str]) -> list[int]:
    """The sentences of the chunk read as the answer around its best sentence j: the one before
    when j opens by pointing back to it ("He appointed Robert archbishop" is checkable only with
    who "he" is), and the one after when it goes on about the same thing and holds a word of the
    question j lacks ("...the agreement is a prime example. The agreement is understood to
    involve...")."""
    read = [j - 1] if j > 0 and _refers_back(text, facts, j, by_the=False) else []
    read.append(j)
    if (
        j + 1 < len(facts.spans)
        and (_sentence_terms(facts, j + 1) & set(terms)) - _sentence_terms(facts, j)
        and _refers_back(text, facts, j + 1, by_the=True)
    ):
        read.append(j + 1)
    return read


def _is_question(sentence: str) -> bool:
    """A question in the text (a FAQ's "Q: ..." or a heading "Why does sudo reset HOME?"): never an
    answer itself; its answer is what follows it."""
    return sentence.rstrip().endswith("?") or bool(_QUESTION_LABEL.match(sentence))


def _echoes(text: str, facts: _ChunkFacts, j: int, terms: list[str]) -> bool:
    """Whether sentence j only restates the question ("The alliance faces significant hurdles."),
    asks one (a FAQ's question), or announces what follows ("The signals are:", "...as follows."):
    then the answer is in the sentences after it."""
    start, end = facts.spans[j]
    sentence = text[start:end].rstrip()
    if sentence.endswith(":") or _is_question(sentence) or _ANNOUNCES.search(sentence):
        return True
    held = _sentence_terms(facts, j)
    novel = held - set(terms)
    # holding every word of the question restates it, unless it also carries a figure ("...gives a 30% discount")
    restates = set(terms) <= held and not facts.number[j]
    return len(sentence.split()) <= ECHO_MAX_WORDS and (len(novel) <= ECHO_MAX_NEW_TERMS or restates)


def _what_follows(text: str, facts: _ChunkFacts, j: int) -> list[int]:
    """The sentences after an echo that carry its content: the list items it introduces (lines of
    their own), or else the next sentences of one paragraph, within the passage and a reading
    length. After a question, the rest of the question is passed over."""
    spans = facts.spans

    def gap(i: int) -> str:  # the text between sentence i - 1 and sentence i
        return text[spans[i - 1][1] : spans[i][0]]

    def sentence(i: int) -> str:
        return text[spans[i][0] : spans[i][1]]

    first = j + 1
    if _is_question(sentence(j)):
        while first < len(spans) and "\n\n" not in gap(first) and sentence(first).rstrip().endswith("?"):
            first += 1
    if first >= len(spans):
        return []
    items = bool(LIST_MARKER.match(sentence(first))) or (
        first + 1 < len(spans) and "\n" in gap(first + 1) and "\n\n" not in gap(first + 1)
    )
    after, length = [], 0
    for i in range(first, len(spans)):
        if after and "\n\n" in gap(i) and not (items and LIST_MARKER.match(sentence(i))):
            break  # the next paragraph
        if after and items and "\n" not in gap(i):
            break
        length += spans[i][1] - spans[i][0]
        after.append(i)
        if len(after) >= (MAX_LIST_ITEMS if items else FOLLOWING_SENTENCES) or length > MAX_FOLLOWING_CHARS:
            break
    return after


def _reading(index: Index, candidate: Candidate, terms: list[str]) -> list[int] | None:
    """The sentences of the candidate's chunk read as the answer around it (indices into the
    chunk's sentences), or None for a question its passage does not go on to answer."""
    facts = _chunk_facts(index, candidate.chunk_id)
    text = _document_text(index, candidate.chunk_id)
    j = facts.spans.index((candidate.start, candidate.end))
    read = _read_with_best(text, facts, j, terms)
    if _echoes(text, facts, j, terms):
        follows = _what_follows(text, facts, j)
        if _is_question(text[candidate.start : candidate.end]):
            if not follows:
                return None
            read = [i for i in read if i > j]  # the question restated is no part of its answer
        read = sorted(set(read) | set(follows))
    return read


def _text(index: Index, candidate: Candidate) -> str:
    return " ".join(_document_text(index, candidate.chunk_id)[candidate.start : candidate.end].split())


def _read_in_full(index: Index, candidates: list[Candidate], terms: list[str], unlike: list[Candidate] = ()):
    """The first candidate that reads as an answer, with the candidates of the sentences it is
    read with, in document order; passing over the chunks of `unlike` and sentences of the same
    text (a page copied into two documents says the same thing twice)."""
    chunks, texts = {c.chunk_id for c in unlike}, {_text(index, c) for c in unlike}
    for candidate in candidates:
        if candidate.chunk_id in chunks or (texts and _text(index, candidate) in texts):
            continue
        read = _reading(index, candidate, terms)
        if read is None:
            continue
        facts = _chunk_facts(index, candidate.chunk_id)
        starts = {facts.spans[i][0] for i in read}
        return candidate, sorted((c for c in candidates if c.chunk_id == candidate.chunk_id and c.start in starts),
                                 key=lambda c: c.start)
    return None, []


def choose(index: Index, candidates: list[Candidate], terms: list[str]) -> list[Candidate]:
    """The best sentence with the neighbours it is read with, then the best one from another
    passage, read the same way, if it is nearly as good. A question in the text is never an
    answer by itself: what follows it is, or else the next best sentence."""
    best, chosen = _read_in_full(index, candidates, terms)
    if best is None:
        return [candidates[0]]
    if len(chosen) == 1:
        rest = candidates[candidates.index(best) + 1 :]
        runner_up, read = _read_in_full(index, rest, terms, unlike=chosen)
        if runner_up is not None and runner_up.score >= best.score - SECOND_SENTENCE_MARGIN:
            chosen.extend(read)
    return chosen


def _sentence_cosine(index: Index, candidate: Candidate, vector: np.ndarray) -> float:
    facts = _chunk_facts(index, candidate.chunk_id)
    j = facts.spans.index((candidate.start, candidate.end))
    return float(index.sentence_vectors([candidate.chunk_id])[j].astype(np.float32) @ vector)


def own_share(index: Index, chunk_id: int, own_terms: list[str]) -> float:
    """The share of a follow-up's own words (IDF-weighted) that its answer's passage holds."""
    weights = {t: index.idf(t) for t in set(own_terms)}
    total = sum(weights.values())
    if not total:
        return 1.0
    masks = _chunk_facts(index, chunk_id).masks
    return sum(w for t, w in weights.items() if t in masks) / total


def compose(
    index: Index,
    question: str,
    ranking: Ranking,
    candidates: list[Candidate],
    terms: list[str],
    min_confidence: float,
    own_terms: list[str] | None = None,
    own_vector: np.ndarray | None = None,
) -> Answer:
    """The answer from the scored sentences. For a follow-up, `own_terms` are its own words and
    `own_vector` the vector of the follow-up alone: the earlier turns lend it confidence only as far
    as its passage holds its own words or its best sentence means what it asks, so an off-topic
    question after on-topic ones is declined as it would be alone."""
    if not candidates:
        return Answer(question, NOT_FOUND, True, 0.0, ())
    conf = confidence(candidates[0], ranking)
    if own_terms is not None:
        # half of its own words in the passage are enough, or a best sentence close enough in
        # meaning ("Where does he teach?" and "...a professor at Waseda University"); neither,
        # and the history lends nothing
        support = 2 * own_share(index, candidates[0].chunk_id, own_terms)
        if own_vector is not None:
            support = max(support, (_sentence_cosine(index, candidates[0], own_vector) - OWN_COSINE_FLOOR)
                          / OWN_COSINE_SPAN)
        conf *= min(1.0, max(0.0, support))
    if conf < min_confidence:
        return Answer(question, NOT_FOUND, True, conf, ())
    chosen = choose(index, candidates, terms)
    numbers: dict[int, int] = {}
    ranks: dict[int, int] = {}
    for c in chosen:
        numbers.setdefault(c.chunk_id, len(numbers) + 1)
        ranks[c.chunk_id] = c.rank
    sentences = tuple(
        AnswerSentence(
            _document_text(index, c.chunk_id)[c.start : c.end], numbers[c.chunk_id], c.start, c.end
        )
        for c in chosen
    )
    citations = []
    for chunk_id, n in numbers.items():
        chunk = index.chunk(chunk_id)
        score = float(ranking.scores[ranks[chunk_id]])
        highlights = tuple((s.start, s.end) for s in sentences if s.citation == n)
        citations.append(
            Citation(
                n, chunk.source, chunk.title, chunk.location, chunk.start, chunk.end, chunk.text, score, highlights
            )
        )
    text = " ".join(f"{s.text} [{s.citation}]" for s in sentences)
    return Answer(question, text, False, conf, tuple(citations), sentences)
