"""Whether a build of the index is whole: every file readable, the files fitting one another, and
(when asked) each file the very one the build wrote, by the SHA-256 its manifest recorded.

qa.store runs these checks whenever it opens a build, so a damaged one is reported as
IndexDamaged naming the file, never half-used.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import IndexDamaged, one_line

if TYPE_CHECKING:
    from qa.store import Index


@contextmanager
def reading(folder: Path, name: str):
    """Turn whatever a damaged file makes its reader raise (json, numpy's zip, faiss, bm25s) into
    IndexDamaged naming the file."""
    try:
        yield
    except (IndexDamaged, MemoryError):
        raise
    except Exception as exc:
        raise IndexDamaged(folder, f"{name}: {one_line(exc)}") from None


def misfit(index: Index) -> str:
    """Why the files of a build do not fit together, or "" if they do."""
    n, manifest, dense = len(index.chunks), index.manifest, index.dense
    if dense.ntotal != n or dense.d != manifest["dimension"]:
        return f"dense.faiss holds {dense.ntotal} vectors of {dense.d} dimensions, not {n} of {manifest['dimension']}"
    ptr, spans, vectors = index.sentence_ptr, index.sentence_spans, index.sentence_embeddings
    if (ptr.shape != (n + 1,) or ptr[0] != 0 or np.any(np.diff(ptr) < 0) or spans.shape != (ptr[-1], 2)
            or vectors.shape != (ptr[-1], dense.d)):
        return "sentences.npz does not fit chunks.jsonl"
    scores = index.lexical.bm25.scores
    indptr, indices = scores["indptr"], scores["indices"]
    if (scores["num_docs"] != n or len(indptr) > len(index.lexical.vocab) + 1 or np.any(np.diff(indptr) < 0)
            or not indptr[-1] == len(indices) == len(scores["data"]) or (len(indices) and indices.max() >= n)):
        return "bm25 does not fit chunks.jsonl"
    if any(not 0 <= c.start <= c.end <= len(index.documents[c.source].text) for c in index.chunks):
        return "chunks.jsonl has offsets outside their documents"
    files = manifest["files"]
    if not set(index.chunk_files) <= set(files) or manifest["counts"]["chunks"] != n or any(
        not isinstance(info["sha256"], str) or not all(source in index.documents for source in info["documents"])
        for info in files.values()
    ):
        return "manifest.json does not fit the documents and chunks"
    return ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(build: Path) -> dict[str, str]:
    """SHA-256 of each file of a build but its manifest, by path inside the build."""
    return {p.relative_to(build).as_posix(): _sha256(p) for p in sorted(build.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def verify_files(folder: Path, build: Path, hashes: dict[str, str]) -> None:
    """Raise IndexDamaged unless each file of the build has the SHA-256 recorded for it: this
    catches a file swapped for another build's or altered in a way its reader cannot see."""
    for name, sha256 in hashes.items():
        with reading(folder, name):
            if _sha256(build / name) != sha256:
                raise IndexDamaged(folder, f"{name} is not the file this build wrote")
