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
from qa.retrieve import Ranking
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
# question's weighted words in the best sentence, the same in its passage]. The bias puts 0.5 at
# the point that declines 3% of answerable questions.
CONFIDENCE_WEIGHTS = np.array([5.764, 6.226, 3.94, 5.011])
CONFIDENCE_BIAS = -8.108
ABSTAIN_BELOW = 0.5


_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion|dozen)\b", re.I
)
_MONTH = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December|century|decade)\b"
)
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
    chunk_id: int
    rank: int  # of its passage, from 0
    start: int  # document offsets of the sentence
    end: int
    features: np.ndarray
    score: float


def _share(weights: dict[str, float], words: set[str], total: float) -> float:
    return sum(w for t, w in weights.items() if t in words) / total


def sentence_candidates(
    index: Index, ranking: Ranking, question: str, query_vector: np.ndarray, terms: list[str], k: int = 5
) -> list[Candidate]:
    """Every sentence of the top k passages, scored, best first."""
    weights = {t: index.lexical.idf(t) for t in set(terms)}
    total = sum(weights.values()) or 1.0
    kind = _question_type(question)
    read = min(len(ranking.ids), k)
    top, low = float(ranking.scores[0]), float(ranking.scores[read - 1])
    rows, owners = [], []
    for rank, chunk_id in enumerate(ranking.ids[:read].tolist()):
        sentences = index.chunk_sentences(chunk_id)
        if not len(sentences):
            continue
        text = index.documents[index.chunks[chunk_id].source].text
        spans = index.sentence_spans[sentences.start : sentences.stop].tolist()
        dense = index.sentence_vectors[sentences.start : sentences.stop].astype(np.float32) @ query_vector
        term_sets = index.sentence_terms(chunk_id)
        passage_overlap = _share(weights, set().union(*term_sets), total)
        passage = (float(ranking.scores[rank]) - low) / (top - low) if top > low else 1.0
        for j, (s, e) in enumerate(spans):
            words = term_sets[j]
            neighbours = (term_sets[j - 1] if j else set()) | (term_sets[j + 1] if j + 1 < len(spans) else set())
            rows.append(
                [
                    dense[j],
                    _share(weights, words, total),
                    _share(weights, neighbours - words, total),
                    passage,
                    float(j == 0),
                    len(words - weights.keys()) / max(1, len(words)),
                    _has_type(text[s:e], kind, question),
                    float(len(text[s:e].split()) < 5),
                    passage_overlap,
                ]
            )
            owners.append((chunk_id, rank, s, e))
    if not rows:
        return []
    matrix = np.array(rows, dtype=np.float32)
    scores = matrix @ SENTENCE_WEIGHTS
    order = np.argsort(-scores, kind="stable")
    return [Candidate(*owners[i], features=matrix[i], score=float(scores[i])) for i in order]


def confidence(best: Candidate, ranking: Ranking) -> float:
    f = best.features
    signals = np.array([float(ranking.dense.max()), f[0], f[1], f[8]])
    return 1.0 / (1.0 + math.exp(-(float(signals @ CONFIDENCE_WEIGHTS) + CONFIDENCE_BIAS)))


def choose(candidates: list[Candidate]) -> list[Candidate]:
    """The best sentence, and the best one from another passage if it is nearly as good."""
    best = candidates[0]
    runner_up = next((c for c in candidates[1:] if c.chunk_id != best.chunk_id), None)
    if runner_up is not None and runner_up.score >= best.score - SECOND_SENTENCE_MARGIN:
        return [best, runner_up]
    return [best]


def compose(index: Index, question: str, ranking: Ranking, candidates: list[Candidate]) -> Answer:
    if not candidates:
        return Answer(question, NOT_FOUND, True, 0.0, ())
    conf = confidence(candidates[0], ranking)
    if conf < ABSTAIN_BELOW:
        return Answer(question, NOT_FOUND, True, conf, ())
    chosen = choose(candidates)
    numbers: dict[int, int] = {}
    for c in chosen:
        numbers.setdefault(c.chunk_id, len(numbers) + 1)
    sentences = tuple(
        AnswerSentence(
            index.documents[index.chunks[c.chunk_id].source].text[c.start : c.end], numbers[c.chunk_id], c.start, c.end
        )
        for c in chosen
    )
    citations = []
    for chunk_id, n in numbers.items():
        chunk = index.chunks[chunk_id]
        score = float(ranking.scores[int(np.flatnonzero(ranking.ids == chunk_id)[0])])
        highlights = tuple((s.start, s.end) for s in sentences if s.citation == n)
        citations.append(
            Citation(
                n, chunk.source, chunk.title, chunk.location, chunk.start, chunk.end, chunk.text, score, highlights
            )
        )
    text = " ".join(f"{s.text} [{s.citation}]" for s in sentences)
    return Answer(question, text, False, conf, tuple(citations), sentences)
