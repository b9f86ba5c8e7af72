"""The web app: one FastAPI app with the JSON API (qa.web.api), the source page and the widget
(qa.web.pages) and the Gradio chat UI (qa.web.chat_ui) at /, and `serve` to run it with uvicorn.

`create_app(config)` opens each collection's index (qa.web.collections), following the builds
swapped in, and mounts
everything at import time (Gradio's queue only starts when it is mounted before the server runs).
qa.web.guard sits in front of all of them (with qa.web.auth deciding who may use what), behind
uvicorn's proxy-header middleware when the operator lists trusted proxies (and only then: uvicorn is
started so that it believes no forwarded header itself), behind qa.web.auth.TrustedUserHeader when
single sign-on is on.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.batch import TableLimits
from qa.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_K,
    DEFAULT_MAX_CONVERSATIONS,
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_TURNS,
    DEFAULT_MIN_CONFIDENCE,
    Settings,
)
from qa.errors import BadSetting, QAError
from qa.pipeline import ConversationStore, Embedder, conversations_path
from qa.web.api import add_api_routes
from qa.web.auth import Authenticator, AuthSettings, Key, TrustedUserHeader, all_keys, read_keys_file
from qa.web.collection_api import add_collection_routes
from qa.web.collections import DEFAULT_NAME, open_collections
from qa.web.conversation_routes import add_conversation_routes
from qa.web.documents import BuildOptions
from qa.web.guard import (
    MAX_BODY,
    MAX_UPLOAD,
    Guard,
    GuardSettings,
    parse_hosts,
    parse_origins,
    parse_proxies,
)
from qa.web.pages import add_page_routes
from qa.web.sessions import SessionCookie
from qa.web.signin import add_signin_routes
from qa.web.uploads import KEEP_SECONDS, swept

log = logging.getLogger("qa.web")


@dataclass(frozen=True)
class WebConfig:
    index: Path
    model: str | None = None  # the model the index must have been built with (None: its own)
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    k: int = DEFAULT_K  # passages per question when a request gives none: API, chat UI and Batch tab
    batch_size: int = DEFAULT_BATCH_SIZE
    table_limits: TableLimits = TableLimits()  # on question files of the Batch tab
    cache: str = ""  # where the model's ONNX export is kept (qa.onnx_model)
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # () answers any Host header
    api_key: str = ""  # a key with the reader role, named "reader"
    admin_key: str = ""  # a key with the admin role, named "admin"
    named_keys: tuple[Key, ...] = ()  # from QA_KEYS_FILE (qa.web.auth.read_keys_file)
    trusted_user_header: str = ""  # single sign-on: the header a trusted proxy names the user in
    admin_users: tuple[str, ...] = ()  # users of that header with the admin role
    session_hours: float = 12.0  # how long a browser sign-in lasts
    rate_limit: tuple[int, float] | None = (30, 60.0)
    feedback: Path | None = None  # None: feedback.jsonl beside the index
    max_body: int = MAX_BODY
    ui: bool = True  # mount the Gradio chat UI at /
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For is believed
    keep_files_seconds: float = KEEP_SECONDS  # uploads and answered files are removed this long after
    examples: tuple[str, ...] = ()  # the chat UI's example questions (none: made from the documents)
    collections: tuple[tuple[str, Path], ...] = ()  # (name, index folder); (): one, "default", at `index`
    collection_origins: tuple[tuple[str, str], ...] = ()  # (name, origin): allowed for that collection alone
    max_file_mb: float = DEFAULT_MAX_FILE_MB  # documents added over the web, as `qa index` reads them
    conversations: Path | None = None  # the saved conversations' SQLite file; None: beside the index
    max_turns: int = DEFAULT_MAX_TURNS  # per saved conversation
    max_conversations: int = DEFAULT_MAX_CONVERSATIONS  # per owner (user or browser session)

    @property
    def indexes(self) -> list[tuple[str, Path]]:
        return [(name, Path(index)) for name, index in self.collections] or [(DEFAULT_NAME, Path(self.index))]

    @classmethod
    def from_settings(cls, s: Settings, ui: bool = True) -> WebConfig:
        """The web face's settings (qa.config.read_settings("serve", ...)) as the app takes them."""
        header = s.trusted_user_header.strip()
        if header and not re.fullmatch(r"[A-Za-z0-9-]+", header):
            raise BadSetting(f"--trusted-user-header / QA_TRUSTED_USER_HEADER must be a header name like "
                             f"X-Forwarded-User, not {header!r}")
        if header and not s.trusted_proxies:
            raise BadSetting("--trusted-user-header / QA_TRUSTED_USER_HEADER needs --trusted-proxies / "
                             "QA_TRUSTED_PROXIES: the proxies whose header is believed")
        named = read_keys_file(Path(s.keys_file)) if s.keys_file else ()
        all_keys(s.api_key, s.admin_key, named)  # refused here, before an index is built, if they clash
        return cls(
            index=s.index,
            model=s.model or None,
            min_confidence=s.min_confidence,
            allowed_origins=parse_origins(s.allowed_origins),
            allowed_hosts=parse_hosts(s.allowed_hosts),
            api_key=s.api_key,
            admin_key=s.admin_key,
            named_keys=named,
            trusted_user_header=header,
            admin_users=s.admin_users,
            session_hours=s.session_hours,
            rate_limit=s.rate_limit,
            feedback=Path(s.feedback) if s.feedback else None,
            ui=ui,
            trusted_proxies=parse_proxies(s.trusted_proxies),
            k=s.k,
            batch_size=s.batch_size,
            table_limits=TableLimits(s.max_rows, s.max_columns, s.max_cell_chars),
            cache=s.cache,
            examples=s.examples,
            collections=tuple((name, Path(index)) for name, index in s.collections),
            collection_origins=tuple((name, origin) for name, origin in s.collection_origins
                                     for origin in parse_origins(origin)),
            max_file_mb=s.max_file_mb,
            conversations=Path(s.conversations) if s.conversations else None,
            max_turns=s.max_turns,
            max_conversations=s.max_conversations,
        )


