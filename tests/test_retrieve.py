"""Ranking: lexical, dense and their fusion over a real FAISS + BM25 index."""

from __future__ import annotations

import pytest
from conftest import open_corpus

DOCS = {
    "gardening.txt": "Tomatoes need at least six hours of direct sunlight and regular watering in summer.",
    "serial.txt": "The replacement part number for the pump housing is XK-4471-B, ordered from the depot.",
    "cars.txt": "An automobile engine converts fuel into motion; regular oil changes keep it healthy.",
    "cooking.txt": "Risotto is made by slowly adding warm stock to rice while stirring constantly.",
}


@pytest.fixture(scope="module")
def qa(tmp_path_factory, embedder):
    return open_corpus(tmp_path_factory.mktemp("retrieve"), DOCS, embedder)


def top_source(qa, query, mode):
    return qa.search(query, k=1, mode=mode)[0].chunk.source


def test_lexical_search_finds_an_exact_code(qa):
    assert top_source(qa, "XK-4471-B", "lexical") == "serial.txt"


def test_dense_search_finds_a_paraphrase_without_shared_words(qa):
    assert top_source(qa, "How do I look after my car's motor?", "dense") == "cars.txt"


@pytest.mark.parametrize(
    "query, source",
    [("XK-4471-B", "serial.txt"), ("How do I look after my car's motor?", "cars.txt"),
     ("how much sun do tomato plants need", "gardening.txt")],
)
def test_hybrid_search_keeps_what_either_side_finds(qa, query, source):
    assert top_source(qa, query, "hybrid") == source


def test_search_returns_k_passages_best_first(qa):
    found = qa.search("rice stock stirring", k=3)
    assert len(found) == 3
    assert found[0].chunk.source == "cooking.txt"
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
