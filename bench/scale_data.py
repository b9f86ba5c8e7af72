"""Realistic chunk vectors at any scale, made cheaply from a real sample.

Embedding a million chunks takes hours on two CPUs, and uniform random vectors are useless for an
ANN study (every point is about equally far from every other, so recall means nothing). So: index
a real sample with qa itself (SciFact abstracts, SQuAD paragraphs and, when present, the real
documents corpus, chunked and embedded by qa's own build), then make each new vector from one real
"parent" chunk: a convex mix of the parent and one or two of its nearest real neighbours, plus a
little Gaussian noise, renormalized. A made chunk carries its parent's real text, title and
sentence spans; its sentence vectors are the parent's, moved by the same offset. Questions are real
questions (SciFact claims, SQuAD questions) encoded with qa.embed.Embedder.

Everything slow is cached under --cache (default /tmp/qa-scale), never in the repo.

    python bench/scale_data.py                   # build/reuse the sample, compare real vs made
    python bench/scale_data.py --cache DIR --noise 0.3
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import DATA, scifact, squad  # noqa: E402

DEFAULT_CACHE = Path("/tmp/qa-scale")
REALDOCS = Path("/work/realdocs/corpus")
NEIGHBOURS = 10  # a made vector mixes its parent with some of the parent's 10 nearest real chunks
DEFAULT_NOISE = 0.3  # norm of the Gaussian noise added before renormalizing (vectors have norm 1)
METHOD = ("convex mix of a real chunk vector and 1-2 of its 10 nearest real neighbours (parent weight 0.55-0.9)"
          " + Gaussian noise of norm {noise}, renormalized")


@dataclass
class RealSample:
    """Real chunks as qa indexed them: vector, title, text, sentence spans (offsets in the chunk
    text) and sentence vectors."""

    vectors: np.ndarray  # (n, d) float32, normalized
    titles: list[str]
    texts: list[str]
    sentence_spans: list[np.ndarray]  # per chunk, (m, 2) int64
    sentence_vectors: np.ndarray  # (total sentences, d) float16
    sentence_ptr: np.ndarray  # chunk i owns sentence rows ptr[i]:ptr[i+1]
    neighbours: np.ndarray  # (n, NEIGHBOURS) the nearest other real chunks of each

    def __len__(self) -> int:
        return len(self.texts)


def _sources(cache: Path, realdocs: Path | None) -> list[tuple[str, Path]]:
    scifact(cache / "real" / "scifact" / "corpus")
    squad(cache / "real" / "squad" / "corpus")
    sources = [("scifact", cache / "real" / "scifact" / "corpus"), ("squad", cache / "real" / "squad" / "corpus")]
    if realdocs is not None and realdocs.is_dir():
        sources.append(("realdocs", realdocs))
    return sources


def real_sample(cache: Path = DEFAULT_CACHE, realdocs: Path | None = REALDOCS) -> RealSample:
    """The real chunks of the sample corpora, indexed by qa (built once, then read from the cache)."""
    folder = cache / "sample"
    if not (folder / "done").is_file():
        _write_sample(folder, _sources(cache, realdocs), cache)
    meta = [json.loads(line) for line in open(folder / "chunks.jsonl")]
    with np.load(folder / "sentences.npz") as sentences:
        sentence_vectors, ptr = sentences["vectors"], sentences["ptr"]
    return RealSample(
        vectors=np.load(folder / "vectors.npy"),
        titles=[m["title"] for m in meta],
        texts=[m["text"] for m in meta],
        sentence_spans=[np.array(m["spans"], dtype=np.int64).reshape(-1, 2) for m in meta],
        sentence_vectors=sentence_vectors,
        sentence_ptr=ptr,
        neighbours=np.load(folder / "neighbours.npy"),
    )


def _write_sample(folder: Path, sources: list[tuple[str, Path]], cache: Path) -> None:
    from qa.config import DEFAULT_MODEL
    from qa.pipeline import build
    from qa.store import open_index

    folder.mkdir(parents=True, exist_ok=True)
    vectors, sentence_vectors, counts = [], [], []
    with open(folder / "chunks.jsonl", "w") as out:
        for name, corpus in sources:
            index_dir = cache / "real" / name / "index"
            report = build(corpus, index_dir, DEFAULT_MODEL)  # incremental: reused when unchanged
            print(f"real sample {name}: {report.chunks} chunks ({report.embedded} files embedded, "
                  f"{report.reused} reused)", file=sys.stderr)
            index = open_index(index_dir)
            ids = range(index.id_space)  # a fresh build: every chunk id is live
            vectors.append(index.chunk_vectors(ids))
            for i in ids:
                chunk = index.chunk(i)
                spans = [[s - chunk.start, e - chunk.start] for s, e, _ in index.sentence_texts(i)]
                out.write(json.dumps({"origin": name, "title": chunk.title, "text": chunk.text,
                                      "spans": spans}, ensure_ascii=False) + "\n")
                sentence_vectors.append(index.sentence_vectors([i]))
                counts.append(len(spans))
    all_vectors = np.concatenate(vectors).astype(np.float32)
    np.save(folder / "vectors.npy", all_vectors)
    np.savez(folder / "sentences.npz", vectors=np.concatenate(sentence_vectors).astype(np.float16),
             ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    np.save(folder / "neighbours.npy", nearest(all_vectors, all_vectors, NEIGHBOURS, exclude_self=True)[1])
    (folder / "done").write_text("")


def nearest(queries: np.ndarray, base: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product (FAISS flat search). With exclude_self, queries are
    base[0:len(queries)] and each one's own row is left out of its results."""
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k + exclude_self)
    if not exclude_self:
        return scores, ids
    # drop each row's own id (or its last hit, when a duplicate outranked it)
    own = ids == np.arange(len(queries))[:, None]
    own[~own.any(axis=1), -1] = True
    keep = ~own
    return scores[keep].reshape(len(queries), k), ids[keep].reshape(len(queries), k)


