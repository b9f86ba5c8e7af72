"""The gate in front of the web app: hosts, origins, CORS, API key, rate limit and body size.

One small ASGI middleware, so each rule is checked once, before any route or Gradio runs:
- If allowed hosts are set, a request for any other Host is refused (400): the defence against
  DNS rebinding, where a hostile page's own name is pointed at this server.
- A request whose Origin is neither the server's own nor in the allowed list is refused (403),
  on every path except the public assets (the widget script, static files). An empty list means
  same-origin only, never "any origin".
- /api/*: CORS headers for allowed origins (preflight included), then the API key if one is set,
  a per-client token-bucket rate limit answered with 429 + Retry-After, a JSON content type and a
  body size limit. Refusals are JSON `{"error": ...}`.
- Elsewhere (the chat UI, Gradio's routes) a body must declare its length and stay under the
  upload limit, and the Gradio routes the UI never uses that reach beyond the corpus are refused
  (REFUSED_PREFIXES).
- Every response says which pages may frame it (CSP frame-ancestors).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qa.errors import QAError

PUBLIC_PREFIXES = ("/widget.js", "/qa-static/")
UNLIMITED = ("/api/health",)  # probes: no key, no rate limit
# Gradio routes the UI never uses and that reach beyond the corpus: fetching a public URL named in
# the path, proxying another Gradio app, and the stream only `gradio --reload` needs.
REFUSED_PREFIXES = ("/gradio_api/file=http://", "/gradio_api/file=https://", "/gradio_api/proxy=", "/gradio_api/dev/")
MAX_BODY = 64 * 1024
MAX_UPLOAD = 20 * 1024 * 1024  # a Batch tab question file, or any other body sent to the chat UI
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_origins(value: str | Sequence[str]) -> tuple[str, ...]:
    """"http://a:8080, https://b" -> normalized origins; "" -> () (same origin only)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = urlsplit(item)
        if item == "*" or parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise QAError(
                f"allowed origin {item!r} must be like http://host[:port] (list each origin; '*' is not accepted)"
            )
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def parse_hosts(value: str | Sequence[str]) -> tuple[str, ...]:
    """"qa.intranet.example, localhost, ::1" -> host names and addresses; "" -> () (any host)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    hosts = []
    for item in (i.strip().lower().strip("[]") for i in items):
        if not item:
            continue
        try:
            hosts.append(str(ipaddress.ip_address(item)))
        except ValueError:
            if not re.fullmatch(r"[a-z0-9.\-]+", item):
                raise QAError(
                    f"allowed host {item!r} must be a host name or address without a port, e.g. qa.intranet.example"
                ) from None
            hosts.append(item)
    return tuple(hosts)


def parse_rate(value: str) -> tuple[int, float] | None:
    """"30/minute" -> (30, 60.0); "0" or "" -> None (no limit)."""
    value = value.strip().lower()
    if value in ("", "0", "off", "none"):
        return None
    m = re.fullmatch(r"(\d+)\s*/\s*(second|minute|hour|day)s?", value)
    if not m:
        raise QAError(f"rate limit {value!r} must be like 30/minute (per second, minute, hour or day) or 0 for none")
    count = int(m.group(1))
    return (count, float(_PERIODS[m.group(2)])) if count else None


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
        tokens, then = self.buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        if tokens >= 1:
            self.buckets[client] = (tokens - 1, now)
            if len(self.buckets) > 10_000:
                self._forget_idle(now)
            return 0.0
        self.buckets[client] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        full = self.capacity / self.rate
        self.buckets = {c: (t, s) for c, (t, s) in self.buckets.items() if now - s < full}


@dataclass(frozen=True)
class GuardSettings:
    allowed_origins: tuple[str, ...] = ()
    api_key: str = ""
    rate_limit: tuple[int, float] | None = None
    max_body: int = MAX_BODY
    max_upload: int = MAX_UPLOAD
    allowed_hosts: tuple[str, ...] = ()  # () accepts any Host header


def _host_name(host: str) -> str:
    """"Example.org:7860" -> "example.org"; "[::1]:7860" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _same_origin(origin: str, headers: Headers) -> bool:
    # Host and port only: behind a TLS-terminating proxy the page is https and we see http.
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower() != ""


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await _respond(
        send, status, {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}, body
    )


def _declared_over(headers: Headers, limit: int) -> bool:
    """Whether the request says its body is longer than `limit` bytes."""
    declared = headers.get("content-length")
    return bool(declared and declared.isdigit() and int(declared) > limit)


class Guard:
    def __init__(self, app: ASGIApp, settings: GuardSettings):
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter(*settings.rate_limit) if settings.rate_limit else None
        self.frame_ancestors = " ".join(["'self'", *settings.allowed_origins])

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
        cross = origin is not None and not _same_origin(origin, headers)
        allowed = not cross or origin.lower() in self.settings.allowed_origins
        if scope["type"] == "websocket":
            if allowed:
                await self.app(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if not allowed and not path.startswith(PUBLIC_PREFIXES):
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
                if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                    await self._preflight(send, extra)
                    return
            receive = await self._check_api(scope, headers, receive, send, extra)
            if receive is None:
                return
        elif path.lower().startswith(REFUSED_PREFIXES):
            await _refuse(send, 403, "this route is turned off", extra)
            return
        elif not await self._check_body_length(headers, send, extra):
            return

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
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _preflight(self, send: Send, extra: dict[str, str]) -> None:
        headers = {
            **extra,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Authorization, X-API-Key",
            "Access-Control-Max-Age": "600",
        }
        await _respond(send, 204, headers)

    async def _check_api(
        self, scope: Scope, headers: Headers, receive: Receive, send: Send, extra: dict
    ) -> Receive | None:
        """Key, rate, content type, body size. Returns a receive that replays the read body, or
        None when the request was refused."""
        path, method = scope["path"], scope["method"]
        if path not in UNLIMITED:
            if self.settings.api_key and not self._key_ok(headers):
                await _refuse(send, 401, "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key)",
                              {**extra, "WWW-Authenticate": "Bearer"})
                return None
            if self.limiter is not None:
                client = scope.get("client")
                wait = self.limiter.take(client[0] if client else "?")
                if wait:
                    seconds = max(1, math.ceil(wait))
                    await _refuse(send, 429, f"too many requests: try again in {seconds} s",
                                  {**extra, "Retry-After": str(seconds)})
                    return None
        if method != "POST":
            return receive
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            await _refuse(send, 415, "send the request body as JSON (Content-Type: application/json)", extra)
            return None
        if _declared_over(headers, self.settings.max_body):
            await _refuse(send, 413, f"request body over {self.settings.max_body:,} bytes", extra)
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.settings.max_body:
                await _refuse(send, 413, f"request body over {self.settings.max_body:,} bytes", extra)
                return None
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        return replay

    async def _check_body_length(self, headers: Headers, send: Send, extra: dict) -> bool:
        """Outside /api a body must declare its length (so the server never reads more than it
        checked) and stay under the upload limit."""
        if "transfer-encoding" in headers and "content-length" not in headers:
            await _refuse(send, 411, "send a Content-Length with the request body", extra)
            return False
        if _declared_over(headers, self.settings.max_upload):
            await _refuse(send, 413, f"request body over {self.settings.max_upload:,} bytes", extra)
            return False
        return True

    def _key_ok(self, headers: Headers) -> bool:
        given = headers.get("x-api-key") or ""
        auth = headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.settings.api_key.encode())
