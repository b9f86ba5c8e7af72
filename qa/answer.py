"""Passages -> an Answer: the sentences that answer, copied verbatim and cited, or an abstention.

Every sentence of the top passages is scored by a few cheap, corpus-independent features (its
similarity to the question, the share of the question's weighted words it contains, how well its
passage ranked, whether it holds the kind of thing asked for). The weights and the abstention
threshold were fitted on SQuAD and off-topic questions by bench/fit_answer.py; no model is run
per sentence, so an answer costs one query encoding plus arithmetic.
"""

from __future__ import annotations

import math
import re

import numpy as np

from qa.config import DEFAULT_K
from qa.lexical import WORD, folded, tokenize
from qa.reading import choose
from qa.retrieve import Ranking
from qa.sentence_facts import Candidate, ChunkFacts, chunk_facts, document_text
from qa.store import Index
from qa.types import Answer, AnswerSentence, Citation

NOT_FOUND = "I could not find this in the documents."

FEATURES = ("dense", "overlap", "context", "passage", "first", "novel", "type", "short", "passage_overlap")
# Pairwise logistic regression on SQuAD (the sentence holding the gold answer should outrank the
# others of the same question); only differences between sentences matter, so there is no bias.
SENTENCE_WEIGHTS = np.array([6.221, 3.839, 0.914, 0.516, 0.087, 1.16, 1.721, -3.185, 1.588])
# Confidence that the documents answer the question: logistic regression of answerable SQuAD
# questions against off-topic ones, on [top passage cosine, best sentence cosine, share of the
# question's weighted words in the best sentence, the same in its passage]. The bias puts 0.5 (the
# default QA_MIN_CONFIDENCE) at the point that declines 3% of answerable questions.
CONFIDENCE_WEIGHTS = np.array([5.764, 6.226, 3.94, 5.011])
CONFIDENCE_BIAS = -8.108


# A follow-up alone whose cosine with the best sentence is at the floor lends no confidence to the
# answer; at floor + span it lends all (unrelated pairs measure below 0.1, a follow-up and the
# sentence answering it 0.2-0.4).
OWN_COSINE_FLOOR = 0.10
OWN_COSINE_SPAN = 0.15
# A follow-up's word held by more than this share of the chunks is the documents' own vocabulary.
EVERYWHERE = 0.1
# A question's name held by at most this share of the chunks must be named by the answer's passages.
RARE_NAME = 0.01
ACRONYM_LETTERS = 5  # a word of at most this many capitals may be an acronym
NAMES_CHECKED, NAMES_SAID = 12, 3  # names of a question looked up; unknown ones a decline names
NAME_FORM_SHARE = 0.75  # a shorter word that starts a name and is this long a share of it is a form of it
_SENTENCE_END = re.compile(r"[.!?]\W*$")
# What a word a follow-up takes from the turn before weighs, against one of its own.
CONTEXT_TERM_WEIGHT = 0.2
# What a follow-up's meaning alone weighs in a sentence's similarity, against its meaning read with
# the turns it continues (a quarter: the turns say what "it" is, the follow-up what is asked of it).
OWN_MEANING = 0.25


# "Which option...", "what command", "which environment variable", "what do I have to add":
# asks for something typed.
_ASKS_FOR_CODE = (r"\b(?:which|what)\s+(?:\w+\s+){0,2}(?:options?|flags?|switch(?:es)?|commands?|settings?|"
                  r"parameters?|variables?|files?|hooks?|functions?|methods?|modules?|macros?|pragmas?|directives?|"
                  r"keywords?|tags?|characters?|(?:format|type) codes?|syntax|operators?|programs?|tools?|"
                  r"utilit(?:y|ies))\b|"
                  r"\bwhat (?:do|should|must) (?:i|we|you) (?:have to |need to )?(?:add|set|type|run|use|put|write|"
                  r"switch on|turn on|enable|pass)\b")


