"""The on-disk index: its layout, one writer at a time, and the one place a build is opened (or
reopened when a newer one is swapped in). Writing a build and swapping it in is qa.save.

Layout of an index folder:
    current -> builds/<id>     a symlink, swapped atomically when a build completes
    builds/<id>/manifest.json  model, dimension, chunker settings, versions, per-file hashes, counts,
                               the segments of the build with the files deleted from each, and the
                               SHA-256 of each file of the build
    builds/<id>/<segment>/     immutable segments (qa.segment); a build hard-links the segments it
                               keeps from the build before, so an unchanged file costs nothing
    .lock                      held by the one `qa index` run allowed to write

A build is written to a fresh folder beside the live one and only then is `current` repointed, so
a crash or kill at any moment leaves the previous index complete and loadable. Opening a build
checks, in time that does not grow with the corpus, that its files are there and fit the manifest
(qa.integrity); a damaged one raises IndexDamaged. Chunk ids run through the segments in manifest
order; a deleted chunk keeps its id but is never a search result.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa import dense
from qa.errors import IndexBusy, IndexDamaged, IndexMismatch, IndexNotFound, one_line
from qa.integrity import check_manifest_sum, misfit, reading, verify_files
from qa.lexical import Lexical, Part
from qa.segment import FileEntry, Segment, open_segment
from qa.types import Chunk, Document

__all__ = ["FileEntry", "Index", "IndexLock", "LiveIndex", "open_index", "read_manifest", "has_index"]

FORMAT_VERSION = 2  # 2: segments (SQLite text, memory-mapped vectors, BM25 postings); 1: one folder read whole
RECHECK_SECONDS = 5.0  # how often a LiveIndex that follows swaps looks for a newer build
log = logging.getLogger(__name__)


@dataclass
class Index:
    """One build of an index, opened. Retrieval and answering read it through these methods; the
    segments behind them are memory-mapped arrays and SQLite tables, read on demand."""

    folder: Path
    build: Path  # the build folder it was read from
    manifest: dict
    segments: list[Segment]
    deleted: list[np.ndarray | None]  # per segment, which of its chunks are deleted (None: none)
    offsets: np.ndarray  # segment i holds chunk ids offsets[i]:offsets[i+1]
    sentence_offsets: np.ndarray  # and sentence rows sentence_offsets[i]:sentence_offsets[i+1]
    lexical: Lexical
    # facts derived from chunks on first use and kept while the build is open (see `memo`)
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def precision(self) -> str:
        return precision_of(self.manifest)

    @property
    def chunk_count(self) -> int:
        """How many chunks can be found (deleted ones are not counted)."""
        return self.lexical.n_docs

    @property
    def id_space(self) -> int:
        """One more than the largest chunk id (deleted chunks keep their ids)."""
        return int(self.offsets[-1])

    def _locate(self, chunk_id: int) -> tuple[int, int]:
        s = int(np.searchsorted(self.offsets, chunk_id, side="right")) - 1
        return s, chunk_id - int(self.offsets[s])

    def chunk(self, chunk_id: int) -> Chunk:
        s, local = self._locate(chunk_id)
        return self.segments[s].chunk(local)

    def is_live(self, chunk_id: int) -> bool:
        """Whether the chunk id is one of the build's chunks that can be found (not deleted)."""
        if not 0 <= chunk_id < self.id_space:
            return False
        s, local = self._locate(chunk_id)
        return self.deleted[s] is None or not self.deleted[s][local]

    def document(self, source: str) -> Document | None:
        for segment, deleted_files in zip(reversed(self.segments), reversed(self._deleted_files())):
            found = segment.document(source)
            if found is not None and found[0] not in deleted_files:
                return found[1]
        return None

    def documents(self) -> Iterator[Document]:
        """Every live document, read a few at a time."""
        for segment, deleted_files in zip(self.segments, self._deleted_files()):
            yield from segment.documents(deleted_files)

    def chunks(self) -> Iterator[Chunk]:
        """Every live chunk, read one at a time (for checks and tools, not for answering)."""
        for segment, deleted in zip(self.segments, self.deleted):
            for local in range(len(segment.vectors)):
                if deleted is None or not deleted[local]:
                    yield segment.chunk(local)

    def _deleted_files(self) -> list[set[str]]:
        return [set(s["deleted"]["files"]) for s in self.manifest["segments"]]

    def file_chunk_ids(self, file: str) -> list[int]:
        """The chunk ids of a corpus file of the build."""
        info = self.manifest["files"].get(file)
        if info is None:
            return []
        s = [x["name"] for x in self.manifest["segments"]].index(info["segment"])
        return [int(self.offsets[s]) + i for i in self.segments[s].chunk_range(file)]

    def first_document(self, file: str) -> Document | None:
        """The first document of a corpus file of the build (a table's first row)."""
        info = self.manifest["files"].get(file)
        if info is None:
            return None
        s = [x["name"] for x in self.manifest["segments"]].index(info["segment"])
        return self.segments[s].first_document(file)

    def sentence_rows(self, chunk_id: int) -> range:
        s, local = self._locate(chunk_id)
        base, ptr = int(self.sentence_offsets[s]), self.segments[s].sentence_ptr
        return range(base + int(ptr[local]), base + int(ptr[local + 1]))

    def sentence_texts(self, chunk_id: int) -> list[tuple[int, int, str]]:
        """(start, end, text) of each sentence of a chunk, in document offsets."""
        s, local = self._locate(chunk_id)
        segment = self.segments[s]
        chunk = segment.chunk(local)
        spans = segment.sentence_spans[segment.sentence_ptr[local] : segment.sentence_ptr[local + 1]].tolist()
        return [(a, b, chunk.text[a - chunk.start : b - chunk.start]) for a, b in spans]

    def sentence_vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """The vectors of the sentences of these chunks, chunk after chunk (float16)."""
        blocks = []
        for chunk_id in chunk_ids:
            s, local = self._locate(chunk_id)
            segment = self.segments[s]
            blocks.append(segment.sentence_vectors[segment.sentence_ptr[local] : segment.sentence_ptr[local + 1]])
        return np.concatenate(blocks) if blocks else np.zeros((0, self.manifest["dimension"]), np.float16)

    def chunk_vectors(self, chunk_ids: Sequence[int]) -> np.ndarray:
        """The vectors of these chunks (float32), read from the memory-mapped segments."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        out = np.zeros((len(ids), self.manifest["dimension"]), np.float32)
        which = np.searchsorted(self.offsets, ids, side="right") - 1
        for s in np.unique(which):
            rows = np.flatnonzero(which == s)
            out[rows] = self.segments[s].vectors_at(ids[rows] - self.offsets[s])
        return out

    def dense_search(self, query_vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ids of the (up to) k live chunks nearest the query and their cosine similarities,
        best first."""
        ids, scores = [], []
        for segment, deleted, offset in zip(self.segments, self.deleted, self.offsets):
            local, found = dense.search(segment.vectors, segment.graph, query_vector, k, deleted,
                                        segment.vectors_at)
            ids.append(local + int(offset))
            scores.append(found)
        ids, scores = np.concatenate(ids), np.concatenate(scores).astype(np.float32)
        order = np.lexsort((ids, -scores))[:k]  # ties by id, so the order never depends on the segments
        return ids[order], scores[order]

    def dense_scores(self, chunk_ids: Sequence[int], query_vector: np.ndarray) -> np.ndarray:
        """The cosine similarity of each of these chunks to the query."""
        return self.chunk_vectors(chunk_ids) @ query_vector.astype(np.float32)

    def lexical_scores(self, terms: list[str]) -> np.ndarray:
        """The BM25 score of every chunk id (-inf for deleted chunks)."""
        return self.lexical.scores(terms)

    def idf(self, term: str) -> float:
        return self.lexical.idf(term)

    def spelled_like(self, term: str) -> bool:
        return self.lexical.spelled_like(term)

    def doc_freq(self, term: str) -> int:
        """How many live chunks hold the term."""
        return self.lexical.doc_freq(term)

    def memo(self, key, compute: Callable):
        """`compute()`, computed once per opened build: popular chunks come back for question after
        question, and what is derived from them need not be derived again."""
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute()
        return value


