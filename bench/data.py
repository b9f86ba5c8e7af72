"""Load the development benchmarks from ../shared/data as qa corpora and question sets."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@dataclass(frozen=True)
class SquadQuestion:
    question: str
    answers: tuple[str, ...]  # empty for unanswerable questions
    source: str  # the corpus source of its paragraph


def squad(corpus_dir: Path) -> list[SquadQuestion]:
    """Write the unique SQuAD paragraphs as a JSONL corpus and return the questions."""
    data = json.loads((DATA / "squad" / "squad-v2-dev-half.json").read_text())["data"]
    corpus_dir.mkdir(parents=True, exist_ok=True)
    questions = []
    with open(corpus_dir / "squad.jsonl", "w") as f:
        for article in data:
            title = article["title"].replace("_", " ")
            for number, paragraph in enumerate(article["paragraphs"]):
                row_id = f"{article['title']}-{number}"
                f.write(json.dumps({"id": row_id, "title": title, "text": paragraph["context"]}) + "\n")
                for qa in paragraph["qas"]:
                    answers = () if qa.get("is_impossible") else tuple(a["text"] for a in qa["answers"])
                    questions.append(SquadQuestion(qa["question"], answers, f"squad.jsonl#{row_id}"))
    return questions


@dataclass(frozen=True)
class ScifactQuery:
    query: str
    relevant: dict[str, int]  # corpus source -> relevance


def scifact(corpus_dir: Path) -> list[ScifactQuery]:
    """Write the SciFact abstracts as a JSONL corpus and return the train queries with qrels."""
    corpus_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt") as f, open(corpus_dir / "scifact.jsonl", "w") as out:
        for line in f:
            row = json.loads(line)
            out.write(json.dumps({"id": row["_id"], "title": row["title"], "text": row["text"]}) + "\n")
    qrels: dict[str, dict[str, int]] = {}
    lines = (DATA / "scifact" / "qrels.train.tsv").read_text().splitlines()[1:]
    for line in lines:
        query_id, doc_id, score = line.split("\t")
        qrels.setdefault(query_id, {})[f"scifact.jsonl#{doc_id}"] = int(score)
    queries = []
    for line in (DATA / "scifact" / "queries.train.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["_id"] in qrels:
            queries.append(ScifactQuery(row["text"], qrels[row["_id"]]))
    return queries


CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/qa-bench"))  # another folder keeps two checkouts apart
OFF_TOPIC = Path(__file__).resolve().parent / "off_topic_questions.txt"


def bench_index(name: str, rebuild: bool = False):
    """Build (or reuse) the index of a benchmark corpus under /tmp/qa-bench/<name>; return
    (opened QA, questions)."""
    from qa.config import DEFAULT_MODEL
    from qa.pipeline import QA, build

    loader = {"squad": squad, "scifact": scifact}[name]
    questions = loader(CACHE / name / "corpus")
    if rebuild or not (CACHE / name / "index" / "current").exists():
        build(CACHE / name / "corpus", CACHE / name / "index", DEFAULT_MODEL)
    return QA(CACHE / name / "index"), questions


def off_topic_questions() -> list[str]:
    return [line for line in OFF_TOPIC.read_text().splitlines() if line.strip()]
