"""Fit the answer-selection weights and the abstention model of qa/answer.py, and print them.

Sentence weights: pairwise logistic regression on SQuAD answerable questions (the sentences
holding a gold answer should outrank the other sentences of the same question's top passages).
Confidence: logistic regression of answerable SQuAD questions against off-topic questions (SciFact
claims and bench/off_topic_questions.txt asked of the SQuAD corpus); its bias is shifted so that
0.5 declines 3% of the answerable questions. Article-wise 2-fold results are printed first, so
the fit is judged on questions about articles it did not see.

    python bench/fit_answer.py            (needs the bench extra: scikit-learn)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import CACHE, bench_index, off_topic_questions, scifact  # noqa: E402
from qa import answer, reading  # noqa: E402
from qa.lexical import tokenize  # noqa: E402
from qa.retrieve import rank  # noqa: E402

DECLINE_ANSWERABLE = 0.03


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def collect(qa, questions, answers_of, sources_of):
    """Per question: the candidate sentences' features, which hold a gold answer, which come from
    the gold source, and the top passage cosine."""
    vectors = qa.embedder.encode_queries(questions)
    rows = []
    for question, vector, answers, source in zip(questions, vectors, answers_of, sources_of):
        terms = tokenize(question)
        ranking = rank(qa.index, vector, terms)
        candidates = answer.sentence_candidates(qa.index, ranking, question, vector, terms)
        texts = [qa.index.document(qa.index.chunk(c.chunk_id).source).text[c.start : c.end] for c in candidates]
        rows.append(
            {
                "features": np.array([c.features for c in candidates]).reshape(-1, len(answer.FEATURES)),
                "hit": np.array([any(normalize(a) in normalize(t) for a in answers) for t in texts], dtype=bool),
                "cited": np.array([qa.index.chunk(c.chunk_id).source == source for c in candidates], dtype=bool),
                "chunks": np.array([c.chunk_id for c in candidates]),
                "top_dense": float(ranking.dense.max()),
            }
        )
    return rows


def fit_pairwise(rows) -> np.ndarray:
    rng = np.random.default_rng(0)
    x, y = [], []
    for row in rows:
        f, hit = row["features"], row["hit"]
        for p in np.flatnonzero(hit):
            for n in np.flatnonzero(~hit):
                sign = 1 if rng.random() < 0.5 else -1
                x.append(sign * (f[p] - f[n]))
                y.append(sign > 0)
    return LogisticRegression(max_iter=5000, fit_intercept=False).fit(np.array(x), np.array(y)).coef_[0]


def choose(row, weights, margin):
    scores = row["features"] @ weights
    order = np.argsort(-scores, kind="stable")
    best = order[0]
    other = [i for i in order[1:] if row["chunks"][i] != row["chunks"][best]]
    return [best] + [i for i in other[:1] if scores[i] >= scores[best] - margin]


def answer_rates(rows, weights, margin):
    chosen = [choose(r, weights, margin) if len(r["hit"]) else [] for r in rows]
    hit = np.mean([any(r["hit"][i] for i in c) for r, c in zip(rows, chosen)])
    cited = np.mean([any(r["cited"][i] for i in c) for r, c in zip(rows, chosen)])
    return hit, cited, np.mean([len(c) for c in chosen])


def signals(row, weights):
    if not len(row["hit"]):
        return np.zeros(len(answer.CONFIDENCE_WEIGHTS))
    best = row["features"][int(np.argmax(row["features"] @ weights))]
    return answer.confidence_signals(best, row["top_dense"])


def fit_confidence(positive, negative):
    x = np.vstack([positive, negative])
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    model = LogisticRegression(max_iter=5000).fit(x, y)
    logits = positive @ model.coef_[0] + model.intercept_[0]
    shift = float(np.quantile(logits, DECLINE_ANSWERABLE))
    return model.coef_[0], model.intercept_[0] - shift


def main() -> None:
    qa, squad_questions = bench_index("squad")
    answerable = [q for q in squad_questions if q.answers]
    impossible = [q for q in squad_questions if not q.answers]
    claims = [q.query for q in scifact(CACHE / "scifact" / "corpus")]
    own = off_topic_questions()
    rows = collect(
        qa, [q.question for q in answerable], [q.answers for q in answerable], [q.source for q in answerable]
    )
    article = [q.source.split("#")[1].rsplit("-", 1)[0] for q in answerable]
    folds = sorted(set(article))[::2]
    in_a = np.array([a in folds for a in article])
    rows_a = [r for r, a in zip(rows, in_a) if a]
    rows_b = [r for r, a in zip(rows, in_a) if not a]

    margin = reading.SECOND_SENTENCE_MARGIN
    w_a, w_b = fit_pairwise(rows_a), fit_pairwise(rows_b)
    for label, m in (("one sentence", -1e9), (f"margin {margin}", margin)):
        a, b = answer_rates(rows_b, w_a, m), answer_rates(rows_a, w_b, m)
        mean = (np.array(a) * len(rows_b) + np.array(b) * len(rows_a)) / len(rows)
        print(
            f"2-fold by article, {label}: answer hit {mean[0]:.3f}, citation hit {mean[1]:.3f}, sentences {mean[2]:.2f}"
        )

    weights = fit_pairwise(rows)
    print("SENTENCE_WEIGHTS =", [round(float(w), 3) for w in weights])

    negatives = collect(qa, claims + own, [()] * (len(claims) + len(own)), [None] * (len(claims) + len(own)))
    impossible_rows = collect(qa, [q.question for q in impossible], [()] * len(impossible), [None] * len(impossible))
    positive = np.array([signals(r, weights) for r in rows])
    negative = np.array([signals(r, weights) for r in negatives])
    coef, bias = fit_confidence(positive, negative)
    print("CONFIDENCE_WEIGHTS =", [round(float(w), 3) for w in coef], "CONFIDENCE_BIAS =", round(float(bias), 3))

    def declined(x):
        return (x @ coef + bias) < 0

    impossible_x = np.array([signals(r, weights) for r in impossible_rows])
    print(
        f"answerable declined {declined(positive).mean():.3f}, SciFact claims declined "
        f"{declined(negative[: len(claims)]).mean():.3f}, "
        f"own off-topic declined {declined(negative[len(claims) :]).mean():.3f}, "
        f"SQuAD impossible declined {declined(impossible_x).mean():.3f}"
    )
    scores = np.r_[positive @ coef, impossible_x @ coef]
    labels = np.r_[np.ones(len(positive)), np.zeros(len(impossible_x))]
    print(f"SQuAD v2 answerable vs impossible AUROC {roc_auc_score(labels, scores):.3f}")


if __name__ == "__main__":
    main()
