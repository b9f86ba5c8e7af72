"""The chat UI, the widget and /embed in a real headless Chromium (Debian's), against the real
server on 127.0.0.1, with "intranet" host pages served from other ports (other origins)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import wait_until
from playwright.sync_api import expect
from web_helpers import (
    CORPUS,
    FOLLOW_UP_Q,
    HARBOUR_Q,
    LEAVE_A,
    LEAVE_Q,
    OFF_TOPIC_Q,
    PAYLOAD_Q,
    SIGNED_A,
    ZEBRA_Q,
    HostPages,
    ServerThread,
    assert_on_first_screen,
    build_test_index,
    free_port,
    phone_context,
    run_batch_tab,
)

from qa.web import WebConfig, create_app

expect.set_options(timeout=15_000)  # the UI's first events can be slow on a loaded machine

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]

ANSWER_WAIT = 30_000  # ms: a loaded CI machine can be slow to answer

HOSTILE_CSS = """<style>
* { color: red !important; font-size: 30px !important; font-family: serif !important; }
button { background: green !important; }
qa-widget, div { display: none !important; }
</style>"""


def widget_page(server_url: str) -> str:
    return f"""<!doctype html><html><head><title>Intranet</title>{HOSTILE_CSS}</head><body>
<h1>Company intranet</h1><p id="host-text">Welcome.</p><button id="host-button">Host button</button>
<script src="{server_url}/widget.js" data-title="Ask the handbook" data-accent="#0f766e"
  data-greeting="Ask about leave, travel or equipment." defer></script>
</body></html>"""


def frame_page(server_url: str) -> str:
    return f"""<!doctype html><html><body><h1>Framed</h1>
