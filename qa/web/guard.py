"""The gate in front of the web app: hosts, origins, CORS, sign-in, rate limit and body size.

One small ASGI middleware, so each rule is checked once, before any route or Gradio runs:
- If allowed hosts are set, a request for any other Host is refused (400): the defence against
  DNS rebinding, where a hostile page's own name is pointed at this server.
- A request whose Origin is neither the server's own nor in the allowed list is refused (403),
  on every path except the public assets (the widget script, static files). An empty list means
  same-origin only, never "any origin". Origins are compared normalized (scheme and host in lower
  case, no default port), on both sides.
- /api/*: CORS headers for allowed origins (preflight included), then a JSON content type
  (multipart for a document upload). Refusals are JSON `{"error": ...}`. An origin allowed for
  some collections only (QA_COLLECTION_ORIGINS) reaches the API marked as such, and
  qa.web.collections lets it use those collections alone.
- Then, on every path, who is asking and whether they may (qa.web.auth: keys, sessions, roles),
  before the rate limit, so a request refused for want of a key uses up no token.
- Every POST, to the API or the chat UI, takes a token from the client's bucket: one per-client
  rate limit answered with 429 + Retry-After. The client is the connecting address; a proxy's
  X-Forwarded-For is believed only from the proxies the operator lists (qa.web.app applies it).
- Every body has a hard size limit, by route (Guard.body_limit): the bytes actually received are
  counted and the request is cut off past the limit (413), whatever Content-Length said. A body
  framed both by Content-Length and chunked is refused unread (400); outside /api a chunked body
  must declare its length (411).
- No path may name a URL: Gradio would fetch it for the caller (an open proxy). The Gradio routes
  the UI never uses that reach beyond the corpus are refused too (REFUSED_PREFIXES).
- Every response says which pages may frame it (CSP frame-ancestors).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.errors import BadSetting

if TYPE_CHECKING:
    from qa.web.auth import Authenticator

log = logging.getLogger("qa.web")

PUBLIC_PREFIXES = ("/widget.js", "/qa-static/")
UNLIMITED = ("/api/health",)  # probes: no rate limit
MAX_REPORTED_ORIGINS = 1000
# Gradio routes the UI never uses and that reach beyond the corpus: the older spelling of the file
# route (`file/` for `file=`), proxying another Gradio app, and the stream only `gradio --reload` needs.
REFUSED_PREFIXES = ("/gradio_api/file/", "/gradio_api/proxy=", "/gradio_api/dev/")
# A URL anywhere in a path: Gradio's file routes fetch one named there ("file=http://...").
URL_IN_PATH = re.compile(r"[a-z][a-z0-9+.\-]*:[/\\]", re.IGNORECASE)
MAX_BODY = 64 * 1024  # a JSON API request
MAX_UI_BODY = 1024 * 1024  # a chat UI event: the question with the conversation shown so far
MAX_UPLOAD = 20 * 1024 * 1024  # a Batch tab question file, a document added in the chat UI
MAX_DOCUMENTS_BODY = 64 * 1024 * 1024  # documents added through the API, all files of one request
CROSS_ORIGIN = "qa.collection_origin"  # the scope key marking an origin allowed for some collections only
DOCUMENT_UPLOAD = re.compile(r"/api/collections/[^/]+/documents/?")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str | None:
    """"HTTP://Intranet.Example:80" -> "http://intranet.example": an http(s) origin in the one form
    a browser serializes it to; None for anything else (a path, user info, a bad port, "null")."""
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if (scheme not in _DEFAULT_PORTS or "@" in parts.netloc or parts.path.strip("/") or parts.query
            or parts.fragment or not _valid_host(host)):
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _valid_host(host: str) -> bool:
    if ":" in host:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return bool(re.fullmatch(r"[a-z0-9_\-]+(\.[a-z0-9_\-]+)*\.?", host))


def _items(value: str | Sequence[str]) -> list[str]:
    """A comma-separated setting (or its items already split): the items, stripped, blanks dropped."""
    return [item.strip() for item in (value.split(",") if isinstance(value, str) else value) if item.strip()]


def parse_origins(value: str | Sequence[str]) -> tuple[str, ...]:
    """"http://a:8080, https://b:443" -> normalized origins; "" -> () (same origin only)."""
    origins = []
    for item in _items(value):
        origin = normalize_origin(item)
        if item == "*" or origin is None:
            raise BadSetting(
                f"allowed origin {item!r} must be like http://host[:port] (list each origin; '*' is not accepted)"
            )
        origins.append(origin)
    return tuple(origins)


def parse_hosts(value: str | Sequence[str]) -> tuple[str, ...]:
    """"qa.intranet.example, localhost, ::1" -> host names and addresses; "" -> () (any host)."""
    hosts = []
    for item in filter(None, (i.lower().strip("[]") for i in _items(value))):  # "[::1]" is ::1
        try:
            hosts.append(str(ipaddress.ip_address(item)))
        except ValueError:
            if not re.fullmatch(r"[a-z0-9.\-]+", item):
                raise BadSetting(
                    f"allowed host {item!r} must be a host name or address without a port, e.g. qa.intranet.example"
                ) from None
            hosts.append(item)
    return tuple(hosts)


def parse_proxies(value: str | Sequence[str]) -> tuple[str, ...]:
    """"127.0.0.1, 10.0.0.0/8" -> addresses and networks of trusted proxies; "" -> () (none)."""
    proxies = []
    for item in _items(value):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise BadSetting(
                f"trusted proxy {item!r} must be an address or network, e.g. 127.0.0.1 or 10.0.0.0/8"
            ) from None
        proxies.append(str(network) if "/" in item else str(network.network_address))
    return tuple(proxies)


class RateLimiter:
    """A token bucket per client: `count` requests, refilled evenly over `period` seconds."""

    def __init__(self, count: int, period: float, clock=time.monotonic):
        self.capacity = count
        self.rate = count / period
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, time)

    def take(self, client: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        now = self.clock()
        tokens = self._tokens(client, now)
        if tokens >= 1:
            self.buckets[client] = (tokens - 1, now)
            if len(self.buckets) > 10_000:
                self._forget_idle(now)
            return 0.0
        self.buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate

    def waiting(self, client: str) -> float:
        """What `take` would say, without taking a token."""
        tokens = self._tokens(client, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _tokens(self, client: str, now: float) -> float:
        tokens, then = self.buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - then) * self.rate)

    def _forget_idle(self, now: float) -> None:
        full = self.capacity / self.rate
        self.buckets = {c: (t, s) for c, (t, s) in self.buckets.items() if now - s < full}


@dataclass(frozen=True)
class GuardSettings:
    allowed_origins: tuple[str, ...] = ()
    rate_limit: tuple[int, float] | None = None
    max_body: int = MAX_BODY
    max_upload: int = MAX_UPLOAD
    max_ui_body: int = MAX_UI_BODY
    allowed_hosts: tuple[str, ...] = ()  # () accepts any Host header
    collection_origins: tuple[str, ...] = ()  # allowed to use the API for some collections only


def _host_name(host: str) -> str:
    """"Example.org:7860" -> "example.org"; "[::1]:7860" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(origin: str, host_header: str) -> bool:
    """Whether a normalized origin names this server, as the Host header does. Host name and port
    only: behind a TLS-terminating proxy the page is https and we see http. A Host without a port
    means the default port of the page's scheme."""
    page, served = urlsplit(origin), urlsplit("//" + host_header.strip())
    default = _DEFAULT_PORTS[page.scheme]
    try:
        same_port = (page.port or default) == (served.port or default)
    except ValueError:
        return False
    return bool(served.hostname) and served.hostname == page.hostname and same_port


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await _respond(
        send, status, {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}, body
    )


