"""Batch answering vs asking one by one, on the SQuAD questions of ../shared/data.

Builds (or reuses) an index of the unique SQuAD paragraphs, one document each, then answers every
question both ways in the same run: through `qa batch`'s code path (a JSONL question file answered
in batches into a JSONL answer file) and with `QA.ask` per question, each on a freshly opened
index, in rounds that alternate which way goes first. Prints questions/s for both (the best
round of each, as noise only slows a run down), the speed-up, how many answers agree, and the
answer hit rate on the answerable questions.

    python bench/batch.py                # all 2,828 questions, 2 rounds (about a minute on 2 CPUs)
    python bench/batch.py --limit 500    # a quicker look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import squad  # noqa: E402
from qa.batch import Expected, open_output, read_questions, run_batch, score
from qa.config import DEFAULT_BATCH_SIZE, DEFAULT_MODEL
from qa.pipeline import QA, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="Answer only the first N questions (0: all).")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--rounds", type=int, default=2, help="Times each way runs, alternating which goes first.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "qa-bench-batch",
                        help="Folder for the corpus, index and files (kept, so the index is reused).")
    args = parser.parse_args()

    questions = squad(args.work / "corpus")
    if args.limit:
        questions = questions[: args.limit]
    started = time.perf_counter()
    report = build(args.work / "corpus", args.work / "index", DEFAULT_MODEL)
    print(f"index: {report.documents} paragraphs, {report.chunks} chunks ({report.embedded} embedded now) "
          f"in {time.perf_counter() - started:.0f}s")
    embedder = QA(args.work / "index").embedder
    embedder.encode_queries(["warm up the model"])
    question_file = args.work / "questions.jsonl"
    question_file.write_text("".join(json.dumps({"question": q.question}) + "\n" for q in questions), encoding="utf-8")
    source = read_questions(question_file)

    def in_batch() -> float:
        output = open_output(args.work / "answers.jsonl", source, overwrite=True)
        started = time.perf_counter()
        run_batch(fresh(), source, output, batch_size=args.batch_size,
                  on_result=lambda row, answer, error: batched.__setitem__(row.row, answer))
        return time.perf_counter() - started

    def one_by_one() -> float:
        qa = fresh()
        started = time.perf_counter()
        alone[:] = [qa.ask(q.question) for q in questions]
        return time.perf_counter() - started

    def fresh() -> QA:
        # Each run opens the index anew (sharing the loaded model), so each pays the same one-time
        # costs of a freshly opened index (facts about each chunk's sentences, computed on first use).
        return QA(args.work / "index", embedder=embedder)

    batched, alone, seconds = {}, [], {"batch": [], "alone": []}
    for round_number in range(args.rounds):  # alternate which goes first: the machine may be noisy
        ways = [("batch", in_batch), ("alone", one_by_one)]
        for name, run in ways if round_number % 2 == 0 else ways[::-1]:
            seconds[name].append(run())
    batch_seconds, alone_seconds = min(seconds["batch"]), min(seconds["alone"])

    batch_answers = [batched[row.row] for row in source.rows]
    same = sum(b is not None and (b.answer, b.abstained) == (a.answer, a.abstained)
               for b, a in zip(batch_answers, alone))
    expected = [Expected(q.question, q.answers, q.source if q.answers else None) for q in questions]
    metrics = score(expected, batch_answers)
    n = len(questions)
    print(f"questions            {n} ({metrics.answerable} answerable, {metrics.unanswerable} not)")
    print(f"batch                {n / batch_seconds:7.1f} questions/s  ({batch_seconds:.1f}s, "
          f"batches of {args.batch_size}, written to {args.work / 'answers.jsonl'})")
    print(f"one by one           {n / alone_seconds:7.1f} questions/s  ({alone_seconds:.1f}s, QA.ask per question)")
    print(f"speed-up             {alone_seconds / batch_seconds:7.1f}x  (best of {args.rounds} rounds each; per round: "
          + ", ".join(f"{a / b:.1f}x" for a, b in zip(seconds["alone"], seconds["batch"])) + ")")
    print(f"same answers         {same}/{n}")
    print(metrics.report().split("\n", 1)[1])


if __name__ == "__main__":
    main()
