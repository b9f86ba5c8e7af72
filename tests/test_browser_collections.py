"""Collections in a real headless Chromium: the chat UI's Documents tab (upload with its progress,
ask and get a citation to the upload, remove and be declined), switching collections in the
selector, and the widget asking the collection its data-collection names."""

from __future__ import annotations

import httpx
import pytest
from conftest import write_corpus
from playwright.sync_api import expect
from test_browser import ANSWER_WAIT, ask_ui, ask_widget, last_answer, nothing_ran
from web_helpers import (
    HostPages,
    ServerThread,
    assert_on_first_screen,
    build_test_index,
    free_port,
    phone_context,
    run_batch_tab,
    ui_event,
)

from qa.config import DEFAULT_MODEL
from qa.pipeline import build
from qa.web import WebConfig, create_app

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")]

DEPLOY_Q = "When do production deploys happen?"
DEPLOY_A = "Production deploys happen every Thursday at 14:00 from the Heron pipeline."
# A title long enough to push the Documents table's last columns out of sight if it did not wrap.
HOTFIX = ("# Hotfixes: who approves them, how they are tested and how they reach production outside the weekly "
          "deploy window\n\n## Who approves a hotfix?\n\nA hotfix is approved by the on-call lead of the week.\n")
HR_EXAMPLE = "What do the documents say about the Harbour Agreement?"
AQUARIUM_Q = "How many seahorses does the office aquarium hold?"
# Long enough for its build to show progress for a moment (about a hundred chunks).
AQUARIUM = "# Aquarium\n\nThe office aquarium holds eleven seahorses, fed by the Kittiwake club each morning.\n\n"
AQUARIUM += "".join(
    f"Tank note {i}: the filter of tank {i} was rinsed and the water tested for nitrates on day {i}.\n\n"
    for i in range(400))


