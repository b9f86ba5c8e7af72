"""Words -> stemmed terms, and the BM25 index over chunks (bm25s).

The same tokenizer serves BM25 retrieval and the word-overlap features of answer selection,
so a word matches the same way in both.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# English function words, question words included: "When did X meet Y?" is about X, Y and meeting.
STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN) | frozenset(
    """a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can cannot could couldn't did didn't do does doesn't doing don't down during
    each few for from further had hadn't has hasn't have haven't having he her here hers herself him
    himself his how i if in into is isn't it its itself let's me more most mustn't my myself no nor not of
    off on once only or other ought our ours ourselves out over own same shan't she should shouldn't so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was wasn't we were weren't what when where which while who whom whose why will with
    won't would wouldn't you your yours yourself yourselves also may might must shall whether whatever
    s t d ll m o re ve y""".split()
)
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def tokenize(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class Lexical:
    """BM25 over chunk texts, plus document frequencies for weighting word overlap."""

    def __init__(self, bm25: bm25s.BM25, n_docs: int):
        self.bm25 = bm25
        self.vocab = bm25.vocab_dict
        self.n_docs = n_docs
        doc_freq = np.diff(bm25.scores["indptr"]) if "indptr" in bm25.scores else None
        self._doc_freq = doc_freq

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> Lexical:
        bm25 = bm25s.BM25()
        bm25.index(token_lists, show_progress=False)
        return cls(bm25, len(token_lists))

    def save(self, folder: Path) -> None:
        self.bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> Lexical:
        return cls(bm25s.BM25.load(str(folder), show_progress=False, mmap=False), n_docs)

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency; unseen terms weigh the most."""
        index = self.vocab.get(term)
        df = 0 if index is None or self._doc_freq is None else int(self._doc_freq[index])
        return float(np.log(1 + (self.n_docs - df + 0.5) / (df + 0.5)))

    def scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in terms if t in self.vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float32)
        return self.bm25.get_scores(known)
