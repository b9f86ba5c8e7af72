"""Words -> stemmed terms, and BM25 over the chunks of every segment of a build.

The same tokenizer serves BM25 retrieval and the word-overlap features of answer selection,
so a word matches the same way in both.

Each segment stores term-frequency postings (its terms in SQLite, the postings memory-mapped);
scores are computed at query time from corpus-wide statistics (document frequencies and average
length over the live chunks of all segments), so a build of several segments scores exactly as
one fresh segment would. The formulas are bm25s' defaults ("lucene", k1=1.5, b=0.75), computed
with the same float32/float64 steps, so scores equal what bm25s gives for the same chunks.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import threading
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

WORD = re.compile(r"[^\W_]+", re.UNICODE)  # a word: letters and digits
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


# Something typed, kept whole as a term besides its words, as it was written ("%j" and "%J" are
# different format codes, "-u" and "-U" different options): "--depth", "foreign_keys",
# "pg_hba.conf", ".bashrc".
TYPED = re.compile(r"(?<![\w%])%[A-Za-z]\b|(?<![\w-])--?[A-Za-z][\w-]*|\b[A-Za-z]\w*_\w+(?:\.\w+)?|"
                   r"(?<!\w)\.\w+rc\b|\b\w[\w-]*\.(?:conf|cfg|ini)\b")


# A punctuation mark named in words, or written alone (quoted, bracketed or between spaces), is one
# term: 'An optional prefix "!" negates the pattern' answers "What does an exclamation mark do?".
SYMBOL_NAMES = {
    "!": "exclamation mark|exclamation point", "^": "caret|circumflex", "~": "tilde", "*": "asterisk",
    "\\": "backslash", "/": "forward slash|slash", "|": "vertical bar|pipe character|pipe symbol",
    ";": "semicolon", ":": "colon", "#": "hash sign|pound sign|number sign|hash mark", "@": "at sign",
    "$": "dollar sign", "%": "percent sign", "&": "ampersand", "?": "question mark", "_": "underscore",
    "+": "plus sign", "=": "equals sign|equal sign", "`": "backtick|backquote",
}
_SYMBOL_NAME = re.compile(r"\b(?:" + "|".join(SYMBOL_NAMES.values()) + r")s?\b", re.I)
# between spaces only the marks that are no operator in code ("x = 3", "a * b", "$ prompt")
_LONE_SYMBOL = re.compile(r"(?<=[\"'`‘“(\[])([!^~*\\/|;:#@$%&?_+=`])(?=[\"'`’”)\]])|"
                          r"(?<=[ \t])([!^~;\\`])(?=[ \t,.]|$)")
_SYMBOL_OF = {name: symbol for symbol, names in SYMBOL_NAMES.items() for name in names.split("|")}


def _symbol_term(symbol: str) -> str:
    return f"symbol:{symbol}"


def _symbols(text: str) -> tuple[str, list[str]]:
    """The text with punctuation marks named in words taken out, and a term for each mark named or
    written alone in it."""
    named = [_symbol_term(_SYMBOL_OF[m.group().lower().rstrip("s")]) for m in _SYMBOL_NAME.finditer(text)]
    alone = [_symbol_term(m.group(1) or m.group(2)) for m in _LONE_SYMBOL.finditer(text)]
    return _SYMBOL_NAME.sub(" ", text), named + alone


# Initials written with dots are one word: "U.S." is "US", not "U" and "S".
_DOTTED_INITIALS = re.compile(r"\b[A-Z](?:\.[A-Z])+\.?(?!\w)")


def tokenize(text: str) -> list[str]:
    words, symbols = _symbols(text)
    words = _DOTTED_INITIALS.sub(lambda m: m.group().replace(".", "") + " ", words)
    return [_stem(w) for w in WORD.findall(words.lower()) if w not in STOPWORDS] + TYPED.findall(text) + symbols


def _a_form_of(a: str, b: str) -> bool:
    """One starts the other and is at least half as long: "jew" and "jewish", not "mer" and "mermaid"."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 3 and long.startswith(short) and 2 * len(short) >= len(long)


def folded(text: str) -> str:
    """Lower case and without accents: "Céloron" -> "celoron"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


K1, B = 1.5, 0.75
SPELLED_LIKE = 0.8  # difflib's ratio above which two terms are one word misspelled
CLOSE_SPELLINGS = 5  # how many of the closest spellings are looked up
POSTINGS = ("postings_ptr.npy", "postings_docs.npy", "postings_tf.npy", "lengths.npy")


class PostingsWriter:
    """Collects the terms of a segment's chunks, one chunk at a time, and writes the postings."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.terms, self.docs, self.tfs, self.lengths = array("i"), array("i"), array("i"), array("i")

    def add(self, tokens: list[str]) -> None:
        doc = len(self.lengths)
        self.lengths.append(len(tokens))
        for term, tf in Counter(tokens).items():
            self.terms.append(self.vocab.setdefault(term, len(self.vocab)))
            self.docs.append(doc)
            self.tfs.append(tf)

    def write(self, folder: Path, db: sqlite3.Connection, save) -> dict:
        """Write the postings (by `save(path, array)`) and the terms table; return the counts."""
        terms = np.frombuffer(self.terms, dtype=np.int32)
        order = np.argsort(terms, kind="stable")  # by term, chunks ascending within a term
        ptr = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=len(self.vocab)), out=ptr[1:])
        save(folder / "postings_ptr.npy", ptr)
        save(folder / "postings_docs.npy", np.frombuffer(self.docs, dtype=np.int32)[order])
        save(folder / "postings_tf.npy", np.frombuffer(self.tfs, dtype=np.int32)[order].astype(np.float32))
        save(folder / "lengths.npy", np.frombuffer(self.lengths, dtype=np.int32))
        db.execute("CREATE TABLE terms (term TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID")
        db.executemany("INSERT INTO terms VALUES (?, ?)", self.vocab.items())
        return {"terms": len(self.vocab), "postings": len(terms), "tokens": int(sum(self.lengths))}