class HeadAsGet:
    """HEAD answered wherever GET is: the request goes on as a GET (FastAPI routes and Gradio's take
    GET only) and the response keeps its status and headers, Content-Length included, but no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)


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

    @app.exception_handler(QAError)
    async def qa_error(request: Request, exc: QAError):
        if exc.http_status < 500:  # the client's to fix: the message says how
            return _error(exc.http_status, str(exc))
        # Its message names folders of this machine: it is for the server log, not the client.
        log.error("error serving %s: %s", request.url.path, exc)
        return _error(exc.http_status, "the index could not be used (details are in the server log)")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("error serving %s", request.url.path)
        return _error(500, "internal error (details are in the server log)")


def create_app(config: WebConfig, embedder: Embedder | None = None) -> FastAPI:
    """The whole server: API under /api, widget at /widget.js and /embed, chat UI at /."""
    from fastapi_offline import FastAPIOffline  # Swagger UI served from the package, no CDN

    origins: dict[str, tuple[str, ...]] = {}
    for name, origin in config.collection_origins:
        origins[name] = (*origins.get(name, ()), origin)
    collections = open_collections(config.indexes, origins, allowed_origins=config.allowed_origins,
                                   model=config.model, embedder=embedder, min_confidence=config.min_confidence,
                                   cache=config.cache, feedback=config.feedback)
    # Saved conversations, of every collection, beside the (first) index unless QA_CONVERSATIONS names a file.
    conversations = ConversationStore(config.conversations or conversations_path(config.indexes[0][1]),
                                      config.max_turns, config.max_conversations)
    lifespan = None
    if config.ui:  # the chat UI's uploads and answered files, removed after a while
        from gradio.utils import get_upload_folder

        uploads = Path(get_upload_folder())
        lifespan = lambda _app: swept(uploads, config.keep_files_seconds)  # noqa: E731
    app = FastAPIOffline(
        title="qa", summary="Answers from your documents, with citations.", version="1",
        redoc_url=None, static_url="/qa-static/docs", lifespan=lifespan,
    )
    app.state.collections = collections
    app.state.qa = collections.default.qa
    app.state.feedback = collections.default.feedback
    app.state.conversations = conversations
    app.state.config = config
    auth = Authenticator(AuthSettings(all_keys(config.api_key, config.admin_key, config.named_keys),
                                      config.trusted_user_header, config.admin_users, config.session_hours * 3600))
    _install_error_handlers(app)
    options = BuildOptions(config.max_file_mb, config.cache)
    add_conversation_routes(app, conversations)  # these two before add_api_routes' catch-all /api/...
    add_collection_routes(app, collections, options)
    add_api_routes(app, collections, conversations, config.k)
    add_page_routes(app, collections)
    if auth.settings.active:
        add_signin_routes(app, auth)
    if config.ui:
        import gradio as gr

        from qa.web.chat_ui import CSS, HEAD, THEME, build_ui

        # Sign out only where a key signed in: behind single sign-on alone, the proxy signs users in and out.
        blocks = build_ui(collections, conversations, config, options, signs_in=bool(auth.settings.keys))
        # show_error=False: an exception in a UI event reaches the browser as a bare "Error", never its
        # text; run_history=False: questions are not kept in the browser's storage.
        gr.mount_gradio_app(app, blocks, path="/", footer_links=[], theme=THEME, css=CSS, head=HEAD,
                            show_error=False, run_history=False, max_file_size=MAX_UPLOAD)
        # Gradio checks that a file named by a request was uploaded (not any path on this machine)
        # only once it believes it was launched, and mount_gradio_app never says so.
        blocks.has_launched = True
    if not auth.settings.active:  # with sign-in, the signed-in user owns conversations (and qa_session is theirs)
        app.add_middleware(SessionCookie)  # inside the guard: a refused request gets no session
    app.add_middleware(
        Guard,
        settings=GuardSettings(config.allowed_origins, config.rate_limit, config.max_body,
                               allowed_hosts=config.allowed_hosts, collection_origins=collections.all_origins),
        auth=auth,
    )
    app.add_middleware(HeadAsGet)  # outside the guard, which then checks a HEAD as the GET it becomes
    if config.trusted_proxies:  # outside the guard, so that it sees the client the proxy names
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies))
    if config.trusted_user_header:  # outermost: it must see the proxy's own address
        app.add_middleware(TrustedUserHeader, header=config.trusted_user_header, proxies=config.trusted_proxies)
    return app


def server_options() -> dict:
    """uvicorn's settings, for `qa serve` and tests alike. uvicorn would believe X-Forwarded-For
    from 127.0.0.1 (or $FORWARDED_ALLOW_IPS) by default, so any local client could pick its own
    rate-limit bucket: here it believes none, and the app applies QA_TRUSTED_PROXIES itself. The
    app takes no WebSocket, so none is accepted."""
    return {"proxy_headers": False, "forwarded_allow_ips": [], "ws": "none"}


def single_threaded_blas():
    """Keep numpy's BLAS to one thread in this process, returning the limit (which can restore
    the old one). A server answers many questions at once, one thread each, and a question's
    searches are small matrix products: BLAS threads of their own only contend with the other
    requests' (16 clients on a 10k-chunk index: about 14% more answers a second with one)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def serve(config: WebConfig, host: str, port: int, embedder: Embedder | None = None) -> None:
    import uvicorn

    single_threaded_blas()

    # Uploads go to a folder of this server's own (unless GRADIO_TEMP_DIR names one), since old
    # files there are removed: other Gradio apps keep theirs in <temp>/gradio.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / f"qa-uploads-{port}"))
    app = create_app(config, embedder)
    served = ", ".join(f"{name}={index}" for name, index in config.collections) or str(config.index)
    print(f"qa: serving {served} on http://{host}:{port} (chat /, widget /widget.js, API docs /docs)",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5, **server_options())

