"""qa at scale: build (or reuse) an index of N chunks, then measure it as a user would.

The N chunks are made by bench/scale_data.py: real text (each chunk is a real chunk of SciFact,
SQuAD or the real documents corpus) with vectors mixed and perturbed from the real ones, so no
hour-long embedding is needed. They are written as a real corpus folder (JSONL files of one
document a row, a few hundred files at 1M) and the index is written through qa's store with the
manifest `qa index` writes, so `qa index` over that folder is incremental, as for any index.

Then, each in a fresh process, through the public API (qa.pipeline.QA and the `qa` command):
open_s / rss_open_mb (QA(index)), ask_p50_ms / ask_p95_ms / rss_ask_mb (full answers to ~100
real questions, end to end), recall_at_10 (the index's dense search vs exact search over the
same made vectors), dense_ms / bm25_ms / rank_ms (the median cost per question of the index's
dense search, its BM25 scores and the whole ranking, on the same questions after the timed asks),
and `qa index` as a user runs it: add_file_s (one real 10-page PDF added to the corpus folder),
change_file_s (one row of one corpus file edited), delete_file_s (one corpus file removed),
check_s (nothing changed) and verify_s (`--verify`, nothing changed); after each change the corpus
and the index are brought back to the N made chunks, untimed. Plus disk_mb and build_s. Prints,
last, one JSON line.

    python bench/scale.py --chunks 10000 --index /tmp/qa-scale/idx-10k
    python bench/scale.py --chunks 1000000 --index /tmp/qa-scale/idx-1m   # hours; memory-bound today
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scale_data import (  # noqa: E402
    DEFAULT_CACHE,
    MadeChunks,
    RealSample,
    made_sentence_vectors,
    make_vectors,
    nearest,
    real_questions,
    real_sample,
)
from qa.chunk import ChunkSettings, sentence_spans  # noqa: E402
from qa.config import DEFAULT_MODEL, DEFAULT_PRECISION  # noqa: E402
from qa.load import TableFields, load_file  # noqa: E402
from qa.store import FileEntry, IndexLock, open_index, read_manifest  # noqa: E402
from qa.types import Chunk  # noqa: E402

ADDED_FILE = Path("/work/realdocs/corpus/texlive-latex-base-doc/cfgguide.pdf")  # 10 real pages
ADDED_DIR = "zz-added"  # sorts after the chunk files, so chunk ids of the N chunks do not move
PENDING = "scale-restore"  # in the index folder: a corpus file changed or removed, kept until restored
QUESTIONS = 100
SEED = 0


def corpus_files(n: int) -> list[range]:
    """Which made chunks go in which corpus file: a few hundred files at 1M, each a JSONL table."""
    files = max(1, min(400, n // 250))
    size = -(-n // files)
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


def chunk_file(number: int) -> str:
    return f"chunks-{number:04d}.jsonl"


def write_corpus(corpus: Path, sample: RealSample, made: MadeChunks) -> list[tuple[str, range]]:
    """One JSONL row per made chunk: its parent's real title and text."""
    corpus.mkdir(parents=True, exist_ok=True)
    written = []
    for number, rows in enumerate(corpus_files(len(made.parents))):
        name = chunk_file(number)
        with open(corpus / name, "w") as f:
            for i in rows:
                parent = int(made.parents[i])
                f.write(json.dumps({"id": str(i), "title": sample.titles[parent], "text": sample.texts[parent]},
                                   ensure_ascii=False) + "\n")
        written.append((name, rows))
    return written


def file_entry(corpus: Path, name: str, rows: range, sample: RealSample, made: MadeChunks) -> FileEntry:
    """What qa's build would hold for one corpus file: its documents as qa's loader reads them, each
    one chunk, with the made chunk vector and sentence vectors."""
    data = (corpus / name).read_bytes()
    documents = load_file(corpus / name, name, data, TableFields())
    if len(documents) != len(rows):
        raise RuntimeError(f"{name}: the loader read {len(documents)} documents from {len(rows)} rows")
    chunks, spans, sentence_vectors = [], [], []
    for i, document in zip(rows, documents):
        chunks.append(Chunk(document.source, document.title, "", 0, len(document.text), document.text))
        own = np.array(sentence_spans(document.text), dtype=np.int64).reshape(-1, 2)
        moved = made_sentence_vectors(sample, made, i)
        if len(moved) == 0:  # a parent whose sentence rows are missing: use the chunk's own vector
            moved = made.vectors[i : i + 1].astype(np.float16)
        spans.append(own)
        sentence_vectors.append(moved[np.arange(len(own)) % len(moved)])
    return FileEntry(
        file=name,
        sha256=hashlib.sha256(data).hexdigest(),
        documents=documents,
        chunks=chunks,
        chunk_vectors=made.vectors[rows.start : rows.stop],
        sentence_spans=spans,
        sentence_vectors=sentence_vectors,
    )


