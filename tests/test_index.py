"""The on-disk index: every format indexed, a manifest that says how it was built, incremental
re-indexing, atomic swaps, one writer at a time, and no mixing of models. Kills and a full disk
while indexing are in test_faults.py."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import docx
import numpy as np
import pytest
from conftest import write_corpus
from reportlab.pdfgen import canvas

from qa.chunk import MAX_CHARS_PER_TOKEN, ChunkSettings
from qa.config import DEFAULT_MODEL
from qa.errors import CorpusNotFound, EmptyCorpus, IndexBusy, IndexMismatch, IndexNotFound
from qa.load import TableFields
from qa.pipeline import QA, build
from qa.store import open_index, read_manifest

OTTERS = "Sea otters use stones as tools to crack open clams and urchins while floating on their backs."
HERONS = "Grey herons stand motionless in the shallows for an hour before striking at a passing fish."
FERRY = "The harbour ferry leaves the north pier every forty minutes between six in the morning and midnight."


def _pdf(path: Path, pages: list[str]) -> bytes:
    pdf = canvas.Canvas(str(path))
    pdf.setTitle("Harbour timetable")
    for page in pages:
        pdf.drawString(72, 750, page)
        pdf.showPage()
    pdf.save()
    return path.read_bytes()


def _docx(path: Path) -> bytes:
    word = docx.Document()
    word.add_heading("Lighthouse", level=1)
    word.add_paragraph("The lighthouse lamp turns twice a minute and can be seen thirty kilometres out to sea.")
    word.add_heading("Fog horn", level=1)
    word.add_paragraph("The fog horn sounds a long blast every thirty seconds whenever visibility drops.")
    word.save(path)
    return path.read_bytes()


def _mixed_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    files = {
        "notes/otters.txt": OTTERS,
        "notes/herons.md": f"# Herons\n\n{HERONS}\n",
        "web/page.html": f"<html><head><title>Ferry</title></head><body><nav><a href='/'>Home</a></nav>"
                         f"<article><h1>Ferry times</h1><p>{FERRY}</p></article></body></html>",
        "harbour.pdf": _pdf(folder / "harbour.pdf", ["The harbour master's office opens at eight.",
                                                     "Fishing boats must report their catch on the quay."]),
        "lighthouse.docx": _docx(folder / "lighthouse.docx"),
        "faq.jsonl": json.dumps({"id": "parking", "title": "Parking", "text": "Parking on the quay is free."}) + "\n",
        "prices.csv": "id,title,text\nadult,Adult ticket,An adult ferry ticket costs four euros.\n",
        ".draft.txt": "a hidden draft",
        "photo.jpg": b"\xff\xd8\xff",
    }
    return write_corpus(folder, files)


def test_every_format_is_indexed_with_exact_offsets_and_locations(tmp_path, embedder):
    corpus = _mixed_corpus(tmp_path / "corpus")
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    assert (report.files, report.documents, report.ignored, report.skipped) == (7, 7, {"hidden": 1, ".jpg": 1}, [])
    index = open_index(tmp_path / "index")
    assert {d.source for d in index.documents()} == {
        "notes/otters.txt", "notes/herons.md", "web/page.html", "harbour.pdf", "lighthouse.docx",
        "faq.jsonl#parking", "prices.csv#adult",
    }
    assert set(index.manifest["files"]) == {
        "notes/otters.txt", "notes/herons.md", "web/page.html", "harbour.pdf", "lighthouse.docx", "faq.jsonl",
        "prices.csv",
    }
    for chunk in index.chunks():
        document = index.document(chunk.source)
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert chunk.title == document.title
        assert chunk.location == document.location(chunk.start)
    assert not any("Home" in c.text for c in index.chunks())  # the page's menu
    locations = {(c.source, c.location) for c in index.chunks()}
    assert {("harbour.pdf", "page 1"), ("harbour.pdf", "page 2"), ("lighthouse.docx", "Lighthouse"),
            ("lighthouse.docx", "Fog horn"), ("faq.jsonl#parking", "row 1")} <= locations

    qa = QA(tmp_path / "index", embedder=embedder)
    [top] = qa.search("Where must fishing boats report their catch?", k=1)
    assert (top.chunk.source, top.chunk.location) == ("harbour.pdf", "page 2")
    [top] = qa.search("How often does the fog horn sound?", k=1)
    assert (top.chunk.source, top.chunk.location) == ("lighthouse.docx", "Fog horn")


def test_manifest_says_how_the_index_was_built(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"otters.txt": OTTERS, "herons.md": HERONS})
    before = datetime.now(UTC)
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, ChunkSettings(64, 8), embedder=embedder)
    manifest = read_manifest(tmp_path / "index")
    assert manifest["model"] == DEFAULT_MODEL
    assert manifest["dimension"] == embedder.dimension == 384
    assert manifest["chunking"] == {"tokens": 64, "overlap": 8}
    assert manifest["table_fields"] == {"text": "text", "title": "title", "id": "id"}
    assert {"python", "sentence-transformers", "faiss-cpu", "bm25s", "torch"} <= set(manifest["versions"])
    assert manifest["counts"] == {"files": 2, "documents": 2, "chunks": report.chunks}
    for name in ("otters.txt", "herons.md"):
        assert manifest["files"][name]["sha256"] == hashlib.sha256((corpus / name).read_bytes()).hexdigest()
    built = datetime.strptime(manifest["built_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((built - before).total_seconds()) < 600
    assert manifest["build_seconds"] >= 0
    assert manifest["skipped"] == []


def test_reindexing_embeds_only_added_and_changed_files_and_drops_deleted_ones(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"otters.txt": OTTERS, "herons.txt": HERONS, "ferry.txt": FERRY})
    index = tmp_path / "index"
    first = build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    assert (first.embedded, first.reused, first.removed) == (3, 0, 0)
    old = open_index(index)
    old_otter_vectors = old.chunk_vectors(old.file_chunk_ids("otters.txt"))

    (corpus / "herons.txt").write_text("Herons nest in tall trees in colonies called heronries.")
    (corpus / "ferry.txt").unlink()
    (corpus / "puffins.txt").write_text("Puffins return to the same burrow on the cliff every spring.")
    second = build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    assert (second.embedded, second.reused, second.removed, second.files) == (2, 1, 1, 3)

    new = open_index(index)
    assert set(new.manifest["files"]) == {"otters.txt", "herons.txt", "puffins.txt"}
    assert not any(c.source == "ferry.txt" for c in new.chunks())
    assert not any("motionless" in c.text for c in new.chunks())
    new_otter_vectors = new.chunk_vectors(new.file_chunk_ids("otters.txt"))
    assert len(new_otter_vectors) > 0
    np.testing.assert_allclose(new_otter_vectors, old_otter_vectors, atol=1e-6)
    qa = QA(index, embedder=embedder)
    assert qa.search("Where do herons nest?", k=1)[0].chunk.source == "herons.txt"

    third = build(corpus, index, DEFAULT_MODEL)  # nothing changed: no model is even loaded
    assert (third.embedded, third.reused, third.removed) == (0, 3, 0)
    assert len(list((index / "builds").iterdir())) == 2  # the live build and the one before it


def test_changed_chunk_settings_rebuild_everything(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"otters.txt": OTTERS, "herons.txt": HERONS})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, ChunkSettings(32, 4), embedder=embedder)
    assert (report.embedded, report.reused) == (2, 0)
    assert "chunking" in report.full_rebuild_reason
    assert read_manifest(tmp_path / "index")["chunking"] == {"tokens": 32, "overlap": 4}


def test_an_index_records_its_precision_and_another_one_rebuilds_it(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"otters.txt": OTTERS, "herons.txt": HERONS})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    assert read_manifest(tmp_path / "index")["precision"] == "int8"  # the default
    int8 = QA(tmp_path / "index", embedder=embedder).index.chunk_vectors([0, 1])

    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, precision="float32")
    assert (report.embedded, report.reused) == (2, 0)
    assert "precision" in report.full_rebuild_reason
    served = QA(tmp_path / "index")
    assert served.index.precision == served.embedder.precision == "float32"  # web uploads keep it
    cosines = np.sum(served.index.chunk_vectors([0, 1]) * int8, axis=1)
    assert 0.99 < cosines.min() and cosines.max() < 1 - 1e-5


def test_unreadable_files_are_skipped_with_a_reason_and_the_rest_is_indexed(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {
        "good.txt": OTTERS,
        "empty.md": "",
        "binary.txt": b"\x7fELF\x02\x01\x01\x00\x00",
        "broken.pdf": b"%PDF-1.7\nnot really a pdf",
        "broken.docx": b"not a zip",
        "rows.jsonl": '{"body": null}\n',  # no text at all
    })
    os.symlink(tmp_path / "missing.txt", corpus / "dangling.txt")
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    skipped = dict(report.skipped)
    assert set(skipped) == {"empty.md", "binary.txt", "broken.pdf", "broken.docx", "rows.jsonl", "dangling.txt"}
    assert all(reason and "\n" not in reason for reason in skipped.values())
    assert report.files == 1
    manifest = read_manifest(tmp_path / "index")
    assert {s["file"] for s in manifest["skipped"]} == set(skipped)
    assert set(manifest["files"]) == {"good.txt"}


def test_rows_with_the_same_id_keep_their_own_text_in_the_index(tmp_path, embedder):
    rows = [{"id": 1, "text": OTTERS}, {"id": 1, "text": HERONS}, {"id": 0, "text": FERRY}, {"text": "No id here."}]
    corpus = write_corpus(tmp_path / "corpus", {"rows.jsonl": "\n".join(json.dumps(r) for r in rows)})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    index = open_index(tmp_path / "index")
    assert sorted(d.text for d in index.documents()) == sorted(r["text"] for r in rows)
    for chunk in index.chunks():
        assert chunk.text == index.document(chunk.source).text[chunk.start : chunk.end]


def test_table_fields_can_be_chosen(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {
        "faq.csv": f"key,question,answer\nq7,Otters,{OTTERS}\n",
    })
    build(corpus, tmp_path / "index", DEFAULT_MODEL, fields=TableFields("answer", "question", "key"),
          embedder=embedder)
    [document] = list(open_index(tmp_path / "index").documents())
    assert (document.source, document.title, document.text) == ("faq.csv#q7", "Otters", OTTERS)


def test_missing_or_empty_corpus_is_a_clear_error(tmp_path, embedder):
    with pytest.raises(CorpusNotFound, match="--corpus"):
        build(tmp_path / "nowhere", tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    corpus = write_corpus(tmp_path / "corpus", {"image.png": b"\x89PNG", ".hidden.txt": "x"})
    with pytest.raises(EmptyCorpus, match="add .txt"):
        build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    write_corpus(corpus, {"empty.txt": ""})
    with pytest.raises(EmptyCorpus, match=r"empty\.txt \(the file is empty\)"):
        build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFound, match="qa index --index"):
        open_index(tmp_path / "index")


def test_an_index_built_with_another_model_is_refused(seed_index):
    with pytest.raises(IndexMismatch) as error:
        open_index(seed_index, model="paraphrase-multilingual-MiniLM-L12-v2")
    message = str(error.value)
    assert "all-MiniLM-L6-v2" in message and "qa index --model" in message and "\n" not in message
    assert open_index(seed_index, model=DEFAULT_MODEL).model == DEFAULT_MODEL


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(seed_index, embedder):
    corpus = seed_index.parent / "corpus"
    with open(seed_index / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `qa index` holds
        with pytest.raises(IndexBusy, match="another `qa index` is writing"):
            build(corpus, seed_index, DEFAULT_MODEL, embedder=embedder)
        assert QA(seed_index, embedder=embedder).search("Kadena Air Base", k=1)  # readers are not blocked
    assert build(corpus, seed_index, DEFAULT_MODEL, embedder=embedder).reused == 1


def test_leftovers_of_a_crashed_build_are_ignored_then_cleaned_up(seed_index, embedder):
    live = os.readlink(seed_index / "current")
    partial = seed_index / "builds" / ".20990101T000000.000000000-1.partial"
    partial.mkdir()
    (partial / "manifest.json").write_text("{ half written")
    assert open_index(seed_index).manifest["counts"]["files"] == 1
    assert os.readlink(seed_index / "current") == live
    build(seed_index.parent / "corpus", seed_index, DEFAULT_MODEL, embedder=embedder)
    assert not partial.exists()


def test_a_build_finished_but_never_swapped_in_does_not_displace_the_spare(seed_index, embedder):
    corpus = seed_index.parent / "corpus"
    spare = os.path.basename(os.readlink(seed_index / "current"))
    orphan = seed_index / "builds" / "20990101T000000.000000000-1"  # killed between rename and swap
    orphan.mkdir()
    build(corpus, seed_index, DEFAULT_MODEL, chunking=ChunkSettings(tokens=120), embedder=embedder)
    live = os.path.basename(os.readlink(seed_index / "current"))
    assert {p.name for p in (seed_index / "builds").iterdir()} == {live, spare}


def qa_cli(*args: str):
    from click.testing import CliRunner

    from qa.cli import main

    return CliRunner().invoke(main, list(args))


def test_an_index_folder_inside_the_corpus_is_never_indexed(tmp_path, embedder, monkeypatch):
    monkeypatch.setattr("qa.ingest.Embedder", lambda name, **_: embedder)
    for setting in ("QA_CORPUS", "QA_INDEX"):
        monkeypatch.delenv(setting, raising=False)
    docs = write_corpus(tmp_path / "docs", {"otters.txt": OTTERS, "notes/herons.md": HERONS})
    monkeypatch.chdir(docs)
    counts = []
    for _ in range(4):  # `cd docs && qa index --corpus .`: the index lands inside the corpus
        result = qa_cli("index", "--corpus", ".")
        assert result.exit_code == 0, result.output
        counts.append(read_manifest(docs / "index")["counts"]["documents"])
    assert counts == [2, 2, 2, 2]

    shutil.copytree(docs / "index" / "current", docs / "backup" / "old-build")  # a copy of a build
    shutil.copytree(docs / "index", docs / "archive" / "index", symlinks=True)  # and of a whole index
    result = qa_cli("index", "--corpus", ".", "--index", str(tmp_path / "elsewhere"))
    assert result.exit_code == 0, result.output
    assert set(read_manifest(tmp_path / "elsewhere")["files"]) == {"otters.txt", "notes/herons.md"}
    assert "ignored" not in result.output  # not walked at all, so not counted as ignored either


@pytest.fixture(scope="module")
def damage_kit(tmp_path_factory, embedder):
    """A built index to damage (copied for each case) and another index to take files from."""
    root = tmp_path_factory.mktemp("damage")
    corpus = write_corpus(root / "corpus", {"otters.txt": OTTERS, "herons.txt": HERONS})
    build(corpus, root / "index", DEFAULT_MODEL, embedder=embedder)
    other = write_corpus(root / "other", {"ferry.txt": FERRY, "more.txt": OTTERS + " " + HERONS, "again.txt": FERRY})
    build(other, root / "other-index", DEFAULT_MODEL, embedder=embedder)
    return root


PROGRESS = ("reading", "embedding")  # tqdm's bars, on stderr too
# paths inside the build; "seg/" stands for its (only) segment folder
BUILD_FILES = ["manifest.json", "manifest.sha256", "seg/text.sqlite", "seg/chunks.npy", "seg/sentence_ptr.npy",
               "seg/sentence_spans.npy", "seg/sentence_vectors.npy", "seg/postings_ptr.npy", "seg/postings_docs.npy",
               "seg/postings_tf.npy", "seg/lengths.npy"]


def _in_build(build: Path, name: str) -> Path:
    if name.startswith("seg/"):
        [segment] = build.glob("seg-*")
        return segment / name.removeprefix("seg/")
    return build / name


def _damage(path: Path, how: str, other: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "one byte changed":
        at = len(data) * 2 // 3
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    elif how == "another build's":
        shutil.copyfile(other, path)
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "emptied", "one byte changed", "another build's", "deleted"])
@pytest.mark.parametrize("name", BUILD_FILES)
def test_a_damaged_file_of_the_live_build_is_rebuilt_from_scratch(tmp_path, damage_kit, embedder, monkeypatch, name,
                                                                  how):
    monkeypatch.setattr("qa.ingest.Embedder", lambda model, **_: embedder)
    index = tmp_path / "index"
    shutil.copytree(damage_kit / "index", index, symlinks=True)
    live = (index / "current").resolve()
    _damage(_in_build(live, name), how, _in_build((damage_kit / "other-index" / "current").resolve(), name))

    args = ["index", "--corpus", str(damage_kit / "corpus"), "--index", str(index)]
    result = qa_cli(*args)
    assert result.exit_code == 0, result.output
    assert "2 embedded" in result.stdout
    [line] = [line for line in re.split(r"[\r\n]+", result.stderr) if line and not line.startswith(PROGRESS)]
    assert line.startswith("rebuilt from scratch: the previous index is damaged ("), line
    assert len(line) < 400
    qa = QA(index, embedder=embedder)
    assert qa.search("What do sea otters use as tools?", k=1)[0].chunk.source == "otters.txt"
    again = qa_cli(*args)
    assert again.exit_code == 0 and "0 embedded, 2 unchanged" in again.stdout, again.output
    assert "rebuilt" not in again.stderr


def test_a_word_of_half_a_megabyte_is_indexed_in_small_chunks_so_answers_stay_small(tmp_path, embedder):
    blob = "QmFzZTY0" * 60_000  # 480 KB without a space: one unknown token to the model
    corpus = write_corpus(tmp_path / "corpus", {"dump.txt": f"{OTTERS}\n\n{blob}\n\n{HERONS}\n", "ferry.txt": FERRY})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    index = open_index(tmp_path / "index")
    assert max(len(c.text) for c in index.chunks()) <= 200 * MAX_CHARS_PER_TOKEN
    qa = QA(tmp_path / "index", embedder=embedder)
    for question in ("What do sea otters use as tools?", "QmFzZTY0QmFzZTY0QmFzZTY0"):
        answer = json.dumps(qa.ask(question, k=5).to_dict())
        assert len(answer) < 60_000, len(answer)
