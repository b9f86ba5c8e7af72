"""The few entry points the CLI, web app and batch use: build an index, open it, ask, search, and
describe it. The faces import only this module, qa.types, qa.errors and qa.config; what they pass
around (the model, build settings, the feedback and conversation stores) is named here too."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from qa.answer import NOT_FOUND, compose, question_type, sentence_candidates
from qa.chunk import ChunkSettings
from qa.config import DEFAULT_K, DEFAULT_MIN_CONFIDENCE, MAX_QUESTION_CHARS
from qa.conversations import ConversationStore, SavedTurn
from qa.conversations import default_path as conversations_path
from qa.dense import describe as describe_search
from qa.distributed import RayEmbedder, on_workers, require_ray, worker_path
from qa.embed import Embedder
from qa.errors import BadQuestion
from qa.feedback import FeedbackStore
from qa.feedback import default_path as feedback_path
from qa.ingest import BuildReport, build
from qa.lexical import STOPWORDS, tokenize
from qa.load import LOADERS, TableFields, load_file
from qa.retrieve import MODES, Ranking, passages, rank
from qa.store import Index, LiveIndex, has_index, precision_of, read_manifest
from qa.types import Answer, Document, Passage, Turn

__all__ = [
    "QA", "build", "NOT_FOUND", "BuildReport", "ChunkSettings", "TableFields", "Embedder", "FeedbackStore",
    "feedback_path", "check_question", "has_index", "read_manifest", "precision_of", "DOCUMENT_SUFFIXES",
    "check_document",
    "STOPWORDS", "RayEmbedder", "on_workers", "require_ray", "worker_path", "ConversationStore", "SavedTurn",
    "conversations_path", "describe_search",
]

DOCUMENT_SUFFIXES = tuple(sorted(LOADERS))  # what a corpus file may be (".md", ".pdf", ...)


def check_document(name: str, data: bytes, fields: TableFields = TableFields()) -> int:
    """Whether a file's bytes read as documents, as `qa index` would read them: the number of
    documents, or LoadError with the reason (corrupt, empty, encrypted, a zip bomb...)."""
    return len(load_file(Path(name), name, data, fields))

# Words that point back to an earlier turn: pronouns, and "that" where it cannot be a relative
# pronoun ("on that visit", "why is that?").
_POINTS_BACK = re.compile(
    r"\b(it|its|they|them|their|he|him|his|she|her|this|these|those|such)\b"
    r"|(?<!\bis )(?<!\bare )(?<!\bwas )(?<!\bwere )\bthere\b(?!\s+(?:is|are|was|were|be|any|a|an)\b)"
    r"|\b(on|in|at|about|of|for|from|with|during|after|before|is|was|does|did|by)\s+that\b|\bthat\s*\?*$"
    r"|\bones?\s*\?*$|\b(?:which|the|this|that|another|new|other)\s+ones?\b",
    re.I,
)
# A question that continues the one before without repeating it: "And for flights?", "What about
# Toronto?", "Over what period?".
_CONTINUES = re.compile(
    r"^\s*(?:and|or|but|also|so|then|what about|how about|same for|"
    r"(?:over|for|in|at|on|by|from|since|until|during|to|with|about)\s+(?:what|which|how|whom?))\b",
    re.I,
)
_ASKS = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how)\b", re.I)  # a question's own frame
# The frame of a question, not its subject: "How long is it?" asks about "it", "Over what period?"
# and "According to whom?" about the last turn's subject.
_QUESTION_WORDS = {"what", "which", "who", "whom", "whose", "when", "where", "why", "how", "much", "many", "long",
                   "often", "far", "old", "period", "reason", "way", "another", "else", "according", "kind",
                   "sort", "example"}
_CITATION_MARK = re.compile(r"\s*\[\d+\]")
MAX_CHAIN = 3  # earlier turns a follow-up is read with, at most
# Words about the documents rather than in them: "mentioned in the article", "according to the
# report", "what do the documents say about". No passage holds them; searched for, they only
# lower the confidence of the one that answers.
_THE_DOCUMENTS = r"(?:this|these|the)\s+(?:articles?|documents?|texts?|reports?|papers?|passages?|documentation)\b"
_ABOUT_THE_DOCUMENTS = re.compile(
    rf"\b(?:(?:mentioned|named|described|discussed|cited|quoted|listed)\s+(?:in|by)|according\s+to)\s+{_THE_DOCUMENTS}"
    rf"|\b(?:do|does|did)\s+{_THE_DOCUMENTS}\s+say\b", re.I)


def check_question(question: str) -> str:
    question = (question or "").strip()
    if not question:
        raise BadQuestion('the question is empty: ask something, e.g. qa ask "What is ...?"')
    if len(question) > MAX_QUESTION_CHARS:
        raise BadQuestion(f"the question has {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}")
    if any("\ud800" <= ch <= "\udfff" for ch in question):  # e.g. a lone "\ud83d" escape in JSON
        raise BadQuestion("the question is not valid Unicode text (it holds half of a surrogate pair)")
    return question


History = Sequence["str | Turn"]  # earlier questions, or earlier questions with their answers


def as_turns(history: History) -> list[Turn]:
    return [h if isinstance(h, Turn) else Turn(str(h)) for h in history]


@dataclass(frozen=True)
class Reading:
    """How a question is searched: its own text, or, for a follow-up, with the turns it continues.
    `own_terms` are the follow-up's own words (None for a question that stands on its own), which
    weigh more than the borrowed ones; `topic_terms` those of them that name a thing, which the
    answer's passage must hold for the history to lend it confidence."""

    query: str
    own_terms: list[str] | None = None
    topic_terms: list[str] | None = None  # the own words that name a thing, not what is asked of "it"
    sentence_query: str = ""  # what the answer's sentences are scored by, when not `query`: no earlier answer
    kind: str | None = None  # the kind of answer asked for (a date, a reason...), when not read off `query`

    @cached_property
    def terms(self) -> list[str]:
        return tokenize(self.query)

    def search_terms(self) -> list[str]:
        """The BM25 terms: a follow-up's own words count twice (a repeated term counts again), as
        they say what is asked and the turns it continues only what about."""
        return self.terms + (self.own_terms or [])


