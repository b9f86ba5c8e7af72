"""Words -> stemmed terms, and BM25 over chunks: the same words match the same way in retrieval
and answer selection, rare words weigh more, and an index saved to a folder reads back the same."""

from __future__ import annotations

import numpy as np

from qa.lexical import Lexical, tokenize

CHUNKS = [
    "Sea otters use stones as tools to crack open clams while floating on their backs.",
    "Grey herons stand motionless in the shallows before striking at a passing fish.",
    "The harbour ferry leaves the north pier every forty minutes.",
    "Otters and herons both hunt in the harbour at dawn.",
]


def _lexical() -> Lexical:
    return Lexical.build([tokenize(text) for text in CHUNKS])


def test_question_words_and_function_words_are_not_terms_and_words_are_stemmed():
    assert tokenize("When did the otters swim across the harbour?") == ["otter", "swim", "across", "harbour"]
    assert tokenize("Swimming, swims, SWIM") == ["swim", "swim", "swim"]
    assert tokenize("What is it?") == []


def test_words_are_split_at_underscores_and_punctuation_and_keep_their_letters():
    assert tokenize("Zürich_lake (café) x-ray") == ["zürich", "lake", "café", "x", "ray"]


def test_the_chunk_holding_the_words_scores_highest():
    lexical = _lexical()
    scores = lexical.scores(tokenize("Which pier does the ferry leave from?"))
    assert scores.shape == (len(CHUNKS),)
    assert int(np.argmax(scores)) == 2 and scores[2] > 0
    assert scores[0] == scores[1] == 0


def test_words_no_chunk_holds_score_every_chunk_zero():
    scores = _lexical().scores(tokenize("volcano eruption"))
    assert scores.shape == (len(CHUNKS),) and not scores.any()


def test_rare_words_weigh_more_and_unseen_words_the_most():
    lexical = _lexical()
    otter, clam, unseen = (lexical.idf(tokenize(word)[0]) for word in ("otters", "clams", "volcano"))
    assert 0 < otter < clam < unseen  # otters are in two chunks, clams in one, volcanoes in none


def test_an_index_saved_to_a_folder_reads_back_the_same(tmp_path):
    lexical = _lexical()
    lexical.save(tmp_path / "bm25")
    loaded = Lexical.load(tmp_path / "bm25", len(CHUNKS))
    for question in ("Where do otters and herons hunt?", "ferry pier minutes", "stones tools clams"):
        terms = tokenize(question)
        np.testing.assert_allclose(loaded.scores(terms), lexical.scores(terms), rtol=1e-6)
    for term in ("otter", "heron", "ferri", "volcano"):
        assert abs(loaded.idf(term) - lexical.idf(term)) < 1e-9
