"""Who a request belongs to, for saved conversations: the signed-in user when sign-in set
`request.state.user`, else the browser session named by the `qa_session` cookie.

SessionCookie gives a browser without a (well-formed) session cookie a new random one on its
first POST (a question, a chat UI event), HttpOnly and SameSite=Strict, and puts it in the
request's state so that very request already has its owner. GETs never set it: a top-level visit
from another site arrives without the Strict cookie, and a new one would replace the session.
The database keeps a hash of the cookie, never the cookie itself.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "qa_session"
SESSION_SECONDS = 365 * 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def _cookie_token(cookie_header: str) -> str | None:
    """The session token of a Cookie header, parsed as Starlette parses request.cookies."""
    token = cookie_parser(cookie_header).get(SESSION_COOKIE, "")
    return token if _TOKEN.fullmatch(token) else None


def request_owner(request) -> str | None:
    """The owner of a request (a Starlette request or Gradio's gr.Request): "user:NAME" when signed
    in, "session:HASH" for a browser session, None for a client with neither (it owns nothing)."""
    state = getattr(request, "state", None)
    user = getattr(state, "user", None)
    if user:
        return f"user:{user}"
    cookies = getattr(request, "cookies", None) or {}
    token = cookies.get(SESSION_COOKIE)
    if not (isinstance(token, str) and _TOKEN.fullmatch(token)):
        token = getattr(state, SESSION_COOKIE, None)
    if not token:
        return None
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


class SessionCookie:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        cookie_header = b"; ".join(v for k, v in scope["headers"] if k == b"cookie").decode("latin-1")
        if _cookie_token(cookie_header):
            await self.app(scope, receive, send)
            return
        token = secrets.token_urlsafe(32)
        scope.setdefault("state", {})[SESSION_COOKIE] = token
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        set_cookie = (f"{SESSION_COOKIE}={token}; Path=/; Max-Age={SESSION_SECONDS}; HttpOnly; "
                      f"SameSite=Strict{secure}").encode()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", set_cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
