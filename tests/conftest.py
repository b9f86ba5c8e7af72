"""Shared fixtures: the real embedding model, loaded once per test session, and small corpora
written to tmp_path by each test that needs one."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.config import DEFAULT_MODEL
from qa.embed import Embedder

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "us-japan-alliance.txt"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(DEFAULT_MODEL)


def write_corpus(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write {relative path: content} under folder and return it."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


@pytest.fixture
def seed_index(tmp_path, embedder):
    """A fresh index of the shipped seed article, built in this test's tmp dir."""
    from qa.pipeline import build

    corpus = write_corpus(tmp_path / "corpus", {SEED.name: SEED.read_text(encoding="utf-8")})
    build(corpus, tmp_path / "index", DEFAULT_MODEL, embedder=embedder)
    return tmp_path / "index"


def open_corpus(root: Path, files: dict[str, str | bytes], embedder: Embedder):
    """Write files as a corpus under root, index it there and open it."""
    from qa.pipeline import QA, build

    write_corpus(root / "corpus", files)
    build(root / "corpus", root / "index", DEFAULT_MODEL, embedder=embedder)
    return QA(root / "index", embedder=embedder)
