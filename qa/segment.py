"""One segment of the index: an immutable folder holding some corpus files' documents, chunks,
vectors and BM25 postings, written once from a stream of FileEntry and then only read.

Files of a segment folder:
    text.sqlite          files, documents (text, titles, sections) and chunks (offsets), BM25 terms
    chunks.npy           (chunks, dim) float32 chunk vectors
    sentence_ptr.npy     chunk i owns sentences sentence_ptr[i]:sentence_ptr[i+1]
    sentence_spans.npy   (sentences, 2) document offsets; sentence_vectors.npy (sentences, dim) float16
    postings_*.npy, lengths.npy   BM25 term-frequency postings (qa.lexical)
    dense.ivf            an IVF index, only for a segment above the ANN threshold (qa.dense)

Opening one reads no per-chunk data: arrays are memory-mapped, text is read from SQLite on demand.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from qa import dense
from qa.lexical import Postings, PostingsWriter, tokenize
from qa.types import Chunk, Document, Section

TEXT = "text.sqlite"
ARRAYS = ("chunks.npy", "sentence_ptr.npy", "sentence_spans.npy", "sentence_vectors.npy")
_SCHEMA = """
CREATE TABLE files (file TEXT PRIMARY KEY, sha256 TEXT NOT NULL, chunk_lo INTEGER NOT NULL, chunk_hi INTEGER NOT NULL);
CREATE TABLE documents (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE, file TEXT NOT NULL, title TEXT NOT NULL,
                        text TEXT NOT NULL, sections TEXT NOT NULL);
CREATE INDEX documents_by_file ON documents (file);
CREATE TABLE chunks (id INTEGER PRIMARY KEY, document INTEGER NOT NULL, title TEXT NOT NULL, location TEXT NOT NULL,
                     start INTEGER NOT NULL, end INTEGER NOT NULL);
"""


@dataclass
class FileEntry:
    """Everything a segment holds for one corpus file: what a build is written from."""

    file: str
    sha256: str
    documents: list[Document]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray
    sentence_spans: list[np.ndarray]  # per chunk, (n, 2) document offsets
    sentence_vectors: list[np.ndarray]  # per chunk


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A .npy (version 1.0) header of a fixed 128 bytes, so it can be rewritten once the row count is known."""
    text = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    body = text.encode("latin1").ljust(128 - 10 - 1) + b"\n"
    if len(body) != 118:
        raise ValueError(f"shape {shape} does not fit a 128-byte .npy header")
    return b"\x93NUMPY\x01\x00" + (118).to_bytes(2, "little") + body


class _Rows:
    """A .npy file written block after block without holding its rows in memory."""

    def __init__(self, path: Path, dtype, width: tuple[int, ...] = ()):
        self.file, self.dtype, self.width, self.rows = open(path, "wb"), np.dtype(dtype), width, 0
        self.file.write(_npy_header(self.dtype, (0, *width)))

    def add(self, block) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, *self.width)
        self.file.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self.file.seek(0)
        self.file.write(_npy_header(self.dtype, (self.rows, *self.width)))
        self.file.close()


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a Python file, so a full disk raises OSError with its errno
        np.save(f, array)


