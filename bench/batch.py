"""Batch answering vs asking one by one, on the SQuAD questions of ../shared/data.

Builds (or reuses) an index of the unique SQuAD paragraphs, one document each, then answers every
question twice in the same run: through `qa batch`'s code path (a JSONL question file answered in
batches into a JSONL answer file) and with `QA.ask` per question. Prints questions/s for both,
the speed-up, how many answers agree, and the answer hit rate on the answerable questions.

    python bench/batch.py                # all 2,828 questions (about ten minutes on a small CPU)
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
from qa.batch import BATCH_SIZE, open_output, read_questions, run_batch
from qa.config import DEFAULT_MODEL
from qa.evaluate import Expected, score
from qa.pipeline import QA, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="Answer only the first N questions (0: all).")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
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
    qa = QA(args.work / "index")
    qa.ask("What is this about?")  # load lazily initialised parts before timing

    question_file = args.work / "questions.jsonl"
    question_file.write_text("".join(json.dumps({"question": q.question}) + "\n" for q in questions), encoding="utf-8")
    source = read_questions(question_file)
    output = open_output(args.work / "answers.jsonl", source, overwrite=True)
    batched = {}
    started = time.perf_counter()
    run_batch(qa, source, output, batch_size=args.batch_size,
              on_result=lambda row, answer, error: batched.__setitem__(row.row, answer))
    batch_seconds = time.perf_counter() - started

    started = time.perf_counter()
    alone = [qa.ask(q.question) for q in questions]
    alone_seconds = time.perf_counter() - started

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
    print(f"speed-up             {alone_seconds / batch_seconds:7.1f}x")
    print(f"same answers         {same}/{n}")
    print(metrics.report().split("\n", 1)[1])


if __name__ == "__main__":
    main()