<iframe id="f" src="{server_url}/embed?title=Framed%20help" style="width:420px;height:520px"></iframe>
</body></html>"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    """The server, one host page origin it allows and one it does not."""
    index = build_test_index(tmp_path_factory.mktemp("browser"), embedder)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pages = {"/widget.html": widget_page(url), "/frame.html": frame_page(url)}
    with HostPages(pages) as allowed, HostPages(pages) as other:
        config = WebConfig(index, allowed_origins=(allowed.origin,), rate_limit=None,
                           feedback=index.parent / "feedback.jsonl")
        with ServerThread(create_app(config, embedder), port=port):
            yield {"url": url, "allowed": allowed.origin, "other": other.origin, "feedback": config.feedback}




def ask_ui(page, question: str) -> None:
    """Ask in the chat UI and wait for the answer to arrive, so what is checked next is never the
    answer before it (which may hold the same words)."""
    answers = page.locator("#qa-chat [data-testid='bot']:has(.qa-confidence)")
    before = answers.count()
    page.locator("#qa-question textarea").fill(question)
    page.locator("#qa-ask").click()
    expect(answers).to_have_count(before + 1, timeout=ANSWER_WAIT)


def last_answer(page):
    """The latest answer message (its citations are messages of their own)."""
    return page.locator("#qa-chat [data-testid='bot']:has(.qa-confidence)").last


def ask_widget(root, question: str) -> None:
    """Ask in the widget and wait for its reply (an answer, a decline or an error)."""
    replies = root.locator(".msg.answer, .msg.abstain, .msg.error")
    before = replies.count()
    root.locator("textarea").fill(question)
    root.locator("textarea").press("Enter")
    expect(replies).to_have_count(before + 1, timeout=ANSWER_WAIT)


def nothing_ran(page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []


def test_chat_ui_shows_the_answer_and_opens_the_cited_passage(page, site):
    outside = []
    local = ("http://127.0.0.1", "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    page.goto(site["url"] + "/")
    n = len(CORPUS)
    expect(page.locator("#qa-info")).to_contain_text(f"{n} documents from {n} files, {n} chunks")
    ask_ui(page, LEAVE_Q)
    expect(page.locator("#qa-chat")).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    expect(page.locator("#qa-chat")).to_contain_text("confidence")
    citation = page.get_by_text("[1] leave.md · Annual leave")
    expect(citation).to_be_visible()
    citation.click()
    expect(page.locator("#qa-chat mark").first).to_have_text(LEAVE_A)

    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open the full source").first.click()
    source = opened.value
    source.wait_for_load_state()
    assert source.url.endswith("#hit")
    expect(source.locator("#hit mark")).to_have_text(LEAVE_A)
    expect(source.locator("h1")).to_have_text("Annual leave")
    assert outside == []  # everything, fonts included, comes from our server


def test_chat_ui_follow_up_and_abstention(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, HARBOUR_Q)
    expect(last_answer(page)).to_contain_text("30% discount", timeout=ANSWER_WAIT)
    ask_ui(page, "When was it signed?")
    expect(last_answer(page)).to_contain_text(SIGNED_A, timeout=ANSWER_WAIT)
    ask_ui(page, OFF_TOPIC_Q)
    abstained = page.locator("#qa-chat .qa-abstain")
    expect(abstained).to_contain_text("Not found in the documents", timeout=ANSWER_WAIT)
    expect(abstained).to_contain_text("confidence")
    # A new conversation forgets the old one: the same follow-up now leans on the new subject.
    page.locator("#qa-new").click()
    expect(page.locator("#qa-chat [data-testid='bot']")).to_have_count(0)
    ask_ui(page, "What does the Airport Agreement give staff?")
    expect(last_answer(page)).to_contain_text("free parking", timeout=ANSWER_WAIT)
    ask_ui(page, "When was it signed?")
    expect(last_answer(page)).to_contain_text("9 June 2019", timeout=ANSWER_WAIT)
    expect(last_answer(page)).not_to_contain_text(SIGNED_A)


def _feedback(site) -> list[dict]:
    """The feedback records stored so far."""
    if not site["feedback"].exists():
        return []
    return [json.loads(line) for line in site["feedback"].read_text().splitlines()]


def test_chat_ui_thumbs_are_stored_with_the_answer(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, LEAVE_Q)
    expect(page.locator("#qa-chat")).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    page.locator("#qa-chat button[aria-label='Dislike']").last.click()
    records = wait_until(lambda: [r for r in _feedback(site) if r["via"] == "ui" and r["rating"] == "down"], 15,
                         "the feedback stored")
    assert records[-1]["question"] == LEAVE_Q and LEAVE_A in records[-1]["answer"]
    assert records[-1]["citations"][0]["source"] == "leave.md"


def test_the_question_box_opens_focused_once_the_latest_conversation_is_reopened(page, site):
    page.goto(site["url"] + "/")
    box = page.locator("#qa-question textarea")
    expect(box).to_be_enabled(timeout=ANSWER_WAIT)  # disabled until then, so a slow start replaces no question
    expect(page.locator("#qa-ask")).to_be_enabled()
    expect(box).to_be_focused()


def test_chat_ui_sends_the_earlier_questions_with_their_answers(page, site):
    # The history the UI asked with is stored with a vote, so a vote shows what was sent.
    page.goto(site["url"] + "/")
    ask_ui(page, OFF_TOPIC_Q)
    expect(page.locator("#qa-chat .qa-abstain")).to_contain_text("Not found", timeout=ANSWER_WAIT)
    ask_ui(page, HARBOUR_Q)
    expect(last_answer(page)).to_contain_text("30% discount", timeout=ANSWER_WAIT)
    ask_ui(page, FOLLOW_UP_Q)
    expect(last_answer(page)).to_contain_text(SIGNED_A, timeout=ANSWER_WAIT)
    page.locator("#qa-chat button[aria-label='Like']").last.click()
    records = wait_until(lambda: [r for r in _feedback(site) if r["via"] == "ui" and r["question"] == FOLLOW_UP_Q], 15,
                         "the feedback stored")
    declined, harbour = records[-1]["history"]
    assert declined == {"question": OFF_TOPIC_Q, "answer": ""}  # a declined answer is sent as ""
    assert harbour["question"] == HARBOUR_Q and "30% discount" in harbour["answer"] and "[1]" in harbour["answer"]


def test_widget_on_an_allowed_origin_answers_with_its_sources(page, site):
    page.goto(site["allowed"] + "/widget.html")
    widget = page.locator("qa-widget")
    expect(widget).to_be_visible()  # the host page's `qa-widget { display: none !important }` loses
    widget.locator(".launcher").click()
    expect(widget.locator("header .title")).to_have_text("Ask the handbook")
    expect(widget.locator(".greeting")).to_have_text("Ask about leave, travel or equipment.")
    ask_widget(widget, LEAVE_Q)
    answer = widget.locator(".answer")
    expect(answer).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    expect(answer.locator("summary").first).to_have_text("[1] leave.md · Annual leave")
    expect(answer.locator(".passage mark").first).to_have_text(LEAVE_A)
    link = answer.locator("a.open").first.get_attribute("href")
    assert link.startswith(site["url"] + "/source?source=leave.md")

    # Styles cross the shadow boundary in neither direction.
    style = lambda locator, prop: locator.evaluate(f"e => getComputedStyle(e).{prop}")  # noqa: E731
    assert style(widget.locator(".launcher"), "backgroundColor") == "rgb(15, 118, 110)"
    assert style(answer.locator(".text"), "fontSize") == "14px"
    assert style(answer.locator(".text"), "color") != "rgb(255, 0, 0)"
    assert style(page.locator("#host-button"), "backgroundColor") == "rgb(0, 128, 0)"
    assert style(page.locator("#host-text"), "fontSize") == "30px"

    answer.locator(".vote-up").click()
    expect(answer.locator(".votes")).to_have_text("Thanks for the feedback.")


def test_widget_continues_its_saved_conversation_and_a_new_chat_starts_another(page, site):
    sent = []
    page.on("request", lambda r: sent.append(r.post_data_json)
            if r.method == "POST" and r.url.endswith("/api/ask") else None)
    page.goto(site["allowed"] + "/widget.html")
    widget = page.locator("qa-widget")
    widget.locator(".launcher").click()
    ask_widget(widget, OFF_TOPIC_Q)
    expect(widget.locator(".abstain")).to_contain_text("Not found", timeout=ANSWER_WAIT)
    ask_widget(widget, HARBOUR_Q)
    expect(widget.locator(".answer")).to_contain_text("30% discount", timeout=ANSWER_WAIT)
    harbour = widget.locator(".answer .text").last.text_content()
    ask_widget(widget, FOLLOW_UP_Q)
    expect(widget.locator(".answer .text").last).to_contain_text(SIGNED_A, timeout=ANSWER_WAIT)
    widget.locator(".reset").click()  # a new chat starts with no history
    ask_widget(widget, LEAVE_Q)
    expect(widget.locator(".answer")).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)

    # The first question starts a saved conversation; the next ones name it instead of sending the history.
    conversation_id = sent[1]["conversation_id"]
    assert sent == [{"question": OFF_TOPIC_Q, "history": []},
                    {"question": HARBOUR_Q, "conversation_id": conversation_id},
                    {"question": FOLLOW_UP_Q, "conversation_id": conversation_id},
                    {"question": LEAVE_Q, "history": []}]
    turns = page.request.get(f"{site['url']}/api/conversations/{conversation_id}").json()["turns"]
    assert [(t["question"], t["abstained"]) for t in turns] == [
        (OFF_TOPIC_Q, True), (HARBOUR_Q, False), (FOLLOW_UP_Q, False)]
    assert turns[1]["answer"] == harbour and "30% discount" in harbour and "[1]" in harbour


def test_widget_on_another_origin_is_refused(page, site):
    page.goto(site["other"] + "/widget.html")
    widget = page.locator("qa-widget")
    widget.locator(".launcher").click()
    ask_widget(widget, LEAVE_Q)
    expect(widget.locator(".error")).to_contain_text("not allowed", timeout=ANSWER_WAIT)
    assert widget.locator(".answer").count() == 0


def test_embed_frame_loads_only_on_allowed_origins(page, site):
    page.goto(site["allowed"] + "/frame.html")
    frame = page.frame_locator("#f")
    expect(frame.locator("qa-widget header .title")).to_have_text("Framed help")
    ask_widget(frame.locator("qa-widget"), LEAVE_Q)
    expect(frame.locator("qa-widget .answer")).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)

    with page.expect_console_message(lambda m: "frame-ancestors" in m.text):  # the browser refused the frame
        page.goto(site["other"] + "/frame.html")
    page.wait_for_load_state("load")
    assert page.frame_locator("#f").locator("qa-widget").count() == 0


def test_markup_in_documents_and_questions_renders_as_text_in_the_chat_ui(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, PAYLOAD_Q)
    chat = page.locator("#qa-chat")
    expect(last_answer(page)).to_contain_text("<script>window.__pwned=2</script>", timeout=ANSWER_WAIT)
    expect(chat).to_contain_text('<img src=x onerror="window.__pwned=9">')  # the question, as typed
    page.get_by_text("[1] payload.txt").click()
    expect(chat).to_contain_text("[click](javascript:window.__pwned=4)")
    expect(chat.locator("mark").first).to_contain_text('<img src=x onerror="window.__pwned=3">')
    assert chat.locator("img[src='x'], script, a[href^='javascript']").count() == 0
    page.goto(site["url"] + "/source?source=payload.txt")
    expect(page.locator("main")).to_contain_text("<script>window.__pwned=2</script>")
    nothing_ran(page)


def test_markup_in_documents_and_questions_renders_as_text_in_the_widget(page, site):
    page.goto(site["allowed"] + "/widget.html")
    widget = page.locator("qa-widget")
    widget.locator(".launcher").click()
    ask_widget(widget, PAYLOAD_Q)
    answer = widget.locator(".answer")
    expect(answer).to_contain_text("<script>window.__pwned=2</script>", timeout=ANSWER_WAIT)
    expect(widget.locator(".user")).to_have_text(PAYLOAD_Q)
    expect(answer.locator("summary")).to_contain_text('payload.txt · # Zebra <img src=x onerror="window.__pwned=1">')
    assert widget.locator("img, script, a[href^='javascript']").count() == 0
    ask_widget(widget, ZEBRA_Q)
    expect(widget.locator(".answer")).to_have_count(2, timeout=ANSWER_WAIT)
    nothing_ran(page)


def test_chat_ui_not_found_box_says_it_once_without_backslashes(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, OFF_TOPIC_Q)
    box = page.locator("#qa-chat .qa-abstain")
    expect(box).to_contain_text("confidence", timeout=ANSWER_WAIT)
    text = box.inner_text()
    assert "\\" not in text
    assert text.lower().count("in the documents") == 1, text
    # a decline for a name the documents never use says which, once, after the label
    ask_ui(page, "What discount does the Zanzibar Agreement give?")
    box = page.locator("#qa-chat .qa-abstain").last
    expect(box).to_contain_text("The documents never mention Zanzibar.", timeout=ANSWER_WAIT)
    assert box.inner_text().lower().count("in the documents") == 1, box.inner_text()


def copied_answer(page) -> str:
    """What the copy button of the latest answer puts on the clipboard."""
    answer = last_answer(page)
    answer.hover()
    button = page.locator("#qa-chat button[aria-label='Copy message']").last
    button.click()
    expect(page.locator("#qa-chat button[aria-label='Copied message']")).to_have_count(1)
    return page.evaluate("navigator.clipboard.readText()")


def test_chat_ui_copy_button_copies_the_answer_as_plain_text(page, site):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site["url"])
    page.goto(site["url"] + "/")
    ask_ui(page, PAYLOAD_Q)
    expect(last_answer(page)).to_contain_text("launch code", timeout=ANSWER_WAIT)
    copied = copied_answer(page)
    assert "The launch code of Project Zebra is 4471 <script>window.__pwned=2</script> and it was set by" in copied
    assert 'the Zebra committee in 2019. [1]' in copied
    for markup in ("\\", "<span", "<mark", "</mark>", "&lt;", "&amp;", "qa-confidence", "](/source"):
        assert markup not in copied, (markup, copied)
    nothing_ran(page)


CONTRAST = """e => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map(v => v / 255).map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  let back = e;
  while (back && (getComputedStyle(back).backgroundColor === "rgba(0, 0, 0, 0)"
                  || rgb(getComputedStyle(back).backgroundColor)[3] === 0)) back = back.parentElement;
  const a = lum(rgb(getComputedStyle(e).color));
  const b = lum(rgb(getComputedStyle(back || document.body).backgroundColor));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_chat_ui_not_found_box_highlights_and_confidence_are_readable_in_dark_mode(browser, site):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(site["url"] + "/")
        expect(page.locator("body.dark, .gradio-container.dark, html.dark").first).to_be_attached()
        ask_ui(page, LEAVE_Q)
        expect(last_answer(page)).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
        page.get_by_text("[1] leave.md · Annual leave").click()
        ask_ui(page, OFF_TOPIC_Q)
        expect(page.locator("#qa-chat .qa-abstain")).to_contain_text("confidence", timeout=ANSWER_WAIT)
        for selector in ("#qa-chat .qa-abstain strong", "#qa-chat .qa-abstain .qa-confidence", "#qa-chat mark",
                         "#qa-chat [data-testid='bot']:not(:has(.qa-abstain)) .qa-confidence"):
            ratio = page.locator(selector).first.evaluate(CONTRAST)
            assert ratio >= 4.5, (selector, ratio)
    finally:
        context.close()


