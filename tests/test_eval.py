"""Evaluation on a user's own question list: hit rates, abstention, latency, per-row marks."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from conftest import write_corpus

from qa.batch import Expected, answer_hit, evaluate_file, expectations, read_questions, score, source_matches
from qa.config import DEFAULT_MODEL
from qa.pipeline import NOT_FOUND, QA, build
from qa.types import Answer, Citation


def answer(text: str, sources: tuple[str, ...] = (), total_ms: float = 10.0, confidence: float = 0.9) -> Answer:
    citations = tuple(Citation(n, s, "", "", 0, 10, "passage", 0.5) for n, s in enumerate(sources, start=1))
    return Answer("q", text, False, confidence, citations, timings_ms={"total": total_ms})


def declined(total_ms: float = 10.0) -> Answer:
    return Answer("q", NOT_FOUND, True, 0.1, (), timings_ms={"total": total_ms})


def test_an_answer_hits_when_it_contains_a_gold_answer_ignoring_case_spacing_and_markers():
    given = answer("The lens was invented by  Augustin-Jean\nFresnel [1] in 1822. [2]")
    assert answer_hit(given, ["augustin-jean fresnel"])
    assert answer_hit(given, ["nobody", "Fresnel in 1822."])  # any one of several
    assert not answer_hit(given, ["Thomas Edison"])
    assert not answer_hit(given, ["", "  "])  # an empty gold answer matches nothing
    assert not answer_hit(declined(), ["could not find"])  # a refusal never hits


def test_an_expected_source_matches_the_cited_file_with_or_without_its_row_or_folder():
    assert source_matches("handbook/leave.pdf", "handbook/leave.pdf")
    assert source_matches("handbook/leave.pdf", "leave.pdf")
    assert source_matches("faq.jsonl#12", "faq.jsonl")
    assert source_matches("faq.jsonl#12", "faq.jsonl#12")
    assert not source_matches("faq.jsonl#12", "faq.jsonl#1")
    assert not source_matches("handbook/leave.pdf", "ave.pdf")


def test_score_counts_hits_abstentions_errors_and_latency():
    expected = [
        Expected("a", ("Fresnel",), "lighthouses.md"),  # hit, cited
        Expected("b", ("six weeks",), "bees.txt"),  # miss, cites another file
        Expected("c", ("1650s",)),  # declined although answerable
        Expected("d", ()),  # declined as it should be
        Expected("e", ()),  # answered though it should be declined
        Expected("f", None, "tea.txt"),  # no expected answer: only the citation counts
        Expected("g", ("x",)),  # could not be asked
    ]
    answers = [
        answer("Fresnel did. [1]", ("lighthouses.md",), 10),
        answer("Bees dance. [1]", ("tea.txt",), 20),
        declined(30),
        declined(40),
        answer("Something. [1]", ("tea.txt",), 50),
        answer("Tea. [1]", ("tea.txt",), 60),
        None,
    ]
    metrics = score(expected, answers)

    assert (metrics.rows, metrics.errors) == (7, 1)
    assert (metrics.answer_hits, metrics.answerable, metrics.answer_hit_rate) == (1, 3, pytest.approx(1 / 3))
    assert (metrics.citation_hits, metrics.with_source, metrics.citation_hit_rate) == (2, 3, pytest.approx(2 / 3))
    assert (metrics.correct_abstentions, metrics.abstained, metrics.unanswerable) == (1, 2, 2)
    assert metrics.abstention_precision == pytest.approx(0.5) and metrics.abstention_recall == pytest.approx(0.5)
    assert metrics.latency_p50_ms == pytest.approx(35.0)
    assert 50 < metrics.latency_p95_ms <= 60
    assert json.loads(json.dumps(metrics.to_dict()))["answer_hit_rate"] == pytest.approx(1 / 3)
    assert "abstention recall     0.500  (1/2)" in metrics.report()


def test_the_report_shows_what_each_minimum_confidence_would_decline():
    expected = [Expected("a", ("x",)), Expected("b", ("y",)), Expected("c", ("z",)),
                Expected("d", ()), Expected("e", ()), Expected("f", ())]
    confidences = [0.35, 0.55, 0.9, 0.1, 0.45, 0.65]
    metrics = score(expected, [answer("x", confidence=c) for c in confidences])
    sweep = {t: (a, u) for t, a, u in metrics.declined_by_threshold}
    assert sweep[0.3] == (0.0, pytest.approx(1 / 3))
    assert sweep[0.5] == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert sweep[0.7] == (pytest.approx(2 / 3), 1.0)
    lines = metrics.report().splitlines()[-3:]
    assert lines[0].startswith("declined at --min-confidence") and "0.50" in lines[0]
    assert lines[1].split()[1:] == ["0%", "33%", "33%", "67%", "67%", "67%"]
    assert lines[2].split()[3:] == ["33%", "33%", "67%", "67%", "100%", "100%"]
    assert score([Expected("a")], [answer("x")]).declined_by_threshold == ()  # nothing to judge


def test_rates_without_rows_to_judge_are_not_available():
    metrics = score([Expected("a")], [answer("Tea.")])
    assert metrics.answer_hit_rate is None and metrics.abstention_precision is None
    assert metrics.citation_hit_rate is None and "n/a" in metrics.report()
    with pytest.raises(ValueError):
        score([Expected("a")], [])


def test_expectations_are_read_from_columns_found_by_name(tmp_path):
    path = tmp_path / "checklist.csv"
    path.write_text(
        "Question,Expected Answer,Source,Notes\n"
        "Who invented the lens?,Fresnel | A. Fresnel,lighthouses.md,\n"
        "What is the capital of Mongolia?,,,should be declined\n",
        encoding="utf-8",
    )
    wanted = expectations(read_questions(path))
    assert wanted == [
        Expected("Who invented the lens?", ("Fresnel", "A. Fresnel"), "lighthouses.md"),
        Expected("What is the capital of Mongolia?", (), None),
    ]
    lists = tmp_path / "gold.jsonl"
    lists.write_text(json.dumps({"query": "Who?", "answers": ["Fresnel", "Augustin"]}) + "\n", encoding="utf-8")
    assert expectations(read_questions(lists)) == [Expected("Who?", ("Fresnel", "Augustin"), None)]
    plain = tmp_path / "plain.txt"
    plain.write_text("Who?\n", encoding="utf-8")
    assert expectations(read_questions(plain)) == [Expected("Who?", None, None)]


CORPUS = {
    "lighthouses.md": (
        "# Lighthouses\n\nThe Fresnel lens was invented by the French physicist Augustin-Jean Fresnel in 1822. "
        "Its rings of prisms let a small lamp be seen more than 30 kilometres out at sea.\n"
    ),
    "bees.txt": (
        "Honey bees live in colonies of up to 60,000 workers with a single queen. "
        "A worker bee lives about six weeks in summer, most of it spent foraging for nectar.\n"
    ),
    "tea.txt": (
        "Green tea and black tea come from the same plant, Camellia sinensis. "
        "Tea reached England in the 1650s and became popular after Catherine of Braganza drank it at court.\n"
    ),
}
CHECKLIST = [
    ("Who invented the Fresnel lens?", "Fresnel", "lighthouses.md"),
    ("How long does a worker bee live in summer?", "six weeks", "bees.txt"),
    ("When did tea reach England?", "1650s", "tea.txt"),
    ("Which plant do green and black tea come from?", "Camellia sinensis", "tea.txt"),
    ("What is the capital of Mongolia?", "", ""),
    ("Who won the 1998 football world cup?", "", ""),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory, embedder):
    folder = tmp_path_factory.mktemp("eval")
    build(write_corpus(folder / "corpus", CORPUS), folder / "index", DEFAULT_MODEL, embedder=embedder)
    return folder / "index"


def write_checklist(path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "expected_answer", "expected_source"])
        writer.writerows(CHECKLIST)
    return path


def test_eval_prints_the_metrics_and_writes_marked_rows(tmp_path, index, embedder, monkeypatch):
    from qa.cli import main

    monkeypatch.setattr("qa.pipeline.Embedder", lambda name, **_: embedder)  # share the loaded model
    checklist = write_checklist(tmp_path / "checklist.csv")
    results = tmp_path / "results.csv"
    run = CliRunner().invoke(main, ["eval", str(checklist), "--index", str(index), "-o", str(results), "--json"])
    assert run.exit_code == 0, run.output
    metrics = json.loads(run.stdout)

    with open(results, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert [r["question"] for r in rows] == [q for q, _, _ in CHECKLIST]
    assert (metrics["rows"], metrics["answerable"], metrics["unanswerable"], metrics["with_source"]) == (6, 4, 2, 4)
    # The summary agrees with the per-row marks and answers.
    assert metrics["answer_hits"] == sum(r["answer_hit"] == "true" for r in rows)
    assert metrics["citation_hits"] == sum(r["citation_hit"] == "true" for r in rows)
    assert metrics["abstained"] == sum(r["abstained"] == "true" for r in rows)
    assert metrics["correct_abstentions"] == sum(r["abstained"] == "true" for r in rows[4:])
    assert all(r["answer_hit"] == "" for r in rows[4:])  # nothing to hit on rows that expect a refusal
    for r in rows:
        if r["answer_hit"] == "true":
            assert r["expected_answer"].lower() in r["answer"].lower()
    assert metrics["latency_p95_ms"] >= metrics["latency_p50_ms"] > 0

    again = CliRunner().invoke(main, ["eval", str(checklist), "--index", str(index)])
    assert again.exit_code == 0
    for label in ("answer hit rate", "citation hit rate", "abstention precision", "abstention recall", "latency",
                  "declined at --min-confidence"):
        assert label in again.stdout
    # At the default threshold (0.5) the sweep agrees with the abstention recall.
    [at_default] = [u for t, _, u in metrics["declined_by_threshold"] if t == 0.5]
    assert at_default == pytest.approx(metrics["correct_abstentions"] / metrics["unanswerable"])


def test_evaluating_in_batches_scores_the_same_as_one_by_one(tmp_path, index, embedder):
    qa = QA(index, embedder=embedder)
    checklist = write_checklist(tmp_path / "checklist.csv")
    batched = evaluate_file(qa, checklist, batch_size=32)
    alone = evaluate_file(qa, checklist, batch_size=1)
    counts = ("answer_hits", "citation_hits", "abstained", "correct_abstentions")
    assert [getattr(batched, c) for c in counts] == [getattr(alone, c) for c in counts]
