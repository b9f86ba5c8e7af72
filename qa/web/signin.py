"""The browser's way in when keys are set: /signin, a plain form taking a key, which opens a
server-side session and sets its random id as an HttpOnly, SameSite=Strict cookie (Secure over
https); /signout ends it. The key itself never goes into the cookie. Failed sign-ins are counted
per client (qa.web.auth.SIGNIN_FAILURES) and past the limit refused with 429 before the key is
even compared."""

from __future__ import annotations

import html
import logging
import math
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from qa.web.auth import COOKIE, Authenticator, find_key

log = logging.getLogger("qa.web")

SIGNIN_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
STYLE = ("body{font:16px system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1f2937}"
         "input,button{font:inherit;padding:.5rem;width:100%;box-sizing:border-box;margin:.3rem 0}"
         "button{background:#0f766e;color:#fff;border:0;border-radius:4px;cursor:pointer}"
         ".error{color:#b91c1c}")


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this server only (never "//other.example" or a URL)."""
    if (not target.startswith("/") or target.startswith(("//", "/\\")) or not target.isprintable()
            or target.startswith(("/signin", "/signout"))):
        return "/"
    return target


def signin_page(next_path: str, message: str = "", keys: bool = True) -> str:
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    if not keys:
        body = "<p>This server signs you in through the proxy in front of it: open it through that proxy.</p>"
    else:
        body = (f'<form method="post" action="/signin">{error}'
                '<label for="key">Access key</label>'
                '<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>'
                f'<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">'
                '<button type="submit">Sign in</button></form>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title>'
            f'<meta name="viewport" content="width=device-width"><style>{STYLE}</style></head>'
            f"<body><h1>Ask the documents</h1>{body}</body></html>")


def _page(text: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={
        "Content-Security-Policy": SIGNIN_CSP, "Cache-Control": "no-store", **(headers or {})})


def add_signin_routes(app: FastAPI, auth: Authenticator) -> None:
    keys = bool(auth.settings.keys)

    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    def signin_form(next: str = "/"):  # noqa: A002 (the query parameter's name)
        return _page(signin_page(safe_next(next), keys=keys))

    @app.post("/signin", response_class=HTMLResponse, include_in_schema=False)
    async def signin(request: Request):
        client = request.client.host if request.client else "?"
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
        next_path = safe_next(fields.get("next", ["/"])[0])
        wait = auth.failures.waiting(client)
        if wait:
            seconds = max(1, math.ceil(wait))
            return _page(signin_page(next_path, f"Too many failed sign-ins: try again in {seconds} s.", keys),
                         429, {"Retry-After": str(seconds)})
        key = fields.get("key", [""])[0].strip()
        principal = find_key(auth.settings.keys, key) if key else None
        if principal is None:
            auth.failures.take(client)
            log.warning("failed sign-in from %s", client)
            return _page(signin_page(next_path, "That key is not valid.", keys), 401)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(COOKIE, auth.sessions.open(principal), max_age=int(auth.settings.session_seconds),
                            path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response

    # GET too, so a link can sign out: SameSite=Strict keeps other sites' links from doing it.
    @app.api_route("/signout", methods=["GET", "POST"], include_in_schema=False)
    def signout(request: Request):
        sid = request.cookies.get(COOKIE)
        if sid:
            auth.sessions.close(sid)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response
