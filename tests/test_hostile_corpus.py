"""Hostile corpora: whatever a corpus folder holds (corrupt or encrypted PDFs, zip bombs, huge or
binary files, odd encodings, symlink loops and links out of the folder, files that vanish or change
while indexing, thousands of tiny files), each file is indexed or skipped with a one-line reason,
nothing outside the folder is read or served, and memory stays bounded."""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
import httpx
import openpyxl
import pptx
import pytest
from click.testing import CliRunner
from conftest import SEED, measured, odf, write_corpus
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter
from reportlab.pdfgen import canvas
from web_helpers import ServerThread

from qa.cli import main
from qa.config import DEFAULT_MODEL, SETTINGS
from qa.load import LOADERS, LoadError, TableFields, load_file, read_file
from qa.pipeline import QA, build
from qa.store import open_index, read_manifest
from qa.web import WebConfig, create_app

OTTERS = "Sea otters use stones as tools to crack open clams while floating on their backs."
HERONS = "Grey herons stand motionless in the shallows for an hour before striking at a fish."
LARGE = (HERONS + "\n") * 43  # 3,612 bytes
SECRET = "The vault combination kept outside the corpus is 7741."
# what no document text or title may hold: control characters other than tab and newline
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture(autouse=True)
def no_qa_settings_from_the_environment(monkeypatch):
    for setting in SETTINGS.values():
        monkeypatch.delenv(setting.env, raising=False)


