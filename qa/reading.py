"""The sentences read as the answer around the best one: the sentence it points back to, the term
it defines, the start of the FAQ answer it belongs to, the next one that goes on about the same
thing, what follows a restated or announced question (the list items or sentences that carry the
content, in the next passage when its own ends), the next best sentence of its passage when the
two score alike, and a second sentence from another passage when it is nearly as good. A
question in the text is never an answer by itself.
"""

from __future__ import annotations

import re

from qa.lexical import tokenize
from qa.prose import LIST_MARKER
from qa.sentence_facts import Candidate, ChunkFacts, chunk_facts, document_text, sentence_terms
from qa.store import Index

# A second sentence, from another passage, joins the answer when it scores within this margin of
# the best: the reader then sees both candidate answers, each with its own citation.
SECOND_SENTENCE_MARGIN = 1.5
# The other sentences of the best one's passage join it when they score within this margin. Scores
# are a pairwise logistic model's, so a difference is log-odds: within 1.0 the scorer puts the best
# one ahead with less than 73% confidence (e^1 to 1), too close a call to drop the other.
TIE_MARGIN = 1.0
# A best sentence of at most this many words, holding at most this many words the question does not,
# restates the question; the answer is read on in the sentences after it (or the list items it
# introduces), up to these limits.
ECHO_MAX_WORDS = 16
ECHO_MAX_NEW_TERMS = 3
# A question written out in a FAQ: "Q: ...", "Q. ...", "Question: ...".
_QUESTION_LABEL = re.compile(r"^\s*(?:Q|Question)\s*[:.)]\s", re.I)
FOLLOWING_SENTENCES = 2
# A FAQ answer's first sentence joins a later one of it at most this many sentences on.
ANSWER_START_WITHIN = 4
MAX_LIST_ITEMS = 8
MAX_FOLLOWING_CHARS = 700

# A sentence that refers back to the one before: "the/this/such <noun>" naming something that
# sentence mentioned (the noun is checked against it), or a pronoun.
_REFERS_BACK = re.compile(
    r"(?:(the|this|these|that|those|such)\s+(\w+)|(?:it|its|they|their|them|he|she|his|her|this|these|that|those)\b)",
    re.I,
)
# "this/these/such <noun>" inside a sentence's opening words.
_POINTS_BACK = re.compile(r"\b(this|these|such)\s+(\w+)", re.I)
OPENING_WORDS = 8
# A sentence announcing what comes next: "...are given in the following table.", "...as follows".
_ANNOUNCES = re.compile(r"\b(?:the following|as follows)\b|\bbelow\W*$", re.I)


def _refers_back(text: str, facts: ChunkFacts, j: int, by_the: bool) -> bool:
    """Whether sentence j of a chunk (of document text `text`) opens by referring to sentence
    j - 1: a pronoun ("He appointed..."), or "this/these/such <noun>" naming something sentence
    j - 1 holds, at its start or within its opening words ("The default value of this macro
    is..."), and, when `by_the`, also "the <noun>" doing so ("The agreement is understood to...")."""
    start, end = facts.spans[j]
    sentence = text[start:end]
    before = sentence_terms(facts, j - 1)
    opening_words = " ".join(sentence.split()[:OPENING_WORDS])
    if any(set(tokenize(m.group(2))) & before for m in _POINTS_BACK.finditer(opening_words)):
        return True
    opening = _REFERS_BACK.match(sentence)
    if opening is None:
        return False
    if not opening.group(1):  # a pronoun
        return True
    named = set(tokenize(opening.group(2)))
    if opening.group(1).lower() == "the":
        return by_the and bool(named & before)
    return not named or bool(named & before)  # "this is..." or "this agreement..."


def _read_with_best(text: str, facts: ChunkFacts, j: int, terms: list[str]) -> list[int]:
    """The sentences of the chunk read as the answer around its best sentence j: the one before
    when j opens by pointing back to it ("He appointed Robert archbishop" is checkable only with
    who "he" is), the term it defines, the first sentence of the answer it is part of when a
    question in the text (a FAQ's) comes before it, and the one after when it goes on about the
    same thing and holds a word of the question j lacks ("...the agreement is a prime example.
    The agreement is understood to involve...")."""
    read = [j - 1] if j > 0 and _refers_back(text, facts, j, by_the=False) else []
    read = sorted(set(read) | set(facts.terms_of[j]))  # a definition is read with its term
    # the answer to a question in the text (a FAQ's) starts right after it
    asked = [i for i in range(max(0, j - 1 - ANSWER_START_WITHIN), j) if _asks(text, facts, i)]
    if asked and asked[-1] + 1 < j:
        read = sorted(set(read) | {asked[-1] + 1})
    read.append(j)
    if (
        j + 1 < len(facts.spans)
        and (sentence_terms(facts, j + 1) & set(terms)) - sentence_terms(facts, j)
        and _refers_back(text, facts, j + 1, by_the=True)
    ):
        read.append(j + 1)
    return read


