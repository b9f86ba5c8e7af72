"""Hostile web input against the real server on 127.0.0.1: malformed and oversized bodies, wrong
types, unicode edge cases, path traversal on every route that names a file, header injection,
foreign origins and hosts, missing or wrong keys. Each gets a 4xx (JSON `{"error": ...}` on /api),
no response carries a traceback or a path of this machine, and the server keeps answering.

Raw sockets send what HTTP clients refuse to (CR/LF in headers, lying Content-Length, unnormalized
paths); hypothesis generates JSON bodies of every shape for /api/ask and /api/search."""

from __future__ import annotations

import json
import re
import sys
import sysconfig
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from conftest import ROOT
from gradio.utils import get_upload_folder
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from web_helpers import LEAVE_A, LEAVE_Q, ServerThread, batch_call, build_test_index, raw_http, request_bytes

from qa.errors import IndexNotFound, QAError
from qa.web import WebConfig, create_app
from qa.web.guard import MAX_BODY, MAX_UPLOAD, parse_hosts

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

WIDGET_ORIGIN = "http://127.0.0.1:8123"
KEY = "k3y-Secret-9"
SECRET_ROW = "What is the secret word? SECRET-ROW-7731"  # in a file outside the corpus and the uploads


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    """The full app (API, widget, chat UI) and a file on the same disk that must never be served."""
    root = tmp_path_factory.mktemp("hostile")
    index = build_test_index(root, embedder)
    secret = root / "secret.csv"
    secret.write_text(f"question\n{SECRET_ROW}\n", encoding="utf-8")
    config = WebConfig(index, allowed_origins=(WIDGET_ORIGIN,), rate_limit=None, feedback=root / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as running:
        yield {"url": running.url, "server": running, "root": root, "index": index, "secret": secret}


@pytest.fixture(scope="module")
def api(site):
    with httpx.Client(base_url=site["url"], timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def guarded(site, embedder):
    """An API-only server with a key, a host list and a rate limit."""
    config = WebConfig(site["index"], ui=False, api_key=KEY, allowed_hosts=("localhost",), rate_limit=(3, 3600.0),
                       feedback=site["root"] / "feedback-guarded.jsonl")
    with ServerThread(create_app(config, embedder)) as running:
        port = urlsplit(running.url).port
        with httpx.Client(base_url=f"http://localhost:{port}", timeout=30) as client:
            yield client


# --- what no response may carry --------------------------------------------------------------------

def leak_markers(site) -> list[str]:
    return [
        str(site["root"]), str(site["root"].parent), str(ROOT), sysconfig.get_paths()["purelib"],
        "Traceback (most recent call last)", 'File "/', "site-packages",
    ]


def assert_clean(site, text: str, asked: str = "") -> None:
    """No marker in text, unless the request itself said it (a refusal may quote the path asked for)."""
    for marker in leak_markers(site):
        assert marker not in text or marker in asked, f"response leaks {marker!r}: {text[:300]!r}"


def assert_response_clean(site, r: httpx.Response) -> None:
    assert_clean(site, r.text)
    assert_clean(site, "\n".join(f"{k}: {v}" for k, v in r.headers.items()))


def assert_json_error(r: httpx.Response, *statuses: int) -> str:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and error and "\n" not in error
    return error


def assert_still_serving(api: httpx.Client) -> None:
    r = api.post("/api/ask", json={"question": LEAVE_Q})
    assert r.status_code == 200 and LEAVE_A in r.json()["answer"]


# --- raw HTTP: what a client library would not send ------------------------------------------------

def assert_well_formed_headers(lines: list[bytes]) -> None:
    """Every header line is `name: printable value`, and none was injected."""
    for line in lines:
        name, sep, value = line.partition(b": ")
        assert sep and name and all(33 <= c <= 126 and c != ord(":") for c in name), line
        assert all(32 <= c <= 126 or c == 9 for c in value), line
        assert name.lower() != b"x-injected", line
        if name.lower() == b"set-cookie":  # only the session cookie a POST is given (qa.web.sessions)
            session = rb"qa_session=[A-Za-z0-9_-]{43}; Path=/; Max-Age=\d+; HttpOnly; SameSite=Strict"
            assert re.fullmatch(session, value), line


# --- bodies ----------------------------------------------------------------------------------------

ODD = [
    "\u202e", "\u200f", "\u200b", "\u200d", "\ufeff", "\x00", "\r\n", "\u2028", "👩\u200d👩\u200d👧", "🏳️‍🌈",
    "e\u0301", "\ufffd", "\U0010ffff", "\ud800", "\udfff", "ﷺ", "<script>", "../../etc/passwd", "%00",
]
texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(st.sampled_from(ODD), st.text(max_size=6)), max_size=8).map("".join),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=10,
)


