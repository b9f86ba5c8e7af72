"""Dense search over one segment's chunk vectors: exact (a matrix product over the memory-mapped
vectors) for a segment of up to `threshold` chunks, an approximate FAISS IVF index above it.

IVF, not HNSW, by measurement (bench/ann.py, README "At scale"): with its lists growing as 4·√N
and 32 of them probed, recall@10 against exact search holds at 0.96-0.98 from 30k to 1M chunks, a
search takes about a millisecond, and the file is memory-mapped whole (faiss.IO_FLAG_MMAP), so
opening it costs nothing proportional to the corpus; HNSW's recall fell to 0.69-0.77 at 1M and its
build took 2.3x longer. The lists hold 8-bit scalar-quantized vectors (SQ8), a quarter of the
float32 ones: the lists a process has searched stay mapped, and at 1M chunks float32 lists were
1.3 GB of its resident memory. The candidates are then scored again on their exact vectors, so
every score a caller sees is the exact cosine, and taking RESCORED more candidates than asked for
wins back the ranking SQ8 blurs. The kind and parameters of each segment's search are recorded in
the build manifest, so opening never guesses; a segment built as IVF-Flat is still read. The
parameters live here; the threshold is the ann_threshold setting (qa.config).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from qa.config import DEFAULT_ANN_THRESHOLD

ANN_THRESHOLD = DEFAULT_ANN_THRESHOLD  # segments of more chunks get an IVF index (QA_ANN_THRESHOLD)
NPROBE = 32
RESCORED = 30  # candidates beyond k scored again on their exact vectors
TRAIN_PER_LIST = 64  # k-means is trained on this many vectors per list (faiss warns below 39)
EXACT = {"kind": "exact"}
ANN_FILE = "dense.ivf"


def lists_for(chunks: int) -> int:
    """About 4·√N inverted lists, a power of two, each with at least 39 vectors to train on."""
    lists = 1 << max(0, round(np.log2(max(1.0, 4 * np.sqrt(chunks)))))
    while lists > 1 and chunks < 39 * lists:
        lists //= 2
    return lists


def kind_for(chunks: int, threshold: int) -> dict:
    if chunks <= threshold:
        return dict(EXACT)
    lists = lists_for(chunks)
    return {"kind": "ivf_sq8", "nlist": lists, "nprobe": min(NPROBE, lists)}


def describe(kind: dict) -> str:
    """How a segment is searched, as `qa info` says it."""
    names = {"ivf_sq8": "IVF-SQ8, rescored exactly", "ivf_flat": "IVF-Flat"}
    if kind["kind"] in names:
        return f"{names[kind['kind']]} (nlist={kind['nlist']}, nprobe={kind['nprobe']})"
    return kind["kind"]


def build_ann(vectors: np.ndarray, params: dict, path: Path) -> None:
    """Train and fill an IVF index of the kind in params over the (normalized) vectors and write it
    to path."""
    dimension = vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dimension)
    if params["kind"] == "ivf_sq8":
        ann = faiss.IndexIVFScalarQuantizer(quantizer, dimension, params["nlist"], faiss.ScalarQuantizer.QT_8bit,
                                            faiss.METRIC_INNER_PRODUCT)
    else:
        ann = faiss.IndexIVFFlat(quantizer, dimension, params["nlist"], faiss.METRIC_INNER_PRODUCT)
    sample = min(len(vectors), params["nlist"] * TRAIN_PER_LIST)
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), sample, replace=False))
    ann.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
    for start in range(0, len(vectors), 100_000):  # added in slices: the vectors are memory-mapped
        ann.add(np.ascontiguousarray(vectors[start : start + 100_000], dtype=np.float32))
    # written by Python, not faiss.write_index, so a full disk raises OSError with its errno
    path.write_bytes(faiss.serialize_index(ann).tobytes())


def open_ann(path: Path, params: dict) -> faiss.Index:
    ann = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)  # its lists stay on disk until searched
    faiss.downcast_index(ann).nprobe = params["nprobe"]
    return ann


def search(vectors: np.ndarray, ann: faiss.Index | None, query: np.ndarray, k: int,
           deleted: np.ndarray | None, vectors_at: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Local ids and exact scores of the k live chunks nearest the query, best first. `vectors_at`
    reads the exact vectors of a few chunks (Segment.vectors_at)."""
    n = len(vectors)
    if ann is not None:
        params = None
        if deleted is not None:  # the lists still hold deleted chunks: they are never returned
            live = np.packbits(~deleted, bitorder="little")
            params = faiss.SearchParametersIVF(sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(live)),
                                               nprobe=faiss.downcast_index(ann).nprobe)
        query = query.astype(np.float32)
        _, ids = ann.search(query.reshape(1, -1), min(n, k + RESCORED), params=params)
        ids = np.sort(ids[0][ids[0] >= 0])  # in file order, for the reads
        scores = vectors_at(ids).astype(np.float32) @ query
        best = np.lexsort((ids, -scores))[:k]
        return ids[best], scores[best]
    scores = np.asarray(vectors, dtype=np.float32) @ query.astype(np.float32)
    if deleted is not None:
        scores[deleted] = -np.inf
    k = min(k, n - (int(deleted.sum()) if deleted is not None else 0))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.argsort(-scores[top], kind="stable")]
    return top.astype(np.int64), scores[top]
