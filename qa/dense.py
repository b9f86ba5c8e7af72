"""Dense search over one segment's chunk vectors: exact (a matrix product over the memory-mapped
vectors) for a segment of up to `threshold` chunks, an approximate FAISS HNSW graph above it.

The kind and parameters of each segment's search are recorded in the build manifest, so opening
never guesses. The parameters live here; the threshold is the ann_threshold setting (qa.config).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from qa.config import DEFAULT_ANN_THRESHOLD

ANN_THRESHOLD = DEFAULT_ANN_THRESHOLD  # segments of more chunks get an HNSW graph (QA_ANN_THRESHOLD)
HNSW = {"kind": "hnsw", "M": 32, "ef_construction": 80, "ef_search": 128}
EXACT = {"kind": "exact"}
GRAPH_FILE = "dense.hnsw"


def kind_for(chunks: int, threshold: int) -> dict:
    return dict(HNSW) if chunks > threshold else dict(EXACT)


def build_graph(vectors: np.ndarray, params: dict, path: Path) -> None:
    """Build an HNSW graph over the (normalized) vectors and write it to path."""
    graph = faiss.IndexHNSWFlat(vectors.shape[1], params["M"], faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = params["ef_construction"]
    for start in range(0, len(vectors), 100_000):  # added in slices: the vectors are memory-mapped
        graph.add(np.ascontiguousarray(vectors[start : start + 100_000], dtype=np.float32))
    # written by Python, not faiss.write_index, so a full disk raises OSError with its errno
    path.write_bytes(faiss.serialize_index(graph).tobytes())


def open_graph(path: Path, params: dict) -> faiss.Index:
    graph = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)  # its stored vectors stay on disk
    faiss.downcast_index(graph).hnsw.efSearch = params["ef_search"]
    return graph


def search(vectors: np.ndarray, graph: faiss.Index | None, query: np.ndarray, k: int,
           deleted: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Local ids and scores of the k live chunks nearest the query, best first."""
    n = len(vectors)
    if graph is not None:
        params = None
        if deleted is not None:  # the graph walks past deleted chunks but never returns them
            live = np.packbits(~deleted, bitorder="little")
            params = faiss.SearchParametersHNSW(sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(live)),
                                                efSearch=faiss.downcast_index(graph).hnsw.efSearch)
        scores, ids = graph.search(query.reshape(1, -1).astype(np.float32), min(n, k), params=params)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]
    scores = np.asarray(vectors, dtype=np.float32) @ query.astype(np.float32)
    if deleted is not None:
        scores[deleted] = -np.inf
    k = min(k, n - (int(deleted.sum()) if deleted is not None else 0))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.argsort(-scores[top], kind="stable")]
    return top.astype(np.int64), scores[top]
