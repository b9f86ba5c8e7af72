"""A collection's documents managed over the web: listed, added (uploaded files written into the
collection's corpus folder), removed, and indexed by background builds.

An uploaded file is read by the same loaders and limits as `qa index` before it is written, so a
file that would be skipped (corrupt, encrypted, empty, a zip bomb) is refused with that reason and
never enters the corpus. Nothing outside the corpus folder is written: a file name is refused
unless it is a plain name of a supported type (no path separator, no "..", not hidden, no control
character), and it is written under a hidden temporary name in the corpus folder itself, then
renamed into place. Only a source the collection lists can be removed.

Each collection has one DocumentBuilds: one build at a time (qa.ingest.build, in a thread, with
the index's own model and chunking), changes arriving meanwhile are queued into the next one, and
the server reopens the index as soon as its own build is swapped in.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from qa.errors import DocumentConflict, DocumentRefused, NoSuchDocument, QAError, one_line
from qa.pipeline import DOCUMENT_SUFFIXES, ChunkSettings, TableFields, build, check_document
from qa.web.collections import Collection

log = logging.getLogger("qa.web")

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024  # one uploaded file (qa.web.guard.MAX_UPLOAD)
MAX_DOCUMENTS_BODY = 64 * 1024 * 1024  # one upload request, all its files together
MAX_FILES_PER_UPLOAD = 50
MAX_CORPUS_BYTES = 2 * 1024**3  # a collection's corpus folder, uploads included
MAX_NAME_BYTES = 200


def safe_name(name: str) -> str:
    """The name an uploaded file is written under, or DocumentRefused saying why it cannot be:
    only a plain file name of a supported type lands in the corpus folder."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise DocumentRefused("the file has no name")
    if any(sep in name for sep in ("/", "\\", ":")) or os.path.isabs(name):
        raise DocumentRefused(f"{name!r}: a file name may not hold a path (/, \\ or :)")
    if ".." in name:
        raise DocumentRefused(f"{name!r}: a file name may not hold '..'")
    if name.startswith("."):
        raise DocumentRefused(f"{name!r}: hidden file names (starting with '.') are not indexed")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise DocumentRefused(f"{name!r}: a file name may not hold control or unassigned characters")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise DocumentRefused(f"the file name is over {MAX_NAME_BYTES} bytes")
    suffix = Path(name).suffix.lower()
    if suffix not in DOCUMENT_SUFFIXES:
        raise DocumentRefused(f"{name!r}: {suffix or 'no suffix'} is not a supported type "
                              f"({', '.join(DOCUMENT_SUFFIXES)})")
    return name


@dataclass
class BuildOptions:
    max_file_mb: float
    cache: str = ""


class DocumentBuilds:
    """The background builds of one collection, and what they report."""

    def __init__(self, collection: Collection, options: BuildOptions):
        self.collection = collection
        self.options = options
        self.lock = threading.Lock()
        self.wanted = False  # a change is waiting for the next build
        self.running = False
        self.queued: set[str] = set()  # sources added or removed since the running build started
        self.building: set[str] = set()
        self.progress: dict | None = None
        self.last: dict | None = None

    def request(self, sources: set[str]) -> None:
        with self.lock:
            self.queued |= sources
            self.wanted = True
            if not self.running:
                self.running = True
                threading.Thread(target=self._work, name=f"qa-build-{self.collection.name}", daemon=True).start()

    def waiting(self) -> set[str]:
        """Sources added or removed that the live index does not show yet."""
        with self.lock:
            return self.queued | self.building

    def status(self) -> dict:
        with self.lock:
            return {"collection": self.collection.name, "building": self.progress is not None,
                    "queued": sorted(self.queued) if self.wanted else [], "progress": self.progress,
                    "last_build": self.last}

    def _work(self) -> None:
        while True:
            with self.lock:
                if not self.wanted:
                    self.running = False
                    return
                self.wanted = False
                self.building, self.queued = self.queued, set()
                self.progress = {"stage": "starting", "done": 0, "total": 0}
            started = time.time()
            result = self._build_once()
            result["started_at"] = _stamp(started)
            result["finished_at"] = _stamp(time.time())
            result["changed"] = sorted(self.building)
            with self.lock:
                self.last, self.progress, self.building = result, None, set()

    def _build_once(self) -> dict:
        collection = self.collection
        manifest = collection.qa.index.manifest

        def on_progress(stage: str, done: int, total: int) -> None:
            self.progress = {"stage": stage, "done": done, "total": total}  # one assignment: read whole

        try:
            report = build(
                collection.corpus, collection.index, manifest["model"],
                ChunkSettings(**manifest["chunking"]), TableFields(**manifest["table_fields"]),
                on_progress=on_progress, embedder=collection.qa.embedder,
                max_file_mb=self.options.max_file_mb, cache=self.options.cache,
            )
            collection.qa.reopen()
        except QAError as exc:  # from 500 up, its message names folders of this machine: the log's
            log.warning("building collection %s: %s", collection.name, exc)
            return {"ok": False, "error": str(exc) if exc.http_status < 500
                    else f"the build failed: {type(exc).__name__} (details are in the server log)"}
        except Exception as exc:  # a bug: keep serving the open index, say so in the status
            log.exception("building collection %s", collection.name)
            return {"ok": False, "error": f"the build failed ({one_line(exc)})"}
        return {"ok": True, "files": report.files, "embedded": report.embedded, "reused": report.reused,
                "removed": report.removed, "chunks": report.chunks, "seconds": round(report.seconds, 2),
                "skipped": [{"file": f, "reason": r} for f, r in report.skipped]}


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def builds_of(collection: Collection, options: BuildOptions) -> DocumentBuilds:
    if collection.builds is None:
        collection.builds = DocumentBuilds(collection, options)
    return collection.builds


