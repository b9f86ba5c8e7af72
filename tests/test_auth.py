"""Sign-in and roles against a real server on 127.0.0.1: with keys set every route but the open
ones needs one (checked over the app's own route list, so a route added later unprotected fails
here), roles and collection limits, browser sessions (cookie flags, expiry, sign-out, cross-site
refusal), the sign-in rate limit and single sign-on from a trusted proxy address only."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner
from conftest import wait_until
from fastapi import Request
from starlette.routing import Mount
from web_helpers import LEAVE_A, LEAVE_Q, ServerThread, build_test_index, gradio_dependency

from qa.cli import main
from qa.web import WebConfig, create_app
from qa.web.auth import make_key, may_use

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

READER_KEY = "reader-key-0123456789"
ADMIN_KEY = "admin-key-0123456789abc"
HR_KEY = "hr-admin-key-0123456789"  # an admin limited to the collection "hr"
PROXY = "127.0.0.2"  # the trusted proxy: a client bound to this loopback address
WIDGET_ORIGIN = "http://intranet.example:8080"
OPEN_PATHS = {"/api/health", "/widget.js", "/qa-static/docs/x", "/assets/x", "/static/x", "/svelte/x",
              "/favicon.ico", "/robots.txt", "/theme.css", "/gradio_api/theme.css", "/signin", "/signout"}


def add_probe(app) -> None:
    """A route answering who the request came from and whether it may use a collection, first in
    line (before the Gradio app mounted at /)."""

    async def probe(request: Request, collection: str) -> dict:
        return {"user": request.state.user, "may_use": may_use(request, collection)}

    app.add_api_route("/probe/{collection}", probe, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())


def serve(index: Path, embedder, **settings) -> tuple[ServerThread, object]:
    config = WebConfig(index, rate_limit=None, feedback=index.parent / "feedback.jsonl", **settings)
    app = create_app(config, embedder)
    add_probe(app)
    return ServerThread(app), app


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    return build_test_index(tmp_path_factory.mktemp("auth"), embedder)


@pytest.fixture(scope="module")
def site(index, embedder):
    """The whole app, chat UI included, with a reader, an admin and a collection-limited key, and
    single sign-on from PROXY."""
    running, app = serve(index, embedder, ui=True, api_key=READER_KEY, admin_key=ADMIN_KEY,
                         named_keys=(make_key("hr", "admin", HR_KEY, frozenset({"hr"})),),
                         allowed_origins=(WIDGET_ORIGIN,), trusted_proxies=(PROXY,),
                         trusted_user_header="X-Forwarded-User", admin_users=("boss",))
    with running:
        yield {"url": running.url, "app": app}


@pytest.fixture
def api(site):
    with httpx.Client(base_url=site["url"], timeout=30) as client:
        yield client


@pytest.fixture
def via_proxy(site):
    """A client connecting from the trusted proxy's address."""
    transport = httpx.HTTPTransport(local_address=PROXY)
    with httpx.Client(base_url=site["url"], timeout=30, transport=transport) as client:
        yield client


