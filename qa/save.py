"""Writing a build and swapping it in: the segments kept from the live build are hard-linked into
a fresh build folder (the files deleted from them listed in its manifest), the added and changed
files become one new segment, segments are merged when there are too many of one size (tiered,
as in Lucene), and `current` is repointed only once the whole build is on disk.

So re-indexing costs in proportion to what changed (and to the occasional merge), not to the
index; `optimize` merges everything into one segment.
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path

from qa import dense
from qa.errors import DiskFull
from qa.integrity import file_hashes, file_stats, write_manifest
from qa.segment import FileEntry, open_segment, write_segment
from qa.store import FORMAT_VERSION, Index

MERGE_FACTOR = 10  # this many segments of one size tier (by powers of 10 chunks) are merged into one
# errors that mean "no room": a full disk, a quota, or a file size limit (RLIMIT_FSIZE)
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def merge_groups(segments: list[dict], optimize: bool = False) -> list[list[dict]]:
    """Which segments to merge: all of them with `optimize`; otherwise each size tier holding
    MERGE_FACTOR segments, and alone any segment more than half deleted."""
    if optimize:
        return [segments] if len(segments) > 1 or any(s["deleted"]["chunks"] for s in segments) else []
    tiers: dict[int, list[dict]] = {}
    groups = []
    for s in segments:
        live = s["chunks"] - s["deleted"]["chunks"]
        if s["deleted"]["chunks"] * 2 > s["chunks"]:
            groups.append([s])
        else:
            tiers.setdefault(int(math.log10(max(live, 1))), []).append(s)
    return groups + [tier for tier in tiers.values() if len(tier) >= MERGE_FACTOR]


def _new_id() -> str:
    # nanoseconds: two builds in the same second (one process re-indexing) must not share a folder
    now = time.time_ns()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}-{os.getpid()}"


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link a segment's files (a copy where links are not possible): segments never change."""
    target.mkdir()
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copy2(path, target / path.name)


def _carry(base: Index, drop: set[str], tmp: Path) -> list[dict]:
    """Link the segments of `base` into tmp, with the files in `drop` added to their deleted ones;
    a segment left with no live file is not carried."""
    kept = []
    for segment, info in zip(base.segments, base.manifest["segments"]):
        deleted = dict(info["deleted"])
        gone = [f for f in segment.files() if f in drop and f not in deleted["files"]]
        if gone:
            deleted["files"] = sorted(deleted["files"] + gone)
            for file in gone:
                where = segment.chunk_range(file)
                deleted["chunks"] += len(where)
                deleted["tokens"] += int(segment.postings.lengths[where.start : where.stop].sum())
                deleted["documents"] += base.manifest["files"][file]["documents"]
        if len(deleted["files"]) == info["files"]:
            continue
        _link_tree(segment.folder, tmp / info["name"])
        kept.append({**info, "deleted": deleted})
    return kept


def _empty_deleted() -> dict:
    return {"files": [], "chunks": 0, "tokens": 0, "documents": 0}


def _merge(tmp: Path, group: list[dict], name: str, dimension: int, ann_threshold: int) -> tuple[dict, dict]:
    opened = [(open_segment(tmp / s["name"], s, lambda name: nullcontext()), set(s["deleted"]["files"])) for s in group]
    entries = itertools.chain.from_iterable(
        segment.entries([f for f in segment.files() if f not in deleted]) for segment, deleted in opened)
    written = write_segment(tmp / name, entries, dimension, ann_threshold)
    for segment, _ in opened:
        segment.db.close()
        shutil.rmtree(segment.folder)
    return written


