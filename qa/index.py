"""Build, save, load and update the on-disk index: FAISS vectors + BM25 + a manifest.

Layout of an index folder:
    current -> builds/<id>     a symlink, swapped atomically when a build completes
    builds/<id>/manifest.json  model, dimension, chunker settings, versions, per-file hashes, counts,
                               and the SHA-256 of each file of the build
    builds/<id>/documents.jsonl, chunks.jsonl, dense.faiss, sentences.npz, bm25/
    .lock                      held by the one `qa index` run allowed to write

A build writes a fresh folder beside the live one and only then repoints `current`, so a crash or
kill at any moment leaves the previous index complete and loadable. A live build damaged since
(a file cut short, altered, swapped) is reported as IndexDamaged, and `qa index` rebuilds it from
scratch. The corpus walk never enters an index folder.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from qa.chunk import ChunkSettings, chunk_document, make_splitter, sentence_spans
from qa.config import DEFAULT_MAX_FILE_MB
from qa.embed import Embedder
from qa.errors import (
    CorpusNotFound,
    DiskFull,
    EmptyCorpus,
    IndexBusy,
    IndexDamaged,
    IndexMismatch,
    IndexNotFound,
    one_line,
)
from qa.lexical import Lexical, tokenize
from qa.load import CorpusFile, LoadError, TableFields, load_file, read_file, walk_corpus
from qa.types import Chunk, Document, Section

FORMAT_VERSION = 1
# Bump when chunking, sentence splitting or embedding change what a file turns into: an index built
# before then is re-embedded in full instead of carrying over stale chunks of unchanged files.
# 7: a sentence keeps its closing quote or bracket; 6: chunks bounded in characters too;
# 5: plain-text headings, FAQ labels, fmt-filled lines;
# 4: text read as prose (wraps joined, table rows named, furniture dropped); 3: no control chars
PIPELINE_VERSION = 7


@dataclass
class Index:
    """A loaded index: everything retrieval and answering read, held in memory."""

    folder: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    chunk_files: list[str]
    dense: faiss.Index
    lexical: Lexical
    sentence_spans: np.ndarray  # (n, 2) document offsets of each sentence
    sentence_vectors: np.ndarray  # (n, dim) float16
    sentence_ptr: np.ndarray  # chunk i owns sentences sentence_ptr[i]:sentence_ptr[i+1]
    # facts derived from chunks on first use and kept while the index is open (see `memo`)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return self.manifest["model"]

    def chunk_sentences(self, chunk_id: int) -> range:
        return range(int(self.sentence_ptr[chunk_id]), int(self.sentence_ptr[chunk_id + 1]))

    def memo(self, key, compute):
        """`compute()`, computed once per opened index: popular chunks come back for question after
        question, and what is derived from them need not be derived again."""
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute()
        return value

    def sentence_texts(self, chunk_id: int) -> list[tuple[int, int, str]]:
        """(start, end, text) of each sentence of a chunk, in document offsets."""
        text = self.documents[self.chunks[chunk_id].source].text
        sentences = self.chunk_sentences(chunk_id)
        return [(s, e, text[s:e]) for s, e in self.sentence_spans[sentences.start : sentences.stop].tolist()]


@dataclass
class BuildReport:
    files: int = 0
    reused: int = 0
    embedded: int = 0
    removed: int = 0
    documents: int = 0
    chunks: int = 0
    ignored: int = 0  # hidden files and unknown suffixes
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seconds: float = 0.0
    full_rebuild_reason: str = ""


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ["sentence-transformers", "faiss-cpu", "bm25s", "langchain-text-splitters", "torch"]
    return {"python": sys.version.split()[0], **{n: version(n) for n in names}}


def _settings_of(model: str, chunking: ChunkSettings, fields: TableFields) -> dict:
    return {
        "model": model,
        "chunking": asdict(chunking),
        "table_fields": asdict(fields),
        "pipeline_version": PIPELINE_VERSION,
    }


def live_build(folder: Path) -> Path:
    current = folder / "current"
    if not (current / "manifest.json").is_file():
        if current.is_symlink() or current.exists():
            raise IndexDamaged(folder, "its live build has no manifest.json")
        raise IndexNotFound(folder)
    return current.resolve()


def looks_like_index(folder: Path) -> bool:
    """Whether folder is an index folder or one of its builds (here or a copy elsewhere): never
    corpus to index, or each run would index the one before."""
    if (folder / "builds").is_dir() and ((folder / "current").is_symlink() or (folder / ".lock").is_file()):
        return True
    return all((folder / name).is_file() for name in ("manifest.json", "documents.jsonl", "chunks.jsonl"))


@contextmanager
def _reading(folder: Path, name: str):
    """Turn whatever a damaged file makes its reader raise (json, numpy's zip, faiss, bm25s) into
    IndexDamaged naming the file."""
    try:
        yield
    except (IndexDamaged, MemoryError):
        raise
    except Exception as exc:
        raise IndexDamaged(folder, f"{name}: {one_line(exc)}") from None


def read_manifest(folder: Path) -> dict:
    return _manifest(folder, live_build(folder))


def _manifest(folder: Path, build: Path) -> dict:
    with _reading(folder, "manifest.json"):
        manifest = json.loads((build / "manifest.json").read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    return manifest


def load_index(folder: Path, model: str | None = None, verify: bool = False) -> Index:
    """Open the live build of an index. If `model` is given it must be the one the index was built
    with: vectors from two models are not comparable. Everything is read into memory: the build's
    files may be removed once this returns.

    A file that cannot be read or does not fit the others raises IndexDamaged. With `verify`, each
    file must also have the SHA-256 the manifest recorded, which catches a file swapped
    for another build's or altered in a way its reader cannot see."""
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
        _verify_files(folder, build, manifest.get("build_files", {}))
    documents = {}
    with _reading(folder, "documents.jsonl"), open(build / "documents.jsonl") as f:
        for line in f:
            record = json.loads(line)
            sections = tuple(Section(*s) for s in record["sections"])
            documents[record["source"]] = Document(record["source"], record["title"], record["text"], sections)
    chunks, chunk_files = [], []
    with _reading(folder, "chunks.jsonl"), open(build / "chunks.jsonl") as f:
        for line in f:
            record = json.loads(line)
            chunk_files.append(record.pop("file"))
            start, end = record["start"], record["end"]
            chunks.append(Chunk(text=documents[record["source"]].text[start:end], **record))
    with _reading(folder, "sentences.npz"), np.load(build / "sentences.npz") as sentences:
        spans, vectors, ptr = sentences["spans"], sentences["vectors"], sentences["ptr"]
    with _reading(folder, "dense.faiss"):
        dense = faiss.read_index(str(build / "dense.faiss"))
    with _reading(folder, "bm25"):
        lexical = Lexical.load(build / "bm25", len(chunks))
    index = Index(
        folder=folder,
        manifest=manifest,
        documents=documents,
        chunks=chunks,
        chunk_files=chunk_files,
        dense=dense,
        lexical=lexical,
        sentence_spans=spans,
        sentence_vectors=vectors,
        sentence_ptr=ptr,
    )
    with _reading(folder, "manifest.json"):
        problem = _misfit(index)
    if problem:
        raise IndexDamaged(folder, problem)
    return index


def _misfit(index: Index) -> str:
    """Why the files of a build do not fit together, or "" if they do."""
    n, manifest, dense = len(index.chunks), index.manifest, index.dense
    if dense.ntotal != n or dense.d != manifest["dimension"]:
        return f"dense.faiss holds {dense.ntotal} vectors of {dense.d} dimensions, not {n} of {manifest['dimension']}"
    ptr, spans, vectors = index.sentence_ptr, index.sentence_spans, index.sentence_vectors
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


def _file_hashes(build: Path) -> dict[str, str]:
    """SHA-256 of each file of a build but its manifest, by path inside the build."""
    return {p.relative_to(build).as_posix(): _sha256(p) for p in sorted(build.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def _verify_files(folder: Path, build: Path, hashes: dict[str, str]) -> None:
    for name, sha256 in hashes.items():
        with _reading(folder, name):
            if _sha256(build / name) != sha256:
                raise IndexDamaged(folder, f"{name} is not the file this build wrote")


class _Lock:
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
class _FileEntry:
    """Everything the index holds for one corpus file, so unchanged files are carried over."""

    file: str
    sha256: str
    documents: list[Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentence_spans: list[np.ndarray]  # per chunk, (n, 2) document offsets
    sentence_vectors: list[np.ndarray]  # per chunk


def _is_same(path: Path, folder: Path) -> bool:
    return os.path.realpath(path) == os.path.realpath(folder)


def _reusable_entries(folder: Path, settings: dict) -> tuple[dict[str, _FileEntry], str]:
    """What the live build holds for each file, to carry over unchanged ones; or nothing, and why
    (on one line) if the index must be rebuilt from scratch."""
    try:
        old = load_index(folder, verify=True)
    except IndexNotFound:
        return {}, ""
    except IndexDamaged as exc:
        return {}, f"the previous index is damaged ({exc.reason})"
    except IndexMismatch as exc:
        return {}, f"the previous index could not be read ({exc})"
    if {k: old.manifest.get(k) for k in settings} != settings:
        return {}, "the model or chunking settings changed"
    return _previous_entries(old), ""


def _previous_entries(index: Index) -> dict[str, _FileEntry]:
    vectors = index.dense.reconstruct_n(0, index.dense.ntotal) if index.dense.ntotal else None
    entries: dict[str, _FileEntry] = {}
    by_file: dict[str, list[int]] = {}
    for i, file in enumerate(index.chunk_files):
        by_file.setdefault(file, []).append(i)
    for file, info in index.manifest["files"].items():
        ids = by_file.get(file, [])
        sentences = [index.chunk_sentences(i) for i in ids]
        entries[file] = _FileEntry(
            file=file,
            sha256=info["sha256"],
            documents=[index.documents[source] for source in info["documents"]],
            chunks=[index.chunks[i] for i in ids],
            chunk_vectors=vectors[ids] if vectors is not None else np.zeros((0, index.dense.d), np.float32),
            sentence_spans=[index.sentence_spans[r.start : r.stop] for r in sentences],
            sentence_vectors=[index.sentence_vectors[r.start : r.stop] for r in sentences],
        )
    return entries


def _embedding_text(chunk: Chunk) -> tuple[str, int]:
    """What the model sees for a chunk: its title as context, then the chunk. Returns the text and
    where the chunk starts in it."""
    prefix = f"{chunk.title}\n" if chunk.title and not chunk.text.startswith(chunk.title) else ""
    return prefix + chunk.text, len(prefix)


def build_index(
    corpus: Path,
    folder: Path,
    model: str,
    chunking: ChunkSettings = ChunkSettings(),
    fields: TableFields = TableFields(),
    embedder: Embedder | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
) -> BuildReport:
    """Index the corpus folder into `folder`, re-embedding only added or changed files. Files over
    `max_file_mb` are skipped without being read."""
    started = time.perf_counter()
    if not corpus.is_dir():
        raise CorpusNotFound(corpus)
    report = BuildReport()
    with _Lock(folder):
        files, report.ignored = walk_corpus(corpus, skip=lambda path: _is_same(path, folder) or looks_like_index(path))
        settings = _settings_of(model, chunking, fields)
        previous, report.full_rebuild_reason = _reusable_entries(folder, settings)

        entries: list[_FileEntry] = []
        to_embed: list[tuple[CorpusFile, str, list[Document]]] = []
        for number, corpus_file in enumerate(files, start=1):
            try:
                # read once: the hash and the documents come from the same bytes, even if the file changes
                data = read_file(corpus_file.path, corpus, int(max_file_mb * 1e6))
            except LoadError as exc:
                report.skipped.append((corpus_file.source, str(exc)))
                continue
            digest = hashlib.sha256(data).hexdigest()
            old_entry = previous.get(corpus_file.source)
            if old_entry is not None and old_entry.sha256 == digest:
                entries.append(old_entry)
                report.reused += 1
                continue
            try:
                documents = load_file(corpus_file.path, corpus_file.source, data, fields)
            except LoadError as exc:
                report.skipped.append((corpus_file.source, str(exc)))
                continue
            to_embed.append((corpus_file, digest, documents))
            if on_progress:
                on_progress("reading", number, len(files))
        if on_progress and to_embed:  # finish the bar: the last files may have been unchanged or skipped
            on_progress("reading", len(files), len(files))
        report.removed = len(set(previous) - {f.source for f in files})

        if to_embed:
            embedder = embedder or Embedder(model)
            entries.extend(_embed_files(to_embed, embedder, chunking, on_progress))
            report.embedded = len(to_embed)
        if not entries:
            raise EmptyCorpus(corpus, report.skipped)
        entries.sort(key=lambda e: e.file)
        dimension = entries[0].chunk_vectors.shape[1] if entries[0].chunk_vectors.size else embedder.dimension
        report.files = len(entries)
        report.documents = sum(len(e.documents) for e in entries)
        report.chunks = sum(len(e.chunks) for e in entries)
        report.seconds = time.perf_counter() - started
        manifest = {
            "format_version": FORMAT_VERSION,
            **settings,
            "dimension": int(dimension),
            "versions": _versions(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(report.seconds, 2),
            "counts": {"files": report.files, "documents": report.documents, "chunks": report.chunks},
            "skipped": [{"file": f, "reason": r} for f, r in report.skipped],
            "files": {
                e.file: {"sha256": e.sha256, "documents": [d.source for d in e.documents], "chunks": len(e.chunks)}
                for e in entries
            },
        }
        _write_build(folder, entries, manifest, dimension)
    return report


def _embed_files(to_embed, embedder: Embedder, chunking: ChunkSettings, on_progress) -> list[_FileEntry]:
    limit = max(16, embedder.max_tokens - 8)
    settings = ChunkSettings(tokens=min(chunking.tokens, limit), overlap=min(chunking.overlap, limit // 4))
    splitter = make_splitter(embedder.tokenizer, settings)
    texts, spans, shifts = [], [], []
    per_file_chunks: list[list[Chunk]] = []
    for _, _, documents in to_embed:
        chunks = [c for d in documents for c in chunk_document(d, splitter)]
        per_file_chunks.append(chunks)
        for chunk in chunks:
            text, shift = _embedding_text(chunk)
            texts.append(text)
            spans.append([(s + shift, e + shift) for s, e in sentence_spans(chunk.text)])
            shifts.append(chunk.start - shift)  # embedding-text offset -> document offset
    done = 0

    def progress(n):
        nonlocal done
        done += n
        if on_progress:
            on_progress("embedding", done, len(texts))

    progress(0)  # the bar starts now, so its rate counts the model's work only
    vectors, sentence_vectors = embedder.encode_documents(texts, spans, progress)
    entries, position = [], 0
    for (corpus_file, digest, documents), chunks in zip(to_embed, per_file_chunks):
        ids = range(position, position + len(chunks))
        position += len(chunks)
        entries.append(
            _FileEntry(
                file=corpus_file.source,
                sha256=digest,
                documents=documents,
                chunks=chunks,
                chunk_vectors=vectors[ids.start : ids.stop],
                sentence_spans=[np.array(spans[i], dtype=np.int64).reshape(-1, 2) + shifts[i] for i in ids],
                sentence_vectors=[sentence_vectors[i].astype(np.float16) for i in ids],
            )
        )
    return entries


# errors that mean "no room": a full disk, a quota, or a file size limit (RLIMIT_FSIZE)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _write_build(folder: Path, entries: list[_FileEntry], manifest: dict, dimension: int) -> None:
    builds = folder / "builds"
    # nanoseconds: two builds in the same second (one process re-indexing) must not share a folder
    now = time.time_ns()
    build_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}-{os.getpid()}"
    tmp = builds / f".{build_id}.partial"
    try:
        builds.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        _write_files(tmp, entries, manifest, dimension)
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


def _write_files(tmp: Path, entries: list[_FileEntry], manifest: dict, dimension: int) -> None:
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
    manifest = {**manifest, "build_files": _file_hashes(tmp)}  # what `qa index` checks before reusing them
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
