"""Words -> stemmed terms, and BM25 over chunks: the same words match the same way in retrieval
and answer selection, rare words weigh more, scores equal bm25s' for the same chunks, and chunks
split into segments (some deleted) score exactly as one fresh segment of the live ones."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
from pathlib import Path

import bm25s
import numpy as np

from qa.lexical import POSTINGS, Lexical, Part, Postings, PostingsWriter, tokenize

CHUNKS = [
    "Sea otters use stones as tools to crack open clams while floating on their backs.",
    "Grey herons stand motionless in the shallows before striking at a passing fish.",
    "The harbour ferry leaves the north pier every forty minutes.",
    "Otters and herons both hunt in the harbour at dawn.",
]
SCIFACT = Path("/work/shared/data/scifact/corpus.jsonl.gz")


def _postings(folder: Path, texts: list[str]) -> tuple[Postings, int]:
    """Write one segment's postings for texts into folder and open them; also return its token count."""
    folder.mkdir()
    writer = PostingsWriter()
    for text in texts:
        writer.add(tokenize(text))
    db = sqlite3.connect(folder / "terms.sqlite", check_same_thread=False)
    counts = writer.write(folder, db, lambda path, array: np.save(path, array))
    db.commit()
    arrays = [np.load(folder / name, mmap_mode="r") for name in POSTINGS]
    return Postings(db, threading.Lock(), *arrays), counts["tokens"]


def _lexical(folder: Path, texts: list[str]) -> Lexical:
    postings, tokens = _postings(folder, texts)
    return Lexical([Part(postings, 0, None)], len(texts), len(texts), tokens)


def test_question_words_and_function_words_are_not_terms_and_words_are_stemmed():
    assert tokenize("When did the otters swim across the harbour?") == ["otter", "swim", "across", "harbour"]
    assert tokenize("Swimming, swims, SWIM") == ["swim", "swim", "swim"]
    assert tokenize("What is it?") == []


def test_words_are_split_at_underscores_and_punctuation_and_keep_their_letters():
    assert tokenize("Zürich (café) x-ray") == ["zürich", "café", "x", "ray"]


def test_a_typed_thing_is_also_a_term_whole_as_written():
    assert tokenize("Set lake_level in harbour.conf") == ["set", "lake", "level", "harbour", "conf", "lake_level",
                                                         "harbour.conf"]
    assert tokenize("%j and %J, -u and --unpaid, ~/.moorrc") == ["j", "j", "u", "unpaid", "moorrc", "%j", "%J", "-u",
                                                                "--unpaid", ".moorrc"]
    assert tokenize("IL-6 in T-cells, a self-made e-mail - x = -3") == ["il", "6", "cell", "self", "made", "e",
                                                                        "mail", "x", "3"]



def test_initials_written_with_dots_are_one_word():
    assert tokenize("U.S. ports, the US fleet, a U.K. firm in the U.S.A.") == ["us", "port", "us", "fleet", "uk",
                                                                            "firm", "usa"]
    assert tokenize("e.g. x.z") == ["e", "g", "x", "z"]  # lower-case letters are no initials

def test_a_punctuation_mark_named_in_words_or_written_alone_is_one_term():
    assert tokenize('What does an exclamation mark do?') == ["symbol:!"]
    assert tokenize('A prefix "!" negates it; lines begin with a \'^\' or (;) or ^ here') == [
        "prefix", "negat", "line", "begin", "symbol:!", "symbol:^", "symbol:;", "symbol:^"]
    assert tokenize("Semicolons, a caret and a tilde") == ["symbol:;", "symbol:^", "symbol:~"]
    # a mark inside a word or a value, or a list item's bullet, is not written alone
    assert tokenize("* item x!b ^1.2 ~/.bashrc, x = 3") == ["item", "x", "b", "1", "2", "bashrc", "x", "3", ".bashrc"]


def test_a_mark_named_in_the_question_finds_the_chunk_writing_it_alone(tmp_path):
    rows = ['A leading "!" negates the pattern, so a file it matches is included again.',
            "A leading slash anchors the pattern to the top directory of the repository."]
    lexical = _lexical(tmp_path / "seg", rows)
    scores = lexical.scores(tokenize("What does a leading exclamation mark do to a pattern?"))
    assert int(np.argmax(scores)) == 0 and scores[0] > scores[1]


def test_a_typed_thing_finds_the_chunk_holding_it_as_written(tmp_path):
    rows = ["Format %j prints the day of the year as a number from 001 to 366.",
            "Format %J prints the Julian day number of the date with its fraction."]
    lexical = _lexical(tmp_path / "seg", rows)
    assert int(np.argmax(lexical.scores(tokenize("What does %J print?")))) == 1
    assert int(np.argmax(lexical.scores(tokenize("What does %j print?")))) == 0


