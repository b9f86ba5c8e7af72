"""Who is asking, and may they: keys with a role, browser sessions and a trusted proxy's user header.

Off unless a key (QA_API_KEY, QA_ADMIN_KEY, QA_KEYS_FILE) or QA_TRUSTED_USER_HEADER is set. Then
every route needs a principal, except the few that ROUTE_ROLES declares open; the table is
default-deny, so a route added later is protected without being listed. A principal comes from,
in this order: a key sent as `X-API-Key` or `Authorization: Bearer` (a wrong one is refused, never
skipped), the user a listed proxy names in the trusted header, or the session cookie /signin set
(qa.web.signin). Routes see it as `request.state.principal` and `request.state.user` (its name),
and `may_use(request, collection)` says whether it may use a collection.

A request carrying no key that changes something (any method but GET, HEAD and OPTIONS) must come
from this server's own pages: a browser sends the cookie or the proxy adds its header whoever made
the page that sent it. qa.web.guard calls `Authenticator.check` after the origin rule and before
the rate limit, so a refused request uses up no token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from qa.errors import BadSetting
from qa.web.guard import RateLimiter

log = logging.getLogger("qa.web")

OPEN, READER, ADMIN = "open", "reader", "admin"
RANK = {OPEN: 0, READER: 1, ADMIN: 2}
# Which role a path needs: the first pattern matching the whole path decides, and a path matching
# none needs READER. Open: probes, the widget script, static files (the API docs' scripts, Gradio's
# front end and theme, all from the installed packages) and the sign-in pages.
ROUTE_ROLES: tuple[tuple[str, str], ...] = (
    (r"/api/health", OPEN),
    (r"/widget\.js", OPEN),
    (r"/qa-static/.+", OPEN),
    (r"/(assets|static|svelte)/.+", OPEN),
    (r"/(favicon\.ico|robots\.txt|theme\.css|gradio_api/theme\.css)", OPEN),
    (r"/(signin|signout)", OPEN),
    (r"/api/collections/[^/]+/(documents|status)(/.*)?", ADMIN),
)
_ROUTE_ROLES = tuple((re.compile(pattern), role) for pattern, role in ROUTE_ROLES)
# A path naming a collection: the principal must be allowed to use it, whatever the route.
COLLECTION_IN_PATH = re.compile(r"/api/collections/([^/]+)(/.*)?")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
COOKIE = "qa_session"
SIGNIN_FAILURES = (5, 60.0)  # failed sign-ins a client may make, per this many seconds
MAX_SESSIONS = 100_000
TRUSTED_USER = "qa.trusted_user"  # the scope key TrustedUserHeader fills
_KEY_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_KEY_CHARS = 16


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: a key's name or a proxy's user, a role, and the collections it may
    use (None: all of them)."""

    name: str
    role: str
    collections: frozenset[str] | None = None

    def may_use(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


EVERYONE = Principal("", ADMIN)  # with no key set, anyone may do anything


def may_use(request: Request, collection: str) -> bool:
    """Whether the request's principal may use `collection` (read it, ask it, change it)."""
    principal = getattr(request.state, "principal", None)
    return principal is not None and principal.may_use(collection)


def required_role(path: str) -> str:
    segments = path.split("/")
    for pattern, role in _ROUTE_ROLES:
        if pattern.fullmatch(path):
            # "/assets/../config" is not an asset: a dot segment never makes a path open.
            return READER if role == OPEN and ("." in segments or ".." in segments) else role
    return READER


@dataclass(frozen=True)
class Key:
    principal: Principal
    digest: bytes  # SHA-256 of the key: the key itself is not kept


def make_key(name: str, role: str, secret: str, collections: frozenset[str] | None = None) -> Key:
    return Key(Principal(name, role, collections), _digest(secret))


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def read_keys_file(path: Path) -> tuple[Key, ...]:
    """A keys file: one `NAME:ROLE:KEY[:COLLECTION,COLLECTION...]` a line, ROLE reader or admin,
    KEY at least 16 characters; blank lines and lines starting with # are skipped."""
    where = f"--keys-file / QA_KEYS_FILE {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSetting(f"{where} cannot be read ({exc.__class__.__name__}: {exc.strerror or exc})") from None
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (3, 4):
            raise BadSetting(f"{where} line {number}: write NAME:ROLE:KEY or NAME:ROLE:KEY:COLLECTION,COLLECTION")
        name, role, secret = (p.strip() for p in parts[:3])
        if not _KEY_NAME.fullmatch(name):
            raise BadSetting(f"{where} line {number}: a name is 1-64 letters, digits or _.@-, not {name!r}")
        if role not in (READER, ADMIN):
            raise BadSetting(f"{where} line {number}: the role must be reader or admin, not {role!r}")
        if len(secret) < MIN_KEY_CHARS or re.search(r"\s", secret):
            raise BadSetting(f"{where} line {number}: the key of {name!r} must be {MIN_KEY_CHARS} or more characters "
                             "without spaces")
        collections = None
        if len(parts) == 4:
            collections = frozenset(c.strip() for c in parts[3].split(",") if c.strip())
            if not collections:
                raise BadSetting(f"{where} line {number}: list the collections {name!r} may use, or leave out the "
                                 "last ':'")
        keys.append(make_key(name, role, secret, collections))
    return tuple(keys)


def all_keys(api_key: str, admin_key: str, named: tuple[Key, ...] = ()) -> tuple[Key, ...]:
    """The server's keys: QA_API_KEY (named "reader"), QA_ADMIN_KEY ("admin") and the keys file's.
    Two keys alike or two of one name are refused: a key must say who it is."""
    keys = list(named)
    if admin_key:
        if len(admin_key) < MIN_KEY_CHARS:
            raise BadSetting(f"--admin-key / QA_ADMIN_KEY must be {MIN_KEY_CHARS} or more characters")
        keys.insert(0, make_key(ADMIN, ADMIN, admin_key))
    if api_key:
        keys.insert(0, make_key(READER, READER, api_key))
    names = [k.principal.name for k in keys]
    digests = [k.digest for k in keys]
    if len(set(names)) < len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise BadSetting(f"two keys are named {twice[0]!r} (QA_API_KEY is named reader, QA_ADMIN_KEY admin)")
    if len(set(digests)) < len(digests):
        raise BadSetting("two keys (QA_API_KEY, QA_ADMIN_KEY, QA_KEYS_FILE) are the same: give each its own")
    return tuple(keys)


def find_key(keys: tuple[Key, ...], given: str) -> Principal | None:
    """The principal of a key, compared in constant time with every key (no early exit)."""
    digest = _digest(given)
    found = None
    for key in keys:
        if hmac.compare_digest(digest, key.digest):
            found = key.principal
    return found


class Sessions:
    """Browser sessions: a random id (the cookie) -> the principal that signed in, until it expires."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds, self.clock = seconds, clock
        self.table: dict[str, tuple[Principal, float]] = {}

    def open(self, principal: Principal) -> str:
        now = self.clock()
        if len(self.table) >= MAX_SESSIONS:
            self.table = {sid: entry for sid, entry in self.table.items() if entry[1] > now}
            while len(self.table) >= MAX_SESSIONS:  # still full: the oldest go first
                del self.table[next(iter(self.table))]
        sid = secrets.token_urlsafe(32)
        self.table[sid] = (principal, now + self.seconds)
        return sid

    def find(self, sid: str) -> Principal | None:
        principal, expires = self.table.get(sid, (None, 0.0))
        if principal is not None and expires <= self.clock():
            del self.table[sid]
            return None
        return principal

    def close(self, sid: str) -> None:
        self.table.pop(sid, None)


@dataclass(frozen=True)
class AuthSettings:
    keys: tuple[Key, ...] = ()
    trusted_user_header: str = ""  # e.g. X-Forwarded-User; "" turns single sign-on off
    admin_users: tuple[str, ...] = ()  # users of that header with the admin role
    session_seconds: float = 12 * 3600.0

    @property
    def active(self) -> bool:
        return bool(self.keys or self.trusted_user_header)


async def _json(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps({"error": message}).encode()
    raw = {**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in raw.items()]})
    await send({"type": "http.response.body", "body": body})


class Authenticator:
    def __init__(self, settings: AuthSettings):
        self.settings = settings
        self.sessions = Sessions(settings.session_seconds)
        self.failures = RateLimiter(*SIGNIN_FAILURES)  # failed sign-ins, per client

    def identify(self, scope: Scope, headers: Headers) -> tuple[Principal | None, str]:
        """The principal and how it came ("key", "proxy", "session"); (None, "wrong key") for a key
        that matches none, (None, "") for a request that carries nothing."""
        given = headers.get("x-api-key") or ""
        auth = headers.get("authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given:
            principal = find_key(self.settings.keys, given)
            return (principal, "key") if principal else (None, "wrong key")
        user = scope.get(TRUSTED_USER)
        if user:
            return Principal(user, ADMIN if user in self.settings.admin_users else READER), "proxy"
        sid = cookie_parser(headers.get("cookie", "")).get(COOKIE)
        principal = self.sessions.find(sid) if sid else None
        return (principal, "session") if principal else (None, "")

    async def check(self, scope: Scope, headers: Headers, send: Send, extra: dict[str, str], cross: bool) -> bool:
        """Let the request on (True, with `principal` and `user` in its state) or answer it here.
        `cross`: it carries an Origin other than the server's own."""
        state = scope.setdefault("state", {})
        if not self.settings.active:
            state["principal"], state["user"] = EVERYONE, None
            return True
        path, method = scope["path"], scope["method"]
        needed = required_role(path)
        principal, came = self.identify(scope, headers)
        if principal is None and needed != OPEN:  # on an open route a wrong key is ignored, as no key is
            await self._unsigned(scope, headers, send, extra)
            return False
        if principal is not None and RANK[principal.role] < RANK[needed]:
            await _json(send, 403, f"this needs the {needed} role", extra)
            return False
        collection = COLLECTION_IN_PATH.fullmatch(path)
        if principal is not None and collection and not principal.may_use(collection.group(1)):
            await _json(send, 403, f"this key may not use the collection {collection.group(1)!r}", extra)
            return False
        if came != "key" and method not in SAFE_METHODS and not _from_own_page(headers, cross):
            await _json(send, 403, "a request that changes something must come from this site's own pages "
                        "(or send a key)", extra)
            return False
        state["principal"] = principal
        state["user"] = principal.name if principal else None
        return True

    def lets_websocket(self, scope: Scope, headers: Headers) -> bool:
        principal, _ = self.identify(scope, headers)
        return not self.settings.active or principal is not None

    async def _unsigned(self, scope: Scope, headers: Headers, send: Send, extra: dict[str, str]) -> None:
        """A browser opening a page is sent to /signin; anything else gets 401."""
        path = scope["path"]
        page = scope["method"] == "GET" and "text/html" in headers.get("accept", "")
        if page and not path.startswith(("/api/", "/gradio_api/")):
            if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
                await _reload_from_here(send, extra)
                return
            query = scope.get("query_string", b"").decode("latin-1")
            target = quote(path + (f"?{query}" if query else ""), safe="")
            location = f"/signin?next={target}"
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(k.lower().encode(), v.encode()) for k, v in
                                    {**extra, "Location": location, "Content-Length": "0"}.items()]})
            await send({"type": "http.response.body", "body": b""})
            return
        await _json(send, 401, "missing or wrong API key (send Authorization: Bearer KEY or X-API-Key; "
                    "in a browser, sign in at /signin)", {**extra, "WWW-Authenticate": "Bearer"})


