"""Which FAISS index serves a million-chunk corpus: exact vs HNSW vs IVF vs 8-bit quantized.

On N made chunk vectors (bench/scale_data.py: real MiniLM vectors mixed and perturbed, dim 384,
inner product on normalized vectors) and real encoded questions, for each kind and parameter:
recall@10 against exact search, single-query latency p50/p95 with one FAISS thread and with two,
build time, size on disk, and, in a fresh process, the time to open the index file and its
anonymous RSS (mapped file pages are page cache the kernel can drop),
read normally and memory-mapped (faiss.IO_FLAG_MMAP / IO_FLAG_MMAP_IFC; "no" when FAISS refuses or
the RSS shows it read the whole file anyway). Prints a table, then one JSON line.

    python bench/ann.py --n 100000                      # every kind
    python bench/ann.py --n 1000000 --only ivf4096,hnsw32   # the promising ones at 1M
Index files go under --cache (default /tmp/qa-scale/ann); --keep keeps them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scale_data import DEFAULT_CACHE, make_vectors, real_questions, real_sample  # noqa: E402

K = 10
LATENCY_QUERIES = 300
RECALL_QUERIES = 1000


@dataclass
class Kind:
    name: str
    factory: str  # faiss.index_factory string
    knob: str  # the search-time parameter ("" for exact)
    values: list[int] = field(default_factory=list)
    hnsw_ef_construction: int = 0


def kinds(n: int) -> list[Kind]:
    root = math.sqrt(n)
    small, large = _pow2(4 * root), _pow2(16 * root)
    probes = [8, 16, 32, 64, 128]
    efs = [16, 32, 64, 128, 256]
    return [
        Kind("flat", "Flat", ""),
        Kind("hnsw16", "HNSW16,Flat", "efSearch", efs, 100),
        Kind("hnsw32", "HNSW32,Flat", "efSearch", efs, 100),
        Kind(f"ivf{small}", f"IVF{small},Flat", "nprobe", probes),
        Kind(f"ivf{large}", f"IVF{large},Flat", "nprobe", probes),
        Kind("hnsw32sq8", "HNSW32,SQ8", "efSearch", efs, 100),
        Kind(f"ivf{small}sq8", f"IVF{small},SQ8", "nprobe", probes),
    ]


def _pow2(x: float) -> int:
    return 2 ** round(math.log2(x))


def build_index(kind: Kind, vectors: np.ndarray, threads: int,
                trained: dict[int, tuple[np.ndarray, float]]) -> tuple[faiss.Index, float]:
    """The index and its build seconds from scratch. IVF kinds of the same nlist share one k-means
    run (`trained`: nlist -> centroids and the seconds they took, counted in each build time),
    since k-means is most of an IVF build on two CPUs."""
    faiss.omp_set_num_threads(threads)
    index = faiss.index_factory(vectors.shape[1], kind.factory, faiss.METRIC_INNER_PRODUCT)
    if kind.hnsw_ef_construction:
        faiss.downcast_index(index).hnsw.efConstruction = kind.hnsw_ef_construction
    ivf = _ivf(index)
    reused_s = 0.0
    if ivf is not None and ivf.nlist in trained:
        centroids, reused_s = trained[ivf.nlist]
        ivf.quantizer.add(centroids)  # a trained quantizer of nlist centroids is not trained again
    started = time.perf_counter()
    if not index.is_trained:
        # k-means needs ~40 points a list; more only slows it
        size = min(len(vectors), 40 * max(ivf.nlist if ivf is not None else 0, 256))
        index.train(vectors[np.random.default_rng(0).choice(len(vectors), size=size, replace=False)])
        if ivf is not None and ivf.nlist not in trained:
            trained[ivf.nlist] = (ivf.quantizer.reconstruct_n(0, ivf.nlist), time.perf_counter() - started)
    for start in range(0, len(vectors), 100_000):
        index.add(vectors[start : start + 100_000])
    return index, time.perf_counter() - started + reused_s


def _ivf(index: faiss.Index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def set_knob(index: faiss.Index, kind: Kind, value: int) -> None:
    if kind.knob == "nprobe":
        _ivf(index).nprobe = value
    elif kind.knob == "efSearch":
        faiss.downcast_index(index).hnsw.efSearch = value


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(f) & set(e)) for f, e in zip(found.tolist(), exact.tolist()))
    return hits / exact.size


def latencies_ms(index: faiss.Index, queries: np.ndarray, threads: int) -> tuple[float, float]:
    faiss.omp_set_num_threads(threads)
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q.reshape(1, -1), K)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


_OPEN_CHILD = """
import resource, sys, time, faiss, numpy as np
def rss_mb(field='RssAnon:'):  # anonymous memory: mapped file pages are page cache, reclaimable
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
path, flag, knob, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
before = rss_mb()
started = time.perf_counter()
try:
    index = faiss.read_index(path, flag)
except Exception as exc:
    print('refused', str(exc).splitlines()[0][:80]); sys.exit()
open_s = time.perf_counter() - started
opened = rss_mb()
if knob == 'nprobe':
    faiss.extract_index_ivf(index).nprobe = value
elif knob == 'efSearch':
    faiss.downcast_index(index).hnsw.efSearch = value
queries = np.load(sys.argv[5])
faiss.omp_set_num_threads(1)
for q in queries:
    index.search(q.reshape(1, -1), 10)