def bodies(text_field: str):
    fields = {text_field: st.one_of(texts, json_values), "k": st.one_of(st.integers(-3, 120), json_values)}
    if text_field == "question":
        fields["history"] = st.one_of(st.lists(texts, max_size=4), json_values)
    return st.one_of(st.fixed_dictionaries({}, optional=fields), json_values)


def encoded(body) -> bytes:
    return json.dumps(body, ensure_ascii=True).encode()  # lone surrogates travel as \ud800 escapes


def as_sent(body):
    """The body as the server reads it: an escaped surrogate pair ("\\ud800\\udfff") is one
    character in JSON, though two in the Python string it was made from."""
    return json.loads(encoded(body))


def check_api_response(site, r: httpx.Response) -> None:
    assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert_response_clean(site, r)
    if r.status_code != 200:
        assert_json_error(r, r.status_code)


HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPOTHESIS
@given(body=bodies("question"))
@example(body={"question": "\ud800\udfff leave"})
def test_ask_answers_any_json_body_with_200_or_a_json_4xx(site, api, body):
    r = api.post("/api/ask", content=encoded(body), headers={"Content-Type": "application/json"})
    check_api_response(site, r)
    if r.status_code == 200:
        assert r.json()["question"] == as_sent(body)["question"].strip()


@HYPOTHESIS
@given(body=bodies("query"))
@example(body={"query": "\ud800\udfff"})  # a surrogate pair: one character once parsed
def test_search_answers_any_json_body_with_200_or_a_json_4xx(site, api, body):
    r = api.post("/api/search", content=encoded(body), headers={"Content-Type": "application/json"})
    check_api_response(site, r)
    if r.status_code == 200:
        assert r.json()["query"] == as_sent(body)["query"]


