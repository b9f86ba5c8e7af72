"""The JSON API of collections and their documents, under /api/collections: list the
collections; list, add (multipart upload) and remove a collection's documents; see its build in
progress and the last one. Every route resolves its collection through
Collections.for_request; the work is qa.web.documents'."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import FastAPI, Path, Request
from fastapi.responses import JSONResponse

from qa.types import counted
from qa.web.auth import ADMIN
from qa.web.collections import Collections
from qa.web.documents import (
    MAX_DOCUMENT_BYTES,
    MAX_FILES_PER_UPLOAD,
    BuildOptions,
    add_documents,
    builds_of,
    list_documents,
    remove_document,
)

Name = Annotated[str, Path(max_length=64)]


def add_collection_routes(app: FastAPI, collections: Collections, options: BuildOptions) -> None:
    @app.get("/api/collections", tags=["collections"])
    def all_collections(request: Request) -> dict:
        """The collections served, the first being the default: name, files, documents, chunks and
        when its index was built."""
        return {"collections": [c.summary() for c in collections.usable(request)]}

    @app.get("/api/collections/{name}/documents", tags=["collections"])
    def documents(name: Name, request: Request) -> dict:
        """The collection's files: source, title, size in bytes, chunks and when it was indexed
        (null for a file added since, waiting for its build)."""
        collection = collections.for_request(name, request, ADMIN)
        return {"collection": collection.name, "documents": list_documents(collection)}

    @app.post("/api/collections/{name}/documents", tags=["collections"], status_code=202)
    async def add(name: Name, request: Request):
        """Add or replace documents: a multipart/form-data body with one or more `files` parts
        (at most 50, each at most 20 MB, of a type `qa index` reads). Each file is read before it
        is kept; a file that cannot be read is refused with its reason. 202: the accepted files
        are being indexed (see /status); 422: none was accepted."""
        collection = collections.for_request(name, request, ADMIN)
        async with request.form(max_files=MAX_FILES_PER_UPLOAD + 1, max_fields=10) as form:
            parts = [p for p in form.getlist("files") if hasattr(p, "read")]
            files = [(p.filename or "", await p.read(MAX_DOCUMENT_BYTES + 1)) for p in parts]
        if not files:
            return JSONResponse({"error": "send the documents as multipart/form-data parts named 'files'"}, 422)
        result = await asyncio.to_thread(add_documents, collection, files, options)
        if not result["accepted"]:
            refused = result["refused"]
            others = f" (and {counted(len(refused) - 1, 'other file')}: see \"refused\")" if len(refused) > 1 else ""
            return JSONResponse({"error": f"no document was added: {refused[0]['reason']}{others}", **result}, 422)
        return result

    @app.delete("/api/collections/{name}/documents/{source:path}", tags=["collections"], status_code=202)
    def remove(name: Name, source: str, request: Request) -> dict:
        """Remove a document the collection lists (by its source); the index is rebuilt without it."""
        return remove_document(collections.for_request(name, request, ADMIN), source, options)

    @app.get("/api/collections/{name}/status", tags=["collections"])
    def status(name: Name, request: Request) -> dict:
        """The build in progress (stage "reading": files done of total; "embedding": chunks) and
        the last build's report: embedded, reused, removed, skipped files with their reasons."""
        return builds_of(collections.for_request(name, request, ADMIN), options).status()
