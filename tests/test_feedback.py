"""Feedback votes: one JSON line per vote, in the file the owner reviews, holding what the vote was
about (question, history, answer, citations without passage text), bounded in size, and never
interleaved when several writers append at once. Size caps as the web sees them are in
test_web_limits.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from qa.config import MAX_HISTORY_TURNS, read_settings
from qa.feedback import CITATION_FIELDS, MAX_RECORD_BYTES, FeedbackStore, default_path
from qa.types import Turn

CITATION = {"n": 1, "source": "leave.md", "title": "Annual leave", "location": "", "start": 0, "end": 80,
            "score": 0.91, "passage": "Every employee gets 28 days of paid annual leave per year.",
            "highlights": [[0, 58]]}


def test_each_vote_is_one_json_line_read_back_in_order(tmp_path):
    store = FeedbackStore(tmp_path / "reviews" / "feedback.jsonl")  # its folder is created
    store.add("up", "How many days of leave?", "28 days. [1]", [CITATION], abstained=False, confidence=0.9,
              via="ui")
    store.add("down", "What about sick leave?", "I could not find this in the documents.", abstained=True,
              comment="it is in the handbook")
    lines = (tmp_path / "reviews" / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == store.read()
    first, second = store.read()
    assert (first["rating"], first["via"], first["question"], first["confidence"]) == (
        "up", "ui", "How many days of leave?", 0.9)
    assert (second["rating"], second["via"], second["abstained"], second["comment"]) == (
        "down", "api", True, "it is in the handbook")
    assert first["time"].endswith("Z")


def test_a_citation_keeps_where_it_points_but_not_the_passage_text(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    record = store.add("up", "How many days of leave?", "28 days. [1]", [CITATION])
    assert record["citations"] == [{k: CITATION[k] for k in CITATION_FIELDS}]
    assert "passage" not in (tmp_path / "feedback.jsonl").read_text()


def test_history_keeps_questions_as_given_and_only_the_last_turns(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    history = [f"question {n}" for n in range(MAX_HISTORY_TURNS + 3)] + [Turn("When was it signed?", "In 2021. [1]")]
    record = store.add("up", "Where?", "In Oslo. [1]", history=history)
    assert len(record["history"]) == MAX_HISTORY_TURNS
    assert record["history"][-1] == {"question": "When was it signed?", "answer": "In 2021. [1]"}
    assert record["history"][0] == "question 4"  # the four oldest turns are left out


def test_a_record_over_the_size_cap_is_cut_to_fit(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    record = store.add("down", "q" * 10_000, "a" * 200_000, [CITATION] * 40, comment="c" * 200_000)
    (line,) = (tmp_path / "feedback.jsonl").read_bytes().splitlines()
    assert len(line) <= MAX_RECORD_BYTES and json.loads(line) == record
    assert record["question"] == "q" * 10_000  # the question is cut last
    assert record["comment"].endswith("…") and record["answer"].endswith("…")


def test_a_rating_other_than_up_or_down_is_refused_and_nothing_is_written(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.jsonl")
    with pytest.raises(ValueError, match="up"):
        store.add("meh", "How many days of leave?", "28 days.")
    assert store.read() == [] and not (tmp_path / "feedback.jsonl").exists()


def test_writers_appending_at_once_never_interleave_their_lines(tmp_path):
    path = tmp_path / "feedback.jsonl"
    stores = [FeedbackStore(path), FeedbackStore(path)]  # two stores: only the file lock keeps them apart
    comment = "x" * 30_000  # long lines, written in more than one piece if nothing held them together

    def vote(store: FeedbackStore, writer: int) -> None:
        for n in range(25):
            store.add("up", f"writer {writer} vote {n}", "an answer", comment=comment)

    threads = [threading.Thread(target=vote, args=(stores[w % 2], w)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["question"] for r in records) == sorted(f"writer {w} vote {n}" for w in range(6) for n in range(25))
    assert all(r["comment"] == comment for r in records)


def test_feedback_is_kept_beside_the_index_folder_unless_qa_feedback_names_a_file(tmp_path):
    assert default_path(tmp_path / "site" / "index") == (tmp_path / "site" / "feedback.jsonl").resolve()
    chosen = read_settings("serve", environ={"QA_FEEDBACK": str(tmp_path / "votes.jsonl")}).feedback
    assert default_path(tmp_path / "site" / "index", chosen) == Path(tmp_path / "votes.jsonl")