@settings(max_examples=40, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_get_200_or_a_json_4xx(site, api, raw):
    for path in ("/api/ask", "/api/search", "/api/feedback"):
        check_api_response(site, api.post(path, content=raw, headers={"Content-Type": "application/json"}))


def test_server_still_answers_after_the_generated_bodies(api):
    assert_still_serving(api)


@pytest.mark.parametrize("question", [
    "\u202eHow many days of paid annual leave\u202c?",          # right-to-left override
    "How\u200b many\u200d days of paid\ufeff annual leave?",  # zero-width characters
    "How many days of paid annual leave? 👩\u200d👩\u200d👧 🏖️",
    "How many days of paid annual leave?\x00",
    "عدد أيام الإجازة السنوية المدفوعة؟ How many days of paid annual leave?",
    "\u200b\u200b\u200b",
    "e\u0301" * 1000,  # 2,000 code points that render as 1,000 letters
    "🏖" * 2000,        # at the limit, 8,000 bytes of UTF-8
])
def test_unicode_questions_are_answered_and_echoed_unchanged(site, api, question):
    r = api.post("/api/ask", json={"question": question})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["question"] == question.strip()
    assert_response_clean(site, r)
    assert api.post("/api/search", json={"query": question}).status_code == 200


@pytest.mark.parametrize("path, body, says", [
    ("/api/ask", '{"question": "leave \\ud800 days"}', "Unicode"),
    ("/api/search", '{"query": "\\udfff"}', "Unicode"),
    ("/api/ask", '{"question": "leave", "history": ["\\ud800"]}', "history"),
    ("/api/feedback", '{"rating": "up", "question": "q", "answer": "a", "citations": [{"source": "\\ud800"}]}',
     "citations"),
    ("/api/ask", '{"question": "leave", "k": true}', "k"),
    ("/api/ask", '{"question": "leave", "k": 5.0}', "k"),
    ("/api/ask", '{"question": "leave", "k": "5"}', "k"),
    ("/api/ask", '{"question": "leave", "k": 1e400}', "k"),
    ("/api/search", '{"query": "leave", "k": 101}', "k"),
    ("/api/ask", '{"question": ["leave"]}', "question"),
    ("/api/ask", '{"question": null}', "question"),
    ("/api/ask", '{"question": "' + "x" * 2001 + '"}', "limit"),
    ("/api/ask", json.dumps({"question": "leave", "history": ["x" * 2001]}), "history"),
    ("/api/feedback", '{"rating": "up", "question": "q", "answer": "a", "citations": [{"n": {"deep": [1]}}]}',
     "citations"),
    ("/api/feedback", '{"rating": "up", "question": "q", "answer": "a", "citations": "all"}', "citations"),
])
def test_wrong_types_and_invalid_text_get_422(site, api, path, body, says):
    r = api.post(path, content=body.encode(), headers={"Content-Type": "application/json"})
    assert says in assert_json_error(r, 422)
    assert_response_clean(site, r)


@pytest.mark.parametrize("raw", [
    b'{"question": "caf\xe9"}',  # Latin-1, not UTF-8
    b'{"question": "\xc3\x28 \xed\xa0\x80"}',  # invalid UTF-8, and a surrogate encoded as UTF-8 bytes
    b"[" * 100_00 + b"]" * 100_00,  # nested deeper than the parser's recursion limit
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"question": "How many days of leave?"',
    b'{"question": "\x00"}',  # a raw control character inside a JSON string
])
def test_invalid_json_gets_a_json_400(site, api, raw):
    for path in ("/api/ask", "/api/search", "/api/feedback"):
        r = api.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert_json_error(r, 400)
        assert_response_clean(site, r)
    assert_still_serving(api)


# --- sizes and framing -----------------------------------------------------------------------------

def test_bodies_over_the_limit_are_refused_before_they_are_read(site, api):
    url = site["url"]
    # Declared too big: refused at once, though the body never comes.
    limits = {"/api/ask": MAX_BODY, "/gradio_api/upload": MAX_UPLOAD, "/gradio_api/queue/join": MAX_UPLOAD}
    for path, limit in limits.items():
        status, _, body = raw_http(url, request_bytes(url, "POST", path, [
            b"Content-Type: application/json", f"Content-Length: {limit + 1}".encode()]), timeout=10)
        assert status == 413 and b"bytes" in body
    status, _, _ = raw_http(url, request_bytes(url, "POST", "/api/ask", [
        b"Content-Type: application/json", b"Content-Length: 99999999999999999999999999"]))
    assert status in (400, 413)
    # Chunked without a length: the API counts while reading and stops at the limit...
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    status, _, body = raw_http(url, request_bytes(url, "POST", "/api/ask", [
        b"Content-Type: application/json", b"Transfer-Encoding: chunked"], chunk * 4 + b"0\r\n\r\n"))
    assert status == 413 and json.loads(body)["error"].startswith("request body over")
    # ...and the chat UI's routes want the length up front.
    for path in ("/gradio_api/upload", "/gradio_api/queue/join"):
        status, _, body = raw_http(url, request_bytes(url, "POST", path, [
            b"Content-Type: application/json", b"Transfer-Encoding: chunked"], b"2\r\n{}\r\n0\r\n\r\n"))
        assert status == 411 and b"Content-Length" in body
    assert_still_serving(api)


@pytest.mark.parametrize("headers", [
    [b"Content-Length: -5"],
    [b"Content-Length: abc"],
    [b"Content-Length: 5", b"Content-Length: 39"],
    [b"X-Note: one\rtwo"],            # a bare CR inside a value
    [b"X-Note: one\x00two"],          # NUL inside a value
    [b"X Note: one"],                 # a space inside a name
    [b"X-Note: " + b"a" * 200_000],   # one header bigger than the parser takes
])
def test_malformed_requests_get_400_and_the_server_carries_on(site, api, headers):
    body = b'{"question": "How many days of leave?"}'
    framing = [] if any(h.startswith(b"Content-Length") for h in headers) else [b"Content-Length: %d" % len(body)]
    status, lines, out = raw_http(site["url"], request_bytes(site["url"], "POST", "/api/ask", [
        b"Content-Type: application/json", *framing, *headers], body))
    assert status == 400
    assert_well_formed_headers(lines)
    assert_clean(site, out.decode("latin-1"))
    assert_still_serving(api)


def test_a_body_shorter_than_its_content_length_is_not_answered(site, api):
    body = b'{"question": "How many days of leave?"}'
    status, _, out = raw_http(site["url"], request_bytes(site["url"], "POST", "/api/ask", [
        b"Content-Type: application/json", b"Content-Length: 20"], body))
    assert status == 400 and json.loads(out) == {"error": "the request body is not valid JSON"}


# --- header injection ------------------------------------------------------------------------------

def test_crlf_in_request_headers_never_reaches_a_response_header(site, api):
    url = site["url"]
    # A header line split by CR/LF is just two request headers: nothing of it is echoed back.
    status, lines, _ = raw_http(url, request_bytes(url, "POST", "/api/ask", [
        b"Origin: " + WIDGET_ORIGIN.encode() + b"\r\nX-Injected: 1", b"Content-Type: application/json",
        b"Content-Length: 2"], b"{}"))
    assert status == 422
    assert_well_formed_headers(lines)
    allow = [line for line in lines if line.lower().startswith(b"access-control-allow-origin")]
    assert allow == [b"access-control-allow-origin: " + WIDGET_ORIGIN.encode()]
    # Values that would break a header are refused by the HTTP parser.
    for origin in (WIDGET_ORIGIN.encode() + b"\rX-Injected: 1", WIDGET_ORIGIN.encode() + b"\x00"):
        status, lines, _ = raw_http(url, request_bytes(url, "GET", "/api/health", [b"Origin: " + origin]))
        assert status == 400
        assert_well_formed_headers(lines)
    # Request text that could be echoed (question, source name, query string) stays in bodies.
    for target in ("/source?source=leave.md%0D%0AX-Injected:%201", "/api/nothing%0D%0AX-Injected:%201",
                   "/embed?title=a%0D%0AX-Injected:%201", "/source/?source=a%0D%0AX-Injected:%201"):
        status, lines, _ = raw_http(url, request_bytes(url, "GET", target))
        assert status in (200, 307, 404), target
        assert_well_formed_headers(lines)
    r = api.post("/api/ask", json={"question": "leave\r\nX-Injected: 1\r\n\r\n<script>"})
    assert r.status_code == 200 and "x-injected" not in r.headers


def test_an_answered_file_downloads_under_a_safe_name_whatever_the_upload_was_called(site, api):
    name = 'leave"\r\nX-Injected: 1;\u202egpj.csv'
    r = api.post("/gradio_api/upload", files={"files": (name, b"question\nHow many days of paid annual leave?\n")})
    assert r.status_code == 200
    (uploaded,) = r.json()
    assert Path(uploaded).resolve().is_relative_to(Path(get_upload_folder()).resolve())
    done = batch_call(api, uploaded)
    assert done["success"], done
    url = done["output"]["data"][0]["url"]
    status, lines, body = raw_http(site["url"], request_bytes(site["url"], "GET", urlsplit(url).path))
    assert status == 200 and LEAVE_A.encode() in body
    assert_well_formed_headers(lines)
    (disposition,) = [line for line in lines if line.lower().startswith(b"content-disposition")]
    assert disposition.startswith(b"content-disposition: attachment;")


# --- path traversal --------------------------------------------------------------------------------

TRAVERSALS = [
    "../../../../../../etc/passwd", "..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "..%252f..%252f..%252fetc%252fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd", "%2Fetc%2Fpasswd", "//etc/passwd",
    "..\\..\\..\\..\\etc\\passwd", "..%5c..%5c..%5cetc%5cpasswd", "/etc/passwd%00.csv", "leave.md%00",
    "....//....//....//etc/passwd", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "file:///etc/passwd",
]


def outside_files(site) -> list[str]:
    """Files on this disk that no route may serve: system, index internals, corpus files as files."""
    index = site["index"] / "current"
    return ["/etc/passwd", str(site["secret"]), str(index / "manifest.json"), str(site["root"] / "corpus" / "leave.md"),
            str(Path(sys.prefix) / "pyvenv.cfg")]


def assert_not_served(site, target: str, status: int, body: bytes) -> None:
    assert status in (400, 403, 404, 405, 422), (target, status, body[:200])
    text = body.decode("utf-8", "replace")
    assert "root:x:0:0" not in text and "SECRET-ROW" not in text and '"chunking"' not in text, target
    assert_clean(site, text, asked=unquote(unquote(target)))


@pytest.mark.parametrize("prefix", [
    "/source?source=", "/source?start=0&end=10&source=", "/gradio_api/file=", "/file=", "/static/", "/assets/",
    "/svelte/", "/qa-static/docs/", "/widget.js/", "/gradio_api/custom_component/x/client/", "/favicon.ico/",
    "/gradio_api/proxy=", "/gradio_api/stream/x/y/1/",
])
def test_no_route_serves_a_file_outside_the_corpus(site, api, prefix):
    url = site["url"]
    targets = TRAVERSALS + [p.replace("/", "%2F") for p in outside_files(site)] + outside_files(site)
    for target in targets:
        status, lines, body = raw_http(url, request_bytes(url, "GET", prefix + target))
        assert_not_served(site, prefix + target, status, body)
        assert_well_formed_headers(lines)
    assert_still_serving(api)


def test_source_serves_indexed_documents_only(api):
    assert api.get("/source", params={"source": "leave.md"}).status_code == 200
    for name in ("./leave.md", "leave.md/", "LEAVE.md", "corpus/leave.md", "leave.md\x00", " leave.md", "leave.md#1"):
        assert api.get("/source", params={"source": name}).status_code == 404, name
    r = api.get("/source", params={"source": "leave.md", "start": 10**30, "end": -1, "hl": "5-1,x-y," * 100})
    assert r.status_code == 422
    r = api.get("/source", params={"source": "leave.md", "start": 10**30, "end": 10**31, "hl": "5-1,x-y," * 50})
    assert r.status_code == 200 and 'id="hit"' not in r.text


def test_batch_tab_reads_only_files_uploaded_to_it(site, api):
    secret = site["secret"]
    uploads = Path(get_upload_folder())
    for path in (str(secret), f"{uploads}/../../../../../..{secret}", str(secret.relative_to(secret.anchor)),
                 f"{secret}\x00.csv", str(secret).replace("/", "\\")):
        done = batch_call(api, path)
        assert not done.get("success") and "data" not in done.get("output", {}), (path, done)
        assert_clean(site, json.dumps(done))
        assert "SECRET" not in json.dumps(done)
    assert_still_serving(api)


def test_remote_urls_are_not_fetched_through_the_file_route(site, api):
    for target in ("/gradio_api/file=http://example.com/", "/gradio_api/file=https://example.com/x.csv",
                   "/gradio_api/file=HTTP://127.0.0.1/", "/gradio_api/dev/reload"):
        r = api.get(target, timeout=10)
        assert r.status_code in (403, 404), target
        assert_response_clean(site, r)


# --- Gradio's own routes ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, target", [
    ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/gradio_api/openapi.json"), ("GET", "/manifest.json"),
    ("GET", "/theme.css"), ("GET", "/gradio_api/runs"), ("GET", "/monitoring"), ("GET", "/gradio_api/vibe-code"),
    ("GET", "/gradio_api/deep_link"), ("GET", "/gradio_api/queue/data?session_hash=%2e%2e%2f"),
    ("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/run/respond"),
    ("GET", "/gradio_api/call/respond/nothing"), ("GET", "/gradio_api/user"), ("GET", "/openapi.json"),
    ("GET", "/docs"), ("GET", "/nothing/here"), ("POST", "/"), ("DELETE", "/source"),
])
def test_gradio_and_page_routes_show_no_paths_or_tracebacks(site, api, method, target):
    url = site["url"]
    bodies = [b"", b"{}", b'{"data": "x", "fn_index": 999, "session_hash": "a"}', b"\xff" * 50]
    for body in bodies if method in ("POST", "DELETE") else [b""]:
        status, lines, out = raw_http(url, request_bytes(url, method, target, [
            b"Content-Type: application/json", b"Content-Length: %d" % len(body)], body), timeout=10)
        assert_well_formed_headers(lines)
        assert_clean(site, out.decode("utf-8", "replace") + b"\n".join(lines).decode("latin-1"))
    assert_still_serving(api)