def pdf_bytes(text: str, title: str = "Otters") -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setTitle(title)
    pdf.drawString(72, 750, text)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def encrypted_pdf(text: str, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(text))))
    writer.encrypt(user_password=user_password, owner_password="owner secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def docx_bytes(text: str) -> bytes:
    word = docx.Document()
    word.add_heading("Otters", level=1)
    word.add_paragraph(text)
    buffer = io.BytesIO()
    word.save(buffer)
    return buffer.getvalue()


def pptx_bytes(text: str) -> bytes:
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Otters"
    slide.placeholders[1].text_frame.text = text
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(text: str) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(["title", "text"])
    workbook.active.append(["Otters", text])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def zip_bomb(megabytes: int, member: str) -> bytes:
    """A real zip bomb: about 1 KB per MB of zeros it unzips to."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(member, "w", force_zip64=True) as f:
            block = bytes(1_000_000)
            for _ in range(megabytes):
                f.write(block)
    return buffer.getvalue()


def skipped_of(report) -> dict[str, str]:
    reasons = dict(report.skipped)
    assert all(reason and "\n" not in reason for reason in reasons.values())
    return reasons


def indexed_text(index: Path) -> str:
    """Every document of the live build, as the index stores it."""
    return "\n".join(d.text for d in open_index(index).documents())


# --- parsers: any bytes become clean documents or a one-line reason ----------------------------

HTML = f"<html><head><title>Otters</title></head><body><article><p>{OTTERS}</p></article></body></html>"
ROWS = f'id,title,text\n1,Otters,"{OTTERS}"\n'
SAMPLES = {  # a valid file of each format, to damage
    ".pdf": pdf_bytes(OTTERS),
    ".docx": docx_bytes(OTTERS), ".pptx": pptx_bytes(OTTERS), ".xlsx": xlsx_bytes(OTTERS),
    ".odt": odf(f"<office:text><text:h>Otters</text:h><text:p>{OTTERS}</text:p></office:text>", "text"),
    ".ods": odf("<office:spreadsheet><table:table><table:table-row><table:table-cell><text:p>text</text:p>"
                f"</table:table-cell></table:table-row><table:table-row><table:table-cell><text:p>{OTTERS}</text:p>"
                "</table:table-cell></table:table-row></table:table></office:spreadsheet>", "spreadsheet"),
    ".odp": odf("<office:presentation><draw:page><draw:frame><draw:text-box><text:p>"
                f"{OTTERS}</text:p></draw:text-box></draw:frame></draw:page></office:presentation>", "presentation"),
    ".html": HTML.encode(), ".htm": HTML.encode("utf-16"),
    ".csv": ROWS.encode(), ".tsv": ROWS.replace(",", "\t").encode("cp1252"),
    ".jsonl": f'{{"id": "1", "title": "Otters", "text": "{OTTERS}"}}\n'.encode(),
    ".md": f"# Otters\n\n{OTTERS}\n".encode(), ".markdown": f"# Otters\n\n{OTTERS}\n".encode("utf-16"),
    ".txt": OTTERS.encode(), ".text": OTTERS.encode("utf-16"),
}


def damaged(original: bytes) -> st.SearchStrategy[bytes]:
    """The file with a few slices overwritten by random bytes, and maybe cut short."""

    @st.composite
    def damage(draw) -> bytes:
        data = bytearray(original)
        for _ in range(draw(st.integers(0, 3))):
            start = draw(st.integers(0, len(data)))
            data[start : start + draw(st.integers(0, 32))] = draw(st.binary(max_size=32))
        return bytes(data[: draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))])

    return damage()


@pytest.mark.parametrize("suffix", sorted(LOADERS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=st.data())
def test_any_bytes_become_clean_documents_or_a_one_line_reason(suffix, draw):
    data = draw.draw(st.one_of(st.binary(max_size=512), damaged(SAMPLES[suffix])), label="data")
    path = Path("file" + suffix)
    try:
        documents = load_file(path, path.name, data)
    except LoadError as exc:
        assert str(exc) and "\n" not in str(exc)
        event(str(exc).split(" (")[0])
        return
    event("documents")
    assert documents
    for document in documents:
        assert document.text and document.text == document.text.strip()
        assert not CONTROL.search(document.text)
        assert document.title and not CONTROL.search(document.title) and "\n" not in document.title
        assert all(0 <= s.start <= s.end <= len(document.text) for s in document.sections)


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"), min_size=1))
def test_utf8_and_utf16_with_a_byte_order_mark_give_the_same_documents(text):
    encodings = [
        text.encode("utf-8"),
        codecs.BOM_UTF8 + text.encode("utf-8"),
        codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    ]
    results = []
    for data in encodings:
        try:
            results.append(load_file(Path("notes.md"), "notes.md", data))
        except LoadError:
            results.append(None)
    assert results == [results[0]] * len(results)


# --- encodings and binary files ----------------------------------------------------------------

def test_legacy_and_utf16_encodings_are_indexed_and_binary_files_skipped(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {
        "latin1.txt": "Café crème brûlée is served at the harbour café.".encode("latin-1"),
        "windows.txt": "The ferry’s “night” ticket costs €5 — cash only.".encode("cp1252"),
        "wide-le.txt": "Grüße aus Köln: the ferry sails at dawn.".encode("utf-16"),
        "wide-be.md": codecs.BOM_UTF16_BE + "# Fähre\n\nDie Fähre fährt um sechs.".encode("utf-16-be"),
        "bom.txt": codecs.BOM_UTF8 + "Ålesund harbour opens at eight.".encode(),
        "damaged.txt": "Straße und Brücke".encode() + b"\xff" + b" am Hafen.",
        "escapes.txt": b"Red \x1b[31malert\x1b[0m: the \x07bell rings at noon.\x0cNext page.",
        "image.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + os.urandom(256),
        "program.md": b"\x7fELF\x02\x01\x01\x00" + os.urandom(256),
    })
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    assert skipped_of(report) == {"image.txt": "binary file, not text", "program.md": "binary file, not text"}
    texts = {d.source: d.text for d in QA(tmp_path / "index", embedder=embedder).index.documents()}
    assert texts == {
        "latin1.txt": "Café crème brûlée is served at the harbour café.",
        "windows.txt": "The ferry’s “night” ticket costs €5 — cash only.",
        "wide-le.txt": "Grüße aus Köln: the ferry sails at dawn.",
        "wide-be.md": "Fähre\n\nDie Fähre fährt um sechs.",
        "bom.txt": "Ålesund harbour opens at eight.",
        "damaged.txt": "Straße und Brücke\ufffd am Hafen.",
        "escapes.txt": "Red [31malert[0m: the bell rings at noon.\nNext page.",
    }


# --- PDFs and zip bombs -----------------------------------------------------------------------

def test_encrypted_or_damaged_pdfs_are_skipped_with_a_reason_and_without_log_noise(tmp_path, embedder, caplog):
    good = pdf_bytes(OTTERS)
    corpus = write_corpus(tmp_path / "corpus", {
        "locked.pdf": encrypted_pdf(HERONS, user_password="letmein"),
        "restricted.pdf": encrypted_pdf(OTTERS, user_password=""),  # printing/copying limits only
        "truncated.pdf": good[: len(good) // 2],
        "garbage.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 8,
    })
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    reasons = skipped_of(report)
    assert set(reasons) == {"locked.pdf", "truncated.pdf", "garbage.pdf"}
    assert reasons["locked.pdf"] == "the PDF is encrypted"
    assert reasons["truncated.pdf"].startswith("not a readable PDF (")
    assert reasons["garbage.pdf"].startswith("not a readable PDF (")
    assert read_manifest(tmp_path / "index")["files"].keys() == {"restricted.pdf"}
    assert QA(tmp_path / "index", embedder=embedder).document("restricted.pdf").text == OTTERS


@pytest.mark.parametrize("suffix,member", [("docx", "word/document.xml"), ("docx", "bomb.bin"),
                                           ("pptx", "ppt/slides/slide1.xml"), ("xlsx", "xl/worksheets/sheet1.xml"),
                                           ("odt", "content.xml"), ("ods", "content.xml"), ("odp", "content.xml")])
def test_a_zip_bomb_named_as_an_office_file_is_refused_before_it_is_unzipped(suffix, member):
    bomb = zip_bomb(300, member)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(LoadError) as error:
            load_file(Path(f"report.{suffix}"), f"report.{suffix}", bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kind = suffix.upper()
    assert str(error.value) == f"the {kind} would unzip to 300 MB, over the 200 MB limit for a {kind} (a zip bomb?)"
    assert peak < 5_000_000


def test_an_opendocument_file_whose_xml_multiplies_entities_is_refused_unexpanded():
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    xml = (f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY l0 "lol">{laughs}]><office:document-content '
           'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:text>'
           '<text:p>Otters &l9; float.</text:p></office:text></office:body></office:document-content>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("content.xml", xml)
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match="not a readable ODT file"):
            load_file(Path("laughs.odt"), "laughs.odt", buffer.getvalue())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


@pytest.mark.parametrize("suffix", ["docx", "pptx", "xlsx", "odt", "ods", "odp"])
def test_an_office_file_with_an_unusual_zip_compression_is_refused(suffix):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(LoadError, match="unusual zip compression"):
        load_file(Path(f"odd.{suffix}"), f"odd.{suffix}", buffer.getvalue())


# --- size limits ---------------------------------------------------------------------------------

def test_files_over_the_size_limit_are_skipped_unread_and_the_rest_indexed(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"small.txt": OTTERS, "large.txt": LARGE})
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder, max_file_mb=0.002)
    assert skipped_of(report) == {
        "large.txt": "the file is 0.003612 MB, over the 0.002 MB limit (raise it with --max-file-mb or QA_MAX_FILE_MB)"
    }
    assert read_manifest(tmp_path / "index")["files"].keys() == {"small.txt"}
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder, max_file_mb=0.01)
    assert (report.skipped, report.embedded, report.reused) == ([], 1, 1)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_size_limit_is_a_flag_and_a_qa_variable(tmp_path, how):
    corpus = write_corpus(tmp_path / "corpus", {"large.txt": LARGE})
    args = ["index", "--corpus", str(corpus), "--index", str(tmp_path / "index")]
    if how == "flag":
        result = CliRunner().invoke(main, [*args, "--max-file-mb", "0.001"])
    else:
        result = CliRunner(env={"QA_MAX_FILE_MB": "0.001"}).invoke(main, args)
    assert result.exit_code == 2
    assert "large.txt (the file is 0.003612 MB, over the 0.001 MB limit" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_a_file_larger_than_its_size_says_is_read_no_further_than_the_limit():
    # /proc files say they are 0 bytes long and then produce text: a file growing while it is read
    status = Path("/proc/self/status")
    with pytest.raises(LoadError, match="grew past the 0.0001 MB limit while it was read"):
        read_file(status, Path("/proc/self"), 100)
    assert b"Name:" in read_file(status, Path("/proc/self"), 1_000_000)


HUGE_RUN = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "from qa.cli import main\n"
    "main()\n"
)


def qa_index_process(corpus: Path, index: Path) -> tuple[subprocess.CompletedProcess, int]:
    """Run `qa index` in its own process; return it and its peak RSS in KB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    done = subprocess.run([sys.executable, "-c", HUGE_RUN, "index", "--corpus", str(corpus), "--index", str(index)],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = done.stderr.splitlines()
    return done, int(next(line.split()[1] for line in lines if line.startswith("maxrss_kb")))


def test_qa_index_on_a_hostile_corpus_reports_each_file_in_one_line_with_bounded_memory(tmp_path):
    outside = write_corpus(tmp_path / "outside", {"secret.txt": SECRET})
    corpus = write_corpus(tmp_path / "corpus", {
        SEED.name: SEED.read_bytes(),
        "locked.pdf": encrypted_pdf(HERONS, user_password="letmein"),
        "broken.pdf": pdf_bytes(OTTERS)[:900],
        "report.docx": zip_bomb(300, "word/document.xml"),
        "image.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(512),
    })
    os.symlink(outside / "secret.txt", corpus / "secret.txt")
    os.symlink("loop.md", corpus / "loop.md")
    first, _ = qa_index_process(corpus, tmp_path / "index")
    assert first.returncode == 1 and "1 embedded" in first.stdout, first.stderr
    # with nothing to embed, the model is not loaded, so the peak memory is the one of reading the corpus
    again, baseline_kb = qa_index_process(corpus, tmp_path / "index")
    assert again.returncode == 1 and "0 embedded, 1 unchanged" in again.stdout, again.stderr

    with open(corpus / "huge.txt", "wb") as f:  # 200 MB, sparse: instant to make, 200 MB to read
        f.truncate(200_000_000)
    done, peak_kb = qa_index_process(corpus, tmp_path / "index")
    assert done.returncode == 1, done.stderr
    # the huge file was not read: the peak memory is the one of the same run without it
    assert peak_kb - baseline_kb < 50_000, (peak_kb, baseline_kb)
    assert "indexed 1 file (" in done.stdout and "7 skipped" in done.stdout
    skipped = {}
    for line in re.split(r"[\r\n]+", done.stderr):
        if line.startswith("skipped "):
            file, reason = line.removeprefix("skipped ").split(": ", 1)
            skipped[file] = reason
        else:  # progress bars and the probe's line only: no traceback, no library warning
            assert not line or line.startswith(("reading", "embedding", "maxrss_kb")), line
    assert skipped == {
        "huge.txt": "the file is 200 MB, over the 50 MB limit (raise it with --max-file-mb or QA_MAX_FILE_MB)",
        "locked.pdf": "the PDF is encrypted",
        "broken.pdf": skipped["broken.pdf"],
        "report.docx": "the DOCX would unzip to 300 MB, over the 200 MB limit for a DOCX (a zip bomb?)",
        "image.txt": "binary file, not text",
        "secret.txt": "points outside the corpus folder",
        "loop.md": "symlink loop: the link leads back to itself",
    }
    assert skipped["broken.pdf"].startswith("not a readable PDF (")
    assert SECRET not in indexed_text(tmp_path / "index")


# --- symlinks ------------------------------------------------------------------------------------

def build_within(seconds: float, *args, **kwargs):
    """build(), failing the test if it has not returned in time (a walk caught in a loop)."""
    result = {}
    worker = threading.Thread(target=lambda: result.update(report=build(*args, **kwargs)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"indexing did not finish within {seconds}s"
    return result["report"]


def test_symlink_loops_and_links_out_of_the_corpus_are_skipped_and_never_read(tmp_path, embedder):
    outside = write_corpus(tmp_path / "outside", {"secret.txt": SECRET, "vault/plans.md": f"# Plans\n\n{SECRET}"})
    corpus = write_corpus(tmp_path / "corpus", {"notes/otters.txt": OTTERS, "notes/herons.md": HERONS})
    links = {
        "notes/loop": "..",  # a folder loop
        "notes/again": ".",  # a folder that links to itself
        "mirror": "notes",  # a folder inside the corpus: its files are indexed once, under notes/
        "alias.txt": "notes/otters.txt",  # a file inside the corpus: followed
        "self.txt": "self.txt",
        "ping.md": "pong.md",
        "pong.md": "ping.md",
        "dangling.txt": "notes/gone.txt",
        "secret.txt": str(outside / "secret.txt"),
        "vault": str(outside / "vault"),  # a folder outside
        "escape.md": "notes/../../outside/vault/plans.md",  # a relative way out
    }
    for name, target in links.items():
        os.symlink(target, corpus / name)
    os.symlink(corpus, tmp_path / "corpus-link")  # the corpus given through a symlink

    report = build_within(60, tmp_path / "corpus-link", tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    loop = "symlink loop: the link leads back to itself"
    outside_reason = "points outside the corpus folder"
    assert skipped_of(report) == {
        "self.txt": loop, "ping.md": loop, "pong.md": loop,
        "dangling.txt": "broken symlink: its target is missing",
        "secret.txt": outside_reason, "vault": outside_reason, "escape.md": outside_reason,
    }
    assert read_manifest(tmp_path / "index")["files"].keys() == {"alias.txt", "notes/herons.md", "notes/otters.txt"}
    assert SECRET not in indexed_text(tmp_path / "index")


def test_the_web_app_serves_only_indexed_documents_never_files(tmp_path, embedder):
    outside = write_corpus(tmp_path / "outside", {"secret.txt": SECRET})
    corpus = write_corpus(tmp_path / "corpus", {"otters.txt": OTTERS})
    os.symlink(outside / "secret.txt", corpus / "secret.txt")
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    config = WebConfig(tmp_path / "index", rate_limit=None, feedback=tmp_path / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert "Sea otters" in client.get("/source", params={"source": "otters.txt"}).text
        for source in ["secret.txt", str(outside / "secret.txt"), "../outside/secret.txt", str(corpus / "otters.txt")]:
            assert client.get("/source", params={"source": source}).status_code == 404
        for path in [outside / "secret.txt", corpus / "secret.txt", corpus / "otters.txt"]:
            response = client.get(f"/gradio_api/file={path}")
            assert response.status_code in (403, 404)
            assert "7741" not in response.text and "Sea otters" not in response.text
        found = client.post("/api/search", json={"query": "vault combination", "k": 5}).json()["results"]
        assert {r["source"] for r in found} == {"otters.txt"}


# --- files that vanish or change while indexing ----------------------------------------------

def test_files_that_vanish_or_change_during_a_build_leave_a_consistent_index(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": OTTERS, "b.txt": HERONS, "c.txt": OTTERS + " Old.",
                                                "d.txt": HERONS + " Soon a pipe."})

    def meddle(stage: str, done: int, total: int) -> None:
        if stage == "reading" and done == 1:  # a.txt has been read: b.txt and d.txt go away
            (corpus / "b.txt").unlink()
            (corpus / "d.txt").unlink()
            os.mkfifo(corpus / "d.txt")  # replaced by a pipe: opening it to read would block
        if stage == "reading" and done == 3:  # c.txt has been read (and hashed): now it changes
            (corpus / "c.txt").write_text(OTTERS + " New.")

    report = build_within(120, corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder, on_progress=meddle)
    assert skipped_of(report) == {"b.txt": "the file disappeared while indexing", "d.txt": "not a regular file"}
    manifest = read_manifest(tmp_path / "index")
    assert manifest["files"].keys() == {"a.txt", "c.txt"}
    # the index holds what was read, with the hash of those very bytes...
    assert manifest["files"]["c.txt"]["sha256"] == hashlib.sha256((OTTERS + " Old.").encode()).hexdigest()
    assert QA(tmp_path / "index", embedder=embedder).document("c.txt").text == OTTERS + " Old."
    # ...so the next run sees the change
    (corpus / "d.txt").unlink()
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    assert (report.embedded, report.reused, report.skipped) == (1, 1, [])
    assert QA(tmp_path / "index", embedder=embedder).document("c.txt").text == OTTERS + " New."


# --- many tiny files -------------------------------------------------------------------------------

def test_thousands_of_tiny_files_are_all_indexed(tmp_path, embedder):
    # bench/hostile.py times 10,000 of them; 2,000 keep this test quick
    words = ["harbour", "ferry", "lighthouse", "otter", "heron", "quay", "anchor", "buoy"]
    files = {f"{i // 500}/note-{i:04d}.txt": f"Note {i}: the {words[i % 8]} locker code is {i * 37 % 1000}."
             for i in range(2000)}
    corpus = write_corpus(tmp_path / "corpus", files)
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    assert (report.files, report.chunks, report.skipped) == (2000, 2000, [])
    found = QA(tmp_path / "index", embedder=embedder).search("Note 1234: the lighthouse locker code", k=1)
    assert found[0].chunk.source == "2/note-1234.txt"


# --- tables of any shape: linear memory and time, or a one-line reason --------------------------

@dataclass(frozen=True)
class Table:
    """A corpus table: a header `header` columns wide ("text" first), `rows` rows of `width`
    cells (short rows: nothing pads them to the header), one text `long` characters long, and `gap`
    blank lines before the last row."""

    rows: int
    header: int
    width: int
    long: int
    gap: int

    def text(self, r: int) -> str:
        return "x" * self.long if r == 0 and self.long else f"Row {r} says the ferry leaves at {r % 24} o'clock."


tables = st.builds(Table, rows=st.integers(1, 300), header=st.integers(1, 60) | st.integers(300, 800),
                   width=st.integers(1, 8), long=st.integers(0, 200_000), gap=st.integers(0, 5_000))


def table_bytes(suffix: str, table: Table) -> bytes:
    cells = [{f"c{c}": f"v{r}.{c}" for c in range(1, table.width)} for r in range(table.rows)]
    if suffix == ".jsonl":  # a JSON row names its own columns: the first one is the wide one
        wide = {f"k{k}": k for k in range(1, table.header)}
        lines = [json.dumps({**(wide if r == 0 else {}), "text": table.text(r), **cells[r]}) for r in range(table.rows)]
    else:
        header = ",".join(["text"] + [f"c{c}" for c in range(1, table.header)])
        lines = [header] + [",".join(f'"{v}"' for v in [table.text(r), *cells[r].values()]) for r in range(table.rows)]
    lines[-1:-1] = [""] * table.gap
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=tables)
def test_a_table_of_any_shape_is_read_in_linear_memory_and_time_or_refused_in_one_line(suffix, table):
    data = table_bytes(suffix, table)
    fields = TableFields(max_columns=600)  # as QA_MAX_COLUMNS=600 sets it
    run = measured(lambda: load_file(Path("table" + suffix), "table" + suffix, data, fields))
    assert run.peak < 12 * len(data) + 2_000 * table.rows + 500_000, (run.peak, len(data))
    assert run.seconds < 2 + len(data) / 500_000, run.seconds
    widest = table.header + table.width - 1 if suffix == ".jsonl" else max(table.header, table.width)
    if widest > 600:
        assert isinstance(run.outcome, LoadError) and "QA_MAX_COLUMNS" in str(run.outcome), run.outcome
        assert "\n" not in str(run.outcome)
    else:
        assert [d.text for d in run.outcome] == [table.text(r) for r in range(table.rows)], run.outcome


def test_a_file_whose_name_is_not_utf8_is_skipped_with_its_reason_and_the_rest_indexed(tmp_path, embedder):
    corpus = write_corpus(tmp_path / "corpus", {"otters.txt": OTTERS})
    with open(os.path.join(os.fsencode(corpus), b"caf\xe9 notes.txt"), "wb") as f:  # a Latin-1 name
        f.write(HERONS.encode())
    report = build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    assert skipped_of(report) == {"caf\ufffd notes.txt": "its name is not valid UTF-8: rename the file"}
    assert read_manifest(tmp_path / "index")["files"].keys() == {"otters.txt"}
    result = CliRunner().invoke(main, ["index", "--corpus", str(corpus), "--index", str(tmp_path / "index")])
    assert result.exit_code == 1 and "its name is not valid UTF-8" in result.output, result.output  # 1: some skipped
