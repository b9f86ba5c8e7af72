"""The pages outside the API and the chat UI: a cited document at /source, the widget script at
/widget.js and the widget alone on a page at /embed (for an iframe)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse

from qa.errors import CollectionRefused, UnknownCollection
from qa.web.collections import Collections
from qa.web.render import SOURCE_CSP, embed_page, parse_spans, source_page

STATIC = Path(__file__).parent / "static"
EMBED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'"
)


def add_page_routes(app: FastAPI, collections: Collections) -> None:
    @app.get("/source", response_class=HTMLResponse, include_in_schema=False)
    def source(
        request: Request,
        source: Annotated[str, Query(max_length=1000)],
        collection: Annotated[str, Query(max_length=64)] = "",
        start: Annotated[int | None, Query(ge=0)] = None,
        end: Annotated[int | None, Query(ge=0)] = None,
        hl: Annotated[str, Query(max_length=500)] = "",
    ):
        # Only documents of the index are served: a source is a key into it, never a file path.
        try:
            chosen = collections.for_request(collection, request)
        except (UnknownCollection, CollectionRefused):
            chosen = None
        document = chosen.qa.document(source) if chosen else None
        if document is None:
            return HTMLResponse("<!doctype html><title>Not found</title><p>No such document in the index.</p>",
                                status_code=404, headers={"Content-Security-Policy": SOURCE_CSP})
        page = source_page(document, start, end, parse_spans(hl, len(document.text)))
        return HTMLResponse(page, headers={"Content-Security-Policy": SOURCE_CSP})

    @app.get("/widget.js", include_in_schema=False)
    def widget():
        return FileResponse(STATIC / "widget.js", media_type="text/javascript",
                            headers={"Cache-Control": "max-age=300"})

    @app.get("/embed", response_class=HTMLResponse, include_in_schema=False)
    def embed(request: Request):
        return HTMLResponse(embed_page(dict(request.query_params)), headers={"Content-Security-Policy": EMBED_CSP})
