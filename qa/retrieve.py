"""Question -> ranked Passages: dense (FAISS inner product), lexical (BM25) and their fusion.

Fusion is a weighted sum of the two scores, each scaled to [0, 1] over the candidate pool (the
union of both top lists). Plain reciprocal-rank fusion throws away how far ahead the leader is,
and on question-style data BM25's margin is the stronger signal; the weight was chosen on
SciFact and SQuAD (bench/quality.py) so the fused ranking beats either side on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.store import Index
from qa.types import Passage

MODES = ("hybrid", "dense", "lexical")
DENSE_WEIGHT = 0.6
POOL = 100  # candidates taken from each side before fusing


@dataclass(frozen=True)
class Ranking:
    """Scores of the candidate chunks for one query, best first."""

    ids: np.ndarray
    scores: np.ndarray
    dense: np.ndarray  # cosine similarity of each candidate
    lexical: np.ndarray  # BM25 score of each candidate


def _scale(x: np.ndarray) -> np.ndarray:
    low, high = float(x.min()), float(x.max())
    return (x - low) / (high - low) if high > low else np.ones_like(x)


def rank(
    index: Index, query_vector: np.ndarray, query_terms: list[str], mode: str = "hybrid", pool: int = POOL
) -> Ranking:
    pool = min(pool, index.chunk_count)
    dense_ids, dense_scores = index.dense_search(query_vector, pool)
    lexical_all = index.lexical_scores(query_terms)  # by chunk id; deleted chunks score -inf
    n = len(lexical_all)
    if pool < n:
        # the chunks holding a query term, so a million-chunk index partitions a few thousand scores
        held = np.flatnonzero(lexical_all > 0)
        if len(held) < pool:  # as many others as fill the pool, as a partition of all scores would
            others = np.flatnonzero(lexical_all == 0)[: pool - len(held)]
            lexical_ids = np.concatenate([held, others])
        else:
            lexical_ids = held[np.argpartition(-lexical_all[held], pool - 1)[:pool]]
    else:
        lexical_ids = np.arange(n)
    ids = np.union1d(dense_ids[dense_ids >= 0], lexical_ids)
    dense = np.empty(len(ids), dtype=np.float32)
    known = dict(zip(dense_ids.tolist(), dense_scores.tolist()))
    missing = [i for i in ids.tolist() if i not in known]
    if missing:
        known.update(zip(missing, index.dense_scores(missing, query_vector).tolist()))
    dense[:] = [known[i] for i in ids.tolist()]
    lexical = lexical_all[ids].astype(np.float32)
    if mode == "dense":
        scores = dense
    elif mode == "lexical":
        scores = lexical
    else:
        scores = DENSE_WEIGHT * _scale(dense) + (1 - DENSE_WEIGHT) * _scale(lexical)
    order = np.argsort(-scores, kind="stable")
    return Ranking(ids[order], scores[order], dense[order], lexical[order])


def passages(index: Index, ranking: Ranking, k: int) -> list[Passage]:
    return [Passage(int(i), index.chunk(int(i)), float(s)) for i, s in zip(ranking.ids[:k], ranking.scores[:k])]