def _write(tmp: Path, entries: Iterable[FileEntry], manifest: dict, dimension: int, base: Index | None,
           drop: set[str], optimize: bool, ann_threshold: int, started: float) -> dict:
    segments = _carry(base, drop, tmp) if base is not None else []
    files = {f: info for f, info in (base.manifest["files"].items() if base is not None else ()) if f not in drop}
    entries = iter(entries)
    first = next(entries, None)
    names = (f"seg-{tmp.name.strip('.').removesuffix('.partial')}-{n}" for n in itertools.count())
    if first is not None:
        info, new_files = write_segment(tmp / next(names), itertools.chain([first], entries), dimension,
                                        ann_threshold)
        segments.append({**info, "deleted": _empty_deleted()})
        now = manifest.get("built_at", "")
        files.update({f: {**v, "segment": info["name"], "indexed_at": now} for f, v in new_files.items()})
    for group in merge_groups(segments, optimize):
        info, merged_files = _merge(tmp, group, next(names), dimension, ann_threshold)
        segments = [s for s in segments if s not in group] + [{**info, "deleted": _empty_deleted()}]
        files.update({f: {**files[f], **v, "segment": info["name"]} for f, v in merged_files.items()})
    old_hashes = base.manifest.get("build_files", {}) if base is not None else {}
    files = dict(sorted(files.items()))
    counts = {"files": len(files), "documents": sum(f["documents"] for f in files.values()),
              "chunks": sum(f["chunks"] for f in files.values())}
    kinds = sorted({json.dumps(s["dense"], sort_keys=True) for s in segments})
    manifest = {"format_version": FORMAT_VERSION, **manifest, "dimension": dimension, "counts": counts,
                "files": files, "segments": segments,
                "dense": {"ann_threshold": ann_threshold, "kinds": [json.loads(k) for k in kinds]}}
    # a carried segment's files were hashed when written: only new ones are read here
    hashes = file_hashes(tmp, known={k: v for k, v in old_hashes.items() if (tmp / k).is_file()})
    manifest["build_files"] = hashes  # what `qa index` checks before reusing them
    manifest["build_stats"] = file_stats(tmp)
    manifest["build_seconds"] = round(time.perf_counter() - started, 2)
    write_manifest(tmp, manifest)
    return manifest


def save_build(folder: Path, entries: Iterable[FileEntry], manifest: dict, dimension: int, base: Index | None = None,
               drop: Iterable[str] = (), optimize: bool = False, ann_threshold: int = dense.ANN_THRESHOLD,
               started: float | None = None) -> dict:
    """Write a build and swap it in as `current`; return its manifest. The build holds the segments
    of `base` (the live build, if any) less the files in `drop`, plus a new segment of `entries`
    (streamed: a generator keeps only one file's entry in memory). `manifest` holds the settings
    to record; counts, files and segments are added here, and build_seconds since `started` (a
    time.perf_counter() value; by default, since this call). The caller holds IndexLock."""
    started = time.perf_counter() if started is None else started
    # the first entry (for `qa index`, the first group of files embedded) before the build folder:
    # a run killed while embedding a small change leaves nothing to clean up
    entries = iter(entries)
    first = next(entries, None)
    entries = itertools.chain([first], entries) if first is not None else iter(())
    builds = folder / "builds"
    build_id = _new_id()
    tmp = builds / f".{build_id}.partial"
    try:
        builds.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        manifest = _write(tmp, entries, manifest, dimension, base, set(drop), optimize, ann_threshold, started)
        _fsync_tree(tmp)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # on a full disk, give the space back at once
        code, reason = _no_room_reason(exc, builds)
        if code in _NO_ROOM:
            raise DiskFull(folder, reason) from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
    return manifest


def _no_room_reason(exc: Exception, builds: Path) -> tuple[int | None, str]:
    """The errno and reason of a failed write. SQLite does not pass the errno on, so for its
    errors a small write beside the build tells whether the disk (or the file size limit) is full."""
    if isinstance(exc, OSError):
        return exc.errno, exc.strerror or str(exc)
    probe = builds / f".probe.{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"\0" * (1 << 16))
            f.flush()
            os.fsync(f.fileno())
    except OSError as probed:
        return probed.errno, probed.strerror
    finally:
        probe.unlink(missing_ok=True)
    return None, str(exc)


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
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(root)


def _remove_old_builds(builds: Path, keep: set[str | None]) -> None:
    """Remove every build but `keep`, including partial ones left by a crash."""
    for path in builds.iterdir():
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)