# "What is wrong with...", "the drawbacks of...", "any limitations": asks for a shortcoming, which is
# said with a negation ("is not the preferred spacing", "cannot be nested", "only works...").
_ASKS_FOR_A_FAULT = (r"\bwhat(?:'s| is| are)\s+(?:\w+\s+)?wrong\b|\b(?:problems?|issues?) with\b|"
                     r"\b(?:drawbacks?|downsides?|disadvantages?|limitations?|pitfalls?|caveats?|shortcomings?)\b")


# "...if I don't give it a size?", "If I leave out VIRTUAL or STORED...", "when no size is given",
# "by default": asks what holds when nothing is chosen.
_ASKS_FOR_THE_DEFAULT = (r"\bdefault\b|\bif (?:i|you|we|one) (?:don't|do not|didn't|never|haven't) (?:\w+ ){0,2}?"
                         r"(?:give|set|specify|configure|configured|pass|choose|say|provide|define|add|use)\b|"
                         r"\bif (?:i|you|we|one) (?:leave out|omit)\b|"
                         r"\bwhen no \w+(?: \w+)? is (?:given|specified|set)\b|"
                         r"\bwithout (?:giving|specifying|setting|passing|configuring)\b")


def question_type(question: str) -> str:
    q = question.lower()
    if re.search(_ASKS_FOR_THE_DEFAULT, q):
        return "default"
    if re.search(
        r"\b(how (many|much|long|old|far|large|big|tall|often)|what (percentage|percent|number|amount|size))\b", q
    ):
        return "number"
    if re.search(r"\b(when|what year|which year|what date|what century|what decade)\b", q):
        return "date"
    if re.search(_ASKS_FOR_CODE, q):
        return "code"
    if re.match(r"\W*(?:can|could|is|are|was|were|does|do|did|should|will|would|may|must|has|have)\b", q):
        return "polar"  # asks yes or no
    if re.search(_ASKS_FOR_A_FAULT, q):
        return "fault"
    if re.search(r"\b(who|whom|whose|where)\b", q):
        return "name"
    if re.match(r"\W*why\b", q) or re.search(r"[.?!]\s+why\b", q) or re.search(
            r"\bwhat (?:\w+ )?(?:causes?|caused)\b|\bhow come\b|\bfor what reason\b", q):
        return "reason"
    if re.search(r"\bhow (do|can|should|would|could) (i|we|you|one)\b|\bhow to\b|\bwhat (do|should|must) (i|we) \w+",
                 q):
        return "steps"
    return ""



def _type_match(facts: ChunkFacts, kind: str, question: str) -> np.ndarray:
    """Whether each sentence holds the kind of thing asked for (0.5 when the kind is unknown)."""
    if kind == "number":
        return facts.number.astype(np.float32)
    if kind == "date":
        return facts.date.astype(np.float32)
    if kind in ("reason", "steps", "code", "polar", "default"):
        return getattr(facts, kind).astype(np.float32)
    if kind == "fault":
        return facts.polar.astype(np.float32)  # a negation, or "only", says what is wrong
    if kind == "name":
        asked = set(re.findall(r"[A-Z][a-z]+", question))
        return np.array([any(w not in asked for w in caps) for caps in facts.capitals], dtype=np.float32)
    return np.full(len(facts.spans), 0.5, dtype=np.float32)


def _passages_read(index: Index, ranking: Ranking, read: int) -> list[int]:
    """The ranks of the passages whose sentences are scored: the first `read`, and those of the best
    passage's document among as many ranked next. The section beside the best one often holds the
    answer, ranked just below the cut ("Invoked as an interactive non-login shell" beside "Invoked
    non-interactively"); their passage feature goes on below 0, the k-th passage's score being 0."""
    document = index.chunk(int(ranking.ids[0])).source
    next_ones = range(read, min(len(ranking.ids), 2 * read))
    return [*range(read), *(i for i in next_ones if index.chunk(int(ranking.ids[i])).source == document)]


