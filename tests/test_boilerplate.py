"""Page chrome in scraped text (menus, share buttons, newsletter boxes, comment forms) is removed
generically, and never reaches a cited passage; the article's own headings and lists stay."""

from __future__ import annotations

from conftest import SEED, write_corpus

from qa.boilerplate import main_content
from qa.config import DEFAULT_MODEL
from qa.pipeline import QA, build

SEED_CHROME = ["Tuesday, December 2, 2025", "Top 5 This Week", "Related Posts", "LEAVE A REPLY",
               "Please enter your comment!", "Please enter your name here", "Popular Articles"]
SEED_HEADLINE = "Deepening Entanglements: Assessing the Resurgence of the U.S.-Japan Alliance in a Fragmented World"

# An invented page from another site: different chrome, and an article with a heading and a list.
TIDE_POOLS = """Home | World | Science | Travel | Contact

Search

Menu

Trending now: Whale migration season starts early

Tide Pools of the Northern Coast

The tide pools along the northern coast host more than two hundred species of invertebrates, \
from purple sea urchins to giant green anemones that can live for over eighty years.

When to visit

The best time to explore is during a minus tide in early summer, when the water retreats far \
enough to expose the lowest shelves of rock where the rarest animals shelter.

What to bring:
- Shoes with good grip
- A printed tide table
- A magnifying glass

Rangers from the Marine Stewardship Office lead free guided walks every Saturday morning from \
the lighthouse parking lot, and they lend magnifying glasses to children.

Share this:
Facebook
Twitter
Email

Subscribe to our newsletter

Get our best stories delivered to your inbox every Friday morning, free of charge.

Leave a comment

Name *

Email *

Website

Post Comment

You May Also Like

Copyright 2025 Coastal Journal
"""
TIDE_CHROME = ["Home | World", "Search", "Menu", "Trending now", "Share this", "Facebook", "Twitter",
               "Subscribe to our newsletter", "Get our best stories", "Leave a comment", "Name *", "Email *",
               "Website", "Post Comment", "You May Also Like", "Copyright 2025"]


def test_seed_page_keeps_its_headline_and_article_without_the_chrome():
    headline, article = main_content(SEED.read_text(encoding="utf-8"))
    assert headline == SEED_HEADLINE
    assert article.startswith(SEED_HEADLINE + "\n\nThe steady rumble of logistical aircraft")
    assert article.count(SEED_HEADLINE) == 1
    assert article.endswith("the potential for a strategic divergence remains a key concern.")
    for chrome in SEED_CHROME:
        assert chrome not in article


def test_another_sites_chrome_is_removed_but_headings_and_lists_inside_the_article_stay():
    headline, article = main_content(TIDE_POOLS)
    assert headline == "Tide Pools of the Northern Coast"
    assert article.startswith("Tide Pools of the Northern Coast\n\nThe tide pools along")
    for kept in ["When to visit", "What to bring:\n- Shoes with good grip\n- A printed tide table", "Rangers from"]:
        assert kept in article
    for chrome in TIDE_CHROME:
        assert chrome not in article, chrome


def test_text_without_any_paragraph_is_left_untouched():
    shopping = "Groceries\n\n- eggs\n- flour\n\nHardware\n\n- nails"
    assert main_content(shopping) == ("", shopping)


def test_notes_made_only_of_short_paragraphs_are_kept_whole():
    notes = (
        "Harbour board meeting notes\n\n"
        "The harbour board approved the new summer ferry timetable at its meeting on Monday.\n\n"
        "The dredging contract will be put out to tender again in the spring."
    )
    assert main_content(notes) == ("Harbour board meeting notes", notes)


def test_a_notes_date_attendees_and_contact_lines_are_not_chrome():
    notes = (
        "Meeting notes 12 May\n\n"
        "Attendees: Ana, Ben\n\n"
        "The budget for the new warehouse in Leeds was approved by the board after a long discussion "
        "about costs and timing.\n\n"
        "Next meeting: 19 May\n\n"
        "Contact: ops@example.com"
    )
    assert main_content(notes)[1] == notes


