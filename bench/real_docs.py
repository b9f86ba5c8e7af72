"""Answer quality on real documents: Debian's manuals, guides, FAQs and READMEs.

    python bench/real_docs_corpus.py        # once: assembles /work/realdocs/corpus from Debian packages
    python bench/real_docs.py [--corpus DIR] [--index DIR] [--questions FILE...] [--show-wrong]

Builds (or updates: only changed files are embedded again) an index of the corpus, asks every
question of each question file (by default the set the rules were developed on,
bench/real_docs_questions.jsonl, and three check sets written later without running qa on them,
bench/real_docs_check.jsonl, _check2.jsonl and _check3.jsonl) and prints, per file and pooled,
how many answerable questions were answered right (one of the row's `expect` strings inside the
answer, case and spacing ignored, citation markers removed), per kind of file (html, pdf, docx,
md, txt, csv), how often the file holding the answer was cited, how many answerable questions were
declined, how many of the questions the corpus does not answer (`"expect": null`) were declined,
how many wrong answers came with a confidence of 0.7 or more, and how long the answers given
are. --show-wrong lists every miss with the answer given. The `qa` imported is the one on
PYTHONPATH, so PYTHONPATH=/some/checkout measures another version of the code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # after PYTHONPATH: an explicitly chosen checkout of qa wins

from qa import QA, build  # noqa: E402
from qa.config import DEFAULT_MODEL  # noqa: E402

CONFIDENT = 0.7
_MARKER = re.compile(r"\s*\[\d+\]")


def normalize(text: str) -> str:
    return " ".join(text.lower().split())


def is_right(answer, expect: list[str]) -> bool:
    if answer.abstained:
        return False
    text = normalize(_MARKER.sub("", answer.answer))
    return any(normalize(e) in text for e in expect)


def cites(answer, source: str) -> bool:
    return any(c.source.split("#", 1)[0] == source for c in answer.citations)


def build_index(corpus: Path, index: Path) -> None:
    started = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        print(f"\r  {stage} {done}/{total}", end="", file=sys.stderr, flush=True)

    report = build(corpus, index, DEFAULT_MODEL, on_progress=progress)
    print(file=sys.stderr)
    print(f"index {index}: {report.files} files, {report.chunks:,} chunks, {report.embedded} files embedded now, "
          f"{time.perf_counter() - started:.0f}s")
    for file, reason in report.skipped:
        print(f"  skipped {file}: {reason}")


def show(row: dict, answer) -> None:
    expect = " | ".join(row["expect"]) if row["expect"] else "(should be declined)"
    cited = ", ".join(dict.fromkeys(c.source for c in answer.citations)) or "-"
    given = "DECLINED" if answer.abstained else " ".join(answer.answer.split())
    print(f"\n[{row['kind'] or 'none'}] {row['question']}")
    print(f"  expect: {expect}   in: {row['source'] or '-'}")
    print(f"  got ({answer.confidence:.2f}): {given[:400]}{'...' if len(given) > 400 else ''}")
    print(f"  cited: {cited}")


QUESTION_SETS = ("real_docs_questions.jsonl", "real_docs_check.jsonl", "real_docs_check2.jsonl",
                 "real_docs_check3.jsonl")


def report(rows: list[dict], answers: list, show_wrong: bool) -> tuple[int, int, int, int]:
    """Print the figures of one question set; return (answered right, answerable, unanswerable
    declined, unanswerable)."""
    answerable = [(r, a) for r, a in zip(rows, answers) if r["expect"]]
    unanswerable = [(r, a) for r, a in zip(rows, answers) if not r["expect"]]
    right = [is_right(a, r["expect"]) for r, a in answerable]
    n = len(answerable)
    print(f"questions: {n} answerable, {len(unanswerable)} not answered by the corpus")
    print(f"answered right            {sum(right):3d}/{n}  {sum(right) / n:6.1%}")
    total, hits = Counter(r["kind"] for r, _ in answerable), Counter()
    for (row, _), hit in zip(answerable, right):
        hits[row["kind"]] += hit
    for kind in sorted(total):
        print(f"  {kind:6s}                  {hits[kind]:3d}/{total[kind]}  {hits[kind] / total[kind]:6.1%}")
    cited = sum(cites(a, r["source"]) for r, a in answerable)
    declined = sum(a.abstained for _, a in answerable)
    print(f"cited the right file      {cited:3d}/{n}  {cited / n:6.1%}")
    print(f"wrongly declined          {declined:3d}/{n}  {declined / n:6.1%}")
    refused = sum(a.abstained for _, a in unanswerable)
    if unanswerable:
        print(f"unanswerable declined     {refused:3d}/{len(unanswerable)}  {refused / len(unanswerable):6.1%}")
    wrong = [(r, a) for (r, a), hit in zip(answerable, right) if not hit and not a.abstained]
    wrong += [(r, a) for r, a in unanswerable if not a.abstained]
    confident = [r for r, a in wrong if a.confidence >= CONFIDENT]
    print(f"confident wrong answers   {len(confident):3d}  (answered, wrong, confidence >= {CONFIDENT}; "
          f"{sum(not r['expect'] for r in confident)} of them to unanswerable questions)")
    given = [a for a in answers if not a.abstained]
    if given:
        print(f"per answer given          {sum(len(a.sentences) for a in given) / len(given):.1f} sentences, "
              f"{sum(len(a.answer) for a in given) / len(given):.0f} characters")
    if show_wrong:
        misses = [(r, a) for (r, a), hit in zip(answerable, right) if not hit]
        misses += [(r, a) for r, a in unanswerable if not a.abstained]
        for row, answer in misses:
            show(row, answer)
    return sum(right), n, refused, len(unanswerable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("/work/realdocs/corpus"))
    parser.add_argument("--index", type=Path, help="index folder (default: 'index' beside the corpus folder)")
    parser.add_argument("--questions", type=Path, nargs="+", default=[HERE / name for name in QUESTION_SETS])
    parser.add_argument("--show-wrong", action="store_true", help="list each miss with the answer given")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}: run python bench/real_docs_corpus.py first", file=sys.stderr)
        sys.exit(2)
    index = args.index or args.corpus.parent / "index"
    sets = {path: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            for path in args.questions}

    build_index(args.corpus, index)
    qa = QA(index)
    pooled = [0, 0, 0, 0]
    for path, rows in sets.items():
        print(f"\n== {path.name}")
        figures = report(rows, [qa.ask(row["question"]) for row in rows], args.show_wrong)
        pooled = [p + f for p, f in zip(pooled, figures)]
    if len(sets) > 1:
        right, n, refused, unanswerable = pooled
        print(f"\n== all {len(sets)} sets: answered right {right}/{n} ({right / n:.1%}), "
              f"unanswerable declined {refused}/{unanswerable} ({refused / max(1, unanswerable):.1%})")


if __name__ == "__main__":
    main()
