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
STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)
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
