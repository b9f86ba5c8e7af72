"""Multi-turn conversations through POST /api/ask: follow-ups, topic switches, off-topic turns.

    python bench/conversations.py                   # the four sets below
    python bench/conversations.py --show-wrong      # also list every failed turn with its answer
    python bench/conversations.py --real-corpus DIR --data bench/conversations.jsonl

By default it runs bench/conversations.jsonl (seed article and picked real documents: the set the
follow-up rules were developed on) and three check sets written later without running qa on them
(bench/conversations_check.jsonl, _check2, _check3), each on its own, then pooled.

Each line of the data file is a conversation: {"id", "corpus": "seed"|"real", "documents": [files
of the real corpus it is about], "turns": [{"question", "expect": [substrings] or null (must be
declined), "kind": "standalone"|"pronoun"|"ellipsis"|"topic-switch"|"off-topic"}]}. Seed
conversations are asked over --seed-corpus, real ones over a temp folder holding just the files
they name, copied from --real-corpus. Each corpus is indexed in a temp folder and served by
`qa serve` on a free port of 127.0.0.1 (bench/load.py starts it); every turn is sent with the
earlier turns of its conversation as history, each {"question", "answer"} with the answer the
server actually gave ("" when it declined).

A turn is right when an expected substring is in its answer (case, spacing, quotes and [n]
markers ignored) and the answer was not declined; an expect-null turn is right when declined.
Topic-switch and off-topic questions are also asked with no history: a topic switch should get
exactly the answer it gets alone. Prints accuracy on answerable turns, per kind and per corpus,
off-topic turns declined, topic switches identical to asking alone, and confident wrong answers
(answered, wrong, confidence >= 0.7). Exit 0 when it ran (it is a measurement), 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import start_server  # noqa: E402

KINDS = ("standalone", "pronoun", "ellipsis", "topic-switch", "off-topic")
CONFIDENT = 0.7
MAX_HISTORY = 20  # what /api/ask takes
QUOTES = str.maketrans("‘’‚‛“”„‟", "''''\"\"\"\"")
CITATION = re.compile(r"\s*\[\d+\]")


class SetupError(Exception):
    pass


def load_conversations(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        conversations = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read {path}: {exc}") from None
    for n, c in enumerate(conversations, start=1):
        where = f"{path}, conversation {n}"
        if c.get("corpus") not in ("seed", "real") or not c.get("turns"):
            raise SetupError(f"{where}: needs corpus seed|real and turns")
        if c["corpus"] == "real" and not c.get("documents"):
            raise SetupError(f"{where}: a real conversation names its documents")
        for turn in c["turns"]:
            expect, kind = turn.get("expect"), turn.get("kind")
            if kind not in KINDS or not isinstance(turn.get("question"), str):
                raise SetupError(f"{where}: a turn needs a question and a kind in {', '.join(KINDS)}")
            if (expect is None) != (kind == "off-topic") or (expect is not None and not all(expect)):
                raise SetupError(f"{where}: off-topic turns, and only they, have expect null ({turn['question']!r})")
    return conversations


def normalized(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    return " ".join(CITATION.sub("", text).split()).casefold()


def is_right(turn: dict, answer: dict) -> bool:
    if turn["expect"] is None:
        return answer["abstained"]
    text = normalized(answer["answer"])
    return not answer["abstained"] and any(normalized(e) in text for e in turn["expect"])


def ask(url: str, question: str, history: list[dict]) -> dict:
    body = json.dumps({"question": question, "history": history[-MAX_HISTORY:]}).encode()
    request = urllib.request.Request(url + "/api/ask", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SetupError(f"{url}/api/ask answered {exc.code} to {question!r}: {exc.read()[:200]!r}") from None
    except OSError as exc:
        raise SetupError(f"no answer from {url}/api/ask: {exc}") from None


def copy_documents(conversations: list[dict], real_corpus: Path, folder: Path) -> Path:
    """A corpus of just the real documents the conversations name."""
    for name in sorted({d for c in conversations for d in c["documents"]}):
        source = real_corpus / name
        if not source.is_file():
            raise SetupError(f"{source} is missing (see --real-corpus)")
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)
    return folder


def build_index(corpus: Path, index: Path) -> None:
    command = [sys.executable, "-c", "import sys; from qa.cli import main; main(sys.argv[1:])",
               "index", "--corpus", str(corpus), "--index", str(index)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: some files skipped, said below
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SetupError(f"qa index {corpus} failed: {last[0]}")
    if done.returncode == 1:
        for line in (done.stdout + done.stderr).strip().splitlines():
            print(f"  qa index: {line.strip()}", file=sys.stderr)


def converse(url: str, conversation: dict) -> list[dict]:
    """Ask each turn with the earlier turns as history; topic switches and off-topic turns also alone."""
    history, results = [], []
    for turn in conversation["turns"]:
        answer = ask(url, turn["question"], history)
        alone = ask(url, turn["question"], []) if turn["kind"] in ("topic-switch", "off-topic") else None
        results.append({"conversation": conversation["id"], "corpus": conversation["corpus"], "n": len(history) + 1,
                        "turn": turn, "answer": answer, "alone": alone, "right": is_right(turn, answer)})
        history.append({"question": turn["question"], "answer": "" if answer["abstained"] else answer["answer"]})
    return results


def run_corpus(conversations: list[dict], corpus: Path, scratch: Path) -> list[dict]:
    index = scratch / "index"
    print(f"indexing {corpus} ({len(conversations)} conversations)", file=sys.stderr)
    build_index(corpus, index)
    try:
        server, url, _ = start_server(index, corpus)
    except SystemExit as exc:  # bench/load.py's one-line reason
        raise SetupError(str(exc)) from None
    try:
        return [r for c in conversations for r in converse(url, c)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def same(a: dict, b: dict) -> bool:
    return (a["answer"], a["abstained"]) == (b["answer"], b["abstained"])


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "0/0"


def report(results: list[dict], show_wrong: bool) -> None:
    answerable = [r for r in results if r["turn"]["expect"] is not None]
    off_topic = [r for r in results if r["turn"]["kind"] == "off-topic"]
    switches = [r for r in results if r["turn"]["kind"] == "topic-switch"]
    confident_wrong = [r for r in results if not r["right"] and not r["answer"]["abstained"]
                       and r["answer"]["confidence"] >= CONFIDENT]
    conversations = len({r["conversation"] for r in results})
    print(f"conversations      {conversations}, {len(results)} turns")
    print(f"answerable turns   {share(sum(r['right'] for r in answerable), len(answerable))} right")
    by_kind, by_corpus = defaultdict(list), defaultdict(list)
    for r in results:
        by_kind[r["turn"]["kind"]].append(r["right"])
        by_corpus[r["corpus"]].append(r["right"])
    for kind in KINDS:
        print(f"  {kind:16s} {share(sum(by_kind[kind]), len(by_kind[kind]))}")
    for corpus, rights in sorted(by_corpus.items()):
        print(f"  corpus {corpus:9s} {share(sum(rights), len(rights))} (all turns)")
    print(f"off-topic declined {share(sum(r['answer']['abstained'] for r in off_topic), len(off_topic))} "
          f"(alone: {sum(r['alone']['abstained'] for r in off_topic)}/{len(off_topic)})")
    print(f"topic switches     {share(sum(same(r['answer'], r['alone']) for r in switches), len(switches))} "
          f"identical to asking alone")
    print(f"off-topic turns    {share(sum(same(r['answer'], r['alone']) for r in off_topic), len(off_topic))} "
          f"identical to asking alone")
    print(f"confident wrong    {len(confident_wrong)} (answered, wrong, confidence >= {CONFIDENT})")
    if show_wrong:
        failed = [r for r in results if not r["right"] or (r["alone"] and r["turn"]["kind"] == "topic-switch"
                                                              and not same(r["answer"], r["alone"]))]
        print(f"\n{len(failed)} failed turns:")
        for r in failed:
            turn, answer = r["turn"], r["answer"]
            given = "DECLINED" if answer["abstained"] else answer["answer"]
            print(f"- {r['conversation']} turn {r['n']} ({turn['kind']}): {turn['question']}")
            print(f"    expected {turn['expect'] or 'declined'}")
            print(f"    got ({answer['confidence']:.2f}) {given}")
            if r["alone"] and not same(answer, r["alone"]):
                alone = "DECLINED" if r["alone"]["abstained"] else r["alone"]["answer"]
                print(f"    alone ({r['alone']['confidence']:.2f}) {alone}")


DATA = ("conversations.jsonl", "conversations_check.jsonl", "conversations_check2.jsonl", "conversations_check3.jsonl")


def run_file(path: Path, seed_corpus: Path, real_corpus: Path) -> list[dict]:
    """Every conversation of one data file, seed and real corpora each indexed and served on its own."""
    conversations = load_conversations(path)
    results = []
    with tempfile.TemporaryDirectory(prefix="qa-conversations-") as scratch:
        runs = []  # (conversations, documents, scratch folder), all checked before any is run
        for corpus in ("seed", "real"):
            chosen = [c for c in conversations if c["corpus"] == corpus]
            if not chosen:
                continue
            folder = Path(scratch) / corpus
            folder.mkdir()
            if corpus == "seed":
                if not seed_corpus.is_dir():
                    raise SetupError(f"no seed corpus at {seed_corpus}")
                runs.append((chosen, seed_corpus, folder))
            else:
                runs.append((chosen, copy_documents(chosen, real_corpus, folder / "corpus"), folder))
        for chosen, documents, folder in runs:
            results += run_corpus(chosen, documents, folder)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[ROOT / "bench" / name for name in DATA])
    parser.add_argument("--seed-corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--real-corpus", type=Path, default=Path("/work/realdocs/corpus"))
    parser.add_argument("--show-wrong", action="store_true", help="list the failed turns with the answers given")
    args = parser.parse_args()
    pooled = []
    try:
        for path in args.data:
            results = run_file(path, args.seed_corpus, args.real_corpus)
            print(f"\n== {path.name}")
            report(results, args.show_wrong)
            pooled += results
    except SetupError as exc:
        print(f"conversations: {exc}", file=sys.stderr)
        sys.exit(2)
    if len(args.data) > 1:
        answerable = [r for r in pooled if r["turn"]["expect"] is not None]
        off_topic = [r for r in pooled if r["turn"]["kind"] == "off-topic"]
        right = share(sum(r["right"] for r in answerable), len(answerable))
        declined = share(sum(r["answer"]["abstained"] for r in off_topic), len(off_topic))
        print(f"\n== all {len(args.data)} sets: answerable turns {right} right, off-topic turns declined {declined}")


if __name__ == "__main__":
    main()