CHROME_QUERIES = [
    "What is the top story this week?", "What are the related posts?", "How do I leave a reply?",
    "Please enter your comment", "What are the popular articles?", "How do I subscribe to the newsletter?",
    "Where can I share this?", "How do I post a comment?", "What is trending now?", "You may also like",
    "Copyright Coastal Journal", "Enter your name and email",
]
QUESTIONS = CHROME_QUERIES + [
    "Who met on October 28, 2025?", "What did the critical minerals agreement involve?",
    "How much did joint military training increase?", "What hurdles does the alliance face?",
    "What does Professor Kenji Ito argue?", "What is the long-term trajectory of the alliance?",
    "Where is Kadena Air Base?", "Why did Tokyo increase defense spending?",
    "How many species live in the tide pools?", "When is the best time to visit the tide pools?",
    "What should I bring to the tide pools?", "Who leads guided walks?", "How long can anemones live?",
]


def test_chrome_never_appears_in_an_indexed_or_cited_passage(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {
        SEED.name: SEED.read_text(encoding="utf-8"),
        "tide-pools.txt": TIDE_POOLS,
    })
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    qa = QA(tmp_path / "index", embedder=embedder)
    chrome = SEED_CHROME + TIDE_CHROME
    for chunk in qa.index.chunks():
        assert not [c for c in chrome if c in chunk.text], chunk.text
    answers = qa.ask_many(QUESTIONS)
    assert any(a.citations for a in answers)  # some questions did get cited answers to check
    for answer in answers:
        for passage in [c.passage for c in answer.citations] + [s.text for s in answer.sentences]:
            assert not [c for c in chrome if c in passage], (answer.question, passage)
    for query in CHROME_QUERIES:
        for found in qa.search(query, k=5):
            assert not [c for c in chrome if c in found.chunk.text], (query, found.chunk.text)


def test_code_blocks_headings_and_announcing_lines_of_a_plain_text_document_are_not_chrome():
    text = ("Rerere\n======\n\nThis document describes the conflict logic.\n\nConflict normalization\n"
            "----------------------\n\nWhen the same conflict is recorded twice, the hunks are sorted so that merges "
            "done in a different order give the same conflict and the recorded resolution can be found again.\n\n"
            "Say we have the following conflict for example:\n\n    <<<<<<< HEAD\n    1\n    =======\n    2\n"
            "    >>>>>>> branch-2\n\nAfter sorting the hunks, the conflict would look as follows:\n\n    <<<<<<<\n"
            "    1\n    =======\n    2\n    >>>>>>>\n\nand the conflict id is the hash of that text.\n")
    headline, article = main_content(text)
    for part in ("Say we have the following conflict", ">>>>>>> branch-2", "would look as follows:",
                 "conflict id is the hash", "Conflict normalization"):
        assert part in article, part


def test_list_items_of_several_words_are_content_and_a_menus_are_chrome():
    news = ("* Home\n\n* Releases\n\n* Contact\n\n* Download\n\nGNU Frob NEWS -- history of user-visible changes.\n\n"
            "* Noteworthy changes in release 2.1 (2022-02-26)\n\n"
            "** Fix the computation of total bytes during transfers\n\n"
            "** Add an option to select TLS 1.3\n\n* Changes in release 2.0\n\n"
            "The whole download engine was rewritten around a single event loop, so that many transfers share one "
            "thread and a slow server no longer holds the others back while it answers.\n\n"
            "** Remove the old progress bar\n")
    headline, article = main_content(news)
    assert headline == "GNU Frob NEWS -- history of user-visible changes."
    for part in ("release 2.1", "total bytes", "TLS 1.3", "event loop", "old progress bar"):
        assert part in article, part
    for menu in ("Home", "Releases", "Contact", "Download"):
        assert f"* {menu}" not in article, menu