def own_words(question: str) -> list[str]:
    """The search terms of a question without its frame ("how long", "what")."""
    return tokenize(" ".join(w for w in re.findall(r"\w+", question.lower()) if w not in _QUESTION_WORDS))


_DETERMINER = {"the", "a", "an", "its", "their", "his", "her", "this", "that", "these", "those", "my", "your", "our",
               "some", "any", "each", "every", "which", "what", "whose", "for", "of", "about", "on", "in", "with",
               "from", "to", "at", "by", "under", "over", "and", "or"}
_NOT_A_NOUN = {"is", "are", "was", "were", "be", "been", "do", "does", "did", "can", "could", "should", "would",
               "will", "shall", "has", "have", "had", "may", "might", "must", "it", "they", "them", "he", "she",
               "him", "i", "we", "you", "us", "me", "there", "then", "not"}


def topic_words(question: str) -> list[str]:
    """The words of a follow-up that name a thing ("its dress code", "for flights", "which
    option"), not what it asks of the thing it points back to ("How can I fix it?", "When was it
    signed?"): the words after a determiner, a possessive or a preposition, up to the next verb
    or pronoun."""
    words = re.findall(r"[\w'-]+", question.lower())
    named, naming = [], False
    for word in words:
        if word in _DETERMINER:
            naming = True  # "which option" names a thing; "what does" is reset by "does"
            continue
        if word in _NOT_A_NOUN or word in _QUESTION_WORDS:
            naming = False
            continue
        if naming:
            named.append(word)
    return tokenize(" ".join(named))


def is_follow_up(question: str) -> bool:
    return bool(_POINTS_BACK.search(question) or _CONTINUES.match(question) or not own_words(question))


def read_question(question: str, history: History = ()) -> Reading:
    """A question that stands on its own is searched alone, exactly as if asked without history.
    A follow-up ("When was it signed?", "And for flights?", "Why is that?") is searched together
    with the turns it continues: back to the last one that stood on its own ("According to whom?"
    after "Over what period?" continues the question before both), passing over declined turns
    (an off-topic question between names no topic), and, for a pronoun, with the last answer too
    (what "it" or "that" names)."""
    turns = [t for t in as_turns(history) if t.question.strip()]
    searched = " ".join(_ABOUT_THE_DOCUMENTS.sub(" ", question).split()) or question
    if not turns or not is_follow_up(question):
        return Reading(searched)
    chain: list[Turn] = []
    for turn in reversed(turns):
        if turn.declined:
            continue
        chain.append(turn)
        if not is_follow_up(turn.question) or len(chain) == MAX_CHAIN:
            break
    if not chain:  # every turn before was declined: there is nothing to continue
        return Reading(searched)
    context = questions = " ".join(t.question for t in reversed(chain))
    answer = _CITATION_MARK.sub("", chain[0].answer).strip()
    pronoun = bool(_POINTS_BACK.search(question)) and not _CONTINUES.match(question)
    if answer and pronoun:
        context = f"{context} {answer[:400]}"
    own = own_words(searched)
    # "What was signed during that visit?" and "And what does she call it?" ask for a thing, though
    # the turn before asked "When...?" or "Who...?"; "And for flights?" asks what that turn asked
    opener = _CONTINUES.match(searched)
    kind = question_type(searched)
    if not kind and opener and not _ASKS.search(searched[opener.end():]):
        kind = question_type(f"{searched} {questions}")
    return Reading(f"{searched} {context}", own, topic_words(searched) if pronoun else own,
                   f"{searched} {questions}" if context != questions else "", kind)


