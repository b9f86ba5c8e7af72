"""The on-disk index: its layout, saving a build, swapping it in, one writer at a time, and the one
place a build is opened (or reopened when a newer one is swapped in).

Layout of an index folder:
    current -> builds/<id>     a symlink, swapped atomically when a build completes
    builds/<id>/manifest.json  model, dimension, chunker settings, versions, per-file hashes, counts,
                               and the SHA-256 of each file of the build
    builds/<id>/documents.jsonl, chunks.jsonl, dense.faiss, sentences.npz, bm25/
    .lock                      held by the one `qa index` run allowed to write

A build is written to a fresh folder beside the live one and only then is `current` repointed, so
a crash or kill at any moment leaves the previous index complete and loadable. Opening a build
checks that its files are whole (qa.integrity); a damaged one raises IndexDamaged.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from qa.errors import DiskFull, IndexBusy, IndexDamaged, IndexMismatch, IndexNotFound, one_line
from qa.integrity import file_hashes, misfit, reading, verify_files
from qa.lexical import Lexical, tokenize
from qa.types import Chunk, Document, Section

FORMAT_VERSION = 1
RECHECK_SECONDS = 5.0  # how often a LiveIndex that follows swaps looks for a newer build
log = logging.getLogger(__name__)


@dataclass
class Index:
    """One build of an index, opened: everything retrieval and answering read, held in memory.
    They read it through its methods; the arrays behind them are the store's own."""

    folder: Path
    build: Path  # the build folder it was read from
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    chunk_files: list[str]  # the corpus file of each chunk
    dense: faiss.Index
    lexical: Lexical
    sentence_spans: np.ndarray  # (n, 2) document offsets of each sentence
    sentence_embeddings: np.ndarray  # (n, dim) float16
    sentence_ptr: np.ndarray  # chunk i owns sentences sentence_ptr[i]:sentence_ptr[i+1]
    # facts derived from chunks on first use and kept while the build is open (see `memo`)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def chunk_count(self) -> int:
        return len(self.chunks)

    def chunk(self, chunk_id: int) -> Chunk:
        return self.chunks[chunk_id]

    def document(self, source: str) -> Document | None:
        return self.documents.get(source)

    def sentence_rows(self, chunk_id: int) -> range:
        return range(int(self.sentence_ptr[chunk_id]), int(self.sentence_ptr[chunk_id + 1]))

    def sentence_texts(self, chunk_id: int) -> list[tuple[int, int, str]]:
        """(start, end, text) of each sentence of a chunk, in document offsets."""
        text = self.documents[self.chunks[chunk_id].source].text
        rows = self.sentence_rows(chunk_id)
        return [(s, e, text[s:e]) for s, e in self.sentence_spans[rows.start : rows.stop].tolist()]

    def sentence_vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """The vectors of the sentences of these chunks, chunk after chunk (float16)."""
        rows = np.concatenate([np.arange(*self.sentence_ptr[c : c + 2]) for c in chunk_ids] or [[]]).astype(int)
        return self.sentence_embeddings[rows]

    def dense_search(self, query_vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ids of the k chunks nearest the query and their cosine similarities (ids of -1 pad
        the result when fewer chunks are left)."""
        scores, ids = self.dense.search(query_vector.reshape(1, -1).astype(np.float32), k)
        return ids[0], scores[0]

    def dense_scores(self, chunk_ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """The cosine similarity of each of these chunks to the query."""
        return self.dense.reconstruct_batch(np.array(chunk_ids, dtype=np.int64)) @ query_vector

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        """The BM25 score of every chunk for these terms."""
        return self.lexical.scores(terms)

    def idf(self, term: str) -> float:
        return self.lexical.idf(term)

    def memo(self, key, compute: Callable):
        """`compute()`, computed once per opened build: popular chunks come back for question after
        question, and what is derived from them need not be derived again."""
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute()
        return value


def live_build(folder: Path) -> Path:
    current = folder / "current"
    if not (current / "manifest.json").is_file():
        if current.is_symlink() or current.exists():
            raise IndexDamaged(folder, "its live build has no manifest.json")
        raise IndexNotFound(folder)
    return current.resolve()


def has_index(folder: Path | str) -> bool:
    """Whether a build was swapped in at folder (it may still turn out damaged when opened)."""
    return (Path(folder) / "current").exists()


def looks_like_index(folder: Path) -> bool:
    """Whether folder is an index folder or one of its builds (here or a copy elsewhere): never
    corpus to index, or each run would index the one before."""
    if (folder / "builds").is_dir() and ((folder / "current").is_symlink() or (folder / ".lock").is_file()):
        return True
    return all((folder / name).is_file() for name in ("manifest.json", "documents.jsonl", "chunks.jsonl"))


def read_manifest(folder: Path | str) -> dict:
    """How the live build was made and what it holds, read without opening the build."""
    folder = Path(folder)
    return _manifest(folder, live_build(folder))


def _manifest(folder: Path, build: Path) -> dict:
    with reading(folder, "manifest.json"):
        manifest = json.loads((build / "manifest.json").read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    return manifest


def open_index(folder: Path, model: str | None = None, verify: bool = False) -> Index:
    """Open the live build of an index. If `model` is given it must be the one the index was built
    with: vectors from two models are not comparable. Everything is read into memory: the build's
    files may be removed once this returns.

    A file that cannot be read or does not fit the others raises IndexDamaged. With `verify`, each
    file must also have the SHA-256 the manifest recorded."""
    build = live_build(folder)
    manifest = _manifest(folder, build)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexMismatch(
            f"index at {folder} has format {manifest.get('format_version')}, this qa reads {FORMAT_VERSION}: "
            f"rebuild it with `qa index --index {folder}`"
        )
    if model is not None and model != manifest.get("model"):
        raise IndexMismatch(
            f"index at {folder} was built with model {manifest.get('model')!r}, not {model!r}: "
            f"rebuild it with `qa index --model {model}` or drop --model/QA_MODEL"
        )
    if verify:
        verify_files(folder, build, manifest.get("build_files", {}))
    documents = {}
    with reading(folder, "documents.jsonl"), open(build / "documents.jsonl") as f:
        for line in f:
            record = json.loads(line)
            sections = tuple(Section(*s) for s in record["sections"])
            documents[record["source"]] = Document(record["source"], record["title"], record["text"], sections)
    chunks, chunk_files = [], []
    with reading(folder, "chunks.jsonl"), open(build / "chunks.jsonl") as f:
        for line in f:
            record = json.loads(line)
            chunk_files.append(record.pop("file"))
            start, end = record["start"], record["end"]
            chunks.append(Chunk(text=documents[record["source"]].text[start:end], **record))
    with reading(folder, "sentences.npz"), np.load(build / "sentences.npz") as sentences:
        spans, vectors, ptr = sentences["spans"], sentences["vectors"], sentences["ptr"]
    with reading(folder, "dense.faiss"):
        dense = faiss.read_index(str(build / "dense.faiss"))
    with reading(folder, "bm25"):
        lexical = Lexical.load(build / "bm25", len(chunks))
    index = Index(folder, build, manifest, documents, chunks, chunk_files, dense, lexical, spans, vectors, ptr)
    with reading(folder, "manifest.json"):
        problem = misfit(index)
    if problem:
        raise IndexDamaged(folder, problem)
    return index


class LiveIndex:
    """The live build of an index folder, opened. With `follow`, it is reopened when `qa index`
    swaps in a newer build, so a server never needs a restart to see new documents; a newer build
    must be of the same model, since questions are encoded with it."""

    def __init__(self, folder: Path, model: str | None = None, follow: bool = False):
        self.folder = Path(folder)
        self.index = open_index(self.folder, model)
        self.follow = follow
        self.checked = time.monotonic()
        self.lock = threading.Lock()

    def get(self) -> Index:
        """The open build, at once. When following, every RECHECK_SECONDS a call also starts a look
        for a newer build; opening one runs in the background, so no question waits for it."""
        if (self.follow and time.monotonic() - self.checked > RECHECK_SECONDS
                and self.lock.acquire(blocking=False)):
            threading.Thread(target=self._reopen_if_newer, name="qa-reopen", daemon=True).start()
        return self.index

    def _reopen_if_newer(self) -> None:
        try:
            if live_build(self.folder) != self.index.build:
                self.index = open_index(self.folder, self.index.model)
                log.info("reopened index %s (build %s)", self.folder, self.index.build.name)
        except Exception as exc:  # a broken new build: keep answering from the one we have
            log.warning("keeping the open index: %s", one_line(exc))
        finally:
            self.checked = time.monotonic()
            self.lock.release()


class IndexLock:
    """An exclusive, non-blocking lock on the index folder, released by the OS if we die."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.file = open(folder / ".lock", "w")

    def __enter__(self):
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise IndexBusy(self.folder) from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


@dataclass
class FileEntry:
    """Everything a build holds for one corpus file, so an unchanged file is carried over."""

    file: str
    sha256: str
    documents: list[Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentence_spans: list[np.ndarray]  # per chunk, (n, 2) document offsets
    sentence_vectors: list[np.ndarray]  # per chunk


def file_entries(index: Index) -> dict[str, FileEntry]:
    """What an opened build holds for each corpus file, by file."""
    vectors = index.dense.reconstruct_n(0, index.dense.ntotal) if index.dense.ntotal else None
    entries: dict[str, FileEntry] = {}
    by_file: dict[str, list[int]] = {}
    for i, file in enumerate(index.chunk_files):
        by_file.setdefault(file, []).append(i)
    for file, info in index.manifest["files"].items():
        ids = by_file.get(file, [])
        rows = [index.sentence_rows(i) for i in ids]
        entries[file] = FileEntry(
            file=file,
            sha256=info["sha256"],
            documents=[index.documents[source] for source in info["documents"]],
            chunks=[index.chunks[i] for i in ids],
            chunk_vectors=vectors[ids] if vectors is not None else np.zeros((0, index.dense.d), np.float32),
            sentence_spans=[index.sentence_spans[r.start : r.stop] for r in rows],
            sentence_vectors=[index.sentence_embeddings[r.start : r.stop] for r in rows],
        )
    return entries


# errors that mean "no room": a full disk, a quota, or a file size limit (RLIMIT_FSIZE)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def save_build(folder: Path, entries: list[FileEntry], manifest: dict, dimension: int) -> None:
    """Write a build of these entries and swap it in as `current`. The caller holds IndexLock."""
    builds = folder / "builds"
    # nanoseconds: two builds in the same second (one process re-indexing) must not share a folder
    now = time.time_ns()
    build_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}-{os.getpid()}"
    tmp = builds / f".{build_id}.partial"
    try:
        builds.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        _write_files(tmp, entries, {"format_version": FORMAT_VERSION, **manifest}, dimension)
        _fsync_tree(tmp)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # on a full disk, give the space back at once
        if exc.errno in _NO_ROOM:
            raise DiskFull(folder, exc.strerror) from None
        raise

    final = builds / build_id
    tmp.rename(final)
    current = folder / "current"
    previous = current.resolve().name if current.is_symlink() else None
    link_tmp = folder / f".current.{os.getpid()}"
    if link_tmp.is_symlink():
        link_tmp.unlink()
    os.symlink(Path("builds") / build_id, link_tmp)
    os.replace(link_tmp, current)
    _fsync_dir(folder)
    # the build that was live until now stays one more round: a reader may still be loading it
    _remove_old_builds(builds, keep={final.name, previous})
    for stale in folder.glob(".current.*"):  # left by a run killed just before its swap
        stale.unlink(missing_ok=True)


def _write_files(tmp: Path, entries: list[FileEntry], manifest: dict, dimension: int) -> None:
    chunks = [c for e in entries for c in e.chunks]
    with open(tmp / "documents.jsonl", "w") as f:
        for e in entries:
            for d in e.documents:
                sections = [list(asdict(s).values()) for s in d.sections]
                record = {"source": d.source, "title": d.title, "text": d.text, "sections": sections}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(tmp / "chunks.jsonl", "w") as f:
        for e in entries:
            for c in e.chunks:
                record = {"file": e.file, "source": c.source, "title": c.title, "location": c.location,
                          "start": c.start, "end": c.end}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    vectors = np.concatenate([e.chunk_vectors for e in entries]).astype(np.float32)
    dense = faiss.IndexFlatIP(dimension)
    dense.add(vectors)
    # written by Python, not faiss.write_index, so a full disk raises OSError with its errno
    (tmp / "dense.faiss").write_bytes(faiss.serialize_index(dense).tobytes())
    per_chunk_spans = [s for e in entries for s in e.sentence_spans]
    per_chunk_vectors = [v for e in entries for v in e.sentence_vectors]
    counts = np.array([len(s) for s in per_chunk_spans], dtype=np.int64)
    np.savez(
        tmp / "sentences.npz",
        spans=np.concatenate(per_chunk_spans).astype(np.int64).reshape(-1, 2),
        vectors=np.concatenate(per_chunk_vectors).astype(np.float16).reshape(-1, dimension),
        ptr=np.concatenate([[0], np.cumsum(counts)]),
    )
    Lexical.build([tokenize(f"{c.title}\n{c.text}") for c in chunks]).save(tmp / "bm25")
    manifest = {**manifest, "build_files": file_hashes(tmp)}  # what `qa index` checks before reusing them
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())
    _fsync_dir(root)


def _remove_old_builds(builds: Path, keep: set[str | None]) -> None:
    """Remove every build but `keep`, including partial ones left by a crash."""
    for path in builds.iterdir():
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
