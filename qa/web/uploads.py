"""Files the chat UI handles: uploads and answered question files, kept in Gradio's upload folder
for a short time only, and never fetched from a URL.

Gradio keeps every upload (an upload cut off half way included) until the process ends. The
Batch tab writes its answered files into the same folder, so a file exists once, on one disk.
While the server runs, a sweep removes the files of that folder older than KEEP_SECONDS, and the
folders they leave empty: an answered file stays downloadable that long after it was written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

log = logging.getLogger("qa.web")

KEEP_SECONDS = 600
_URL = re.compile(r"\s*[a-z][a-z0-9+.\-]*:[/\\]", re.IGNORECASE)


def sweep(folder: Path, older_than: float) -> int:
    """Remove the files under `folder` last changed more than `older_than` seconds ago, then the
    subfolders left empty (only old ones: Gradio creates a folder just before it moves an upload
    in). Returns how many files were removed."""
    removed = 0
    oldest = time.time() - older_than
    for where, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(where, name)
            try:
                if os.lstat(path).st_mtime < oldest:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                pass
        if os.path.abspath(where) != os.path.abspath(folder):
            try:
                if os.lstat(where).st_mtime < oldest:
                    os.rmdir(where)  # fails, as it should, while something is still in it
            except OSError:
                pass
    return removed


@asynccontextmanager
async def swept(folder: Path, keep_seconds: float = KEEP_SECONDS) -> AsyncIterator[None]:
    """While the server runs (its lifespan), sweep `folder` every quarter of the keep time (at
    most every minute)."""

    async def every() -> None:
        while True:
            await asyncio.sleep(min(60.0, max(0.5, keep_seconds / 4)))
            try:
                await asyncio.to_thread(sweep, folder, keep_seconds)
            except OSError as exc:  # a folder we may not write: say so, keep serving
                log.warning("could not remove old uploads from %s: %s", folder, exc)

    task = asyncio.create_task(every())
    try:
        yield
    finally:
        task.cancel()


def refuse_remote_files(blocks) -> None:
    """Gradio downloads a file that a UI request names by URL instead of a path (the server fetching
    for the caller). Every file this UI takes is uploaded first, so its components refuse URLs."""
    for block in blocks.blocks.values():
        block.async_move_resource_to_block_cache = _local_only(block.async_move_resource_to_block_cache)
        block.move_resource_to_block_cache = _local_only_sync(block.move_resource_to_block_cache)


def _check_local(path: object) -> None:
    if isinstance(path, str) and _URL.match(path):
        raise ValueError("a file must be uploaded, not named by a URL")


def _local_only(move: Callable) -> Callable:
    async def local_only(path):
        _check_local(path)
        return await move(path)

    return local_only


def _local_only_sync(move: Callable) -> Callable:
    def local_only(path):
        _check_local(path)
        return move(path)

    return local_only