def write_segment(folder: Path, entries: Iterable[FileEntry], dimension: int, ann_threshold: int) -> tuple[dict, dict]:
    """Write a segment of these entries (streamed: one entry in memory at a time) into the new
    folder. Returns the segment's description for the manifest, and {file: its manifest entry}."""
    folder.mkdir()
    db = sqlite3.connect(folder / TEXT)
    db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)
    vectors = _Rows(folder / "chunks.npy", np.float32, (dimension,))
    spans = _Rows(folder / "sentence_spans.npy", np.int64, (2,))
    sentence_vectors = _Rows(folder / "sentence_vectors.npy", np.float16, (dimension,))
    ptr = [0]
    postings = PostingsWriter()
    files, documents, chunks = {}, 0, 0
    for e in entries:
        doc_ids = {}
        for d in e.documents:
            sections = json.dumps([[s.label, s.start, s.end] for s in d.sections], ensure_ascii=False)
            cursor = db.execute("INSERT INTO documents (source, file, title, text, sections) VALUES (?, ?, ?, ?, ?)",
                                (d.source, e.file, d.title, d.text, sections))
            doc_ids[d.source] = cursor.lastrowid
        db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                       [(chunks + i, doc_ids[c.source], c.title, c.location, c.start, c.end)
                        for i, c in enumerate(e.chunks)])
        db.execute("INSERT INTO files VALUES (?, ?, ?, ?)", (e.file, e.sha256, chunks, chunks + len(e.chunks)))
        vectors.add(np.asarray(e.chunk_vectors).reshape(-1, dimension))
        for c, s, v in zip(e.chunks, e.sentence_spans, e.sentence_vectors):
            spans.add(s)
            sentence_vectors.add(v)
            ptr.append(ptr[-1] + len(s))
            postings.add(tokenize(f"{c.title}\n{c.heading}\n{c.text}"))
        files[e.file] = {"sha256": e.sha256, "documents": len(e.documents), "chunks": len(e.chunks)}
        documents += len(e.documents)
        chunks += len(e.chunks)
    for rows in (vectors, spans, sentence_vectors):
        rows.close()
    _save(folder / "sentence_ptr.npy", np.array(ptr, dtype=np.int64))
    lexical = postings.write(folder, db, _save)
    db.commit()
    db.close()
    kind = dense.kind_for(chunks, ann_threshold)
    if kind["kind"] != "exact":
        dense.build_ann(np.load(folder / "chunks.npy", mmap_mode="r"), kind, folder / dense.ANN_FILE)
    info = {"name": folder.name, "files": len(files), "documents": documents, "chunks": chunks,
            "sentences": ptr[-1], **lexical, "dense": kind}
    return info, files


def _array(path: Path) -> np.ndarray:
    array = np.load(path, mmap_mode="r")
    if not isinstance(array, np.ndarray):
        raise ValueError("not a .npy array")
    return array


@dataclass
class Segment:
    """A segment, opened: arrays memory-mapped, text read from SQLite when asked."""

    folder: Path
    info: dict
    db: sqlite3.Connection
    lock: threading.Lock  # one connection, shared by the threads of a server
    vectors: np.ndarray
    sentence_ptr: np.ndarray
    sentence_spans: np.ndarray
    sentence_vectors: np.ndarray
    postings: Postings
    graph: object | None  # faiss index, for an ANN segment
    vector_file: BinaryIO  # chunks.npy, read by row where a question needs a few vectors

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def vectors_at(self, local_ids: np.ndarray) -> np.ndarray:
        """These chunks' vectors, read with pread rather than through the mapping: a question reads
        a few dozen, far apart, and each touch of the mapping would map the disk's readahead and
        the page cache's large folios around it (about 1 MB a vector at 1M chunks)."""
        row = self.vectors.shape[1] * self.vectors.itemsize
        fd, start = self.vector_file.fileno(), self.vectors.offset
        data = b"".join(os.pread(fd, row, start + int(i) * row) for i in local_ids)
        return np.frombuffer(data, dtype=self.vectors.dtype).reshape(len(local_ids), self.vectors.shape[1])

    def chunk(self, local: int) -> Chunk:
        [(source, title, location, start, end, text)] = self.query(
            "SELECT d.source, c.title, c.location, c.start, c.end, substr(d.text, c.start + 1, c.end - c.start) "
            "FROM chunks c JOIN documents d ON d.id = c.document WHERE c.id = ?", (local,))
        return Chunk(source=source, title=title, location=location, start=start, end=end, text=text)

    def document(self, source: str) -> tuple[str, Document] | None:
        """The document and the file it came from."""
        rows = self.query("SELECT file, source, title, text, sections FROM documents WHERE source = ?", (source,))
        return (rows[0][0], _document(*rows[0][1:])) if rows else None

    def first_document(self, file: str) -> Document | None:
        rows = self.query("SELECT source, title, text, sections FROM documents WHERE file = ? ORDER BY id LIMIT 1",
                          (file,))
        return _document(*rows[0]) if rows else None

    def documents(self, skip_files: set[str], batch: int = 256) -> Iterator[Document]:
        last = 0
        while rows := self.query("SELECT id, file, source, title, text, sections FROM documents WHERE id > ? "
                                 "ORDER BY id LIMIT ?", (last, batch)):
            last = rows[-1][0]
            yield from (_document(*row[2:]) for row in rows if row[1] not in skip_files)

    def chunk_range(self, file: str) -> range:
        rows = self.query("SELECT chunk_lo, chunk_hi FROM files WHERE file = ?", (file,))
        return range(*rows[0]) if rows else range(0)

    def entries(self, files: Iterable[str]) -> Iterator[FileEntry]:
        """What the segment holds for these files, one file at a time (to write it into another)."""
        for file in files:
            [(sha256, lo, hi)] = self.query("SELECT sha256, chunk_lo, chunk_hi FROM files WHERE file = ?", (file,))
            docs = self.query("SELECT source, title, text, sections FROM documents WHERE file = ? ORDER BY id", (file,))
            documents = [_document(*row) for row in docs]
            texts = {d.source: d.text for d in documents}
            rows = self.query("SELECT d.source, c.title, c.location, c.start, c.end FROM chunks c "
                              "JOIN documents d ON d.id = c.document WHERE c.id >= ? AND c.id < ? ORDER BY c.id",
                              (lo, hi))
            ptr = self.sentence_ptr
            yield FileEntry(
                file=file, sha256=sha256, documents=documents,
                chunks=[Chunk(source=s, title=t, location=loc, start=a, end=b, text=texts[s][a:b])
                        for s, t, loc, a, b in rows],
                chunk_vectors=np.array(self.vectors[lo:hi]),
                sentence_spans=[np.array(self.sentence_spans[ptr[i] : ptr[i + 1]]) for i in range(lo, hi)],
                sentence_vectors=[np.array(self.sentence_vectors[ptr[i] : ptr[i + 1]]) for i in range(lo, hi)],
            )

    def files(self) -> list[str]:
        return [row[0] for row in self.query("SELECT file FROM files ORDER BY chunk_lo")]