@dataclass
class MadeChunks:
    """Made vectors and, for each, the real chunk whose text and sentences it carries."""

    vectors: np.ndarray  # (n, d) float32, normalized
    parents: np.ndarray  # (n,) row in the real sample
    method: str


def make_vectors(sample: RealSample, n: int, seed: int = 0, noise: float = DEFAULT_NOISE,
                 block: int = 100_000) -> MadeChunks:
    """n made chunk vectors. Parents cycle through shuffled passes over the sample, so each real
    chunk fathers about the same number; the same arguments always give the same vectors."""
    rng = np.random.default_rng(seed)
    real = sample.vectors
    d = real.shape[1]
    passes = -(-n // len(real))
    parents = np.concatenate([rng.permutation(len(real)) for _ in range(passes)])[:n]
    vectors = np.empty((n, d), np.float32)
    for start in range(0, n, block):
        p = parents[start : start + block]
        m = len(p)
        # partners: two of the parent's nearest real chunks; the second gets weight 0 half the time
        picks = rng.integers(0, NEIGHBOURS, size=(m, 2))
        partners = np.take_along_axis(sample.neighbours[p], picks, axis=1)
        w_parent = rng.uniform(0.55, 0.9, size=m)
        split = rng.uniform(0, 1, size=m) * (rng.uniform(size=m) < 0.5)
        w1 = (1 - w_parent) * (1 - split)
        w2 = (1 - w_parent) * split
        mixed = (w_parent[:, None] * real[p] + w1[:, None] * real[partners[:, 0]]
                 + w2[:, None] * real[partners[:, 1]])
        mixed += rng.standard_normal((m, d), dtype=np.float32) * (noise / np.sqrt(d))
        vectors[start : start + m] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return MadeChunks(vectors, parents, METHOD.format(noise=noise))


def made_sentence_vectors(sample: RealSample, made: MadeChunks, i: int) -> np.ndarray:
    """The sentence vectors of made chunk i: its parent's, moved as the chunk vector was."""
    parent = int(made.parents[i])
    rows = sample.sentence_vectors[sample.sentence_ptr[parent] : sample.sentence_ptr[parent + 1]].astype(np.float32)
    moved = rows + (made.vectors[i] - sample.vectors[parent])
    return (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float16)


def real_questions(cache: Path = DEFAULT_CACHE) -> tuple[list[str], np.ndarray]:
    """SciFact claims and SQuAD questions, and their real query vectors (encoded once, cached)."""
    texts = [json.loads(line)["text"] for line in open(DATA / "scifact" / "queries.train.jsonl")]
    texts += [q.question for q in squad(cache / "real" / "squad" / "corpus")]
    path = cache / "questions.npy"
    if path.is_file():
        vectors = np.load(path)
        if len(vectors) == len(texts):
            return texts, vectors
    from qa.config import DEFAULT_MODEL
    from qa.embed import Embedder

    vectors = Embedder(DEFAULT_MODEL).encode_queries(texts)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return texts, vectors


def _quantiles(values: np.ndarray) -> str:
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return " ".join(f"{v:6.3f}" for v in q)


def _nn_similarity(vectors: np.ndarray, probes: int, rng) -> np.ndarray:
    """Similarity of `probes` members of the set to their nearest other member."""
    rows = rng.choice(len(vectors), size=min(probes, len(vectors)), replace=False)
    order = np.concatenate([rows, np.setdiff1d(np.arange(len(vectors)), rows)])
    return nearest(vectors[order[: len(rows)]], vectors[order], 1, exclude_self=True)[0][:, 0]


def compare(sample: RealSample, questions: np.ndarray, noise: float = DEFAULT_NOISE, probes: int = 2000) -> dict:
    """Print how made vectors compare with real ones, at the same set size and beyond; return the
    medians as a dict."""
    rng = np.random.default_rng(1)
    real = sample.vectors
    n = len(real)
    made = make_vectors(sample, 4 * n, seed=7, noise=noise).vectors
    same = made[:n]
    pairs = rng.integers(0, n, size=(20000, 2))

    def describe(vectors):
        centred = vectors - vectors.mean(axis=0)
        spectrum = np.linalg.svd(centred[rng.choice(len(vectors), 10000, replace=False)], compute_uv=False) ** 2
        return {
            "nn": _nn_similarity(vectors, probes, rng),
            "pair": np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]]),
            "q_top1": nearest(questions, vectors, 10)[0][:, 0],
            "q_top10": nearest(questions, vectors, 10)[0][:, 9],
            "mean_norm": float(np.linalg.norm(vectors.mean(axis=0))),
            "top10_variance": float(spectrum[:10].sum() / spectrum.sum()),
        }

    r, m = describe(real), describe(same)
    print(f"real sample: {n} chunks; made: {METHOD.format(noise=noise)}")
    print(f"{'quantiles 5/25/50/75/95%':38s} {'real':>34s}   {'made (same count)':>34s}")
    for key, label in [("nn", "nearest-other-chunk similarity"), ("pair", "random pair cosine"),
                       ("q_top1", "question -> top-1 similarity"), ("q_top10", "question -> 10th similarity")]:
        print(f"{label:38s} {_quantiles(r[key]):>34s}   {_quantiles(m[key]):>34s}")
    print(f"{'norm of the mean vector':38s} {r['mean_norm']:34.3f}   {m['mean_norm']:34.3f}")
    print(f"{'variance in top 10 components':38s} {r['top10_variance']:34.3f}   {m['top10_variance']:34.3f}")
    growth = {}
    for size in (n // 4, n // 2, n, 2 * n, 4 * n):
        real_nn = float(np.median(_nn_similarity(real[rng.permutation(n)[:size]], probes, rng))) if size <= n else None
        growth[size] = (real_nn, float(np.median(_nn_similarity(made[:size], probes, rng))))
    print("median nearest-other similarity as the set grows (real only up to the sample size):")
    for size, (real_nn, made_nn) in growth.items():
        real_text = f"{real_nn:.3f}" if real_nn is not None else "  -  "
        print(f"  {size:>8d} chunks: real {real_text}  made {made_nn:.3f}")
    return {
        "real_chunks": n,
        "noise": noise,
        **{f"{key}_median_real": round(float(np.median(r[key])), 4) for key in ("nn", "pair", "q_top1", "q_top10")},
        **{f"{key}_median_made": round(float(np.median(m[key])), 4) for key in ("nn", "pair", "q_top1", "q_top10")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the sample and its vectors are kept")
    parser.add_argument("--realdocs", type=Path, default=REALDOCS, help="a real documents folder to add to the sample")
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE)
    args = parser.parse_args()
    sample = real_sample(args.cache, args.realdocs)
    _, questions = real_questions(args.cache)
    print(json.dumps(compare(sample, questions, args.noise)))


if __name__ == "__main__":
    main()