def sentence_candidates(
    index: Index, ranking: Ranking, question: str, query_vector: np.ndarray, terms: list[str], k: int = DEFAULT_K,
    own_terms: list[str] | None = None, own_vector: np.ndarray | None = None, kind: str | None = None,
) -> list[Candidate]:
    """Every sentence of the top k passages (and of the best one's document ranked next), scored,
    best first. For a follow-up, the words it took from the turn before (`terms` beyond its
    `own_terms`) count for less than its own: in "And for flights?" after a question on the hotel
    limit, "flights" decides the row."""
    own = set(own_terms) if own_terms else None
    weights = {t: index.idf(t) * (1.0 if own is None or t in own else CONTEXT_TERM_WEIGHT)
               for t in set(terms)}
    total = sum(weights.values()) or 1.0
    kind = question_type(question) if kind is None else kind
    read = min(len(ranking.ids), k)
    top, low = float(ranking.scores[0]), float(ranking.scores[read - 1])
    positions = _passages_read(index, ranking, read)
    chunk_ids = ranking.ids[positions].tolist()
    facts = [chunk_facts(index, chunk_id) for chunk_id in chunk_ids]
    sizes = [len(f.spans) for f in facts]
    if not sum(sizes):
        return []
    starts = np.cumsum([0, *sizes[:-1]])
    # which question terms each sentence holds (terms x sentences), and the weight of each term
    present = np.zeros((len(weights), sum(sizes)), dtype=bool)
    for t, term in enumerate(weights):
        for f, at, n in zip(facts, starts, sizes):
            mask = f.masks.get(term)
            if mask is not None:
                present[t, at : at + n] = mask
    term_weights = np.array(list(weights.values()), dtype=np.float64)
    # a term in the sentence before or after, within the same passage
    near = np.zeros_like(present)
    same_passage = np.ones(sum(sizes), dtype=bool)
    nonempty = [i for i, n in enumerate(sizes) if n]
    same_passage[starts[nonempty]] = False  # a passage's first sentence has no "before" in it
    near[:, 1:] |= present[:, :-1] & same_passage[1:]
    near[:, :-1] |= present[:, 1:] & same_passage[1:]
    passage_overlap = term_weights @ np.logical_or.reduceat(present, starts[nonempty], axis=1)
    asked_terms = present.sum(axis=0)
    words = np.concatenate([f.words for f in facts])

    matrix = np.empty((sum(sizes), len(FEATURES)), dtype=np.float32)
    sentence_vectors = index.sentence_vectors(chunk_ids).astype(np.float32)
    matrix[:, 0] = sentence_vectors @ query_vector
    if own_vector is not None:
        matrix[:, 0] = (1 - OWN_MEANING) * matrix[:, 0] + OWN_MEANING * (sentence_vectors @ own_vector)
    matrix[:, 1] = term_weights @ present / total
    matrix[:, 2] = term_weights @ (near & ~present) / total
    matrix[:, 5] = (words - asked_terms) / np.maximum(1, words)
    owners = []
    for slot, rank in enumerate(nonempty):
        chunk, at, n = facts[rank], starts[rank], sizes[rank]
        block = matrix[at : at + n]
        block[:, 3] = (float(ranking.scores[positions[rank]]) - low) / (top - low) if top > low else 1.0
        block[:, 4] = chunk.first
        block[:, 6] = _type_match(chunk, kind, question)
        block[:, 7] = chunk.short
        block[:, 8] = passage_overlap[slot] / total
        owners.extend((chunk_ids[rank], positions[rank], s, e) for s, e in chunk.spans)
    scores = matrix @ SENTENCE_WEIGHTS
    order = np.argsort(-scores, kind="stable")
    return [Candidate(*owners[i], features=matrix[i], score=float(scores[i])) for i in order]


def confidence_signals(best_features: np.ndarray, top_cosine: float) -> np.ndarray:
    """What the confidence reads (see CONFIDENCE_WEIGHTS): the top passage's cosine and the best
    sentence's cosine, word share and passage word share."""
    picked = [FEATURES.index(name) for name in ("dense", "overlap", "passage_overlap")]
    return np.array([top_cosine, *best_features[picked]], dtype=np.float64)


def confidence(best: Candidate, ranking: Ranking) -> float:
    signals = confidence_signals(best.features, float(ranking.dense.max()))
    return 1.0 / (1.0 + math.exp(-(float(signals @ CONFIDENCE_WEIGHTS) + CONFIDENCE_BIAS)))


