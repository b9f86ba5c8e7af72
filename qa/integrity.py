"""Whether a build of the index is whole: every file readable, the files fitting one another, and
(when asked) each file the very one the build wrote, by the SHA-256 its manifest recorded.

qa.store runs the cheap checks whenever it opens a build (shapes and counts, in time that does
not grow with the corpus) and the hashes when asked (`qa index` does), so a damaged build is
reported as IndexDamaged naming the file, never half-used.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

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
    """Why the files of a build do not fit its manifest, or "" if they do. Only shapes and counts
    are compared, so this takes the same time for any size of corpus."""
    manifest, dimension = index.manifest, index.manifest["dimension"]
    for segment, info in zip(index.segments, manifest["segments"]):
        name, n, m = info["name"], info["chunks"], info["sentences"]
        ptr = segment.sentence_ptr
        if segment.vectors.shape != (n, dimension):
            return f"{name}/chunks.npy holds {segment.vectors.shape} vectors, not ({n}, {dimension})"
        if (ptr.shape != (n + 1,) or ptr[0] != 0 or ptr[-1] != m or segment.sentence_spans.shape != (m, 2)
                or segment.sentence_vectors.shape != (m, dimension)):
            return f"{name}: the sentence arrays do not fit its {n} chunks and {m} sentences"
        p = segment.postings
        if (p.ptr.shape != (info["terms"] + 1,) or p.ptr[0] != 0 or p.ptr[-1] != info["postings"]
                or p.docs.shape != (info["postings"],) or p.tf.shape != (info["postings"],) or p.lengths.shape != (n,)):
            return f"{name}: the BM25 postings do not fit its {info['terms']} terms and {n} chunks"
        if segment.graph is not None and (segment.graph.ntotal != n or segment.graph.d != dimension):
            return f"{name}/dense.ivf holds {segment.graph.ntotal} vectors, not {n}"
    files, counts = manifest["files"], manifest["counts"]
    names = {s["name"] for s in manifest["segments"]}
    if (counts["files"] != len(files) or counts["chunks"] != index.chunk_count
            or any(not isinstance(f.get("sha256"), str) or f.get("segment") not in names for f in files.values())):
        return "manifest.json does not fit its segments"
    return ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


MANIFEST_SUM = "manifest.sha256"  # the manifest's own SHA-256: every other file's is in the manifest


def write_manifest(build: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
    (build / "manifest.json").write_bytes(text)
    (build / MANIFEST_SUM).write_text(hashlib.sha256(text).hexdigest() + "\n")


def check_manifest_sum(folder: Path, build: Path, data: bytes) -> None:
    """IndexDamaged unless `data`, the manifest as read, is the manifest as written (a byte changed
    inside a value that still parses would otherwise go unseen: no other file records its hash)."""
    with reading(folder, MANIFEST_SUM):
        recorded = (build / MANIFEST_SUM).read_text().strip()
    if hashlib.sha256(data).hexdigest() != recorded:
        raise IndexDamaged(folder, "manifest.json is not the file this build wrote")


def file_hashes(build: Path, known: dict[str, str] | None = None) -> dict[str, str]:
    """SHA-256 of each file of a build but its manifest, by path inside the build; those in
    `known` (files of segments hashed when they were written) are not read again."""
    known = known or {}
    names = [p.relative_to(build).as_posix() for p in sorted(build.rglob("*")) if p.is_file()]
    return {name: known.get(name) or _sha256(build / name) for name in names
            if name not in ("manifest.json", MANIFEST_SUM)}


def file_stats(build: Path) -> dict[str, list[int]]:
    """Size and modification time (ns) of each file of a build but its manifest."""
    stats = {}
    for path in sorted(build.rglob("*")):
        if path.is_file() and path.name not in ("manifest.json", MANIFEST_SUM):
            st = path.stat()
            stats[path.relative_to(build).as_posix()] = [st.st_size, st.st_mtime_ns]
    return stats


def verify_files(folder: Path, build: Path, hashes: dict[str, str], stats: dict[str, list[int]] | None = None) -> None:
    """Raise IndexDamaged unless each file of the build has the SHA-256 recorded for it: this
    catches a file swapped for another build's or altered in a way its reader cannot see. With
    `stats`, a file of the recorded size and modification time is taken as written (segments are
    never rewritten, so checking a large index costs as much as what changed in it)."""
    for name, sha256 in hashes.items():
        with reading(folder, name):
            st = (build / name).stat()
            if stats is not None and stats.get(name) == [st.st_size, st.st_mtime_ns]:
                continue
            if _sha256(build / name) != sha256:
                raise IndexDamaged(folder, f"{name} is not the file this build wrote")