def test_chat_ui_confidence_and_indexed_lines_are_readable_in_light_mode(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, LEAVE_Q)
    ask_ui(page, OFF_TOPIC_Q)
    for selector in ("#qa-info", "#qa-chat [data-testid='bot']:not(:has(.qa-abstain)) .qa-confidence",
                     "#qa-chat .qa-abstain .qa-confidence", "#qa-chat .qa-cite"):
        ratio = page.locator(selector).first.evaluate(CONTRAST)
        assert ratio >= 4.5, (selector, ratio)


def test_chat_ui_citation_marker_previews_its_passage_and_opens_it(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, LEAVE_Q)
    marker = last_answer(page).locator(".qa-cite")
    expect(marker).to_have_text("[1]", timeout=ANSWER_WAIT)
    preview = marker.get_attribute("title")
    assert preview.startswith("[1] leave.md · Annual leave: ") and LEAVE_A in preview
    expect(page.locator("#qa-chat mark")).to_have_count(0)  # the passage starts collapsed
    marker.click()
    expect(page.locator("#qa-chat mark").first).to_have_text(LEAVE_A)
    expect(page.locator("#qa-chat mark").first).to_be_in_viewport()
    marker.click()  # a second click leaves it open
    expect(page.locator("#qa-chat mark").first).to_have_text(LEAVE_A)