# --- origins, hosts, key ---------------------------------------------------------------------------

@pytest.mark.parametrize("method, target", [
    ("POST", "/api/ask"), ("POST", "/api/search"), ("POST", "/api/feedback"), ("GET", "/api/nothing"),
    ("GET", "/source?source=leave.md"), ("GET", "/embed"), ("GET", "/"), ("GET", "/config"), ("GET", "/docs"),
    ("POST", "/gradio_api/upload"), ("POST", "/gradio_api/queue/join"), ("GET", "/gradio_api/queue/data"),
    ("OPTIONS", "/gradio_api/queue/join"),
])
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:8123.evil.example",
                                    "http://127.0.0.1@evil.example", WIDGET_ORIGIN + "/../x"])
def test_foreign_origins_are_refused_on_every_route(site, api, method, target, origin):
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST", "Content-Type": "application/json"}
    r = api.request(method, target, headers=headers, content=b"{}")
    assert "origin" in assert_json_error(r, 403)
    assert "access-control-allow-origin" not in r.headers


def test_api_key_guards_every_api_call_but_health(guarded):
    body = {"question": LEAVE_Q}
    wrong = [{}, {"X-API-Key": ""}, {"X-API-Key": KEY.lower()}, {"X-API-Key": KEY[:-1]},
             {"X-API-Key": KEY + "x"}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY}"},
             {"Authorization": f"Bearer{KEY}"}, {"Authorization": "Bearer " + "x" * 5000},
             {"X-API-Key": "wrong", "Authorization": f"Bearer {KEY}"}, {"X-API-Key": "clé".encode()}]
    for headers in wrong:
        for path, payload in (("/api/ask", body), ("/api/search", {"query": "leave"}),
                              ("/api/feedback", {"rating": "up", "question": "q", "answer": "a"})):
            r = guarded.post(path, json=payload, headers=headers)
            error = assert_json_error(r, 401)
            assert KEY not in r.text and KEY not in error and r.headers["www-authenticate"] == "Bearer"
    assert guarded.get("/api/health").status_code == 200
    # Three requests per hour pass the rate limit; refusals above did not use them up.
    assert guarded.post("/api/ask", json=body, headers={"X-API-Key": KEY}).status_code == 200
    assert guarded.post("/api/ask", json=body, headers={"Authorization": f"bearer {KEY}"}).status_code == 200


