"""The index store at scale: write a synthetic index of N chunks through qa.save.save_build (real
SciFact text; vectors made by adding noise to the real vectors of a few hundred embedded
abstracts), then, in a fresh process, open it and print the open time, the memory (RSS) after
opening and after queries, and the cost per query of dense search, BM25 and the whole ranking;
then the cost of adding, changing and deleting one file incrementally.

    python bench/store.py --chunks 200000 [--folder /tmp/qa-store-bench] [--ann-threshold 50000]

The writer is the one bench/scale.py-style tools use: save_build(folder, entries, manifest,
dimension) takes any iterable of FileEntry and keeps one entry in memory at a time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCIFACT = Path("/work/shared/data/scifact")
CHUNKS_PER_FILE = 100
BASE_VECTORS = 300


def rss_mb(kind: str = "VmRSS") -> float:
    """Resident memory: VmRSS in all, RssAnon the process's own, RssFile pages of mapped files
    (the page cache's, dropped under memory pressure)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss() -> str:
    return f"{rss_mb():.0f} MB (own {rss_mb('RssAnon'):.0f}, mapped files {rss_mb('RssFile'):.0f})"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def abstracts() -> list[tuple[str, str]]:
    with gzip.open(SCIFACT / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        return [(r["title"], r["text"]) for r in map(json.loads, f) if r["text"].strip()]


def entries(n_files: int, texts, base: np.ndarray, seed: int = 0):
    """FileEntry after FileEntry: each file one document of CHUNKS_PER_FILE abstracts, one chunk each."""
    from qa.chunk import sentence_spans
    from qa.store import FileEntry
    from qa.types import Chunk, Document

    rng = np.random.default_rng(seed)
    for f in range(n_files):
        picked = [texts[(f * CHUNKS_PER_FILE + j) % len(texts)] for j in range(CHUNKS_PER_FILE)]
        bodies = [f"{title}. {text}" for title, text in picked]
        text = "\n\n".join(bodies)
        source = f"synthetic/{f:06d}.txt"
        document = Document(source, picked[0][0], text)
        chunks, spans, start = [], [], 0
        for body in bodies:
            chunks.append(Chunk(source, document.title, "", start, start + len(body), body))
            spans.append(np.array(sentence_spans(body), dtype=np.int64).reshape(-1, 2) + start)
            start += len(body) + 2
        rows = (f * CHUNKS_PER_FILE + np.arange(CHUNKS_PER_FILE)) % len(base)
        vectors = base[rows] + rng.normal(0, 0.03, (CHUNKS_PER_FILE, base.shape[1])).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        sentence_vectors = [(np.repeat(v[None], len(s), 0) + rng.normal(0, 0.05, (len(s), len(v)))).astype(np.float16)
                            for v, s in zip(vectors, spans)]
        yield FileEntry(source, f"sha-{seed}-{f}", [document], chunks, vectors, spans, sentence_vectors)


def write(folder: Path, n_chunks: int, ann_threshold: int) -> None:
    from qa.config import DEFAULT_MODEL
    from qa.embed import Embedder
    from qa.save import save_build

    texts = abstracts()
    embedder = Embedder(DEFAULT_MODEL)
    sample = [f"{t}. {x}" for t, x in texts[:BASE_VECTORS]]
    base = embedder.encode_documents(sample, [[] for _ in sample])[0].astype(np.float32)
    np.save(folder.parent / "base-vectors.npy", base)
    del embedder
    before = rss_mb()
    started = time.perf_counter()
    manifest = {"model": DEFAULT_MODEL, "chunking": {"tokens": 200, "overlap": 32}, "built_at": "", "build_seconds": 0,
                "skipped": [], "versions": {}}
    save_build(folder, entries(n_chunks // CHUNKS_PER_FILE, texts, base), manifest, base.shape[1],
               ann_threshold=ann_threshold)
    print(f"write: {n_chunks:,} chunks in {time.perf_counter() - started:.1f} s, "
          f"writer RSS {before:.0f} -> peak {peak_rss_mb():.0f} MB")
    size = sum(p.stat().st_size for p in (folder / "current").resolve().rglob("*") if p.is_file())
    print(f"on disk: {size / 1e9:.2f} GB")


def measure(folder: Path) -> None:
    """In a fresh process: open, query, and change one file."""
    from qa.lexical import tokenize
    from qa.retrieve import passages, rank
    from qa.save import save_build
    from qa.store import open_index

    before = rss_mb()
    started = time.perf_counter()
    index = open_index(folder)
    opened = time.perf_counter() - started
    print(f"open: {opened * 1000:.1f} ms, RSS {before:.0f} -> {rss()} "
          f"({index.chunk_count:,} chunks, {len(index.segments)} segment(s), "
          f"dense {[s['dense']['kind'] for s in index.manifest['segments']]})")
    base = np.load(folder.parent / "base-vectors.npy")
    queries = [json.loads(line)["text"] for line in open(SCIFACT / "queries.train.jsonl")][:30]
    rng = np.random.default_rng(1)
    timings = {"dense_search": [], "lexical_scores": [], "rank+passages": []}
    for i, query in enumerate(queries):
        vector = base[i * 7 % len(base)] + rng.normal(0, 0.03, base.shape[1]).astype(np.float32)
        vector /= np.linalg.norm(vector)
        terms = tokenize(query)
        t0 = time.perf_counter()
        index.dense_search(vector, 100)
        t1 = time.perf_counter()
        index.lexical_scores(terms)
        t2 = time.perf_counter()
        passages(index, rank(index, vector, terms), 5)
        t3 = time.perf_counter()
        for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2)):
            timings[name].append(seconds * 1000)
    for name, ms in timings.items():
        print(f"per query {name}: median {np.median(ms):.1f} ms, max {max(ms):.1f} ms (over {len(ms)} queries)")
    print(f"RSS after {len(queries)} queries: {rss()}")

    # BM25 over five times the chunks: the segments' postings counted five times over, as a corpus
    # five times larger of the same text would hold them (1M chunks from 200,000)
    from qa.lexical import Lexical, Part

    lex = index.lexical
    n = index.id_space
    scaled = Lexical([Part(p.postings, p.offset + i * n, p.deleted) for i in range(5) for p in lex.parts], 5 * n,
                     5 * lex.n_docs, round(5 * lex.n_docs * lex.avg_length))
    ms = []
    for query in queries:
        started = time.perf_counter()
        scaled.scores(tokenize(query))
        ms.append((time.perf_counter() - started) * 1000)
    print(f"per query lexical_scores over {5 * lex.n_docs:,} chunks: median {np.median(ms):.1f} ms, "
          f"max {max(ms):.1f} ms")

    for verify in ("changed", True):
        started = time.perf_counter()
        open_index(folder, verify=verify)
        print(f"open with verify={verify!r}: {time.perf_counter() - started:.2f} s")

    texts = abstracts()
    manifest = {k: v for k, v in index.manifest.items()
                if k not in ("format_version", "counts", "files", "segments", "dense", "build_files", "build_stats")}
    one = list(entries(1, texts[::-1], base, seed=7))
    one[0].file = "synthetic/added.txt"
    added = {"synthetic/added.txt"}  # dropped first too, so a second run adds it again rather than twice
    for what, new, drop in (("add one file", one, added), ("change one file", one, added),
                            ("delete one file", [], {"synthetic/000003.txt"})):
        started = time.perf_counter()
        save_build(folder, new, manifest, index.manifest["dimension"], base=open_index(folder, verify="changed"),
                   drop=drop, ann_threshold=index.manifest["dense"]["ann_threshold"])
        print(f"{what} ({CHUNKS_PER_FILE} chunks) incrementally: {time.perf_counter() - started:.2f} s")
    index = open_index(folder)
    print(f"after: {len(index.segments)} segments, {index.chunk_count:,} live chunks of {index.id_space:,} ids")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/qa-store-bench/index"))
    parser.add_argument("--ann-threshold", type=int, default=None)
    parser.add_argument("--measure-only", action="store_true", help="measure an index written before")
    args = parser.parse_args()
    if not args.measure_only:
        from qa.dense import ANN_THRESHOLD

        shutil.rmtree(args.folder, ignore_errors=True)
        args.folder.mkdir(parents=True)
        write(args.folder, args.chunks, args.ann_threshold or ANN_THRESHOLD)
    # a fresh process, so the open is measured without the writer's memory
    subprocess.run([sys.executable, __file__, "--folder", str(args.folder), "--measure-only", "--_child"], check=True)


if __name__ == "__main__":
    if "--_child" in sys.argv:
        sys.argv.remove("--_child")
        measure(Path(sys.argv[sys.argv.index("--folder") + 1]))
    else:
        main()
