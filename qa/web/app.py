"""The web face: one FastAPI app serving the JSON API, the widget and the Gradio chat UI.

`create_app(config)` opens the index once and mounts everything at import time (Gradio's queue
only starts when it is mounted before the server runs). Routes are thin: they validate the
request, call qa.pipeline and return its JSON. qa.web.guard sits in front of all of them, behind
uvicorn's proxy-header middleware when the operator lists trusted proxies (and only then: uvicorn
is started so that it believes no forwarded header itself).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.config import setting
from qa.embed import Embedder
from qa.errors import BadQuestion, QAError, one_line
from qa.feedback import FeedbackStore, default_path
from qa.index import live_build
from qa.pipeline import QA, parse_min_confidence
from qa.web.api_models import AskRequest, FeedbackRequest, SearchRequest
from qa.web.ask_queue import AskQueue
from qa.web.guard import (
    MAX_BODY,
    MAX_UPLOAD,
    Guard,
    GuardSettings,
    parse_hosts,
    parse_origins,
    parse_proxies,
    parse_rate,
)
from qa.web.render import SOURCE_CSP, embed_page, parse_spans, source_page
from qa.web.uploads import KEEP_SECONDS, swept

STATIC = Path(__file__).parent / "static"
RECHECK_SECONDS = 5.0  # how often to look for a newer build of the index
log = logging.getLogger("qa.web")


@dataclass(frozen=True)
class WebConfig:
    index: Path
    model: str | None = None  # the model the index must have been built with (None: its own)
    min_confidence: float | None = None  # None: QA_MIN_CONFIDENCE
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # () answers any Host header
    api_key: str = ""
    rate_limit: tuple[int, float] | None = (30, 60.0)
    feedback: Path | None = None  # None: feedback.jsonl beside the index
    max_body: int = MAX_BODY
    ui: bool = True  # mount the Gradio chat UI at /
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For is believed
    keep_files_seconds: float = KEEP_SECONDS  # uploads and answered files are removed this long after

    @classmethod
    def from_settings(cls, **given) -> WebConfig:
        """Values given (e.g. CLI flags) win; the rest come from qa.config settings (QA_* env)."""

        def value(name: str) -> str:
            v = given.get(name)
            return setting(name) if v is None else str(v)

        feedback = value("feedback")
        return cls(
            index=Path(value("index")),
            model=given.get("model") or None,
            min_confidence=parse_min_confidence(value("min_confidence")),
            allowed_origins=parse_origins(value("allowed_origins")),
            allowed_hosts=parse_hosts(value("allowed_hosts")),
            api_key=value("api_key"),
            rate_limit=parse_rate(value("rate_limit")),
            feedback=Path(feedback) if feedback else None,
            ui=given.get("ui", True),
            trusted_proxies=parse_proxies(value("trusted_proxies")),
        )


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


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(400, "the request body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return _error(422, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own (e.g. an unparsable body) included
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(BadQuestion)
    async def bad_question(request: Request, exc: BadQuestion):
        return _error(422, str(exc))

    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError):
        # Its message names folders of this machine: it is for the server log, not the client.
        log.error("error serving %s: %s", request.url.path, exc)
        return _error(500, "the index could not be used (details are in the server log)")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("error serving %s", request.url.path)
        return _error(500, "internal error (details are in the server log)")


def create_app(config: WebConfig, embedder: Embedder | None = None) -> FastAPI:
    """The whole server: API under /api, widget at /widget.js and /embed, chat UI at /."""
    from fastapi_offline import FastAPIOffline  # Swagger UI served from the package, no CDN

    opened = OpenIndex(config.index, config.model, embedder, config.min_confidence)
    feedback = FeedbackStore(config.feedback or default_path(config.index))
    lifespan = None
    if config.ui:  # the chat UI's uploads and answered files, removed after a while
        from gradio.utils import get_upload_folder

        uploads = Path(get_upload_folder())
        lifespan = lambda _app: swept(uploads, config.keep_files_seconds)  # noqa: E731
    app = FastAPIOffline(
        title="qa", summary="Answers from your documents, with citations.", version="1",
        redoc_url=None, static_url="/qa-static/docs", lifespan=lifespan,
    )
    app.state.index = opened
    app.state.feedback = feedback
    _install_error_handlers(app)

    asking = AskQueue(lambda: opened.get())

    @app.post("/api/ask", tags=["api"])
    async def ask(body: AskRequest) -> dict:
        """Answer a question from the documents, citing passages (or abstain). A follow-up question
        sends the conversation so far as `history`: the earlier questions with the answers given."""
        history = [h.turn() for h in body.history]
        answer = await asyncio.wrap_future(asking.submit(body.question, k=body.k, history=history))
        return answer.to_dict()

    @app.post("/api/search", tags=["api"])
    def search(body: SearchRequest) -> dict:
        """The passages ranked for a query, without composing an answer."""
        found = opened.get().search(body.query, k=body.k)
        return {"query": body.query, "results": [p.to_dict(rank) for rank, p in enumerate(found, start=1)]}

    @app.get("/api/health", tags=["api"])
    def health() -> dict:
        """Whether the index is loaded, what it holds and which model embeds questions."""
        info = opened.get().info()
        return {"status": "ok", "model": info["model"], "files": info["files"], "documents": info["documents"],
                "chunks": info["chunks"], "built_at": info["built_at"]}

    @app.post("/api/feedback", tags=["api"], status_code=201)
    def add_feedback(body: FeedbackRequest) -> dict:
        """Store a thumbs up or down on an answer for the owner to review."""
        citations = [c.model_dump(exclude_unset=True) for c in body.citations]
        feedback.add(body.rating, body.question, body.answer, citations, history=[h.as_given() for h in body.history],
                     comment=body.comment, via="api")
        return {"stored": True}

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False)
    def no_such_endpoint(rest: str):
        raise HTTPException(404, f"no API endpoint /api/{rest} (see /docs)")

    @app.get("/source", response_class=HTMLResponse, include_in_schema=False)
    def source(
        source: Annotated[str, Query(max_length=1000)],
        start: Annotated[int | None, Query(ge=0)] = None,
        end: Annotated[int | None, Query(ge=0)] = None,
        hl: Annotated[str, Query(max_length=500)] = "",
    ):
        # Only documents of the index are served: a source is a key into it, never a file path.
        document = opened.get().document(source)
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

    if config.ui:
        import gradio as gr

        from qa.web.chat_ui import CSS, THEME, build_ui

        blocks = build_ui(opened.get, feedback)
        # show_error=False: an exception in a UI event reaches the browser as a bare "Error", never its
        # text; run_history=False: questions are not kept in the browser's storage.
        gr.mount_gradio_app(app, blocks, path="/", footer_links=[], theme=THEME, css=CSS, show_error=False,
                            run_history=False, max_file_size=MAX_UPLOAD)
        # Gradio checks that a file named by a request was uploaded (not any path on this machine)
        # only once it believes it was launched, and mount_gradio_app never says so.
        blocks.has_launched = True
    app.add_middleware(
        Guard,
        settings=GuardSettings(config.allowed_origins, config.api_key, config.rate_limit, config.max_body,
                               allowed_hosts=config.allowed_hosts),
    )
    if config.trusted_proxies:  # outside the guard, so that it sees the client the proxy names
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies))
    return app


EMBED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'"
)


def server_options() -> dict:
    """uvicorn's settings, for `qa serve` and tests alike. uvicorn would believe X-Forwarded-For
    from 127.0.0.1 (or $FORWARDED_ALLOW_IPS) by default, so any local client could pick its own
    rate-limit bucket: here it believes none, and the app applies QA_TRUSTED_PROXIES itself. The
    app takes no WebSocket, so none is accepted."""
    return {"proxy_headers": False, "forwarded_allow_ips": [], "ws": "none"}


def serve(config: WebConfig, host: str, port: int, embedder: Embedder | None = None) -> None:
    import uvicorn

    # Uploads go to a folder of this server's own (unless GRADIO_TEMP_DIR names one), since old
    # files there are removed: other Gradio apps keep theirs in <temp>/gradio.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / f"qa-uploads-{port}"))
    app = create_app(config, embedder)
    print(f"qa: serving {config.index} on http://{host}:{port} (chat /, widget /widget.js, API docs /docs)",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5, **server_options())


class ServerThread:
    """An app served by uvicorn in a background thread (tests and benchmarks):
    `with ServerThread(app) as server: httpx.get(server.url + "/api/health")`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import socket

        import uvicorn

        if not port:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.app = app
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", **server_options()))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