def test_a_word_is_spelled_like_one_of_the_chunks_when_misspelled_accented_or_a_form_of_it(tmp_path):
    lexical = _lexical(tmp_path / "seg", CHUNKS + ["Céloron sailed to Kilbrandon with the Jews of Zürich."])
    for near in ["kllbrandon", "celeron", "jewish", "zurich", "otter", "herons"]:
        assert lexical.spelled_like(near), near
    for far in ["borgbackup", "mermaid", "kubernetes", "o"]:
        assert not lexical.spelled_like(far), far


def test_a_word_spelled_like_one_only_a_deleted_chunk_holds_is_not(tmp_path):
    texts = CHUNKS + ["Kilbrandon wrote the harbour report."]
    postings, tokens = _postings(tmp_path / "seg", texts)
    deleted = np.zeros(len(texts), dtype=bool)
    deleted[-1] = True  # its file changed: the segment's terms table still lists "kilbrandon"
    live_tokens = tokens - int(np.asarray(postings.lengths)[-1])
    lexical = Lexical([Part(postings, 0, deleted)], len(texts), len(texts) - 1, live_tokens)
    assert not lexical.spelled_like("kllbrandon")
    assert lexical.spelled_like("herrons")


def test_the_chunk_holding_the_words_scores_highest(tmp_path):
    scores = _lexical(tmp_path / "seg", CHUNKS).scores(tokenize("Which pier does the ferry leave from?"))
    assert scores.shape == (len(CHUNKS),)
    assert int(np.argmax(scores)) == 2 and scores[2] > 0
    assert scores[0] == scores[1] == 0


def test_words_no_chunk_holds_score_every_chunk_zero(tmp_path):
    scores = _lexical(tmp_path / "seg", CHUNKS).scores(tokenize("volcano eruption"))
    assert scores.shape == (len(CHUNKS),) and not scores.any()


def test_rare_words_weigh_more_and_unseen_words_the_most(tmp_path):
    lexical = _lexical(tmp_path / "seg", CHUNKS)
    otter, clam, unseen = (lexical.idf(tokenize(word)[0]) for word in ("otters", "clams", "volcano"))
    assert 0 < otter < clam < unseen  # otters are in two chunks, clams in one, volcanoes in none


def _scifact(n: int) -> list[str]:
    with gzip.open(SCIFACT, "rt", encoding="utf-8") as f:
        return [f"{r['title']}\n{r['text']}" for r in map(json.loads, (next(f) for _ in range(n)))]


QUERIES = ["Which pier does the ferry leave from?", "otters herons otters", "gene expression in tumour cells",
           "vitamin D deficiency and bone density in older adults", "protein"]


def test_scores_equal_bm25s_for_the_same_chunks(tmp_path):
    texts = CHUNKS + _scifact(1500)
    tokens = [tokenize(t) for t in texts]
    reference = bm25s.BM25()  # bm25s' defaults: method "lucene", k1=1.5, b=0.75
    reference.index(tokens, show_progress=False)
    lexical = _lexical(tmp_path / "seg", texts)
    for query in QUERIES:
        terms = [t for t in tokenize(query) if t in reference.vocab_dict]
        assert terms
        np.testing.assert_array_equal(lexical.scores(terms), reference.get_scores(terms))


def test_segments_with_deleted_chunks_score_as_one_fresh_segment_of_the_live_chunks(tmp_path):
    texts = _scifact(900)
    first, second = texts[:600], texts[600:]
    deleted = np.zeros(len(first), dtype=bool)
    deleted[100:250] = True  # a file that changed or went away
    (a, tokens_a), (b, tokens_b) = _postings(tmp_path / "a", first), _postings(tmp_path / "b", second)
    live_tokens = tokens_a + tokens_b - int(np.asarray(a.lengths)[deleted].sum())
    split = Lexical([Part(a, 0, deleted), Part(b, len(first), None)], len(texts), len(texts) - 150, live_tokens)
    live = [t for t, d in zip(first, deleted) if not d] + second
    fresh = _lexical(tmp_path / "fresh", live)
    keep = np.concatenate([~deleted, np.ones(len(second), dtype=bool)])
    for query in QUERIES:
        terms = tokenize(query)
        scores = split.scores(terms)
        assert np.all(scores[~keep] == -np.inf)
        np.testing.assert_array_equal(scores[keep], fresh.scores(terms))
        for term in terms:
            assert split.idf(term) == fresh.idf(term)
