"""An index kept up to date through several incremental runs (files added, changed and deleted,
segments merged, then optimized into one) answers and searches exactly as a fresh full build of
the same files; an index whose segments are searched through an IVF index says so in `qa info`
and answers."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SEED, write_corpus

import qa.save
from qa.chunk import ChunkSettings
from qa.cli import main
from qa.config import DEFAULT_MODEL
from qa.lexical import tokenize
from qa.pipeline import QA, build
from qa.store import open_index, read_manifest

CHUNKING = ChunkSettings(tokens=64, overlap=8)
PARAGRAPHS = [p for p in SEED.read_text(encoding="utf-8").split("\n\n") if len(p) > 500]
EXTRA = {
    "otters.txt": "Sea otters use stones as tools to crack open clams and urchins while floating on their backs.",
    "ferry.txt": "The harbour ferry leaves the north pier every forty minutes between six in the morning and midnight.",
    "herons.txt": "Grey herons stand motionless in the shallows for an hour before striking at a passing fish.",
}
QUESTIONS = [
    "How much did joint military training events increase?",
    "Who met on October 28, 2025?",
    "What does the critical minerals agreement involve?",
    "What do sea otters use as tools?",
    "When does the harbour ferry leave?",
    "Where is Kadena Air Base?",
]


def _editions() -> list[tuple[dict[str, str | None], int]]:
    """Changes to the corpus, run after run ({file: new text, or None to delete}), each with the
    MERGE_FACTOR of its run: a low one makes segments merge."""
    seed = {f"alliance/{i}.txt": p for i, p in enumerate(PARAGRAPHS)}
    return [
        ({**dict(list(seed.items())[:3]), "otters.txt": EXTRA["otters.txt"]}, 10),
        ({**dict(list(seed.items())[3:]), "ferry.txt": EXTRA["ferry.txt"]}, 10),  # added
        ({"alliance/0.txt": PARAGRAPHS[0].replace("October 28, 2025", "November 3, 2025"),  # changed
          "otters.txt": None}, 10),  # deleted
        ({"herons.txt": EXTRA["herons.txt"], "ferry.txt": EXTRA["ferry.txt"] + " Tickets cost two euros.",
          "otters.txt": EXTRA["otters.txt"]}, 2),  # merged: two segments of a size are one too many
    ]


def _apply(corpus, changes: dict[str, str | None]) -> None:
    for name, text in changes.items():
        if text is None:
            (corpus / name).unlink()
        else:
            write_corpus(corpus, {name: text})


def _results(index, embedder) -> list:
    """What a user sees for each question: the answer with its citations, and the search results."""
    qa_ = QA(index, embedder=embedder)
    seen = []
    for question in QUESTIONS:
        answer = qa_.ask(question).to_dict()
        del answer["timings_ms"]
        hits = qa_.search(question, k=10)
        seen.append((answer, [(p.chunk.source, p.chunk.start, p.chunk.end, p.chunk.text) for p in hits],
                     np.array([p.score for p in hits])))
    return seen


def _assert_same(got: list, expected: list) -> None:
    for (answer, hits, scores), (answer_e, hits_e, scores_e) in zip(got, expected):
        assert hits == hits_e
        np.testing.assert_allclose(scores, scores_e, atol=1e-5)
        assert answer["answer"] == answer_e["answer"]
        assert [(c["source"], c["start"], c["end"], c["highlights"]) for c in answer["citations"]] == [
            (c["source"], c["start"], c["end"], c["highlights"]) for c in answer_e["citations"]]
        assert answer["confidence"] == pytest.approx(answer_e["confidence"], abs=1e-3)


def test_incremental_runs_answer_exactly_as_a_fresh_build_of_the_same_files(tmp_path, embedder, monkeypatch):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    for run, (changes, merge_factor) in enumerate(_editions()):
        _apply(corpus, changes)
        monkeypatch.setattr(qa.save, "MERGE_FACTOR", merge_factor)
        report = build(corpus, index, DEFAULT_MODEL, CHUNKING, embedder=embedder)
        assert report.embedded == sum(text is not None for text in changes.values())  # only what changed
        fresh = build(corpus, tmp_path / f"fresh-{run}", DEFAULT_MODEL, CHUNKING, embedder=embedder)
        assert (report.files, report.documents, report.chunks) == (fresh.files, fresh.documents, fresh.chunks)
        _assert_same(_results(index, embedder), _results(tmp_path / f"fresh-{run}", embedder))

    manifest = read_manifest(index)
    assert len(manifest["segments"]) == 1 and manifest["segments"][0]["deleted"]["files"] == []  # merged at the end
    live = open_index(index)
    assert live.chunk_count == live.id_space == manifest["counts"]["chunks"]
    assert live.first_document("otters.txt").text == EXTRA["otters.txt"]
    assert all(info["indexed_at"] for info in manifest["files"].values())  # kept through the merges

    _apply(corpus, {"herons.txt": None})
    build(corpus, index, DEFAULT_MODEL, CHUNKING, embedder=embedder)
    assert read_manifest(index)["segments"][0]["deleted"]["files"] == ["herons.txt"]
    assert open_index(index).document("herons.txt") is None
    result = CliRunner().invoke(main, ["index", "--corpus", str(corpus), "--index", str(index), "--optimize",
                                       "--chunk-tokens", "64", "--chunk-overlap", "8"])
    assert result.exit_code == 0 and "0 embedded" in result.stdout, result.output
    [segment] = read_manifest(index)["segments"]
    assert segment["deleted"]["files"] == [] and segment["files"] == len(list(corpus.rglob("*.txt")))
    fresh = build(corpus, tmp_path / "fresh-last", DEFAULT_MODEL, CHUNKING, embedder=embedder)
    assert fresh.chunks == open_index(index).id_space
    _assert_same(_results(index, embedder), _results(tmp_path / "fresh-last", embedder))


def test_a_segment_over_the_ann_threshold_is_searched_through_ivf_and_qa_info_says_so(tmp_path, embedder,
                                                                                     monkeypatch):
    monkeypatch.setattr("qa.ingest.Embedder", lambda model, **_: embedder)
    monkeypatch.setenv("QA_ANN_THRESHOLD", "5")
    corpus = write_corpus(tmp_path / "corpus", {SEED.name: SEED.read_text(encoding="utf-8"), **EXTRA})
    index = tmp_path / "index"
    result = CliRunner().invoke(main, ["index", "--corpus", str(corpus), "--index", str(index)])
    assert result.exit_code == 0, result.output
    [segment] = read_manifest(index)["segments"]
    # too few chunks to train more than one list on: that one list is probed, as exact search would
    assert segment["dense"] == {"kind": "ivf_sq8", "nlist": 1, "nprobe": 1}
    assert (index / "current" / segment["name"] / "dense.ivf").is_file()
    info = CliRunner().invoke(main, ["info", "--index", str(index)])
    assert re.search(r"IVF-SQ8, rescored exactly \(nlist=1, nprobe=1\) dense search; segments of over 5 chunks",
                     info.stdout), info.stdout
    ask = CliRunner().invoke(main, ["ask", "Where is Kadena Air Base?", "--index", str(index)])
    assert ask.exit_code == 0 and "Okinawa" in ask.stdout, ask.output

    exact = build(corpus, tmp_path / "exact", DEFAULT_MODEL, embedder=embedder)  # the default threshold
    assert read_manifest(tmp_path / "exact")["segments"][0]["dense"] == {"kind": "exact"} and exact.chunks > 5
    # an index this small is searched in full: the same passages as exact search
    _assert_same(_results(index, embedder), _results(tmp_path / "exact", embedder))

    (corpus / "otters.txt").unlink()  # the IVF index stays; its chunks of otters.txt are deleted
    result = CliRunner().invoke(main, ["index", "--corpus", str(corpus), "--index", str(index)])
    assert result.exit_code == 0 and "1 removed" in result.stdout, result.output
    [carried] = read_manifest(index)["segments"]
    assert carried["name"] == segment["name"] and carried["dense"]["kind"] == "ivf_sq8"
    deleted = carried["deleted"]
    assert (deleted["files"], deleted["chunks"], deleted["documents"]) == (["otters.txt"], 1, 1)
    assert deleted["tokens"] >= len(tokenize(EXTRA["otters.txt"]))
    assert "otters.txt" not in {p.chunk.source for p in QA(index, embedder=embedder).search("sea otters", k=50)}
    build(corpus, tmp_path / "exact", DEFAULT_MODEL, embedder=embedder)
    _assert_same(_results(index, embedder), _results(tmp_path / "exact", embedder))


def test_an_index_of_the_old_format_is_rebuilt_from_scratch_saying_why_on_one_line(seed_index, embedder,
                                                                                   monkeypatch):
    monkeypatch.setattr("qa.ingest.Embedder", lambda model, **_: embedder)
    manifest = seed_index / "current" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"format_version": 2', '"format_version": 1'))
    ask = CliRunner().invoke(main, ["ask", "Where is Kadena Air Base?", "--index", str(seed_index)])
    assert ask.exit_code != 0 and "has format 1, this qa reads 2: rebuild it with `qa index" in ask.stderr
    result = CliRunner().invoke(main, ["index", "--corpus", str(SEED.parent), "--index", str(seed_index)])
    assert result.exit_code == 0, result.output
    [line] = [x for x in re.split(r"[\r\n]+", result.stderr) if x.startswith("rebuilt")]
    assert line.startswith("rebuilt from scratch: the previous index could not be read (index at")
    assert "1 embedded" in result.stdout


def test_qa_index_verify_hashes_even_files_whose_size_and_time_look_untouched(seed_index, embedder, monkeypatch):
    monkeypatch.setattr("qa.ingest.Embedder", lambda model, **_: embedder)
    [vectors] = (seed_index / "current").glob("seg-*/chunks.npy")
    stat, data = vectors.stat(), bytearray(vectors.read_bytes())
    data[-3] ^= 0x01  # a bit flipped where nothing but the hash can tell
    vectors.write_bytes(bytes(data))
    os.utime(vectors, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    args = ["index", "--corpus", str(seed_index.parent / "corpus"), "--index", str(seed_index)]
    quick = CliRunner().invoke(main, args)
    assert quick.exit_code == 0 and "0 embedded, 1 unchanged" in quick.stdout, quick.output
    full = CliRunner().invoke(main, [*args, "--verify"])
    assert full.exit_code == 0 and "1 embedded" in full.stdout, full.output
    assert re.search(r"rebuilt from scratch: the previous index is damaged \(seg-[^/]+/chunks.npy is not the file "
                     r"this build wrote\)", full.stderr), full.stderr


def test_ivf_lists_grow_as_four_root_n_with_enough_vectors_to_train_each():
    from qa.dense import lists_for

    assert [lists_for(n) for n in (10, 78, 5_000, 50_001, 1_000_000)] == [1, 2, 128, 1024, 4096]
    assert all(n >= 39 * lists_for(n) or lists_for(n) == 1 for n in range(1, 20_000, 97))


@pytest.mark.parametrize("kind_name", ["ivf_sq8", "ivf_flat"])  # IVF-Flat: segments built before SQ8
def test_an_ivf_index_of_several_lists_opens_mapped_finds_the_nearest_with_exact_scores_and_never_a_deleted_chunk(
        tmp_path, embedder, kind_name):
    from qa.dense import build_ann, describe, kind_for, open_ann, search

    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", SEED.read_text(encoding="utf-8")) if len(s) > 30]
    # sentences and runs of two and three of them: enough vectors to train several lists on
    texts = [" ".join(sentences[i : i + n]) for n in (1, 2, 3) for i in range(len(sentences) - n + 1)]
    vectors = embedder.encode_queries(texts).astype(np.float32)
    np.save(tmp_path / "chunks.npy", vectors)
    mapped = np.load(tmp_path / "chunks.npy", mmap_mode="r")
    kind = {**kind_for(len(vectors), threshold=10), "kind": kind_name}
    assert kind["nlist"] > 1 and describe(kind).endswith(f"(nlist={kind['nlist']}, nprobe={kind['nprobe']})")
    build_ann(mapped, kind, tmp_path / "dense.ivf")
    ann = open_ann(tmp_path / "dense.ivf", {**kind, "nprobe": kind["nlist"]})  # every list: exact
    deleted = np.zeros(len(vectors), bool)
    deleted[::3] = True
    reads = []

    def vectors_at(ids):
        reads.append(len(ids))
        return np.asarray(mapped[ids])

    for query in vectors[:10]:
        exact_ids, exact_scores = search(mapped, None, query, 5, deleted, vectors_at)
        ids, scores = search(mapped, ann, query, 5, deleted, vectors_at)
        assert not deleted[ids].any()
        assert ids.tolist() == exact_ids.tolist() and np.allclose(scores, exact_scores, atol=1e-6)
    assert reads and all(5 < n <= 35 for n in reads)  # the candidates, and only they, are read exactly


def test_a_chunk_is_live_until_its_file_changes(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, {"a.txt": "Alpha\n\nThe north pier opens at six.",
                          "b.txt": "Beta\n\nThe ferry leaves at noon."})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    before = open_index(tmp_path / "index")
    old_b = [i for i in range(before.id_space) if before.chunk(i).source == "b.txt"]
    (corpus / "b.txt").write_text("Beta\n\nThe ferry leaves at one.", encoding="utf-8")
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    index = open_index(tmp_path / "index")
    live = [i for i in range(index.id_space) if index.is_live(i)]
    assert not any(index.is_live(i) for i in old_b)
    assert sorted(index.chunk(i).source for i in live) == ["a.txt", "b.txt"] and len(live) == index.chunk_count
    assert not index.is_live(index.id_space) and not index.is_live(-1)
