"""The index the server answers from, reopened when `qa index` swaps in a newer build."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from qa.embed import Embedder
from qa.errors import one_line
from qa.index import live_build
from qa.pipeline import QA

RECHECK_SECONDS = 5.0  # how often to look for a newer build of the index
log = logging.getLogger("qa.web")


class OpenIndex:
    """The QA the server answers with. Reopened (sharing the loaded model) when `qa index`
    swaps in a new build, so the server never needs a restart to see new documents."""

    def __init__(
        self,
        folder: Path,
        model: str | None = None,
        embedder: Embedder | None = None,
        min_confidence: float | None = None,
    ):
        self.folder = Path(folder)
        self.build = live_build(self.folder)
        self.qa = QA(self.folder, model=model, embedder=embedder, min_confidence=min_confidence)
        self.checked = time.monotonic()
        self.lock = threading.Lock()

    def get(self) -> QA:
        """The open QA, at once. Every RECHECK_SECONDS a request also starts a look for a newer
        build; opening one runs in the background, so no question waits for it."""
        if time.monotonic() - self.checked > RECHECK_SECONDS and self.lock.acquire(blocking=False):
            threading.Thread(target=self._reopen_if_newer, name="qa-reopen", daemon=True).start()
        return self.qa

    def _reopen_if_newer(self) -> None:
        try:
            build = live_build(self.folder)
            if build != self.build:
                reopened = QA(self.folder, self.qa.index.model, self.qa.embedder, self.qa.min_confidence)
                self.qa, self.build = reopened, build
                log.info("reopened index %s (build %s)", self.folder, build.name)
        except Exception as exc:  # a broken new build: keep answering from the one we have
            log.warning("keeping the open index: %s", one_line(exc))
        finally:
            self.checked = time.monotonic()
            self.lock.release()