def write_build(folder: Path, entries: Iterable[FileEntry], dimension: int, corpus: Path,
                replacing: Iterable[str] = ()) -> None:
    """Save these entries (streamed) as the index's live build, with the settings `qa index` records,
    so a later `qa index` over the same corpus reuses every file; with `replacing`, on top of the
    live build less those files. The one place that knows the store's write API: adapt here when it
    changes."""
    from qa.ingest import _settings_of, _versions  # the manifest keys `qa index` compares on reuse
    from qa.save import save_build

    manifest = {
        **_settings_of(DEFAULT_MODEL, DEFAULT_PRECISION, ChunkSettings(), TableFields()),
        "corpus": str(corpus.resolve()),
        "versions": _versions(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "skipped": [],
    }
    replacing = set(replacing)
    with IndexLock(folder):
        base = open_index(folder) if replacing else None
        save_build(folder, entries, manifest, dimension, base=base, drop=replacing)


def build_scale_index(index: Path, corpus: Path, sample: RealSample, made: MadeChunks, started: float) -> dict:
    """Write the made chunks as a corpus folder and as an index; returns what scale.json keeps, its
    build_s counted from `started` (before the chunks were made)."""
    n = len(made.parents)
    shutil.rmtree(corpus, ignore_errors=True)
    written = write_corpus(corpus, sample, made)
    entries = (file_entry(corpus, name, rows, sample, made) for name, rows in written)
    write_build(index, entries, made.vectors.shape[1], corpus)
    info = {"chunks": n, "seed": SEED, "vectors": made.method, "real_sample_chunks": len(sample),
            "corpus": str(corpus), "corpus_files": len(written), "build_s": round(time.perf_counter() - started, 1)}
    (index / "scale.json").write_text(json.dumps(info, indent=2))
    return info


def _run_child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


_ASK = """
import json, sys, time
import numpy as np
def rss_mb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
from qa.pipeline import QA
index, questions_path, vectors_out = sys.argv[1:4]
questions = json.load(open(questions_path))
started = time.perf_counter()
qa = QA(index)
open_s = time.perf_counter() - started
rss_open = rss_mb()
started = time.perf_counter()
qa.ask(questions[0])
first_ms = (time.perf_counter() - started) * 1000
times = []
for question in questions:
    started = time.perf_counter()
    qa.ask(question)
    times.append((time.perf_counter() - started) * 1000)
rss_ask = rss_mb()
from qa.lexical import tokenize
from qa.pipeline import read_question
from qa.retrieve import POOL, rank
index = qa.index
vectors = qa.embedder.encode_queries(questions)
# a chunk's source is "<file>#<row id>", the row id its made chunk's number: ids move, sources do not
found = [[int(index.chunk(i).source.rsplit("#", 1)[1]) for i in index.dense_search(v, 10)[0].tolist() if i >= 0]
         for v in vectors]
np.save(vectors_out, vectors)
split = {"dense_ms": [], "bm25_ms": [], "rank_ms": []}
pool = min(POOL, index.chunk_count)
for question, vector in zip(questions, vectors):
    terms = tokenize(read_question(question).query)  # as qa.ask ranks
    t0 = time.perf_counter()
    index.dense_search(vector, pool)
    t1 = time.perf_counter()
    index.lexical_scores(terms)
    t2 = time.perf_counter()
    rank(index, vector, terms)
    t3 = time.perf_counter()
    for key, seconds in zip(split, (t1 - t0, t2 - t1, t3 - t2)):
        split[key].append(seconds * 1000)
print(json.dumps({"open_s": open_s, "rss_open_mb": rss_open, "first_ask_ms": first_ms,
                  "ask_p50_ms": float(np.percentile(times, 50)), "ask_p95_ms": float(np.percentile(times, 95)),
                  "rss_ask_mb": rss_ask, "found": found,
                  **{key: float(np.median(ms)) for key, ms in split.items()}}))
"""


def measure_asks(index: Path, made_vectors: np.ndarray, questions: list[str], work: Path) -> dict:
    """Open and ask in a fresh process; recall of its dense search against exact search."""
    questions_path, vectors_path = work / "questions.json", work / "question-vectors.npy"
    questions_path.write_text(json.dumps(questions))
    result = _run_child(_ASK, str(index), str(questions_path), str(vectors_path))
    query_vectors = np.load(vectors_path)
    exact = nearest(query_vectors, made_vectors, 10)[1]
    found = result.pop("found")
    result["recall_at_10"] = sum(len(set(f) & set(e)) for f, e in zip(found, exact.tolist())) / exact.size
    return result


def run_qa_index(corpus: Path, index: Path, *flags: str) -> tuple[float, int]:
    """Run `qa index` as a user would: its seconds and how many files it embedded."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", "from qa.cli import main; main()", "index", "--corpus", str(corpus),
                          "--index", str(index), *flags], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"qa index failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    embedded = re.search(r"(\d+) embedded, \d+ unchanged", out.stdout + out.stderr)
    return time.perf_counter() - started, int(embedded.group(1)) if embedded else -1


def measure_add_file(corpus: Path, index: Path, added: Path) -> float:
    """Seconds for `qa index` to add one real document to the N-chunk index; then the document is
    removed and the index brought back to the N chunks (not timed)."""
    target = corpus / ADDED_DIR
    target.mkdir(exist_ok=True)
    shutil.copy(added, target / added.name)
    seconds, embedded = run_qa_index(corpus, index)
    # anything else embedded means the written build was not reusable: the store's manifest or
    # entries drifted from what `qa index` writes (see write_build)
    if embedded != 1:
        raise RuntimeError(f"`qa index` embedded {embedded} files to add one: the N-chunk build was not reused")
    shutil.rmtree(target)
    run_qa_index(corpus, index)
    return seconds


def restore_pending(corpus: Path, index: Path, sample: RealSample, made: MadeChunks) -> None:
    """Put back the corpus files a change or deletion set aside, and their made chunks in the index
    (untimed: `qa index` would embed them with the model, not as made)."""
    pending = index / PENDING
    if not pending.is_dir():
        return
    ranges = {chunk_file(number): rows for number, rows in enumerate(corpus_files(len(made.parents)))}
    names = sorted(p.name for p in pending.iterdir())
    for name in names:
        shutil.copy(pending / name, corpus / name)
    write_build(index, (file_entry(corpus, name, ranges[name], sample, made) for name in names),
                made.vectors.shape[1], corpus, replacing=names)
    shutil.rmtree(pending)


def measure_change(corpus: Path, index: Path, sample: RealSample, made: MadeChunks, delete: bool) -> float:
    """Seconds for `qa index` after one corpus file of the N chunks had one row's text edited (or,
    with `delete`, was removed); then file and index are restored (not timed)."""
    number = len(corpus_files(len(made.parents))) // 2
    name = chunk_file(number)
    pending = index / PENDING
    pending.mkdir(exist_ok=True)
    shutil.copy(corpus / name, pending / name)
    if delete:
        (corpus / name).unlink()
    else:
        first, rest = (corpus / name).read_text().split("\n", 1)
        row = json.loads(first)
        row["text"] = "Edited for the benchmark. " + row["text"]
        (corpus / name).write_text(json.dumps(row, ensure_ascii=False) + "\n" + rest)
    seconds, embedded = run_qa_index(corpus, index)
    if embedded != (0 if delete else 1):
        raise RuntimeError(f"`qa index` embedded {embedded} files after one was {'removed' if delete else 'changed'}")
    restore_pending(corpus, index, sample, made)
    return seconds


def measure_check(corpus: Path, index: Path, *flags: str) -> float:
    """Seconds for `qa index` with nothing changed; it must embed nothing (so the restores held)."""
    seconds, embedded = run_qa_index(corpus, index, *flags)
    if embedded != 0:
        raise RuntimeError(f"`qa index {' '.join(flags)}` embedded {embedded} files with nothing changed")
    return seconds


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, required=True, help="chunks in the index")
    parser.add_argument("--index", type=Path, required=True, help="index folder (reused if it holds N chunks)")
    parser.add_argument("--corpus", type=Path, help="its corpus folder (default: <index>-corpus)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="real sample and question vectors")
    parser.add_argument("--add-file", type=Path, default=ADDED_FILE, help="the real document `qa index` adds")
    parser.add_argument("--questions", type=int, default=QUESTIONS)
    args = parser.parse_args()
    if args.chunks < 1:
        parser.error("--chunks must be at least 1")
    if not args.add_file.is_file():
        parser.error(f"--add-file {args.add_file} is not a file")
    corpus = args.corpus or args.index.with_name(args.index.name + "-corpus")

    scale_json = args.index / "scale.json"
    info = json.loads(scale_json.read_text()) if scale_json.is_file() else {}
    reused = info.get("chunks") == args.chunks and Path(info.get("corpus", "")) == corpus and corpus.is_dir()
    # both folders are replaced when not reused: never ones this script did not make
    if not reused and args.index.exists() and any(args.index.iterdir()) and not scale_json.is_file():
        parser.error(f"--index {args.index} holds something not made by bench/scale.py: pick another folder")
    if not reused and corpus.exists() and any(corpus.iterdir()) and Path(info.get("corpus", "")) != corpus:
        parser.error(f"--corpus {corpus} holds files not made by bench/scale.py: pick another folder")
    started = time.perf_counter()
    sample = real_sample(args.cache)
    made = make_vectors(sample, args.chunks, seed=info.get("seed", SEED) if reused else SEED)
    if reused:
        restore_pending(corpus, args.index, sample, made)  # a run stopped while a file was changed or removed
        if read_manifest(args.index)["counts"]["chunks"] != args.chunks:
            # a run stopped while the extra document was in: index the corpus as it was made
            shutil.rmtree(corpus / ADDED_DIR, ignore_errors=True)
            run_qa_index(corpus, args.index)
    else:
        shutil.rmtree(args.index, ignore_errors=True)
        info = build_scale_index(args.index, corpus, sample, made, started)
    print(f"{'reused' if reused else 'built'} an index of {args.chunks} chunks in {args.index} "
          f"(corpus {corpus}, {info['corpus_files']} files)", file=sys.stderr)

    texts, _ = real_questions(args.cache)
    rng = np.random.default_rng(5)
    questions = [texts[i] for i in rng.choice(len(texts), size=min(args.questions, len(texts)), replace=False)]
    work = args.index / "scale-work"
    work.mkdir(exist_ok=True)
    asks = measure_asks(args.index, made.vectors, questions, work)
    shutil.rmtree(work)
    live = (args.index / "current").resolve()
    result = {
        "chunks": args.chunks,
        "open_s": round(asks["open_s"], 3),
        "rss_open_mb": round(asks["rss_open_mb"]),
        "rss_ask_mb": round(asks["rss_ask_mb"]),
        "first_ask_ms": round(asks["first_ask_ms"], 1),
        "ask_p50_ms": round(asks["ask_p50_ms"], 1),
        "ask_p95_ms": round(asks["ask_p95_ms"], 1),
        "recall_at_10": round(asks["recall_at_10"], 4),
        "dense_ms": round(asks["dense_ms"], 2),
        "bm25_ms": round(asks["bm25_ms"], 2),
        "rank_ms": round(asks["rank_ms"], 2),
        "questions": len(questions),
        "disk_mb": round(disk_mb(live), 1),
        "build_s": info["build_s"],
        "reused": reused,
        "add_file_s": round(measure_add_file(corpus, args.index, args.add_file), 2),
        "added_file": args.add_file.name,
        "change_file_s": round(measure_change(corpus, args.index, sample, made, delete=False), 2),
        "delete_file_s": round(measure_change(corpus, args.index, sample, made, delete=True), 2),
        "check_s": round(measure_check(corpus, args.index), 2),
        "verify_s": round(measure_check(corpus, args.index, "--verify"), 2),
        "vectors": info["vectors"],
        "real_sample_chunks": info["real_sample_chunks"],
        "corpus_files": info["corpus_files"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
