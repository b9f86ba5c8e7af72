"""Corpus folder -> a new build of the index: walk the corpus, read each file once, carry over the
files unchanged since the live build, chunk and embed the rest, and hand the whole to qa.store to
save and swap in. The report says what was embedded, reused, removed and skipped (and why).

Only one build runs at a time per index (qa.store.IndexLock). A live build that is damaged, of
another model or of other chunking settings is not reused: the corpus is embedded in full. The
corpus walk never enters an index folder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qa.chunk import ChunkSettings, chunk_document, make_splitter, sentence_spans
from qa.config import DEFAULT_MAX_FILE_MB, DEFAULT_PRECISION
from qa.dense import ANN_THRESHOLD
from qa.embed import Embedder
from qa.errors import CorpusNotFound, EmptyCorpus, IndexDamaged, IndexMismatch, IndexNotFound, LoadError
from qa.load import CorpusFile, TableFields, load_file, read_file, walk_corpus
from qa.save import save_build
from qa.store import FileEntry, Index, IndexLock, looks_like_index, open_index
from qa.types import Chunk, Document

# Bump when chunking, sentence splitting or embedding change what a file turns into: an index built
# before then is re-embedded in full instead of carrying over stale chunks of unchanged files.
# 13: a PDF page's footnotes are paragraphs of their own, a sentence ends after its footnote mark,
#     initials written with dots are one term ("U.S.");
# 12: a punctuation mark named in words or written alone ("!", "exclamation mark") is a term;
# 11: typed things ("%j", "--depth", "foreign_keys") are terms of their own;
# 10: a chunk is embedded and searched with the heading it falls under;
# 9: list items of several words around a text file's article are kept;
# 8: code blocks, headings and colon-ended blocks around a text file's article are kept;
# 7: a sentence keeps its closing quote or bracket; 6: chunks bounded in characters too;
# 5: plain-text headings, FAQ labels, fmt-filled lines;
# 4: text read as prose (wraps joined, table rows named, furniture dropped); 3: no control chars
PIPELINE_VERSION = 13

Progress = Callable[[str, int, int], None]  # (stage, done, total), stage "reading" or "embedding"


@dataclass
class BuildReport:
    files: int = 0
    reused: int = 0
    embedded: int = 0
    removed: int = 0
    documents: int = 0
    chunks: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # files passed over: "hidden", or by suffix
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    seconds: float = 0.0
    full_rebuild_reason: str = ""


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ["sentence-transformers", "faiss-cpu", "bm25s", "langchain-text-splitters", "torch"]
    return {"python": sys.version.split()[0], **{n: version(n) for n in names}}


def _settings_of(model: str, precision: str, chunking: ChunkSettings, fields: TableFields) -> dict:
    return {
        "model": model,
        "precision": precision,
        "chunking": asdict(chunking),
        "table_fields": {"text": fields.text, "title": fields.title, "id": fields.id},
        "pipeline_version": PIPELINE_VERSION,
    }


def _is_utf8(name: str) -> bool:
    """Whether a file name came from valid UTF-8 bytes (Python keeps the bytes of any other name as
    lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_same(path: Path, folder: Path) -> bool:
    return os.path.realpath(path) == os.path.realpath(folder)


def _reusable_build(folder: Path, settings: dict, verify_all: bool) -> tuple[Index | None, str]:
    """The live build, to carry over its unchanged files; or None, and why (on one line) if the
    index must be rebuilt from scratch. Files changed since written are checked by their hash
    (all files with `verify_all`)."""
    try:
        old = open_index(folder, verify=True if verify_all else "changed")
    except IndexNotFound:
        return None, ""
    except IndexDamaged as exc:
        return None, f"the previous index is damaged ({exc.reason})"
    except IndexMismatch as exc:
        return None, f"the previous index could not be read ({exc})"
    if {k: old.manifest.get(k) for k in settings} != settings:
        return None, "the model, its precision or the chunking settings changed"
    return old, ""


def _embedding_text(chunk: Chunk) -> tuple[str, int]:
    """What the model sees for a chunk: its title and heading as context, then the chunk.
    Returns the text and where the chunk starts in it."""
    title = chunk.title if chunk.title and not chunk.text.startswith(chunk.title) else ""
    prefix = "".join(f"{line}\n" for line in (title, chunk.heading) if line)
    return prefix + chunk.text, len(prefix)


def build(
    corpus: Path | str,
    index: Path | str,
    model: str,
    chunking: ChunkSettings = ChunkSettings(),
    fields: TableFields = TableFields(),
    on_progress: Progress | None = None,
    embedder: Embedder | None = None,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    cache: str = "",
    optimize: bool = False,
    ann_threshold: int = ANN_THRESHOLD,
    verify_all: bool = False,
    precision: str = DEFAULT_PRECISION,
) -> BuildReport:
    """Index (or re-index) the corpus folder into the index folder, re-embedding only added or
    changed files. Files over `max_file_mb` are skipped without being read. With `optimize`, the
    index's segments are merged into one; segments of more than `ann_threshold` chunks are searched
    through an approximate (IVF) index. With `verify_all`, every file of the live build is hashed before it is
    reused, not only those whose size or time changed. The model runs in `precision`, or in the
    embedder's when one is given."""
    started = time.perf_counter()
    corpus, folder = Path(corpus), Path(index)
    if not corpus.is_dir():
        raise CorpusNotFound(corpus)
    report = BuildReport()
    with IndexLock(folder):
        files, report.ignored = walk_corpus(corpus, skip=lambda path: _is_same(path, folder) or looks_like_index(path))
        precision = embedder.precision if embedder is not None else precision
        settings = _settings_of(model, precision, chunking, fields)
        old, report.full_rebuild_reason = _reusable_build(folder, settings, verify_all)
        previous = old.manifest["files"] if old is not None else {}

        kept: set[str] = set()
        to_embed: list[tuple[CorpusFile, str, list[Document]]] = []
        for number, corpus_file in enumerate(files, start=1):
            if not _is_utf8(corpus_file.source):  # such a name cannot be shown, cited or saved as text
                shown = corpus_file.source.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                report.skipped.append((shown, "its name is not valid UTF-8: rename the file"))
                continue
            try:
                # read once: the hash and the documents come from the same bytes, even if the file changes
                data = read_file(corpus_file.path, corpus, int(max_file_mb * 1e6))
            except LoadError as exc:
                report.skipped.append((corpus_file.source, str(exc)))
                continue
            digest = hashlib.sha256(data).hexdigest()
            if previous.get(corpus_file.source, {}).get("sha256") == digest:
                kept.add(corpus_file.source)
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

        if not to_embed and not kept:
            raise EmptyCorpus(corpus, report.skipped)
        entries: Iterator[FileEntry] = iter(())
        if to_embed:
            embedder = embedder or Embedder(model, cache=cache, precision=precision)
            to_embed.sort(key=lambda item: item[0].source)
            entries = _embed_files(to_embed, embedder, chunking, on_progress)  # embedded while being written
            report.embedded = len(to_embed)
        dimension = embedder.dimension if to_embed else old.manifest["dimension"]
        manifest = {
            **settings,
            "corpus": os.path.abspath(corpus),  # where uploads to this index go (qa.web.documents)
            "dimension": int(dimension),
            "versions": _versions(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "skipped": [{"file": f, "reason": r} for f, r in report.skipped],
        }
        manifest = save_build(folder, entries, manifest, dimension, base=old, drop=set(previous) - kept,
                              optimize=optimize, ann_threshold=ann_threshold, started=started)
        report.seconds = time.perf_counter() - started
        counts = manifest["counts"]
        report.files, report.documents, report.chunks = counts["files"], counts["documents"], counts["chunks"]
    return report


EMBED_GROUP = 8192  # chunks embedded together before their files are handed on to be written


def _embed_files(to_embed, embedder: Embedder, chunking: ChunkSettings, on_progress) -> Iterator[FileEntry]:
    """FileEntry after FileEntry, embedded a group of files at a time, so a large corpus never
    holds all its vectors in memory: each group is written before the next is embedded."""
    limit = max(16, embedder.max_tokens - 8)
    settings = ChunkSettings(tokens=min(chunking.tokens, limit), overlap=min(chunking.overlap, limit // 4))
    splitter = make_splitter(embedder.counting_tokenizer, settings)
    per_file_chunks = [[c for d in documents for c in chunk_document(d, splitter)] for _, _, documents in to_embed]
    total, done = sum(len(chunks) for chunks in per_file_chunks), 0

    def progress(n):
        nonlocal done
        done += n
        if on_progress:
            on_progress("embedding", done, total)

    progress(0)  # the bar starts now, so its rate counts the model's work only
    group: list[int] = []
    for i, chunks in enumerate(per_file_chunks):
        group.append(i)
        if i == len(per_file_chunks) - 1 or sum(len(per_file_chunks[j]) for j in group) >= EMBED_GROUP:
            yield from _embed_group([to_embed[j] for j in group], [per_file_chunks[j] for j in group], embedder,
                                    progress)
            group = []


def _embed_group(files, per_file_chunks: list[list[Chunk]], embedder: Embedder, progress) -> list[FileEntry]:
    texts, spans, shifts = [], [], []
    for chunks in per_file_chunks:
        for chunk in chunks:
            text, shift = _embedding_text(chunk)
            texts.append(text)
            spans.append([(s + shift, e + shift) for s, e in sentence_spans(chunk.text)])
            shifts.append(chunk.start - shift)  # embedding-text offset -> document offset
    vectors, sentence_vectors = embedder.encode_documents(texts, spans, progress)
    entries, position = [], 0
    for (corpus_file, digest, documents), chunks in zip(files, per_file_chunks):
        ids = range(position, position + len(chunks))
        position += len(chunks)
        entries.append(
            FileEntry(
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