@pytest.fixture(scope="module")
def site(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("collections")
    hr = build_test_index(root / "hr", embedder)
    write_corpus(root / "eng" / "corpus", {"deploys.md": f"# Deploys\n\n{DEPLOY_A}\n", "hotfix.md": HOTFIX})
    build(root / "eng" / "corpus", root / "eng" / "index", DEFAULT_MODEL, embedder=embedder)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    page = (f'<!doctype html><html><body><h1>Engineering</h1><script src="{url}/widget.js" '
            'data-title="Ask engineering" data-collection="eng" data-open="true" defer></script></body></html>')
    with HostPages({"/eng.html": page}) as host:
        config = WebConfig(hr, rate_limit=None, collections=(("hr", hr), ("eng", root / "eng" / "index")),
                           collection_origins=(("eng", host.origin),))
        with ServerThread(create_app(config, embedder), port=port):
            yield {"url": url, "host": host.origin, "root": root}




def choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_documents_tab_uploads_shows_progress_answers_and_removes(page, site, tmp_path):
    page.goto(site["url"] + "/")
    page.get_by_role("tab", name="Documents").click()
    documents = page.locator("#qa-doc-list")
    expect(documents).to_contain_text("leave.md")
    expect(documents).to_contain_text("Annual leave")
    expect(documents).to_contain_text('# Zebra <img src=x onerror="window.__pwned=1">')  # a title, as text

    upload = tmp_path / "aquarium.md"
    upload.write_text(AQUARIUM, encoding="utf-8")
    page.locator("#qa-doc-upload input[type=file]").set_input_files(str(upload))
    status = page.locator("#qa-doc-status")
    expect(status).to_contain_text("Added 1 file.")
    expect(status.locator("progress")).to_be_attached(timeout=ANSWER_WAIT)  # the build, while it runs
    expect(status).to_contain_text("Indexing:")
    expect(status).to_contain_text("1 embedded", timeout=60_000)
    expect(status.locator("progress")).to_have_count(0)
    expect(documents).to_contain_text("aquarium.md")
    expect(page.locator("#qa-info")).to_contain_text("from 6 files")  # the page's line follows the build

    page.get_by_role("tab", name="Chat").click()
    ask_ui(page, AQUARIUM_Q)
    expect(last_answer(page)).to_contain_text("eleven seahorses", timeout=ANSWER_WAIT)
    expect(page.get_by_text("[1] aquarium.md · Aquarium")).to_be_visible()

    page.get_by_role("tab", name="Documents").click()
    choose(page, "qa-doc-source", "aquarium.md")
    page.locator("#qa-doc-delete").click()
    expect(status).to_contain_text("Removed aquarium.md.")
    expect(status).to_contain_text("1 removed", timeout=60_000)
    expect(documents).not_to_contain_text("aquarium.md")
    expect(page.locator("#qa-info")).to_contain_text("from 5 files")
    page.get_by_role("tab", name="Chat").click()
    ask_ui(page, AQUARIUM_Q)
    expect(page.locator("#qa-chat .qa-abstain")).to_contain_text("Not found in the documents", timeout=ANSWER_WAIT)
    assert page.locator("#qa-doc-list img").count() == 0
    nothing_ran(page)


def test_a_refused_upload_says_why_in_the_documents_tab(page, site, tmp_path):
    page.goto(site["url"] + "/")
    page.get_by_role("tab", name="Documents").click()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 <img src=x onerror=window.__pwned=5> not really a PDF")
    page.locator("#qa-doc-upload input[type=file]").set_input_files(str(broken))
    status = page.locator("#qa-doc-status")
    expect(status).to_contain_text("Refused 'broken.pdf'", timeout=ANSWER_WAIT)
    expect(status).to_contain_text("PDF")
    assert not (site["root"] / "hr" / "corpus" / "broken.pdf").exists()
    nothing_ran(page)


def test_the_selector_switches_collections(page, site):
    page.goto(site["url"] + "/")
    expect(page.locator("#qa-collection")).to_be_visible()
    examples = page.locator("#qa-examples")
    expect(examples).to_contain_text(HR_EXAMPLE)
    ask_ui(page, DEPLOY_Q)
    expect(page.locator("#qa-chat .qa-abstain")).to_contain_text("Not found", timeout=ANSWER_WAIT)  # hr has none
    choose(page, "qa-collection", "eng")
    expect(page.locator("#qa-chat [data-testid='bot']")).to_have_count(0)  # a new conversation
    expect(page.locator("#qa-info")).to_contain_text("2 documents from 2 files")
    expect(examples).to_contain_text("Who approves a hotfix?")  # eng's own examples
    expect(examples).not_to_contain_text(HR_EXAMPLE)
    ask_ui(page, DEPLOY_Q)
    expect(last_answer(page)).to_contain_text(DEPLOY_A, timeout=ANSWER_WAIT)
    page.get_by_text("[1] deploys.md · Deploys").click()
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open the full source").first.click()
    source = opened.value
    source.wait_for_load_state()
    assert "collection=eng" in source.url
    expect(source.locator("#hit mark")).to_have_text(DEPLOY_A)
    page.get_by_role("tab", name="Documents").click()
    listing = page.locator("#qa-doc-list")
    expect(listing).to_contain_text("deploys.md")
    expect(listing).not_to_contain_text("leave.md")
    shown = listing.bounding_box()
    for header in ("source", "title", "size (bytes)", "chunks", "indexed at"):  # a long title wraps
        box = listing.locator("th", has_text=header).first.bounding_box()
        assert box and shown["x"] <= box["x"] and box["x"] + box["width"] <= shown["x"] + shown["width"] + 1, header


def test_the_widget_asks_the_collection_of_its_data_collection(page, site):
    page.goto(site["host"] + "/eng.html")
    widget = page.locator("qa-widget")
    expect(widget.locator("header .title")).to_have_text("Ask engineering")
    ask_widget(widget, DEPLOY_Q)
    answer = widget.locator(".answer")
    expect(answer).to_contain_text(DEPLOY_A, timeout=ANSWER_WAIT)
    expect(answer.locator("summary").first).to_have_text("[1] deploys.md · Deploys")
    assert "collection=eng" in answer.locator("a.open").first.get_attribute("href")
    answer.locator(".vote-up").click()
    expect(answer.locator(".votes")).to_have_text("Thanks for the feedback.")
    ask_widget(widget, "How many days of paid annual leave do employees get?")  # hr's, not eng's
    expect(widget.locator(".abstain")).to_contain_text("Not found", timeout=ANSWER_WAIT)
    assert '"collection": "eng"' in (site["root"] / "eng" / "feedback.jsonl").read_text()


def test_on_a_phone_the_selector_leaves_the_question_box_and_ask_on_the_first_screen(browser, site):
    context = phone_context(browser)
    page = context.new_page()
    try:
        page.goto(site["url"] + "/")
        expect(page.locator("#qa-collection input")).to_be_visible()
        assert_on_first_screen(page, ("#qa-collection input", "#qa-question textarea", "#qa-ask"))
        title = page.locator("#qa-title h2")
        lines = title.evaluate(
            "e => { const r = document.createRange(); r.selectNodeContents(e); return r.getClientRects().length; }")
        assert lines <= 2, lines  # "Ask the / documents", never a word broken over lines
        assert title.evaluate("e => e.scrollWidth <= e.clientWidth")  # nor cut off
    finally:
        context.close()


def test_the_batch_tab_answers_from_the_selected_collection(page, site, tmp_path):
    questions = tmp_path / "questions.csv"
    questions.write_text(f"question\n{DEPLOY_Q}\n", encoding="utf-8")
    page.goto(site["url"] + "/")
    choose(page, "qa-collection", "eng")
    run_batch_tab(page, questions)
    expect(page.locator("#qa-batch-preview")).to_contain_text(DEPLOY_A, timeout=ANSWER_WAIT)
    expect(page.locator("#qa-batch-summary")).to_contain_text("1 answered")


def test_a_key_limited_to_one_collection_is_offered_only_that_one(page, site, embedder):
    from qa.web.auth import make_key

    root, key = site["root"], "eng-reader-key-0123456789"
    config = WebConfig(root / "hr" / "index", rate_limit=None, admin_key="admin-key-0123456789abcdef",
                       named_keys=(make_key("eng", "reader", key, frozenset({"eng"})),),
                       collections=(("hr", root / "hr" / "index"), ("eng", root / "eng" / "index")))
    with ServerThread(create_app(config, embedder)) as running:
        page.goto(running.url + "/")
        page.locator("#key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#qa-info")).to_contain_text("2 documents from 2 files")  # eng's, not an error
        expect(page.locator("#qa-collection")).to_be_hidden()  # nothing else to choose
        ask_ui(page, DEPLOY_Q)
        expect(last_answer(page)).to_contain_text(DEPLOY_A, timeout=ANSWER_WAIT)
        # Nor are another collection's example questions (read from its documents) sent for the asking.
        with httpx.Client(base_url=running.url, headers={"X-API-Key": key}, timeout=30) as api:
            components = api.get("/config").json()
            ids = {c["props"].get("elem_id"): c["id"] for c in components["components"]}
            (fn_index,) = [i for i, d in enumerate(components["dependencies"])
                           if ids["qa-examples"] in d["outputs"] and ids["qa-collection"] in d["inputs"]]
            for name, shows in (("eng", "Who approves a hotfix?"), ("hr", None)):
                done = ui_event(api, fn_index, ids["qa-collection"], [name])
                assert done["success"] and (shows in str(done) if shows else "Harbour" not in str(done)), done