def _is_question(sentence: str) -> bool:
    """A question in the text (a FAQ's "Q: ..." or a heading "Why does sudo reset HOME?"): never an
    answer itself; its answer is what follows it."""
    return sentence.rstrip().endswith("?") or bool(_QUESTION_LABEL.match(sentence))


def _in_labeled_question(text: str, start: int) -> bool:
    """Whether the sentence at `start` is on a line opening with "Q:" (a paragraph, once its hard
    wraps are joined), so part of a FAQ's question even where it is not itself one ("On a system
    with 256 MiB of RAM, xz says...")."""
    line_start = text.rfind("\n", 0, start) + 1
    return bool(_QUESTION_LABEL.match(text[line_start : start + 1]))


def _asks(text: str, facts: ChunkFacts, j: int) -> bool:
    start, end = facts.spans[j]
    return _is_question(text[start:end]) or _in_labeled_question(text, start)


def _echoes(text: str, facts: ChunkFacts, j: int, terms: list[str]) -> bool:
    """Whether sentence j only restates the question ("The alliance faces significant hurdles."),
    asks one (a FAQ's question), or announces what follows ("The signals are:", "...as follows."):
    then the answer is in the sentences after it."""
    start, end = facts.spans[j]
    sentence = text[start:end].rstrip()
    if sentence.endswith(":") or _asks(text, facts, j) or _ANNOUNCES.search(sentence):
        return True
    held = sentence_terms(facts, j)
    novel = held - set(terms)
    # holding every word of the question restates it, unless it also carries a figure ("...gives a 30% discount")
    restates = set(terms) <= held and not facts.number[j]
    return len(sentence.split()) <= ECHO_MAX_WORDS and (len(novel) <= ECHO_MAX_NEW_TERMS or restates)


def _what_follows(text: str, facts: ChunkFacts, j: int) -> list[int]:
    """The sentences after an echo that carry its content: the list items it introduces (lines of
    their own), or else the next sentences of one paragraph, within the passage and a reading
    length. After a question, the rest of the question is passed over."""
    first = j + 1
    if _asks(text, facts, j):
        while first < len(facts.spans) and "\n\n" not in _gap(text, facts, first) and _asks(text, facts, first):
            first += 1
    return _block_from(text, facts, first)


def _gap(text: str, facts: ChunkFacts, i: int) -> str:
    """The text between sentence i - 1 and sentence i."""
    return text[facts.spans[i - 1][1] : facts.spans[i][0]]


def _block_from(text: str, facts: ChunkFacts, first: int) -> list[int]:
    """The sentences from `first` on that carry what an echo announced: the list items there, or
    else the next sentences of one paragraph, within the passage and a reading length."""
    spans = facts.spans

    def gap(i: int) -> str:
        return _gap(text, facts, i)

    def sentence(i: int) -> str:
        return text[spans[i][0] : spans[i][1]]

    if first >= len(spans):
        return []
    items = bool(LIST_MARKER.match(sentence(first))) or (
        first + 1 < len(spans) and "\n" in gap(first + 1) and "\n\n" not in gap(first + 1)
    )
    after, length = [], 0
    for i in range(first, len(spans)):
        if after and "\n\n" in gap(i) and not (items and LIST_MARKER.match(sentence(i))):
            break  # the next paragraph
        if after and items and "\n" not in gap(i):
            break
        length += spans[i][1] - spans[i][0]
        after.append(i)
        if len(after) >= (MAX_LIST_ITEMS if items else FOLLOWING_SENTENCES) or length > MAX_FOLLOWING_CHARS:
            break
    if after and sentence(after[-1]).rstrip().endswith(":"):  # what it announces: the next block
        block = after[-1] + 1
        for i in range(block, len(spans)):
            length += spans[i][1] - spans[i][0]
            if (i > block and "\n\n" in gap(i)) or len(after) >= MAX_LIST_ITEMS or length > MAX_FOLLOWING_CHARS:
                break
            after.append(i)
    return after