@dataclass
class Postings:
    """One segment's postings, opened (memory-mapped)."""

    db: sqlite3.Connection
    lock: threading.Lock
    ptr: np.ndarray
    docs: np.ndarray
    tf: np.ndarray
    lengths: np.ndarray

    def of(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            row = self.db.execute("SELECT id FROM terms WHERE term = ?", (term,)).fetchone()
        if row is None:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        start, end = int(self.ptr[row[0]]), int(self.ptr[row[0] + 1])
        return self.docs[start:end], self.tf[start:end]


@dataclass
class Part:
    """A segment as BM25 sees it: its postings, where its chunk ids start, its deleted chunks."""

    postings: Postings
    offset: int
    deleted: np.ndarray | None  # bool per chunk of the segment, or None


class Lexical:
    """BM25 over the live chunks of all segments, plus document frequencies for weighting word overlap."""

    def __init__(self, parts: list[Part], space: int, live: int, live_tokens: int):
        self.parts, self.space, self.n_docs = parts, space, live
        self.avg_length = live_tokens / live if live else 1.0
        self._doc_freq: dict[str, int] = {}  # by term, so answer selection's idf() asks SQLite once per term

    def _postings(self, term: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(global chunk ids, term frequencies, chunk lengths) of the live chunks holding term."""
        found = []
        for part in self.parts:
            docs, tf = part.postings.of(term)
            if part.deleted is not None and len(docs):
                live = ~part.deleted[docs]
                docs, tf = docs[live], tf[live]
            if len(docs):
                found.append((docs.astype(np.int64) + part.offset, tf, part.postings.lengths[docs]))
        self._remember(term, sum(len(docs) for docs, _, _ in found))
        return found

    def _remember(self, term: str, doc_freq: int) -> None:
        if len(self._doc_freq) > 100_000:  # a bound, not a policy: query terms repeat a lot
            self._doc_freq.clear()
        self._doc_freq[term] = doc_freq

    def doc_freq(self, term: str) -> int:
        found = self._doc_freq.get(term)
        if found is None:
            found = sum(len(docs) for docs, _, _ in self._postings(term))
        return found

    def spelled_like(self, term: str) -> bool:
        """Whether the live chunks hold a term spelled nearly as `term` is ("kilbrandon" for
        "kllbrandon", "céloron" for "celeron"), or a form of it ("jew" of "jewish")."""
        for part in self.parts:
            with part.postings.lock:
                rows = part.postings.db.execute(
                    "SELECT term FROM terms WHERE term >= ? AND term < ? AND length(term) BETWEEN ? AND ?",
                    (term[0], term[0] + "\uffff", max(3, len(term) // 2), len(term) + 3)).fetchall()
            spellings: dict[str, list[str]] = {}
            for (written,) in rows:
                spellings.setdefault(folded(written), []).append(written)
            alike = [t for t in spellings if _a_form_of(term, t)]
            alike += difflib.get_close_matches(term, spellings, CLOSE_SPELLINGS, SPELLED_LIKE)
            # a segment's terms table keeps the terms of its deleted chunks too
            if any(self.doc_freq(written) for t in alike for written in spellings[t]):
                return True
        return False

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency; unseen terms weigh the most."""
        df = self.doc_freq(term)
        return float(np.log(1 + (self.n_docs - df + 0.5) / (df + 0.5)))

    def scores(self, terms: list[str]) -> np.ndarray:
        """The BM25 score of every chunk id (deleted chunks: -inf, so they are never candidates)."""
        scores = np.zeros(self.space, dtype=np.float32)
        for term in terms:  # a repeated term counts again, as in bm25s
            postings = self._postings(term)
            if not postings:
                continue
            idf = np.float32(self.idf(term))  # bm25s keeps idf as float32, tf parts as float64
            for docs, tf, lengths in postings:
                tfc = tf / (K1 * ((1 - B) + B * lengths / self.avg_length) + tf)
                scores[docs] += (np.float64(idf) * tfc).astype(np.float32)  # ids are unique per part
        for part in self.parts:
            if part.deleted is not None:
                scores[part.offset : part.offset + len(part.deleted)][part.deleted] = -np.inf
        return scores