def precision_of(manifest: dict) -> str:
    """What the index's document vectors were computed in, so documents added later are embedded
    the same way; an index built before int8 existed is float32."""
    return manifest.get("precision", "float32")


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
    manifest = folder / "manifest.json"
    return manifest.is_file() and (any(folder.glob("seg-*/text.sqlite")) or (folder / "chunks.jsonl").is_file())


def read_manifest(folder: Path | str) -> dict:
    """How the live build was made and what it holds, read without opening the build."""
    folder = Path(folder)
    return _manifest(folder, live_build(folder))


def _manifest(folder: Path, build: Path) -> dict:
    with reading(folder, "manifest.json"):
        data = (build / "manifest.json").read_bytes()
        manifest = json.loads(data)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    if manifest.get("format_version") == FORMAT_VERSION:  # an older format is refused by its version
        check_manifest_sum(folder, build, data)
    return manifest


def open_index(folder: Path, model: str | None = None, verify: bool | str = False) -> Index:
    """Open the live build of an index. If `model` is given it must be the one the index was built
    with: vectors from two models are not comparable. Nothing proportional to the corpus is read:
    vectors are memory-mapped and text is read when asked for, from files held open, so the build's
    files may be removed once this returns.

    A file that is missing or does not fit the manifest raises IndexDamaged. With `verify`, each
    file must also have the SHA-256 the manifest recorded; with verify="changed", only the files
    whose size or modification time changed since the build wrote them are read to check it."""
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
        stats = manifest.get("build_stats", {}) if verify == "changed" else None
        verify_files(folder, build, manifest.get("build_files", {}), stats)
    with reading(folder, "manifest.json"):
        infos = manifest["segments"]
        chunks = [s["chunks"] for s in infos]
        live = sum(s["chunks"] - s["deleted"]["chunks"] for s in infos)
        live_tokens = sum(s["tokens"] - s["deleted"]["tokens"] for s in infos)
        sentence_offsets = np.concatenate([[0], np.cumsum([s["sentences"] for s in infos])]).astype(np.int64)
    segments = [open_segment(build / info["name"], info, lambda name: reading(folder, name)) for info in infos]
    deleted = []
    for segment, info in zip(segments, infos):
        mask = None
        if info["deleted"]["files"]:
            mask = np.zeros(info["chunks"], dtype=bool)
            for file in info["deleted"]["files"]:
                where = segment.chunk_range(file)
                mask[where.start : where.stop] = True
        deleted.append(mask)
    offsets = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    parts = [Part(s.postings, int(o), d) for s, o, d in zip(segments, offsets, deleted)]
    lexical = Lexical(parts, int(offsets[-1]), live, live_tokens)
    index = Index(folder, build, manifest, segments, deleted, offsets, sentence_offsets, lexical)
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
