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

from qa.index import Index
from qa.lexical import tokenize
from qa.retrieve import Ranking
from qa.types import Answer, AnswerSentence, Citation

NOT_FOUND = "I could not find this in the documents."
PASSAGES_READ = 5  # top passages whose sentences compete to answer

FEATURES = ("dense", "overlap", "context", "passage", "first", "novel", "type", "short")
# Fitted by bench/fit_answer.py (logistic regression, sentence contains the gold answer).
SENTENCE_WEIGHTS = np.array([4.0, 3.0, 1.0, 2.0, 0.5, 1.0, 1.0, -1.5])
SENTENCE_BIAS = -6.0
# Confidence = sigmoid(CONFIDENCE_WEIGHTS . [best sentence score, top passage cosine, question coverage] + bias)
CONFIDENCE_WEIGHTS = np.array([1.0, 6.0, 3.0])
CONFIDENCE_BIAS = -5.0
ABSTAIN_BELOW = 0.5
SECOND_SENTENCE_MARGIN = 0.0  # a second sentence is added when it scores within this of the best


_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|dozen)\b", re.I)
_MONTH = re.compile(r"\b(January|February|March|April|May|June|July|August|September|October|November|December|century|decade)\b")
_CAPITALIZED = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")


def _question_type(question: str) -> str:
    q = question.lower()
    if re.search(r"\b(how (many|much|long|old|far|large|big|tall|often)|what (percentage|percent|number|amount|size))\b", q):
        return "number"
    if re.search(r"\b(when|what year|which year|what date|what century|what decade)\b", q):
        return "date"
    if re.search(r"\b(who|whom|whose|where)\b", q):
        return "name"
    return ""


def _has_type(sentence: str, kind: str, question: str) -> float:
    if kind == "number":
        return float(bool(_NUMBER.search(sentence)))
    if kind == "date":
        return float(bool(_YEAR.search(sentence) or _MONTH.search(sentence)))
    if kind == "name":
        asked = set(re.findall(r"[A-Z][a-z]+", question))
        return float(any(w not in asked for w in _CAPITALIZED.findall(sentence)))
    return 0.5


@dataclass(frozen=True)
class Candidate:
    sentence_id: int
    chunk_id: int
    rank: int  # of its passage, from 0
    start: int
    end: int
    features: np.ndarray
    score: float


def sentence_candidates(index: Index, ranking: Ranking, question: str, query_vector: np.ndarray, terms: list[str]) -> list[Candidate]:
    weights = {t: index.lexical.idf(t) for t in set(terms)}
    total = sum(weights.values()) or 1.0
    kind = _question_type(question)
    passage_scale = ranking.scores[:PASSAGES_READ]
    top, low = float(ranking.scores[0]), float(ranking.scores[min(len(ranking.scores), PASSAGES_READ) - 1])
    rows, owners = [], []
    for rank, chunk_id in enumerate(ranking.ids[:PASSAGES_READ].tolist()):
        chunk = index.chunks[chunk_id]
        document = index.documents[chunk.source]
        sentence_range = index.chunk_sentences(chunk_id)
        if not len(sentence_range):
            continue
        vectors = index.sentence_vectors[sentence_range.start : sentence_range.stop].astype(np.float32)
        dense = vectors @ query_vector
        spans = index.sentence_spans[sentence_range.start : sentence_range.stop]
        term_sets = [set(tokenize(document.text[s:e])) for s, e in spans.tolist()]
        passage = (float(passage_scale[rank]) - low) / (top - low) if top > low else 1.0
        for j, (s, e) in enumerate(spans.tolist()):
            text = document.text[s:e]
            words = term_sets[j]
            overlap = sum(w for t, w in weights.items() if t in words) / total
            neighbours = term_sets[j - 1] if j > 0 else set()
            neighbours = neighbours | (term_sets[j + 1] if j + 1 < len(term_sets) else set())
            context = sum(w for t, w in weights.items() if t in neighbours and t not in words) / total
            novel = len(words - weights.keys()) / max(1, len(words))
            features = np.array(
                [dense[j], overlap, context, passage, float(j == 0), novel, _has_type(text, kind, question), float(len(text.split()) < 5)],
                dtype=np.float32,
            )
            rows.append(features)
            owners.append((sentence_range.start + j, chunk_id, rank, s, e))
    if not rows:
        return []
    matrix = np.stack(rows)
    scores = matrix @ SENTENCE_WEIGHTS + SENTENCE_BIAS
    candidates = [Candidate(*owner, features=row, score=float(score)) for owner, row, score in zip(owners, matrix, scores)]
    return sorted(candidates, key=lambda c: -c.score)


def confidence(best: Candidate | None, ranking: Ranking, coverage: float) -> float:
    if best is None:
        return 0.0
    features = np.array([best.score, float(ranking.dense.max()), coverage])
    return 1.0 / (1.0 + math.exp(-(features @ CONFIDENCE_WEIGHTS + CONFIDENCE_BIAS)))


def compose(index: Index, question: str, ranking: Ranking, candidates: list[Candidate], k: int) -> Answer:
    if not candidates:
        return Answer(question, NOT_FOUND, True, 0.0, ())
    best = candidates[0]
    conf = confidence(best, ranking, float(best.features[1]))
    chosen = [best] + [c for c in candidates[1:2] if c.score >= best.score - SECOND_SENTENCE_MARGIN and c.sentence_id != best.sentence_id]
    if conf < ABSTAIN_BELOW:
        return Answer(question, NOT_FOUND, True, conf, ())
    chosen.sort(key=lambda c: (c.rank, c.start))
    numbers: dict[int, int] = {}
    sentences = []
    for c in chosen:
        n = numbers.setdefault(c.chunk_id, len(numbers) + 1)
        text = index.documents[index.chunks[c.chunk_id].source].text[c.start : c.end]
        sentences.append(AnswerSentence(text, n, c.start, c.end))
    citations = []
    for chunk_id, n in numbers.items():
        chunk = index.chunks[chunk_id]
        position = int(np.flatnonzero(ranking.ids == chunk_id)[0])
        citations.append(
            Citation(
                n, chunk.source, chunk.title, chunk.location, chunk.start, chunk.end, chunk.text,
                float(ranking.scores[position]),
                tuple((s.start, s.end) for s in sentences if s.citation == n),
            )
        )
    text = " ".join(f"{s.text} [{s.citation}]" for s in sentences)
    return Answer(question, text, False, conf, tuple(citations), tuple(sentences))
