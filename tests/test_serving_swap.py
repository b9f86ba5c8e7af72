"""Serving while re-indexing: a running server picks up each new build of its index without a
restart, and every question asked while builds are swapped in succeeds, answered from one whole
build or the other, never from a half-written or mixed one. An index that a request still holds
keeps working when its build folder is removed: an opened index is all in memory."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import httpx
from conftest import wait_until, write_corpus
from web_helpers import ServerThread

import qa.store
from qa.config import DEFAULT_MODEL
from qa.pipeline import QA, build
from qa.web import WebConfig, create_app

CODEWORD_Q = "What is the radio codeword?"
SEARCH_Q = "edition codeword tide tables ferry timetable"
EDITION = re.compile(r"\bedition ([AB])\b")


def edition(name: str) -> dict[str, str]:
    """A small corpus whose every file says which edition it belongs to."""
    return {
        "codeword.txt": f"The radio codeword of edition {name} is Kestrel{name}. "
                        "Ferry captains say the codeword when they enter the harbour.",
        "tides.txt": f"The tide tables of edition {name} list high water at the north pier twice a day.",
        "ferry.txt": f"The ferry timetable of edition {name} has a boat to the island every forty minutes.",
    }


def _editions_in(texts: list[str]) -> set[str]:
    return {m.group(1) for text in texts for m in EDITION.finditer(text)}


class Askers:
    """Client threads asking and searching back to back; every reply is checked as it comes."""

    def __init__(self, url: str, count: int = 4):
        self.url = url
        self.stop = threading.Event()
        self.answers: list[str] = []  # the edition of each answer
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._ask, daemon=True) for _ in range(count)]

    def __enter__(self) -> Askers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _ask(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.is_set():
                try:
                    self._check(http)
                except Exception as exc:  # a refused or broken connection is an error too
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _check(self, http: httpx.Client) -> None:
        asked = http.post("/api/ask", json={"question": CODEWORD_Q})
        if asked.status_code != 200:
            self.errors.append(f"ask: {asked.status_code} {asked.text[:200]}")
            return
        body = asked.json()
        found = re.search(r"The radio codeword of edition ([AB]) is Kestrel\1\.", body["answer"])
        cited = _editions_in([c["passage"] for c in body["citations"]])
        if body["abstained"] or not found or cited != {found.group(1)}:
            self.errors.append(f"ask: {body['answer']!r} citing editions {cited}")
            return
        self.answers.append(found.group(1))
        searched = http.post("/api/search", json={"query": SEARCH_Q, "k": 10})
        if searched.status_code != 200:
            self.errors.append(f"search: {searched.status_code} {searched.text[:200]}")
            return
        passages = [r["passage"] for r in searched.json()["results"]]
        if len(passages) != 3 or len(_editions_in(passages)) != 1:  # one whole build: 3 files of one edition
            self.errors.append(f"search: passages of editions {_editions_in(passages)}: {passages}")


def _served(url: str) -> str:
    answer = httpx.post(url + "/api/ask", json={"question": CODEWORD_Q}, timeout=60).json()["answer"]
    return EDITION.search(answer).group(1)


def _wait_until_served(url: str, name: str, seconds: float) -> None:
    wait_until(lambda: _served(url) == name, seconds, f"edition {name} served after its build")


def test_server_picks_up_new_builds_and_every_request_during_the_swaps_succeeds(tmp_path, embedder, monkeypatch):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, edition("A"))
    build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    config = WebConfig(index, rate_limit=None, ui=False, feedback=tmp_path / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as server, Askers(server.url) as askers:
        assert _served(server.url) == "A"
        write_corpus(corpus, edition("B"))
        build(corpus, index, DEFAULT_MODEL, embedder=embedder)
        _wait_until_served(server.url, "B", qa.store.RECHECK_SECONDS + 10)  # no restart

        # swaps as fast as builds go, each picked up: some reopen while the next build is written
        monkeypatch.setattr(qa.store, "RECHECK_SECONDS", 0.02)
        for name in "ABABABAB":
            write_corpus(corpus, edition(name))
            build(corpus, index, DEFAULT_MODEL, embedder=embedder)
            if name == "B":
                _wait_until_served(server.url, name, 10)
        after_swaps = len(askers.answers)  # more answers after the last swap, and 20 in all
        wait_until(lambda: len(askers.answers) >= max(20, after_swaps + len(askers.threads)), 30,
                   lambda: f"answers after the last swap ({len(askers.answers)} in all)")
    assert askers.errors == []
    assert len(askers.answers) >= 20 and set(askers.answers) == {"A", "B"}


def test_a_live_build_that_cannot_be_read_is_not_served_and_the_open_index_keeps_answering(
    tmp_path, embedder, monkeypatch
):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, edition("A"))
    build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    monkeypatch.setattr(qa.store, "RECHECK_SECONDS", 0.0)
    config = WebConfig(index, rate_limit=None, ui=False, feedback=tmp_path / "feedback.jsonl")
    with ServerThread(create_app(config, embedder)) as server:
        # a live build whose files vanished (removed by hand, or by a cleanup racing two swaps)
        broken = index / "builds" / "broken"
        broken.mkdir()
        shutil.copy(index / "current" / "manifest.json", broken)
        os.symlink(Path("builds") / "broken", index / ".current.swap")
        os.replace(index / ".current.swap", index / "current")
        for _ in range(3):
            assert _served(server.url) == "A"

        write_corpus(corpus, edition("B"))  # the next build reads what it can and swaps in a whole index
        assert "is damaged" in build(corpus, index, DEFAULT_MODEL, embedder=embedder).full_rebuild_reason
        _wait_until_served(server.url, "B", 10)


def _files_in_use_under(folder: Path) -> list[str]:
    """Open files and memory mappings of this process inside `folder`."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # closed meanwhile
            pass
    paths += [line.split(maxsplit=5)[-1] for line in Path("/proc/self/maps").read_text().splitlines()]
    return [p for p in paths if p.startswith(str(folder))]


def test_an_opened_index_keeps_answering_after_its_build_folder_is_removed(tmp_path, embedder):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, edition("A"))
    build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    opened = QA(index, embedder=embedder)  # what a request in flight holds
    folder = (index / "current").resolve()
    # its files are held open (SQLite) and mapped (vectors): removing their names does not take them away
    in_use = {Path(p.removesuffix(" (deleted)")).name for p in _files_in_use_under(folder)}
    assert in_use >= {"text.sqlite", "chunks.npy"}

    for name in "BA":  # the build before the live one stays as a spare, the one before that goes
        write_corpus(corpus, edition(name))
        build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    assert not folder.exists()

    answer = opened.ask(CODEWORD_Q)
    assert "The radio codeword of edition A is KestrelA." in answer.answer
    assert opened.document("tides.txt").text == edition("A")["tides.txt"]
    assert {p.chunk.source for p in opened.search(SEARCH_Q, k=3)} == set(edition("A"))