def _continued(index: Index, candidate: Candidate, text: str) -> list[Candidate]:
    """What a sentence ending its passage announces or restates, read from the passage after it
    in the same document (a passage often ends at "...the following substitutions:" and the next
    one holds them). Its sentences are cited from that passage, ranked as the one they continue.
    `text` is the document's."""
    next_id = candidate.chunk_id + 1
    if not index.is_live(next_id):  # the last chunk, or one of a file since changed
        return []
    chunk, after = index.chunk(candidate.chunk_id), index.chunk(next_id)
    if after.source != chunk.source or text[candidate.end : max(candidate.end, after.start)].strip():
        return []
    facts = chunk_facts(index, next_id)
    first = next((i for i, (start, _) in enumerate(facts.spans) if start >= candidate.end), None)
    if first is None:
        return []
    return [Candidate(next_id, candidate.rank, *facts.spans[i], candidate.features, candidate.score)
            for i in _block_from(text, facts, first)]


def _reading(index: Index, candidate: Candidate, terms: list[str]) -> tuple[list[int], list[Candidate]] | None:
    """The sentences of the candidate's chunk read as the answer around it (indices into the
    chunk's sentences) and those read on into the next passage, or None for a question the text
    does not go on to answer."""
    facts = chunk_facts(index, candidate.chunk_id)
    text = document_text(index, candidate.chunk_id)
    j = facts.spans.index((candidate.start, candidate.end))
    read = _read_with_best(text, facts, j, terms)
    continued: list[Candidate] = []
    if _echoes(text, facts, j, terms):
        follows = _what_follows(text, facts, j)
        if not follows and j == len(facts.spans) - 1:
            continued = _continued(index, candidate, text)
        if _asks(text, facts, j):
            if not follows and not continued:
                return None
            read = [i for i in read if i > j]  # the question restated is no part of its answer
        read = sorted(set(read) | set(follows))
    return read, continued


def _text(index: Index, candidate: Candidate) -> str:
    return " ".join(document_text(index, candidate.chunk_id)[candidate.start : candidate.end].split())


def _read_in_full(index: Index, candidates: list[Candidate], terms: list[str], unlike: list[Candidate] = ()):
    """The first candidate that reads as an answer, with the candidates of the sentences it is
    read with, in document order; passing over the chunks of `unlike` and sentences of the same
    text (a page copied into two documents says the same thing twice)."""
    chunks, texts = {c.chunk_id for c in unlike}, {_text(index, c) for c in unlike}
    for candidate in candidates:
        if candidate.chunk_id in chunks or (texts and _text(index, candidate) in texts):
            continue
        reading = _reading(index, candidate, terms)
        if reading is None:
            continue
        read, continued = reading
        facts = chunk_facts(index, candidate.chunk_id)
        starts = {facts.spans[i][0] for i in read}
        return candidate, sorted((c for c in candidates if c.chunk_id == candidate.chunk_id and c.start in starts),
                                 key=lambda c: c.start) + continued
    return None, []


def _tied(index: Index, candidates: list[Candidate], best: Candidate, chosen: list[Candidate],
          terms: list[str]) -> list[Candidate]:
    """The other sentences of the best one's passage that score within TIE_MARGIN of it, each read
    the same way: two rows of one table ("apt upgrade" and "apt full-upgrade"), the problem and
    its remedy. Scores that close cannot tell which one answers."""
    have = {c.start for c in chosen}
    tied: list[Candidate] = []
    for c in candidates[candidates.index(best) + 1 :]:
        if c.score < best.score - TIE_MARGIN:
            break
        if c.chunk_id == best.chunk_id and c.start not in have:
            same_passage = [c, *(o for o in candidates if o.chunk_id == c.chunk_id and o is not c)]
            tie, read = _read_in_full(index, same_passage, terms)
            if tie is c:
                tied += [r for r in read if r.start not in have]
                have |= {r.start for r in read}
    return tied


def choose(index: Index, candidates: list[Candidate], terms: list[str]) -> list[Candidate]:
    """The best sentence with the neighbours it is read with, and the next best of its passage
    if it is as good; then the best one from another passage, read the same way, if it is nearly
    as good. A question in the text is never an answer by itself: what follows it is, or else
    the next best sentence."""
    best, chosen = _read_in_full(index, candidates, terms)
    if best is None:
        return [candidates[0]]
    chosen = sorted(chosen + _tied(index, candidates, best, chosen, terms), key=lambda c: c.start)
    rest = candidates[candidates.index(best) + 1 :]
    runner_up, read = _read_in_full(index, rest, terms, unlike=chosen)
    if runner_up is not None and runner_up.score >= best.score - SECOND_SENTENCE_MARGIN:
        chosen.extend(read)
    return chosen