class QA:
    """An opened index: open once, ask many times. Safe to share between threads for reading.
    With `follow_swaps` (a server), each new build `qa index` swaps in is picked up while it runs;
    each question is answered from one whole build."""

    def __init__(
        self,
        index: Path | str = "index",
        model: str | None = None,
        embedder: Embedder | None = None,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        follow_swaps: bool = False,
        cache: str = "",
    ):
        self.min_confidence = min_confidence  # answers less confident are declined
        self._live = LiveIndex(Path(index), model, follow=follow_swaps)
        self.embedder = embedder or Embedder(self.index.model, cache=cache, precision=self.index.precision)

    @property
    def index(self) -> Index:
        """The build questions are answered from now."""
        return self._live.get()

    def reopen(self) -> None:
        """Open the live build now (after a build this process made itself) rather than at the
        next look for a newer one; questions are answered from the open build meanwhile."""
        live = self._live
        self._live = LiveIndex(live.folder, self.index.model, follow=live.follow)

    def ask(self, question: str, k: int = DEFAULT_K, history: History = (), mode: str = "hybrid") -> Answer:
        return self.ask_many([question], k=k, histories=[history], mode=mode)[0]

    def ask_many(
        self,
        questions: Sequence[str],
        k: int = DEFAULT_K,
        histories: Sequence[History] | None = None,
        mode: str = "hybrid",
    ) -> list[Answer]:
        """Answer several questions with batched query encoding; each answer is the same as
        asking alone."""
        return list(self.answer_stream(questions, k, histories, mode))

    def answer_stream(
        self,
        questions: Sequence[str],
        k: int = DEFAULT_K,
        histories: Sequence[History] | None = None,
        mode: str = "hybrid",
    ) -> Iterator[Answer]:
        """`ask_many` as a stream, in input order: questions are answered as their vectors arrive
        while the next ones are still being encoded, so a long list keeps every CPU busy."""
        questions = [check_question(q) for q in questions]
        index = self.index
        histories = histories or [()] * len(questions)
        readings = [read_question(q, h) for q, h in zip(questions, histories)]
        queries = [r.query for r in readings]
        answered: dict[int, Answer] = {}
        next_out = 0
        waited_from = time.perf_counter()
        for indices, vectors in self.embedder.stream_queries(queries):
            # A question's "encode" time is the wait for its forward pass, shared by the pass.
            encode_ms = (time.perf_counter() - waited_from) * 1000 / len(indices)
            for i, vector in zip(indices, vectors):
                answered[i] = self._answer(index, questions[i], readings[i], vector, k, mode, encode_ms)
            while next_out in answered:
                yield answered.pop(next_out)
                next_out += 1
            waited_from = time.perf_counter()

    def _answer(self, index: Index, question: str, reading: Reading, vector: np.ndarray, k: int, mode: str,
                encode_ms: float) -> Answer:
        t0 = time.perf_counter()
        ranking = _rank(index, vector, reading.search_terms(), mode)
        t1 = time.perf_counter()
        own_vector = self.embedder.encode_queries([question])[0] if reading.own_terms is not None else None
        # an earlier answer helps find the passage "it" is in, but its words would pick that answer again
        sentence_terms = tokenize(reading.sentence_query) if reading.sentence_query else reading.terms
        candidates = sentence_candidates(index, ranking, reading.sentence_query or reading.query, vector,
                                         sentence_terms, k, reading.own_terms, own_vector, reading.kind)
        answer = compose(index, question, ranking, candidates, sentence_terms, self.min_confidence,
                         own_terms=reading.topic_terms, own_vector=own_vector)
        t2 = time.perf_counter()
        answer.timings_ms.update(
            {
                "encode": encode_ms,
                "retrieve": (t1 - t0) * 1000,
                "answer": (t2 - t1) * 1000,
                "total": encode_ms + (t2 - t0) * 1000,
            }
        )
        return answer

    def search(self, query: str, k: int = DEFAULT_K, mode: str = "hybrid") -> list[Passage]:
        query = check_question(query)
        index = self.index
        vector = self.embedder.encode_queries([query])[0]
        return passages(index, _rank(index, vector, tokenize(query), mode), k)

    def document(self, source: str) -> Document | None:
        return self.index.document(source)

    def documents(self) -> Iterable[Document]:
        return self.index.documents()

    def info(self) -> dict:
        index = self.index
        manifest = index.manifest
        return {
            "index": str(index.folder),
            "model": manifest["model"],
            "precision": index.precision,
            "dimension": manifest["dimension"],
            "built_at": manifest["built_at"],
            "build_seconds": manifest["build_seconds"],
            "chunking": manifest["chunking"],
            **manifest["counts"],
            "skipped": manifest["skipped"],
            "sources": sorted(manifest["files"]),
            "segments": len(manifest["segments"]),
            "dense": manifest["dense"],
            "versions": manifest["versions"],
        }


def _rank(index: Index, vector: np.ndarray, terms: list[str], mode: str) -> Ranking:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    return rank(index, vector, terms, mode)
