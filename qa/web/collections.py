"""The collections one server serves: each a name, its opened index, the corpus folder its
documents live in, its feedback file and the origins allowed to use it alone.

`Collections.for_request` is the one way a request (an API route, a page or a chat UI event)
reaches a collection: every place that acts on one resolves the name it was given there, so a
check on who may use which collection belongs there and nowhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection

from qa.errors import CollectionRefused, IndexNotFound, UnknownCollection
from qa.pipeline import QA, Embedder, FeedbackStore, feedback_path, has_index, precision_of, read_manifest
from qa.web.ask_queue import AskQueue
from qa.web.auth import RANK, READER
from qa.web.guard import CROSS_ORIGIN

log = logging.getLogger("qa.web")

DEFAULT_NAME = "default"  # the one collection of a server started with --index alone


def corpus_folder(index: Path) -> Path:
    """Where a collection's documents live: the folder its index was built from (the manifest
    records it), else a folder beside the index named after it (`index/` -> `index-corpus/`)."""
    recorded = read_manifest(index).get("corpus")
    return Path(recorded) if recorded else index.resolve().parent / f"{index.resolve().name}-corpus"


@dataclass
class Collection:
    name: str
    index: Path
    qa: QA
    corpus: Path
    feedback: FeedbackStore
    origins: tuple[str, ...] = ()  # besides the server's allowed origins
    asking: AskQueue = field(init=False)
    builds: Any = None  # qa.web.documents.DocumentBuilds, attached by the document routes

    def __post_init__(self) -> None:
        self.asking = AskQueue(lambda: self.qa)

    def summary(self) -> dict:
        manifest = self.qa.index.manifest
        counts = manifest["counts"]
        return {"name": self.name, "files": counts["files"], "documents": counts["documents"],
                "chunks": counts["chunks"], "built_at": manifest["built_at"]}


class Collections:
    """The collections in the order given; the first is the default of a request naming none."""

    def __init__(self, collections: list[Collection], allowed_origins: tuple[str, ...] = ()):
        self.by_name = {c.name: c for c in collections}
        self.allowed_origins = allowed_origins  # the server's: they may use every collection
        self.logged: set[tuple[str, str]] = set()  # (origin, collection) refusals logged (a few: listed origins)

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    @property
    def default(self) -> Collection:
        return next(iter(self.by_name.values()))

    def __iter__(self):
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def for_request(self, name: str | None, request: Any = None, role: str = READER, *,
                    listing: bool = False) -> Collection:
        """The collection a request names (None or "": the default), or UnknownCollection (404).
        The one place a request's access to a collection is decided (403, CollectionRefused): an
        origin allowed for some collections only (the guard marks it) may use just those, and so
        may a key limited to some (qa.web.auth); changing documents needs the admin role. An origin
        refused is logged once per collection, with the setting to change (not when `listing`)."""
        collection = self.by_name.get(name) if name else self.default
        if collection is None:
            raise UnknownCollection(name, self.names)
        connection = _connection(request)
        origin = connection.scope.get(CROSS_ORIGIN) if connection else None
        if origin and origin not in self.allowed_origins and origin not in collection.origins:
            if not listing and (origin, collection.name) not in self.logged:  # once, as the guard logs a refused origin
                self.logged.add((origin, collection.name))
                log.warning("refused origin %r for collection %r: to allow it, add %s=%s to "
                            "QA_COLLECTION_ORIGINS (--collection-origins)", origin, collection.name,
                            collection.name, origin)
            raise CollectionRefused(f"origin {origin} may not use collection {collection.name!r} "
                                    "(add it to QA_COLLECTION_ORIGINS for this collection)")
        principal = getattr(connection.state, "principal", None) if connection else None
        if principal is not None and not principal.may_use(collection.name):
            raise CollectionRefused(f"{principal.name!r} may not use collection {collection.name!r}")
        if principal is not None and RANK[principal.role] < RANK[role]:
            raise CollectionRefused(f"adding and removing documents needs the {role} role (an {role} key, or a "
                                    f"single sign-on user the operator named in QA_ADMIN_USERS)")
        return collection

    def usable(self, request: Any = None) -> list[Collection]:
        """The collections a request may use."""
        usable = []
        for collection in self:
            try:
                usable.append(self.for_request(collection.name, request, listing=True))
            except CollectionRefused:
                continue
        return usable

    @property
    def all_origins(self) -> tuple[str, ...]:
        """Origins allowed for at least one collection alone (the guard lets them reach the API)."""
        return tuple(sorted({o for c in self for o in c.origins}))


def _connection(request: Any) -> HTTPConnection | None:
    """The HTTP request behind a route's Request or a chat UI event's gr.Request."""
    if isinstance(request, HTTPConnection):
        return request
    inner = vars(request).get("request") if hasattr(request, "__dict__") else None  # gr.Request's own
    return inner if isinstance(inner, HTTPConnection) else None


def open_collections(indexes: list[tuple[str, Path]], origins: dict[str, tuple[str, ...]], *,
                     allowed_origins: tuple[str, ...] = (), model: str | None = None,
                     embedder: Embedder | None = None, min_confidence: float, cache: str = "",
                     feedback: Path | None = None) -> Collections:
    """Open each collection's index (following the builds swapped in). Collections of one model
    share its embedder. A collection's feedback goes to the feedback setting's file, else to
    feedback.jsonl beside its index."""
    unknown = sorted(set(origins) - {name for name, _ in indexes})
    if unknown:
        raise UnknownCollection(unknown[0], [name for name, _ in indexes])
    embedders = {(embedder.name, embedder.precision): embedder} if embedder is not None else {}
    opened = []
    for name, index in indexes:
        if not has_index(index):
            raise IndexNotFound(index)
        manifest = read_manifest(index)
        shared = embedders.get((model or manifest["model"], precision_of(manifest)))
        qa = QA(index, model, shared, min_confidence, follow_swaps=True, cache=cache)
        embedders.setdefault((qa.embedder.name, qa.embedder.precision), qa.embedder)
        opened.append(Collection(name, Path(index), qa, corpus_folder(Path(index)),
                                 FeedbackStore(feedback or feedback_path(index)), origins.get(name, ())))
    return Collections(opened, allowed_origins)