# --- what the routes and the Documents tab do -------------------------------------------------------

def list_documents(collection: Collection) -> list[dict]:
    """The indexed files (source, title, size, chunks, indexed_at), then the ones added since,
    waiting for their build (chunks and indexed_at null)."""
    index = collection.qa.index
    rows = []
    for source, entry in sorted(index.manifest["files"].items()):
        first = index.first_document(source) if entry["documents"] else None
        rows.append({"source": source, "title": first.title if first else "", "size": _size(collection, source),
                     "documents": entry["documents"], "chunks": entry["chunks"],
                     "indexed_at": entry.get("indexed_at", index.manifest["built_at"])})
    listed = {r["source"] for r in rows}
    builds = collection.builds
    if builds is not None:
        for source in sorted(builds.waiting() - listed):
            size = _size(collection, source)
            if size is not None:
                rows.append({"source": source, "title": "", "size": size, "documents": None, "chunks": None,
                             "indexed_at": None})
    return rows


def _size(collection: Collection, source: str) -> int | None:
    try:
        return (collection.corpus / source).stat().st_size
    except OSError:
        return None


def _corpus_bytes(corpus: Path) -> int:
    total = 0
    for where, _, files in os.walk(corpus):
        for name in files:
            try:
                total += os.lstat(os.path.join(where, name)).st_size
            except OSError:
                pass
    return total


def add_documents(collection: Collection, files: list[tuple[str, bytes]], options: BuildOptions) -> dict:
    """Write the acceptable files into the corpus folder (replacing a file of the same name) and
    queue a build. Returns what was accepted, what was refused and why, and the build status."""
    accepted, refused = [], []
    limit = min(MAX_DOCUMENT_BYTES, int(options.max_file_mb * 1e6))
    room = MAX_CORPUS_BYTES - _corpus_bytes(collection.corpus)
    for given, data in files[:MAX_FILES_PER_UPLOAD]:
        try:
            name = safe_name(given)
            if len(data) > limit:
                raise DocumentRefused(f"{name!r} is {len(data):,} bytes, over the {limit:,}-byte limit per file")
            if len(data) > room:
                raise DocumentRefused(f"{name!r} does not fit: the collection's documents may take "
                                      f"{MAX_CORPUS_BYTES:,} bytes in all")
            documents = check_document(name, data)
        except QAError as exc:  # DocumentRefused, or the loader's LoadError
            refused.append({"file": given, "reason": str(exc) if isinstance(exc, DocumentRefused)
                            else f"{given!r}: {exc}"})
            continue
        _write(collection.corpus, name, data)
        room -= len(data)
        accepted.append({"source": name, "documents": documents, "size": len(data)})
    for given, _ in files[MAX_FILES_PER_UPLOAD:]:
        refused.append({"file": given, "reason": f"over {MAX_FILES_PER_UPLOAD} files in one upload"})
    builds = builds_of(collection, options)
    if accepted:
        builds.request({a["source"] for a in accepted})
    return {"collection": collection.name, "accepted": accepted, "refused": refused, "status": builds.status()}


def _write(corpus: Path, name: str, data: bytes) -> None:
    """Write a file into the corpus folder whole: under a hidden name (which the corpus walk
    ignores), then renamed over any file of that name (a symlink is replaced, never followed)."""
    corpus.mkdir(parents=True, exist_ok=True)
    target = corpus / name
    if target.parent != corpus or (target.is_dir() and not target.is_symlink()):
        raise DocumentRefused(f"{name!r}: a folder of that name is in the collection")
    temporary = corpus / f".upload-{uuid.uuid4().hex}.part"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_document(collection: Collection, source: str, options: BuildOptions) -> dict:
    """Remove a listed source from the corpus folder and queue a build without it."""
    listed = {row["source"] for row in list_documents(collection)}
    if source not in listed:
        raise NoSuchDocument(f"no document {source!r} in collection {collection.name!r}")
    parts = Path(source).parts
    if Path(source).is_absolute() or ".." in parts:  # a listed source never is: kept out all the same
        raise NoSuchDocument(f"no document {source!r} in collection {collection.name!r}")
    if listed == {source}:
        raise DocumentConflict(f"{source!r} is the last document of collection {collection.name!r}: "
                               "add another before removing it")
    path = collection.corpus.joinpath(*parts)
    if not Path(os.path.realpath(path.parent)).is_relative_to(os.path.realpath(collection.corpus)):
        raise NoSuchDocument(f"no document {source!r} in collection {collection.name!r}")
    try:
        path.unlink()  # a symlink itself, not its target
    except FileNotFoundError:
        pass  # already gone from the folder: the build drops it from the index
    builds = builds_of(collection, options)
    builds.request({source})
    return {"collection": collection.name, "removed": source, "status": builds.status()}