def _document(source: str, title: str, text: str, sections: str) -> Document:
    return Document(source, title, text, tuple(Section(*s) for s in json.loads(sections)))


def open_segment(folder: Path, info: dict, reading) -> Segment:
    """Open a segment; `reading(name)` is the context that turns a damaged file into IndexDamaged."""
    prefix = folder.name + "/"
    with reading(prefix + TEXT):
        if not (folder / TEXT).is_file():
            raise FileNotFoundError("missing")
        db = sqlite3.connect(f"{(folder / TEXT).resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                             check_same_thread=False)
        # O(1) checks that the tables are there and hold what the manifest says
        [(chunks, documents)] = db.execute(
            "SELECT (SELECT coalesce(max(id) + 1, 0) FROM chunks), (SELECT count(*) FROM files)").fetchall()
        if (chunks, documents) != (info["chunks"], info["files"]):
            raise ValueError(f"holds {chunks} chunks of {documents} files, not {info['chunks']} of {info['files']}")
        db.execute("SELECT count(*) FROM terms WHERE term = ''").fetchall()
    arrays = {}
    for name in ARRAYS + ("postings_ptr.npy", "postings_docs.npy", "postings_tf.npy", "lengths.npy"):
        with reading(prefix + name):
            arrays[name] = _array(folder / name)
    graph = None
    if info["dense"]["kind"] != "exact":
        with reading(prefix + dense.ANN_FILE):
            graph = dense.open_ann(folder / dense.ANN_FILE, info["dense"])
    lock = threading.Lock()
    postings = Postings(db, lock, arrays["postings_ptr.npy"], arrays["postings_docs.npy"], arrays["postings_tf.npy"],
                        arrays["lengths.npy"])
    return Segment(folder, info, db, lock, arrays["chunks.npy"], arrays["sentence_ptr.npy"],
                   arrays["sentence_spans.npy"], arrays["sentence_vectors.npy"], postings, graph,
                   open(folder / "chunks.npy", "rb", buffering=0))