class _CountedBody:
    """The request body as the app reads it, counted as it arrives. Past `limit` bytes the client
    gets 413 at once (and the connection is closed, so the rest is never read), the app sees the
    client leave, and anything the app then sends is dropped."""

    def __init__(self, receive: Receive, send: Send, limit: int, headers: dict[str, str]):
        self._receive, self._send, self.limit, self.headers = receive, send, limit, headers
        self.received = 0
        self.cut = False
        self.responded = False

    async def receive(self) -> Message:
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.cut = True
                if not self.responded:
                    await _refuse(self._send, 413, f"request body over {self.limit:,} bytes",
                                  {**self.headers, "Connection": "close"})
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.cut:
            return
        self.responded = True
        await self._send(message)


class Guard:
    def __init__(self, app: ASGIApp, settings: GuardSettings, auth: Authenticator | None = None):
        self.app = app
        self.settings = settings
        self.auth = auth  # None: no sign-in at all (an app that mounts no qa.web.auth)
        self.limiter = RateLimiter(*settings.rate_limit) if settings.rate_limit else None
        self.frame_ancestors = " ".join(["'self'", *settings.allowed_origins])
        self.reported: set[str] = set()  # refused origins already in the log

    def report_refused(self, origin: str, path: str) -> None:
        """Say once per origin, in the server log, which origin was refused and the setting that
        allows it: the page embedding the widget only shows its visitor that it failed."""
        if origin in self.reported:
            return
        if len(self.reported) >= MAX_REPORTED_ORIGINS:  # a flood of made-up origins keeps memory bounded
            self.reported.clear()
        self.reported.add(origin)
        log.warning("refused a request from origin %r (to %s): to allow it, add it to QA_ALLOWED_ORIGINS "
                    "(--allowed-origins)", origin, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        if self.settings.allowed_hosts and _host_name(headers.get("host", "")) not in self.settings.allowed_hosts:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _refuse(send, 400, "this host name is not served here (add it to QA_ALLOWED_HOSTS)")
            return
        origin = headers.get("origin")
        normalized = normalize_origin(origin) if origin is not None else None
        cross = origin is not None and not (normalized and _same_origin(normalized, headers.get("host", "")))
        allowed = not cross or normalized in self.settings.allowed_origins
        if cross and not allowed and path.startswith("/api/") and normalized in self.settings.collection_origins:
            allowed = True
            scope[CROSS_ORIGIN] = normalized  # which collections it may use is for_request's to say
        if scope["type"] == "websocket":
            if allowed and (self.auth is None or self.auth.lets_websocket(scope, headers)):
                await self.app(scope, receive, send)
            else:
                self.report_refused(origin, path)
                await send({"type": "websocket.close", "code": 1008})
            return
        if not allowed and not path.startswith(PUBLIC_PREFIXES):
            self.report_refused(origin, path)
            hint = "add it to QA_ALLOWED_ORIGINS" if path.startswith("/api/") else "this page is not embeddable there"
            await _refuse(send, 403, f"origin {origin} is not allowed ({hint})")
            return
        extra = {
            "Content-Security-Policy": f"frame-ancestors {self.frame_ancestors}",
            "X-Content-Type-Options": "nosniff",
        }
        if path.startswith("/api/"):
            if cross:
                extra.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
                if self.auth is None or not self.auth.settings.active:
                    # The widget on an allowed page keeps its anonymous session (saved conversations); a
                    # sign-in cookie never crosses origins.
                    extra["Access-Control-Allow-Credentials"] = "true"
                if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                    await self._preflight(send, extra)
                    return
        if self.auth is not None and not await self.auth.check(scope, headers, send, extra, cross):
            return
        if path.startswith("/api/"):
            if not await self._check_content_type(scope, headers, send, extra):
                return
        elif path.lower().startswith(REFUSED_PREFIXES) or URL_IN_PATH.search(path):
            await _refuse(send, 403, "this route is turned off", extra)
            return
        if not await self._check_rate(scope, send, extra) or not await self._check_framing(path, headers, send, extra):
            return
        body = _CountedBody(receive, send, self.body_limit(path), extra)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for key, value in extra.items():
                    if key == "Vary":
                        out.add_vary_header(value)
                    elif key == "Content-Security-Policy":
                        out.append(key, value)  # a page's own policy is enforced as well, not replaced
                    elif key not in out:
                        out[key] = value
            await body.send(message)

        try:
            await self.app(scope, body.receive, send_with_headers)
        except Exception:
            if not body.cut:  # once the body is cut off, the app failing to read it is expected
                raise

    def body_limit(self, path: str) -> int:
        if DOCUMENT_UPLOAD.fullmatch(path):
            return MAX_DOCUMENTS_BODY
        if path.startswith("/api/"):
            return self.settings.max_body
        return self.settings.max_upload if path == "/gradio_api/upload" else self.settings.max_ui_body

    async def _preflight(self, send: Send, extra: dict[str, str]) -> None:
        headers = {
            **extra,
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization, X-API-Key",
            "Access-Control-Max-Age": "600",
        }
        await _respond(send, 204, headers)

    async def _check_content_type(self, scope: Scope, headers: Headers, send: Send, extra: dict) -> bool:
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] == "POST" and DOCUMENT_UPLOAD.fullmatch(scope["path"]):
            if kind != "multipart/form-data":
                await _refuse(send, 415, "send documents as multipart/form-data (parts named 'files')", extra)
                return False
        elif scope["method"] == "POST" and kind != "application/json":
            await _refuse(send, 415, "send the request body as JSON (Content-Type: application/json)", extra)
            return False
        return True

    async def _check_rate(self, scope: Scope, send: Send, extra: dict) -> bool:
        """Every POST (a question, a vote, an upload, an API call) takes a token of its client's bucket."""
        if self.limiter is None or scope["method"] != "POST" or scope["path"] in UNLIMITED:
            return True
        client = scope.get("client")
        wait = self.limiter.take(client[0] if client else "?")
        if wait:
            seconds = max(1, math.ceil(wait))
            await _refuse(send, 429, f"too many requests: try again in {seconds} s",
                          {**extra, "Retry-After": str(seconds)})
            return False
        return True

    async def _check_framing(self, path: str, headers: Headers, send: Send, extra: dict) -> bool:
        """What the headers say about the body: refused before it is read when it is framed twice,
        declared too long or (outside /api) sent without a length."""
        limit = self.body_limit(path)
        if "transfer-encoding" in headers and "content-length" in headers:
            # The two framings disagree on where the body ends: the classic request smuggling.
            await _refuse(send, 400, "send either Content-Length or Transfer-Encoding, not both",
                          {**extra, "Connection": "close"})
            return False
        if "transfer-encoding" in headers and not path.startswith("/api/"):
            await _refuse(send, 411, "send a Content-Length with the request body", {**extra, "Connection": "close"})
            return False
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, 413, f"request body over {limit:,} bytes", {**extra, "Connection": "close"})
            return False
        return True