async def _reload_from_here(send: Send, extra: dict[str, str]) -> None:
    """A link from another site: SameSite=Strict kept the session cookie off this request, and a
    reload started by this page sends it (then, still unsigned, the visitor goes to /signin)."""
    body = b'<!doctype html><meta http-equiv="refresh" content="0"><title>Signing in</title>'
    await send({"type": "http.response.start", "status": 200, "headers": [
        (k.lower().encode(), v.encode()) for k, v in
        {**extra, "Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)),
         "Cache-Control": "no-store"}.items()]})
    await send({"type": "http.response.body", "body": body})


def _from_own_page(headers: Headers, cross: bool) -> bool:
    """A browser names the page a request comes from in Origin (every POST) or, failing that, says
    in Sec-Fetch-Site whether it is this origin."""
    if "origin" in headers:
        return not cross
    return headers.get("sec-fetch-site") == "same-origin"


class TrustedUserHeader:
    """Single sign-on: a listed proxy names the signed-in user in a header. Outermost (before the
    forwarded-for handling replaces the connecting address): the header is believed only from a
    proxy that connects directly, and removed from every request so nothing else reads it."""

    def __init__(self, app: ASGIApp, header: str, proxies: tuple[str, ...]):
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.networks = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self.reported: set[str] = set()

    def trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            values = [v for k, v in scope["headers"] if k == self.header]
            if values:
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != self.header]
                peer = (scope.get("client") or ("?", 0))[0]
                user = values[0].decode("latin-1").strip()
                if not self.trusted(peer):
                    self.report(peer)
                elif len(values) == 1 and 0 < len(user) <= 256 and user.isprintable():
                    scope[TRUSTED_USER] = user
        await self.app(scope, receive, send)

    def report(self, peer: str) -> None:
        if peer in self.reported:
            return
        if len(self.reported) >= 1000:
            self.reported.clear()
        self.reported.add(peer)
        log.warning("ignored the trusted user header from %s, which is not in QA_TRUSTED_PROXIES", peer)