def routes(app_routes, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path with every parameter filled) of each route the app has, mounted apps included."""
    found = []
    for route in app_routes:
        if isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            found += routes(inner, prefix + route.path) if inner else [("GET", prefix + route.path + "/x")]
        elif type(route).__name__ == "_IncludedRouter":  # FastAPI's include_router, as Gradio uses it
            found += routes(route.original_router.routes, prefix + route.include_context.prefix)
        else:
            path = re.sub(r"\{[^}]*\}", "x", prefix + route.path)
            methods = sorted(getattr(route, "methods", None) or {"GET"})
            found += [(method, path) for method in methods if method != "HEAD"]
    return found


def sign_in(url: str, key: str, **headers) -> httpx.Response:
    return httpx.post(url + "/signin", data={"key": key, "next": "/source?source=leave.md"},
                      headers={"Origin": url, **headers}, timeout=30)


def session_cookie(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("qa_session=")]
    return header


def cookie_of(response: httpx.Response) -> dict[str, str]:
    return {"Cookie": session_cookie(response).split(";")[0]}


def test_every_route_but_the_open_ones_needs_a_key(site, api):
    every = routes(site["app"].routes)
    paths = {path for _, path in every}
    assert {"/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/call/x", "/source", "/config"} <= paths
    assert OPEN_PATHS <= paths
    for method, path in every:
        r = api.request(method, path)
        if path in OPEN_PATHS:
            assert r.status_code != 401, (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
            assert r.json()["error"].startswith("missing or wrong API key")
            assert r.headers["www-authenticate"] == "Bearer"
    assert api.get("/config", headers={"X-API-Key": READER_KEY}).status_code == 200


def test_an_unsigned_client_cannot_use_the_chat_ui_sources_or_uploads(site, api):
    signed = httpx.Client(base_url=site["url"], timeout=30, headers={"X-API-Key": READER_KEY})
    fn_index, trigger = gradio_dependency(signed, "qa-question")
    join = {"data": [LEAVE_Q, [], []], "fn_index": fn_index, "trigger_id": trigger, "session_hash": "s1"}
    same_site = {"Origin": site["url"]}
    assert api.post("/gradio_api/queue/join", json=join, headers=same_site).status_code == 401
    assert api.post("/gradio_api/call/respond", json={"data": [LEAVE_Q]}, headers=same_site).status_code == 401
    assert api.post("/gradio_api/upload", files={"files": ("q.csv", b"question\nx\n")}).status_code == 401
    assert api.get("/source", params={"source": "leave.md"}).status_code == 401
    # A browser opening a page is sent to the sign-in page, and back afterwards.
    r = api.get("/source", params={"source": "leave.md"}, headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=" + quote("/source?source=leave.md", safe="")
    assert api.get("/", headers={"Accept": "text/html"}).headers["location"] == "/signin?next=%2F"
    # Following a link from another site, the browser is asked to load the page again from here.
    link = {"Accept": "text/html", "Sec-Fetch-Site": "cross-site"}
    r = api.get("/source", params={"source": "leave.md"}, headers=link)
    assert r.status_code == 200 and '<meta http-equiv="refresh" content="0">' in r.text
    assert "annual" not in r.text.lower()
    assert signed.post("/gradio_api/queue/join", json=join).status_code == 200
    signed.close()


def test_roles_and_collection_limits(site, api):
    documents = "/api/collections/default/documents"
    for path in (documents, documents + "/missing.md", "/api/collections/default/status"):
        for method in ("GET", "POST", "DELETE"):
            r = api.request(method, path, headers={"X-API-Key": READER_KEY})
            assert r.status_code == 403 and "admin" in r.json()["error"], (method, path)
            # the admin gets the route's own answer (a listing, 415 for a POST that is not multipart, 404, 405)
            assert api.request(method, path, headers={"X-API-Key": ADMIN_KEY}).status_code not in (401, 403)
    assert api.get(documents, headers={"X-API-Key": HR_KEY}).status_code == 403  # not its collection
    assert api.get("/api/collections/hr/documents", headers={"X-API-Key": HR_KEY}).status_code == 404
    assert api.post("/api/ask", json={"question": LEAVE_Q}, headers={"X-API-Key": READER_KEY}).status_code == 200
    assert api.get("/probe/default", headers={"X-API-Key": READER_KEY}).json() == {"user": "reader", "may_use": True}
    assert api.get("/probe/default", headers={"X-API-Key": HR_KEY}).json() == {"user": "hr", "may_use": False}
    assert api.get("/probe/hr", headers={"Authorization": f"Bearer {HR_KEY}"}).json() == {"user": "hr", "may_use": True}


def test_single_sign_on_only_from_the_trusted_proxy(site, api, via_proxy, caplog):
    alice = {"X-Forwarded-User": "alice"}
    assert via_proxy.get("/probe/default", headers=alice).json() == {"user": "alice", "may_use": True}
    assert via_proxy.get("/source", params={"source": "leave.md"}, headers=alice).status_code == 200
    assert via_proxy.get("/api/collections/default/documents", headers=alice).status_code == 403
    assert via_proxy.get("/api/collections/default/documents", headers={"X-Forwarded-User": "boss"}).status_code == 200
    asked = via_proxy.post("/api/ask", json={"question": LEAVE_Q}, headers={**alice, "Origin": site["url"]})
    assert asked.status_code == 200 and LEAVE_A in asked.json()["answer"]
    assert via_proxy.get("/source", params={"source": "leave.md"}).status_code == 401  # the proxy alone is no one
    with caplog.at_level(logging.WARNING, logger="qa.web"):
        for headers in (alice, {"X-Forwarded-User": "boss", "X-Forwarded-For": PROXY}):
            assert api.get("/source", params={"source": "leave.md"}, headers=headers).status_code == 401
            assert api.get("/api/collections/x/status", headers=headers).status_code == 401
    assert any("ignored the trusted user header from 127.0.0.1" in m for m in caplog.messages)


def test_signing_in_sets_a_session_cookie_never_the_key(site, api, via_proxy):
    url = site["url"]
    signed = sign_in(url, ADMIN_KEY)
    assert signed.status_code == 303 and signed.headers["location"] == "/source?source=leave.md"
    cookie = session_cookie(signed)
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags and "secure" not in flags
    assert ADMIN_KEY not in cookie and len(cookie.split(";")[0]) > 40
    session = cookie_of(signed)
    assert api.get("/source", params={"source": "leave.md"}, headers=session).status_code == 200
    assert api.get("/probe/x", headers=session).json() == {"user": "admin", "may_use": True}
    asked = api.post("/api/ask", json={"question": LEAVE_Q}, headers={**session, "Origin": url})
    assert asked.status_code == 200
    # Over https (the proxy says so), the cookie is Secure.
    secure = via_proxy.post("/signin", data={"key": READER_KEY}, headers={"X-Forwarded-Proto": "https",
                                                                          "Origin": url.replace("http:", "https:")})
    assert secure.status_code == 303 and "secure" in session_cookie(secure).lower()
    wrong = sign_in(url, "not-a-key <b>")
    assert wrong.status_code == 401 and "That key is not valid." in wrong.text and "<b>" not in wrong.text
    assert not wrong.headers.get_list("set-cookie")


def test_cross_site_requests_with_only_the_cookie_are_refused(site, api):
    url = site["url"]
    session = cookie_of(sign_in(url, READER_KEY))
    body = {"question": LEAVE_Q}
    refused = [{"Origin": WIDGET_ORIGIN},  # an allowed origin may call the API with a key, not the visitor's cookie
               {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {}]
    for headers in refused:
        r = api.post("/api/ask", json=body, headers={**session, **headers})
        assert r.status_code == 403 and "own pages" in r.json()["error"], headers
        assert api.post("/gradio_api/upload", files={"files": ("q.csv", b"question\nx\n")},
                        headers={**session, **headers}).status_code == 403
    assert api.post("/api/ask", json=body, headers={**session, "Sec-Fetch-Site": "same-origin"}).status_code == 200
    with_key = {"Origin": WIDGET_ORIGIN, "X-API-Key": READER_KEY}
    assert api.post("/api/ask", json=body, headers=with_key).status_code == 200
    # Signing someone in from another site (login CSRF) is refused too.
    r = httpx.post(url + "/signin", data={"key": READER_KEY}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and not r.headers.get_list("set-cookie")


def test_failed_sign_ins_are_rate_limited(index, embedder):
    running, _ = serve(index, embedder, ui=False, api_key=READER_KEY)
    with running:
        for _ in range(5):
            assert sign_in(running.url, "wrong-key-guess").status_code == 401
        r = sign_in(running.url, READER_KEY)  # even the right key, until the client's bucket refills
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 12 and "Too many" in r.text
        assert httpx.get(running.url + "/source", params={"source": "leave.md"},
                         headers={"X-API-Key": READER_KEY}).status_code == 200


def test_a_session_expires_and_signing_out_ends_it(index, embedder):
    running, _ = serve(index, embedder, ui=False, api_key=READER_KEY, session_hours=1.5 / 3600)
    with running:
        page = running.url + "/source?source=leave.md"
        session = cookie_of(sign_in(running.url, READER_KEY))
        assert httpx.get(page, headers=session).status_code == 200
        wait_until(lambda: httpx.get(page, headers=session).status_code == 401, 10, "the session to expire")
        session = cookie_of(sign_in(running.url, READER_KEY))
        out = httpx.get(running.url + "/signout", headers=session)
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert 'qa_session=""' in session_cookie(out) or "max-age=0" in session_cookie(out).lower()
        assert httpx.get(page, headers=session).status_code == 401  # the old cookie is no longer a session


def test_with_no_key_nothing_needs_one(index, embedder):
    running, _ = serve(index, embedder, ui=False)
    with running:
        assert httpx.get(running.url + "/probe/default").json() == {"user": None, "may_use": True}
        assert httpx.post(running.url + "/api/ask", json={"question": LEAVE_Q}).status_code == 200
        assert httpx.get(running.url + "/signin").status_code == 404


@pytest.mark.parametrize("lines, says", [
    ("alice:reader", "NAME:ROLE:KEY"),
    ("alice:owner:0123456789abcdefgh", "reader or admin"),
    ("alice:reader:short", "16 or more"),
    ("al ice:reader:0123456789abcdefgh", "a name is"),
    ("alice:reader:0123456789abcdefgh:", "list the collections"),
    ("alice:reader:0123456789abcdefgh\nbob:admin:0123456789abcdefgh", "are the same"),
    ("reader:reader:0123456789abcdefgh", "two keys are named 'reader'"),
])
def test_a_bad_keys_file_is_refused_in_one_line(tmp_path, lines, says):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# name:role:key[:collections]\n\n{lines}\n", encoding="utf-8")
    result = CliRunner(env={"QA_API_KEY": "0123456789abcdefghij"}).invoke(
        main, ["serve", "--index", str(tmp_path / "none"), "--keys-file", str(keys)])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert says in result.output and "Traceback" not in result.output and "0123456789abcdefgh" not in result.output


def test_single_sign_on_needs_the_proxies_listed(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--index", str(tmp_path), "--trusted-user-header", "X-Forwarded-User"])
    assert result.exit_code == 2 and "QA_TRUSTED_PROXIES" in result.output and len(result.output.splitlines()) == 1
