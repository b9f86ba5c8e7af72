"""Saved conversations in a real headless Chromium against the real server: the chat UI reopens
its conversation after a reload and lists, switches, exports and deletes them; the widget on an
intranet page (another origin) keeps its conversation across a reload."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from conftest import wait_until
from playwright.sync_api import expect
from test_browser import ANSWER_WAIT, ask_ui, ask_widget, last_answer, widget_page
from web_helpers import (
    FOLLOW_UP_Q,
    HARBOUR_Q,
    LEAVE_A,
    LEAVE_Q,
    PAYLOAD_Q,
    SIGNED_A,
    HostPages,
    ServerThread,
    build_test_index,
    free_port,
)

from qa.web import WebConfig, create_app

expect.set_options(timeout=15_000)

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    index = build_test_index(tmp_path_factory.mktemp("saved"), embedder)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with HostPages({"/widget.html": widget_page(url)}) as host:
        config = WebConfig(index, allowed_origins=(host.origin,), rate_limit=None)
        with ServerThread(create_app(config, embedder), port=port):
            yield {"url": url, "host": host.origin}




def saved(page, site) -> list[dict]:
    """The page's conversations as the API lists them to its session (the browser's own cookie)."""
    return page.request.get(site["url"] + "/api/conversations").json()["conversations"]


def choose(page, title: str) -> None:
    page.locator("#qa-conversations input").click()
    page.get_by_role("option", name=title).click()


def test_chat_ui_conversation_survives_a_reload_and_goes_on(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, HARBOUR_Q)
    expect(last_answer(page)).to_contain_text("30% discount", timeout=ANSWER_WAIT)
    ask_ui(page, FOLLOW_UP_Q)
    expect(last_answer(page)).to_contain_text(SIGNED_A, timeout=ANSWER_WAIT)

    page.reload()
    chat = page.locator("#qa-chat")
    expect(chat).to_contain_text(HARBOUR_Q, timeout=ANSWER_WAIT)  # the page's load events, on a loaded machine
    expect(chat).to_contain_text(FOLLOW_UP_Q)
    expect(last_answer(page)).to_contain_text(SIGNED_A)
    listed = f"{HARBOUR_Q} · 2 questions · {saved_time(page, site)}"
    expect(page.locator("#qa-conversations input")).to_have_value(listed)
    # The reopened conversation goes on, read with its history, in the same saved conversation.
    ask_ui(page, "Where was it signed?")
    expect(page.locator("#qa-chat [data-testid='bot']:has(.qa-confidence)")).to_have_count(3, timeout=ANSWER_WAIT)
    expect(last_answer(page)).to_contain_text("Oslo")
    [conversation] = saved(page, site)
    assert conversation["title"] == HARBOUR_Q and conversation["turns"] == 3


def saved_time(page, site) -> str:
    """The time the selector shows for the page's latest conversation, as the UI writes it."""
    updated = datetime.strptime(saved(page, site)[0]["updated"], "%Y-%m-%dT%H:%M:%SZ")
    return updated.strftime("%d %b %H:%M")


def test_chat_ui_switches_exports_and_deletes_conversations(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, HARBOUR_Q)
    expect(last_answer(page)).to_contain_text("30% discount", timeout=ANSWER_WAIT)
    page.locator("#qa-new").click()
    expect(page.locator("#qa-chat [data-testid='bot']")).to_have_count(0)
    ask_ui(page, LEAVE_Q)
    expect(last_answer(page)).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    assert [c["title"] for c in saved(page, site)] == [LEAVE_Q, HARBOUR_Q]

    choose(page, HARBOUR_Q)
    expect(last_answer(page)).to_contain_text("30% discount")
    expect(page.locator("#qa-chat")).not_to_contain_text(LEAVE_A)

    page.locator("#qa-export").click()
    link = page.locator("#qa-export-file a").first
    expect(link).to_have_attribute("download", "what-discount-does-the-harbour-agreement-give.md")
    exported = page.request.get(link.get_attribute("href")).text()
    assert exported.startswith(f"# {HARBOUR_Q}") and "[1] travel.md" in exported

    page.locator("#qa-delete").click()
    expect(page.locator("#qa-chat [data-testid='bot']")).to_have_count(0)
    assert [c["title"] for c in wait_for(lambda: saved(page, site), lambda s: len(s) == 1)] == [LEAVE_Q]
    page.reload()  # the latest one left is reopened
    expect(last_answer(page)).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)


def wait_for(read, done, timeout: float = 15):
    """read()'s value once done(value) holds."""
    return wait_until(lambda: (lambda value: value if done(value) else None)(read()), timeout, "the change")


def test_chat_ui_shows_a_markup_title_as_text(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, PAYLOAD_Q)
    expect(last_answer(page)).to_contain_text("4471", timeout=ANSWER_WAIT)
    page.reload()
    expect(page.locator("#qa-conversations input")).to_have_value(re.compile(re.escape(PAYLOAD_Q[:70])),
                                                                    timeout=ANSWER_WAIT)
    page.locator("#qa-conversations input").click()
    expect(page.get_by_role("option").first).to_contain_text("<img src=x")
    assert page.evaluate("window.__pwned") is None and page.dialogs == []


def test_widget_keeps_its_conversation_across_a_reload(page, site):
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/api/ask") else None)
    page.goto(site["host"] + "/widget.html")
    widget = page.locator("qa-widget")
    widget.locator(".launcher").click()
    ask_widget(widget, HARBOUR_Q)
    expect(widget.locator(".answer")).to_contain_text("30% discount", timeout=ANSWER_WAIT)

    page.reload()
    widget.locator(".launcher").click()
    expect(widget.locator(".msg.user")).to_have_text([HARBOUR_Q], timeout=ANSWER_WAIT)
    expect(widget.locator(".answer")).to_contain_text("30% discount")
    expect(widget.locator(".answer summary").first).to_contain_text("[1] travel.md")
    ask_widget(widget, FOLLOW_UP_Q)  # read with the saved conversation, which the page no longer sends
    expect(widget.locator(".answer .text").last).to_contain_text(SIGNED_A, timeout=ANSWER_WAIT)
    conversation_id = sent[1]["conversation_id"]
    assert sent[:2] == [{"question": HARBOUR_Q, "history": []},
                        {"question": FOLLOW_UP_Q, "conversation_id": conversation_id}]

    # Deleted elsewhere meanwhile: the next question goes on in a new conversation, read with the page's history.
    assert page.request.delete(f"{site['url']}/api/conversations/{conversation_id}").ok
    ask_widget(widget, "Where was it signed?")
    expect(widget.locator(".answer")).to_have_count(3, timeout=ANSWER_WAIT)
    expect(widget.locator(".answer .text").last).to_contain_text("Oslo")
    assert sent[2] == {"question": "Where was it signed?", "conversation_id": conversation_id}
    assert sent[3]["question"] == "Where was it signed?" and len(sent[3]["history"]) == 2
    [again] = page.request.get(site["url"] + "/api/conversations").json()["conversations"]
    assert again["id"] != conversation_id and again["turns"] == 1

    widget.locator(".reset").click()  # a new conversation: nothing comes back after a reload
    page.reload()
    widget.locator(".launcher").click()
    expect(widget.locator(".greeting")).to_be_visible()
    ask_widget(widget, LEAVE_Q)
    expect(widget.locator(".answer")).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    expect(widget.locator(".msg.user")).to_have_count(1)
    assert sent[-1] == {"question": LEAVE_Q, "history": []}