print('ok', open_s, opened - before, rss_mb() - before, rss_mb('VmRSS:'))
"""


def open_in_child(path: Path, flag: int, kind: Kind, value: int, queries_path: Path) -> dict:
    """Open the index file in a fresh process: seconds to open, anonymous RSS added by opening and
    after 300 searches, and the whole RSS then, mapped file pages included (MB)."""
    out = subprocess.run([sys.executable, "-c", _OPEN_CHILD, str(path), str(flag), kind.knob or "-", str(value),
                          str(queries_path)], capture_output=True, text=True)
    words = out.stdout.split()
    if not words or words[0] != "ok":
        return {"ok": False, "why": " ".join(words[1:]) or out.stderr.strip().splitlines()[-1][:80]}
    return {"ok": True, "open_s": round(float(words[1]), 3), "rss_open_mb": round(float(words[2])),
            "rss_search_mb": round(float(words[3])), "rss_with_mapped_mb": round(float(words[4]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="made chunk vectors")
    parser.add_argument("--only", default="", help="comma-separated kind names (see the table); default all")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for building")
    parser.add_argument("--keep", action="store_true", help="keep the index files")
    parser.add_argument("--real", action="store_true",
                        help="the real sample's own vectors instead of N made ones: do made vectors behave alike?")
    args = parser.parse_args()

    sample = real_sample(args.cache)
    _, questions = real_questions(args.cache)
    if args.real:
        vectors, method = sample.vectors, "the real sample itself"
        args.n = len(vectors)
    else:
        made = make_vectors(sample, args.n)
        vectors, method = made.vectors, made.method
    rng = np.random.default_rng(3)
    picked = questions[rng.choice(len(questions), size=min(RECALL_QUERIES, len(questions)), replace=False)]
    latency_queries = picked[:LATENCY_QUERIES]
    work = args.cache / "ann"
    work.mkdir(parents=True, exist_ok=True)
    queries_path = work / f"latency-queries-{args.n}.npy"
    np.save(queries_path, latency_queries)

    faiss.omp_set_num_threads(args.threads)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(picked, K)
    del exact

    wanted = set(filter(None, args.only.split(",")))
    trained: dict[int, tuple[np.ndarray, float]] = {}
    rows = []
    print(f"N={args.n} vectors ({method}); {len(picked)} real questions for recall, "
          f"{len(latency_queries)} for latency; build threads {args.threads}", flush=True)
    header = (f"{'kind':16s} {'param':>12s} {'recall@10':>9s} {'p50 1t':>7s} {'p95 1t':>7s} {'p50 2t':>7s} "
              f"{'p95 2t':>7s} {'build s':>8s} {'disk MB':>8s} {'open s':>7s} {'RSS MB':>7s} {'mmap':>22s}")
    print(header, flush=True)
    for kind in kinds(args.n):
        if wanted and kind.name not in wanted:
            continue
        index, build_s = build_index(kind, vectors, args.threads, trained)
        path = work / f"{kind.name}-{args.n}.faiss"
        faiss.write_index(index, str(path))
        disk_mb = path.stat().st_size / 1e6
        # opened in a fresh process once per kind, searched at its costliest setting
        last = (kind.values or [0])[-1]
        plain = open_in_child(path, 0, kind, last, queries_path)
        mapped, tried = {}, {}
        for flag_name in ("IO_FLAG_MMAP", "IO_FLAG_MMAP_IFC"):
            result = open_in_child(path, getattr(faiss, flag_name), kind, last, queries_path)
            # a mapping that still reads the file into anonymous memory saves nothing
            if result["ok"] and result["rss_open_mb"] < 0.5 * plain.get("rss_open_mb", 0):
                mapped = {"flag": flag_name, **result}
                break
            tried[flag_name] = result.get("why") or f"reads it all ({result.get('rss_open_mb')} MB)"
        mapped["tried"] = tried
        for value in kind.values or [0]:
            if kind.knob:
                set_knob(index, kind, value)
            faiss.omp_set_num_threads(args.threads)
            _, found = index.search(picked, K)
            recall = recall_at_k(found, truth)
            p50_1, p95_1 = latencies_ms(index, latency_queries, 1)
            p50_2, p95_2 = latencies_ms(index, latency_queries, 2)
            row = {"kind": kind.name, "factory": kind.factory, "n": args.n, kind.knob or "param": value,
                   "recall_at_10": round(recall, 4), "p50_ms_1t": round(p50_1, 3), "p95_ms_1t": round(p95_1, 3),
                   "p50_ms_2t": round(p50_2, 3), "p95_ms_2t": round(p95_2, 3), "build_s": round(build_s, 1),
                   "disk_mb": round(disk_mb, 1), "open": plain, "mmap": mapped}
            rows.append(row)
            mmap_text = (f"{mapped['flag'][8:]} {mapped['open_s']:.2f}s {mapped['rss_search_mb']}MB"
                         if mapped.get("flag") else "no")
            print(f"{kind.name:16s} {kind.knob[:6] + '=' + str(value) if kind.knob else '-':>12s} {recall:9.4f} "
                  f"{p50_1:7.2f} {p95_1:7.2f} {p50_2:7.2f} {p95_2:7.2f} {build_s:8.1f} {disk_mb:8.1f} "
                  f"{plain.get('open_s', float('nan')):7.2f} {plain.get('rss_search_mb', -1):7d} {mmap_text:>22s}",
                  flush=True)
        del index
        if not args.keep:
            path.unlink()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": args.n, "vectors": method, "questions": len(picked), "cpus": os.cpu_count(),
                      "faiss": faiss.__version__, "peak_rss_mb": round(peak_mb), "rows": rows}))


if __name__ == "__main__":
    main()