def test_the_key_guards_pages_too(guarded):
    # /source and /embed are browser pages: with a key set they need it (or a sign-in) as the API does.
    for target in ("/source?source=leave.md", "/embed"):
        assert_json_error(guarded.get(target), 401)
        assert guarded.get(target, headers={"X-API-Key": KEY}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "localhost.evil.example", "127.0.0.1", "",
                                  "localhost@evil.example"])
def test_requests_for_other_host_names_are_refused(guarded, host):
    port = guarded.base_url.port
    for target in ("/api/health", "/source?source=leave.md", "/embed"):
        r = guarded.get(target, headers={"Host": f"{host}:{port}" if host and ":" not in host else host,
                                         "Origin": f"http://{host}:{port}"})
        assert "QA_ALLOWED_HOSTS" in assert_json_error(r, 400)
    assert guarded.get("/api/health").status_code == 200  # Host: localhost


def test_allowed_hosts_are_parsed_strictly():
    assert parse_hosts("") == ()
    assert parse_hosts(" QA.Intranet.example , localhost, [::1], 127.0.0.1") == (
        "qa.intranet.example", "localhost", "::1", "127.0.0.1")
    for bad in ("localhost:7860", "http://qa.example", "*", "qa example", "qa.example/path"):
        with pytest.raises(QAError):
            parse_hosts(bad)


# --- errors of the server itself -------------------------------------------------------------------

def test_an_index_error_is_logged_not_shown(site, api, monkeypatch):
    def broken(*args, **kwargs):
        raise IndexNotFound(site["index"])

    for method in ("search", "info", "document"):
        monkeypatch.setattr(site["server"].app.state.qa, method, broken)
    for r in (api.post("/api/search", json={"query": "leave"}), api.get("/api/health"),
              api.get("/source", params={"source": "leave.md"})):
        assert "server log" in assert_json_error(r, 500)
        assert_response_clean(site, r)
