"""Signing in, asking and signing out in a real headless Chromium, against the real server with
keys set."""

from __future__ import annotations

import pytest
from conftest import ARGS, CHROMIUM
from playwright.sync_api import expect, sync_playwright
from test_browser import ANSWER_WAIT, ask_ui, last_answer
from web_helpers import LEAVE_A, LEAVE_Q, HostPages, ServerThread, build_test_index

from qa.web import WebConfig, create_app

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]

KEY = "browser-reader-key-0123456789"


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    index = build_test_index(tmp_path_factory.mktemp("signin"), embedder)
    config = WebConfig(index, api_key=KEY, rate_limit=None, feedback=index.parent / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as running:
        yield running.url


@pytest.fixture
def page():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        yield context.new_page()
        browser.close()


def test_sign_in_ask_and_sign_out(page, site):
    outside = []
    page.on("request", lambda r: None if r.url.startswith((site, "http://localhost")) else outside.append(r.url))
    page.goto(site + "/")
    expect(page).to_have_url(site + "/signin?next=%2F")
    expect(page.locator("h1")).to_have_text("Ask the documents")
    # Unsigned, nothing comes from the chat UI's routes (asked with the browser's cookies; the sign-in
    # page's own policy lets its scripts fetch nothing at all).
    assert page.request.get(site + "/config").status == 401
    assert page.request.post(site + "/gradio_api/queue/join", data={}, headers={"Origin": site}).status == 401
    assert page.request.get(site + "/source?source=leave.md").status == 401

    page.locator("#key").fill('<img src=x onerror="window.__pwned=1">')
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That key is not valid.")
    page.locator("#key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(site + "/")
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "qa_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] != KEY and page.evaluate("document.cookie") == ""

    ask_ui(page, LEAVE_Q)
    expect(last_answer(page)).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    page.goto(site + "/embed")  # the widget on the server's own page asks with the sign-in
    page.locator("qa-widget textarea").fill(LEAVE_Q)
    page.locator("qa-widget textarea").press("Enter")
    expect(page.locator("qa-widget .answer")).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)

    # A link from another site (localhost is another site than 127.0.0.1) opens the chat signed in:
    # the cookie SameSite=Strict kept off the link's request comes with the reload the server asks for.
    with HostPages({"/links.html": f'<!doctype html><a id="go" href="{site}/">Ask</a>'}) as other:
        page.goto(other.origin.replace("127.0.0.1", "localhost") + "/links.html")
        page.locator("#go").click()
        expect(page.locator("#qa-question textarea")).to_be_visible()
        assert page.url == site + "/"

    page.get_by_role("link", name="Sign out").click()
    expect(page).to_have_url(site + "/signin")
    assert page.context.cookies() == []
    page.goto(site + "/source?source=leave.md")
    expect(page).to_have_url(site + "/signin?next=%2Fsource%3Fsource%3Dleave.md")
    assert page.evaluate("window.__pwned") is None and outside == []


def test_a_reader_sees_why_the_documents_tab_is_closed_and_no_controls(page, site):
    page.goto(site + "/")
    page.locator("#key").fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("tab", name="Documents").click()
    expect(page.locator("#qa-doc-status")).to_contain_text("needs the admin role")
    expect(page.locator("#qa-doc-upload")).to_be_hidden()
    expect(page.locator("#qa-doc-delete")).to_be_hidden()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, embedder):
    """Single sign-on alone (no key): this machine is the proxy naming the user."""
    index = build_test_index(tmp_path_factory.mktemp("sso"), embedder)
    config = WebConfig(index, rate_limit=None, trusted_user_header="X-Forwarded-User", trusted_proxies=("127.0.0.1",),
                       admin_users=("boss",))
    with ServerThread(create_app(config, embedder)) as running:
        yield running.url


def test_behind_single_sign_on_the_proxys_user_asks_and_is_not_offered_a_sign_out(browser, proxied):
    context = browser.new_context(viewport={"width": 1200, "height": 900},
                                  extra_http_headers={"X-Forwarded-User": "dana"})
    page = context.new_page()
    try:
        page.goto(proxied + "/")
        ask_ui(page, LEAVE_Q)
        expect(last_answer(page)).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("#qa-doc-status")).to_contain_text("QA_ADMIN_USERS")  # a reader: not "an admin key"
        expect(page.locator("#qa-signout")).to_have_count(0)  # the proxy signs users out, not this server
    finally:
        context.close()
    unsigned = browser.new_page()  # not through the proxy
    unsigned.goto(proxied + "/")
    expect(unsigned.locator("body")).to_contain_text("open it through that proxy")
    unsigned.close()
