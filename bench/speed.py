"""Indexing throughput, ask latency and peak memory of qa vs the LangChain FAISS tutorial recipe.

The recipe is the tutorial way: RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200),
HuggingFaceEmbeddings over the same local model, FAISS.from_texts, then similarity_search(k=4).
Both sides index the same texts (the first --docs SciFact abstracts) and answer the same questions
on the seed corpus. Every measurement runs in a fresh subprocess, so each side's peak RSS is its
own, and the rounds alternate which side goes first, because this machine is shared and noisy.
Model loading is outside the timed part on both sides.

    python bench/speed.py                 # 1,500 abstracts, 2 rounds
    python bench/speed.py --docs 300 --rounds 1
Needs the bench extra: pip install -e .[bench]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SEED = ROOT / "corpus"
INDEX_TARGET = 1.5  # qa indexing throughput / the recipe's
ASK_P50_TARGET_MS = 30.0

# Questions about the seed article; the rest of the question set comes from SQuAD, so some are
# off-topic and exercise abstention too.
SEED_QUESTIONS = [
    "Why does the alliance need reinforcement?",
    "What did the critical minerals agreement involve?",
    "Who met on October 28, 2025?",
    "When did Marco Rubio meet Motegi Toshimitsu?",
    "What is Kadena Air Base a reminder of?",
    "Where is Kadena Air Base?",
    "What drives the resurgence of the U.S.-Japan alliance?",
    "How has China's foreign policy changed the regional security calculus?",
    "Why has Japan increased its defense spending?",
    "What did the COVID-19 pandemic expose?",
    "Who is Akari Tanaka?",
    "What does Dr. Tanaka say about Japan's role?",
    "By how much did joint military training events increase?",
    "What does the Pentagon's Strategic Capabilities Command data show?",
    "What hurdles does the alliance face?",
    "What historical tensions remain between the U.S. and Japan?",
    "How does Japan's approach to Taiwan differ from that of the United States?",
    "Why is Japan more cautious about deterring Chinese aggression?",
    "Who is Kenji Ito?",
    "What does Professor Ito argue about Japan's strategic calculations?",
    "What is expected in the next six months?",
    "What could alter the dynamics of the alliance in the long term?",
    "What is the most probable long-term scenario?",
    "What will determine whether the alliance remains a cornerstone of global security?",
    "What does the critical minerals agreement address?",
    "How long has the alliance framework existed?",
    "What are the combined naval operations meant to demonstrate?",
    "What is the long-term trajectory of the alliance?",
    "Why is Japan an important trading partner?",
    "What role does public opinion play in Japan's security policy?",
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def scifact_rows(limit: int) -> list[dict]:
    rows = []
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt") as f:
        for line in f:
            row = json.loads(line)
            rows.append({"id": row["_id"], "title": row["title"], "text": row["text"]})
            if len(rows) >= limit:
                break
    return rows


def squad_questions(n: int) -> list[str]:
    data = json.loads((DATA / "squad" / "squad-v2-dev-half.json").read_text())["data"]
    questions = [q["question"] for a in data for p in a["paragraphs"] for q in p["qas"]]
    step = max(1, len(questions) // max(1, n))
    return questions[::step][:n]


def recipe_text(row: dict) -> str:
    return f"{row['title']} {row['text']}"  # the BEIR way: title and abstract as one text


# --- children: each runs one side of one measurement and prints one JSON line -------------------


def child_index_qa(work: Path) -> dict:
    from qa.config import DEFAULT_MODEL
    from qa.embed import Embedder
    from qa.pipeline import build

    embedder = Embedder(DEFAULT_MODEL)
    embedder.encode_documents(["warm up"], [[]])  # opens the model documents are encoded with, as `qa index` does
    index = work / f"qa-index-{os.getpid()}"
    started, cpu = time.perf_counter(), time.process_time()
    report = build(work / "corpus", index, DEFAULT_MODEL, embedder=embedder)
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "chunks": report.chunks}


def _recipe_embeddings():
    from langchain_huggingface import HuggingFaceEmbeddings

    from qa.config import DEFAULT_MODEL
    from qa.embed import resolve_model_path

    embeddings = HuggingFaceEmbeddings(model_name=resolve_model_path(DEFAULT_MODEL))
    embeddings.embed_query("warm up")
    return embeddings


def _recipe_splitter():
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)


def child_index_recipe(work: Path) -> dict:
    from langchain_community.vectorstores import FAISS

    embeddings = _recipe_embeddings()
    started, cpu = time.perf_counter(), time.process_time()
    with open(work / "corpus" / "scifact.jsonl") as f:
        texts = [recipe_text(json.loads(line)) for line in f]
    splitter = _recipe_splitter()
    pieces = [piece for text in texts for piece in splitter.split_text(text)]
    FAISS.from_texts(pieces, embeddings)
    return {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "chunks": len(pieces)}


def _timed(function, questions: list[str], warm_up: int = 5) -> list[float]:
    for question in questions[:warm_up]:
        function(question)
    latencies = []
    for question in questions:
        started = time.perf_counter()
        function(question)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def child_index_seed(work: Path) -> dict:
    """`qa index` of the seed corpus, so the ask child opens a built index as `qa ask` and `qa serve` do."""
    from qa.config import DEFAULT_MODEL
    from qa.pipeline import build

    build(SEED, work / "qa-seed", DEFAULT_MODEL)
    return {}


def child_ask_qa(work: Path) -> dict:
    from qa.pipeline import QA

    qa = QA(work / "qa-seed")  # the model opens from its ONNX cache, without torch, as in `qa serve`
    questions = json.loads((work / "questions.json").read_text())
    stages: dict[str, list[float]] = {}

    def ask(question: str) -> None:
        for stage, ms in qa.ask(question).timings_ms.items():
            stages.setdefault(stage, []).append(ms)

    latencies = _timed(ask, questions)
    timed = {stage: ms[-len(questions) :] for stage, ms in stages.items()}  # without the warm-up
    return {"ms": latencies, "stages": {stage: statistics.median(ms) for stage, ms in timed.items()}}


def child_ask_recipe(work: Path) -> dict:
    from langchain_community.vectorstores import FAISS

    embeddings = _recipe_embeddings()
    splitter = _recipe_splitter()
    pieces = [piece for path in sorted(SEED.glob("*.txt")) for piece in splitter.split_text(path.read_text())]
    store = FAISS.from_texts(pieces, embeddings)
    questions = json.loads((work / "questions.json").read_text())
    return {"ms": _timed(lambda q: store.similarity_search(q, k=4), questions)}


CHILDREN = {
    "index-seed": child_index_seed,
    "index-qa": child_index_qa,
    "index-recipe": child_index_recipe,
    "ask-qa": child_ask_qa,
    "ask-recipe": child_ask_recipe,
}


def run_child(mode: str, work: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--work", str(work)],
        env=env, capture_output=True, text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{mode} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


# --- the parent: prepare, alternate the sides, print the table ----------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def alternate(kind: str, rounds: int, work: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"qa": [], "recipe": []}
    for number in range(rounds):
        for side in ("qa", "recipe") if number % 2 == 0 else ("recipe", "qa"):
            result = run_child(f"{kind}-{side}", work)
            results[side].append(result)
            if "seconds" in result:
                shown = f"{result['seconds']:.1f} s"
            else:
                shown = f"p50 {percentile(result['ms'], 0.5):.1f} ms"
            print(f"  round {number + 1} {kind} {side:6} {shown}  peak RSS {result['rss_mb']:.0f} MB", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1500, help="SciFact abstracts to index (of 5,183)")
    parser.add_argument("--rounds", type=int, default=2, help="repeats of each measurement, order alternated")
    parser.add_argument("--questions", type=int, default=100, help="questions asked on the seed corpus")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = CHILDREN[args.child](args.work)
        result["rss_mb"] = peak_rss_mb()
        print("RESULT " + json.dumps(result), flush=True)
        return

    try:
        import langchain_community  # noqa: F401
        import langchain_huggingface  # noqa: F401
    except ImportError:
        sys.exit("the recipe needs the bench extra: pip install -e .[bench]")

    with tempfile.TemporaryDirectory(prefix="qa-speed-") as tmp:
        work = Path(tmp)
        rows = scifact_rows(args.docs)
        (work / "corpus").mkdir()
        with open(work / "corpus" / "scifact.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        chars = sum(len(recipe_text(row)) for row in rows)
        questions = SEED_QUESTIONS + squad_questions(max(0, args.questions - len(SEED_QUESTIONS)))
        (work / "questions.json").write_text(json.dumps(questions))

        print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        index = alternate("index", args.rounds, work)
        run_child("index-seed", work)
        ask = alternate("ask", args.rounds, work)
        print(f"load average at end: {os.getloadavg()[0]:.1f}", flush=True)

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in index[side])

    seconds = {side: median(side, "seconds") for side in index}
    cpu = {side: median(side, "cpu") for side in index}
    throughput = {side: chars / seconds[side] for side in index}
    per_round = [r["seconds"] / q["seconds"] for q, r in zip(index["qa"], index["recipe"])]
    latencies = {side: [ms for r in ask[side] for ms in r["ms"]] for side in ask}
    p50 = {side: percentile(latencies[side], 0.5) for side in ask}
    p95 = {side: percentile(latencies[side], 0.95) for side in ask}
    index_rss = {side: max(r["rss_mb"] for r in index[side]) for side in index}
    ask_rss = {side: max(r["rss_mb"] for r in ask[side]) for side in ask}
    index_ratio = throughput["qa"] / throughput["recipe"]

    print()
    print(f"qa vs LangChain FAISS recipe: index {len(rows):,} SciFact abstracts ({chars:,} characters); "
          f"ask {len(questions)} questions on the seed corpus; {args.rounds} round(s), order alternated")
    rows_out = [
        ("index chunks", f"{index['qa'][0]['chunks']:,}", f"{index['recipe'][0]['chunks']:,}", ""),
        ("index seconds (median)", f"{seconds['qa']:.1f}", f"{seconds['recipe']:.1f}",
         f"{seconds['qa'] / seconds['recipe']:.2f}x"),
        ("index CPU seconds (median)", f"{cpu['qa']:.1f}", f"{cpu['recipe']:.1f}", f"{cpu['qa'] / cpu['recipe']:.2f}x"),
        ("index CPUs busy (CPU s / s)", f"{cpu['qa'] / seconds['qa']:.2f}", f"{cpu['recipe'] / seconds['recipe']:.2f}",
         ""),
        ("index throughput (chars/s)", f"{throughput['qa']:,.0f}", f"{throughput['recipe']:,.0f}",
         f"{index_ratio:.2f}x"),
        ("index throughput (docs/s)", f"{len(rows) / seconds['qa']:.1f}", f"{len(rows) / seconds['recipe']:.1f}",
         f"{index_ratio:.2f}x"),
        ("index peak RSS (MB)", f"{index_rss['qa']:,.0f}", f"{index_rss['recipe']:,.0f}",
         f"{index_rss['qa'] / index_rss['recipe']:.2f}x"),
        ("ask p50 (ms)", f"{p50['qa']:.1f}", f"{p50['recipe']:.1f}", f"{p50['qa'] / p50['recipe']:.2f}x"),
        ("ask p95 (ms)", f"{p95['qa']:.1f}", f"{p95['recipe']:.1f}", f"{p95['qa'] / p95['recipe']:.2f}x"),
        ("ask peak RSS (MB)", f"{ask_rss['qa']:,.0f}", f"{ask_rss['recipe']:,.0f}",
         f"{ask_rss['qa'] / ask_rss['recipe']:.2f}x"),
    ]
    print(f"{'':28} {'qa':>12} {'recipe':>12} {'qa/recipe':>10}")
    for name, ours, theirs, ratio in rows_out:
        print(f"{name:28} {ours:>12} {theirs:>12} {ratio:>10}")
    print("index throughput ratio per round: " + ", ".join(f"{r:.2f}x" for r in per_round))
    # On a busy machine the wall times say more about the other jobs than about either side.
    print("index CPU seconds, recipe / qa, per round: "
          + ", ".join(f"{r['cpu'] / q['cpu']:.2f}x" for q, r in zip(index["qa"], index["recipe"])))
    print("ask is qa's full answer (retrieve + select sentences + cite) vs the recipe's similarity_search(k=4)")
    stages = ask["qa"][0].get("stages", {})
    print("qa ask stages, median ms: " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in stages.items()))
    met = {True: "met", False: "NOT met"}
    print(f"target: indexing >= {INDEX_TARGET}x the recipe's throughput: {index_ratio:.2f}x, "
          f"{met[index_ratio >= INDEX_TARGET]}")
    print(f"target: ask p50 <= {ASK_P50_TARGET_MS:.0f} ms: {p50['qa']:.1f} ms, {met[p50['qa'] <= ASK_P50_TARGET_MS]}")


if __name__ == "__main__":
    main()