def _sentence_cosine(index: Index, candidate: Candidate, vector: np.ndarray) -> float:
    facts = chunk_facts(index, candidate.chunk_id)
    j = facts.spans.index((candidate.start, candidate.end))
    return float(index.sentence_vectors([candidate.chunk_id])[j].astype(np.float32) @ vector)


def own_share(index: Index, chunk_id: int, own_terms: list[str]) -> float:
    """The share of a follow-up's own words (IDF-weighted) that its answer's passage holds, a word
    the documents use all over counting as held: "file" and "setting" in "Which file does that
    setting go in?" are their own vocabulary and cannot make it off-topic; "dress code" can."""
    weights = {t: index.idf(t) for t in set(own_terms)}
    total = sum(weights.values())
    if not total:
        return 1.0
    masks = chunk_facts(index, chunk_id).masks
    everywhere = EVERYWHERE * index.chunk_count
    return sum(w for t, w in weights.items() if t in masks or index.doc_freq(t) > everywhere) / total


def names_in(question: str) -> list[str]:
    """The names a question asks about, lower case and without accents: words with a capital past
    their first letter ("PostgreSQL", "GitHub", "LFS") and capitalized words that do not open a
    sentence ("Kubernetes", "Rubio"). None in a question written in capitals or in Title Case."""
    return [folded(name) for name in _names_as_written(question)]


# Capitalized in English but no name of a thing the documents may not cover: "...released in
# November 2022?", "...use for Monday?".
_CALENDAR_WORDS = frozenset("""january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday""".split())


def _names_as_written(question: str) -> list[str]:
    letters = [c for c in question if c.isalpha()]
    if sum(c.isupper() for c in letters) > len(letters) / 2:
        return []
    long_words = [w for w in WORD.findall(question) if len(w) >= 4]
    if len(long_words) >= 3 and all(w[0].isupper() for w in long_words):
        return []  # written in Title Case ("How Many Vacation Days Do I Get?"): no word stands out
    names = []
    for word in WORD.finditer(question):
        text = word.group()
        opens = not question[: word.start()].strip() or _SENTENCE_END.search(question[: word.start()])
        if len(text) > 1 and (any(c.isupper() for c in text[1:]) or (text[0].isupper() and not opens)):
            if tokenize(text) and text.lower() not in _CALENDAR_WORDS:  # not a function word ("I", "The")
                names.append(text)
    return names


def _unheard_of(index: Index, names: list[str]) -> list[str]:
    """Of a question's names, those the documents never use, nor a word spelled nearly like them
    ("BorgBackup", "SQLCipher"; not "Kllbrandon" where they say "Kilbrandon"): they do not cover it.
    An acronym may stand for words they spell out ("SP" for the Scottish Parliament), so it is left
    alone."""
    unheard = []
    for name in list(dict.fromkeys(names))[:NAMES_CHECKED]:  # each unknown one costs a scan of the vocabulary
        if name.isupper() and len(name) <= ACRONYM_LETTERS:
            continue
        terms = tokenize(name) + tokenize(folded(name))
        if terms and not any(index.doc_freq(t) or index.spelled_like(t) for t in terms):
            unheard.append(name)
            if len(unheard) == NAMES_SAID:
                break
    return unheard


def _listed(names: list[str], question: str) -> str:
    """The names as the question writes them, those next to each other as one ("World Cup")."""
    pattern = r"(?:%s)(?:\s+(?:%s))*" % (("|".join(re.escape(n) for n in names),) * 2)
    found = list(dict.fromkeys(m.group() for m in re.finditer(rf"\b{pattern}\b", question)))
    return " or ".join(found or names)