def test_chat_ui_citation_preview_of_a_hostile_document_is_text(page, site):
    page.goto(site["url"] + "/")
    ask_ui(page, PAYLOAD_Q)
    marker = last_answer(page).locator(".qa-cite").first
    expect(marker).to_be_visible(timeout=ANSWER_WAIT)
    assert "<script>window.__pwned=2</script>" in marker.get_attribute("title")
    marker.click()
    assert page.locator("#qa-chat img[src='x'], #qa-chat script").count() == 0
    nothing_ran(page)


def test_on_a_phone_the_question_box_and_ask_stay_on_the_first_screen(browser, site):
    context = phone_context(browser)
    page = context.new_page()
    try:
        page.goto(site["url"] + "/")
        assert_on_first_screen(page, ("#qa-question textarea", "#qa-ask"))
        page.locator("#qa-question textarea").fill(LEAVE_Q)
        page.locator("#qa-ask").tap()
        expect(last_answer(page)).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
        expect(page.locator("#qa-chat button[aria-label='Clear']")).to_be_visible()  # starts a new conversation
        assert_on_first_screen(page, ("#qa-ask",))
    finally:
        context.close()


def test_batch_tab_shows_a_preview_of_the_answers_beside_the_download(page, site, tmp_path):
    questions = tmp_path / "questions.csv"
    questions.write_text(f'question\n"{LEAVE_Q}"\n"{PAYLOAD_Q.replace(chr(34), chr(34) * 2)}"\n', encoding="utf-8")
    page.goto(site["url"] + "/")
    run_batch_tab(page, questions)
    preview = page.locator("#qa-batch-preview")
    expect(preview).to_contain_text(LEAVE_A, timeout=ANSWER_WAIT)
    expect(preview).to_contain_text("<script>window.__pwned=2</script>")  # a document's markup, as text
    expect(preview).to_contain_text('<img src=x onerror="window.__pwned=9">')  # a question's markup, as text
    expect(page.locator("#qa-batch-summary")).to_contain_text("2 questions")
    expect(page.locator("#qa-batch-download a")).to_have_attribute("href", re.compile(r"questions\.answers\.csv$"))
    assert preview.locator("img[src='x'], script").count() == 0
    nothing_ran(page)


def test_chat_ui_example_questions_read_as_questions(page, site):
    page.goto(site["url"] + "/")
    question = "What do the documents say about the Harbour Agreement?"
    example = page.get_by_text(question)
    expect(example).to_be_visible()
    example.click()
    expect(page.locator("#qa-question textarea")).to_have_value(question)
    assert page.get_by_text(re.compile("What does “.*” say")).count() == 0  # titles are not quoted at the reader
