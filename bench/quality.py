"""Retrieval and answer quality on the development data in ../shared/data.

    python bench/quality.py

SciFact: nDCG@10 and Recall@100 of lexical, dense and the default (hybrid) ranking, a document
scoring as its best chunk. SQuAD: paragraph Recall@1/@5 and MRR@10 for the same three; then the
default answerer end to end: answer hit rate (a gold answer inside the answer), citation hit rate
(the gold paragraph cited), abstention precision/recall on the unanswerable questions, AUROC of
the confidence between answerable and unanswerable ones, and how many off-topic questions (SciFact
claims and bench/off_topic_questions.txt, asked of the SQuAD corpus) are declined.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import bench_index, off_topic_questions  # noqa: E402
from qa.batch import Expected, score  # noqa: E402
from qa.lexical import tokenize  # noqa: E402
from qa.retrieve import MODES, rank  # noqa: E402

POOL = 300  # chunks ranked per query, enough for 100 distinct documents


def ranked_sources(qa, queries: list[str], mode: str) -> list[list[str]]:
    vectors = qa.embedder.encode_queries(queries)
    out = []
    for query, vector in zip(queries, vectors):
        ranking = rank(qa.index, vector, tokenize(query), mode, pool=POOL)
        sources = dict.fromkeys(qa.index.chunk(int(i)).source for i in ranking.ids)
        out.append(list(sources))
    return out


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sum(r / math.log2(i + 2) for i, r in enumerate(sorted(relevant.values(), reverse=True)[:10]))
    return dcg / ideal if ideal else 0.0


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    values = np.r_[positive, negative]
    ranks = np.empty(len(values))
    order = values.argsort(kind="mergesort")
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # average ranks of ties
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return (ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))


def scifact_retrieval() -> None:
    qa, queries = bench_index("scifact")
    print(f"SciFact train: {len(queries)} claims, {qa.index.chunk_count:,} chunks")
    for mode in MODES:
        ranked = ranked_sources(qa, [q.query for q in queries], mode)
        ndcg = np.mean([ndcg_at_10(r, q.relevant) for r, q in zip(ranked, queries)])
        recall = np.mean([len(set(r[:100]) & q.relevant.keys()) / len(q.relevant) for r, q in zip(ranked, queries)])
        print(f"  {mode:8s} nDCG@10 {ndcg:.4f}  Recall@100 {recall:.4f}")


def squad_quality() -> None:
    qa, questions = bench_index("squad")
    answerable = [q for q in questions if q.answers]
    impossible = [q for q in questions if not q.answers]
    print(
        f"SQuAD v2 dev half: {len(answerable)} answerable, {len(impossible)} unanswerable questions, "
        f"{qa.index.chunk_count} chunks"
    )
    for mode in MODES:
        ranked = ranked_sources(qa, [q.question for q in answerable], mode)
        rank_of = [r.index(q.source) + 1 if q.source in r else math.inf for r, q in zip(ranked, answerable)]
        print(
            f"  {mode:8s} paragraph Recall@1 {np.mean([r <= 1 for r in rank_of]):.4f}  "
            f"Recall@5 {np.mean([r <= 5 for r in rank_of]):.4f}  "
            f"MRR@10 {np.mean([1 / r if r <= 10 else 0 for r in rank_of]):.4f}"
        )

    started = time.perf_counter()
    answers = qa.ask_many([q.question for q in questions])
    seconds = time.perf_counter() - started
    metrics = score([Expected(q.question, q.answers, q.source if q.answers else None) for q in questions], answers)
    print(
        f"  answers ({len(questions) / seconds:.0f} questions/s): answer hit rate {metrics.answer_hit_rate:.4f}, "
        f"citation hit rate {metrics.citation_hit_rate:.4f}, "
        f"sentences per answer {np.mean([len(a.sentences) for a in answers if not a.abstained]):.2f}"
    )
    print(
        f"  abstention on unanswerable: precision {metrics.abstention_precision:.4f}, "
        f"recall {metrics.abstention_recall:.4f}; answerable wrongly declined "
        f"{np.mean([a.abstained for a, q in zip(answers, questions) if q.answers]):.4f}"
    )
    confidence = {id(q): a.confidence for q, a in zip(questions, answers)}
    separation = auroc(
        np.array([confidence[id(q)] for q in answerable]), np.array([confidence[id(q)] for q in impossible])
    )
    print(f"  confidence AUROC answerable vs unanswerable: {separation:.4f}")

    _, scifact_queries = bench_index("scifact")
    for label, off_topic in (
        ("SciFact claims", [q.query for q in scifact_queries]),
        ("own off-topic", off_topic_questions()),
    ):
        declined = np.mean([a.abstained for a in qa.ask_many(off_topic)])
        print(f"  off-topic declined ({label}, {len(off_topic)}): {declined:.4f}")


if __name__ == "__main__":
    scifact_retrieval()
    squad_quality()