def _asking_sentence(question: str) -> str:
    """The sentence of a question that asks: its last one. The sentences before it tell the asker's
    situation ("My worktree lives on a USB drive. How do I keep git from pruning it?"), whose names
    the answer need not repeat."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", question.strip()) if s]
    return sentences[-1] if sentences else question


def _same_name(a: str, b: str) -> bool:
    """The same name, or a form of it: "Israel" and "Israelis", "Asia" and "Asian"."""
    short, long = sorted((a, b), key=len)
    return long.startswith(short) and len(short) >= NAME_FORM_SHARE * len(long)


def _names_mentioned(index: Index, chunk_id: int, names: list[str]) -> float:
    """0 when the question names something the documents use rarely and the passage of the best
    answer mentions none of its names, else 1: a question about PostgreSQL is not answered from a
    passage that never names it when the documents do elsewhere, nor rescued by a second passage
    that does. The passage's title, heading and file path count as its words: a page filed under
    "sqlite3-doc/" is about SQLite though it never says so. A name the documents use everywhere
    is their subject and need not be repeated in each passage. (One they never use is `_unheard_of`.)"""
    rare = RARE_NAME * index.chunk_count  # in a corpus of under 100 chunks, no name is rare
    known = [n for n in {folded(name) for name in names} if all(0 < index.doc_freq(t) <= rare for t in tokenize(n))]
    if not known:
        return 1.0
    chunk = index.chunk(chunk_id)
    words = set(WORD.findall(folded(f"{chunk.source} {chunk.title} {chunk.location} {chunk.text}")))
    return float(any(_same_name(n, w) for n in known for w in words))


def compose(
    index: Index,
    question: str,
    ranking: Ranking,
    candidates: list[Candidate],
    terms: list[str],
    min_confidence: float,
    own_terms: list[str] | None = None,
    own_vector: np.ndarray | None = None,
) -> Answer:
    """The answer from the scored sentences. For a follow-up, `own_terms` are its own words and
    `own_vector` the vector of the follow-up alone: the earlier turns lend it confidence only as far
    as its passage holds its own words or its best sentence means what it asks, so an off-topic
    question after on-topic ones is declined as it would be alone."""
    names = _names_as_written(_asking_sentence(question))
    unheard = _unheard_of(index, names)
    if unheard:  # say which, so a misspelling can be seen and fixed
        return Answer(question, f"{NOT_FOUND} The documents never mention {_listed(unheard, question)}.", True, 0.0,
                      ())
    if not candidates:
        return Answer(question, NOT_FOUND, True, 0.0, ())
    if own_terms is None:
        conf = confidence(candidates[0], ranking)
    else:
        # the sentence answering a follow-up says something new ("Ask the harbour office to move
        # your berth" for "How can I fix it?"), so how surely its passage covers the conversation
        # is read off the passage's sentence closest to it
        best_chunk = candidates[0].chunk_id
        conf = max(confidence(c, ranking) for c in candidates if c.chunk_id == best_chunk)
        # half of its own words in the passage are enough, or a best sentence close enough in
        # meaning ("Where does he teach?" and "...a professor at Waseda University"); neither,
        # and the history lends nothing
        support = 2 * own_share(index, candidates[0].chunk_id, own_terms)
        if own_vector is not None:
            support = max(support, (_sentence_cosine(index, candidates[0], own_vector) - OWN_COSINE_FLOOR)
                          / OWN_COSINE_SPAN)
        conf *= min(1.0, max(0.0, support))
    chosen = choose(index, candidates, terms)
    conf *= _names_mentioned(index, chosen[0].chunk_id, names)  # the best answer's passage
    if conf < min_confidence:
        return Answer(question, NOT_FOUND, True, conf, ())
    numbers: dict[int, int] = {}
    ranks: dict[int, int] = {}
    for c in chosen:
        numbers.setdefault(c.chunk_id, len(numbers) + 1)
        ranks[c.chunk_id] = c.rank
    sentences = tuple(
        AnswerSentence(
            document_text(index, c.chunk_id)[c.start : c.end], numbers[c.chunk_id], c.start, c.end
        )
        for c in chosen
    )
    citations = []
    for chunk_id, n in numbers.items():
        chunk = index.chunk(chunk_id)
        score = float(ranking.scores[ranks[chunk_id]])
        highlights = tuple((s.start, s.end) for s in sentences if s.citation == n)
        citations.append(
            Citation(
                n, chunk.source, chunk.title, chunk.location, chunk.start, chunk.end, chunk.text, score, highlights
            )
        )
    text = " ".join(f"{s.text} [{s.citation}]" for s in sentences)
    return Answer(question, text, False, conf, tuple(citations), sentences)
