"""The JSON API's request bodies: what /api/ask, /api/search and /api/feedback accept.

Limits here are the API's contract; the question's own checks live in the core. Numbers are
strict (`true` or "5" is not a k). Strings with a length limit are also checked to be Unicode text:
a lone surrogate such as "\\ud800" is valid JSON but cannot be written out as UTF-8.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from qa.config import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, SETTINGS
from qa.types import Turn

MAX_ANSWER_CHARS = 20_000
Question = Annotated[str, Field(max_length=MAX_QUESTION_CHARS)]
Label = Annotated[str, Field(max_length=1000)] | None


def k_field(face: str):
    """A request's k, bounded as the declaration says for the face; left out (or null), the
    server's own k setting (QA_K) is used."""
    bounds = SETTINGS["k"].parser(face)
    return Field(default=None, ge=bounds.lo, le=bounds.hi, strict=True,
                 description=f"Passages to retrieve, {bounds.lo}-{bounds.hi} (default: the server's QA_K, "
                             f"{SETTINGS['k'].default} unless set).")


class EarlierTurn(BaseModel):
    """An earlier turn of the conversation: the question and the answer text it got ("" when it was
    declined; left out when not known). A follow-up passes over declined turns."""

    question: Question
    answer: str = Field(default="", max_length=MAX_ANSWER_CHARS)

    def turn(self) -> Turn:
        sent = "answer" in self.model_fields_set
        return Turn(self.question, self.answer, declined=sent and not self.answer.strip())

    def as_given(self) -> str | Turn:
        """What feedback keeps: the question alone when no answer was sent, else the turn."""
        return self.turn() if "answer" in self.model_fields_set else self.question


def _earlier_turn(value: object) -> object:
    if isinstance(value, str):  # the older form: just the question
        return {"question": value}
    if isinstance(value, dict | EarlierTurn):
        return value
    raise PydanticCustomError("history_item", 'Input should be a question string or an object {"question", "answer"}')


History = Annotated[
    list[Annotated[EarlierTurn, BeforeValidator(_earlier_turn, json_schema_input_type=Question | EarlierTurn)]],
    Field(max_length=MAX_HISTORY_TURNS),
]
CollectionName = Annotated[str | None, Field(default=None, max_length=64, description=(
    "The collection to use (GET /api/collections lists them); left out, the first."))]
HISTORY_DOC = (
    f"The conversation so far, oldest first, at most {MAX_HISTORY_TURNS} turns: each an object "
    '`{"question": "...", "answer": "..."}` (the answer text given, "" when it was declined) or just the '
    "earlier question as a string."
)


class AskRequest(BaseModel):
    question: str = Field(description="The question, at most 2,000 characters.")
    history: History = Field(
        default=[], description=HISTORY_DOC + ' A follow-up ("When was it signed?") is read with it.')
    k: int | None = k_field("ask")
    collection: CollectionName = None
    conversation_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Continue this saved conversation of yours (its earlier turns are the history; send no "
                    "`history`). Left out, the answer starts a new one. Either way the answer's `conversation_id` "
                    "names it.")

    @model_validator(mode="after")
    def _one_history(self) -> AskRequest:
        if self.conversation_id is not None and self.history:
            raise ValueError("send either history or conversation_id (whose turns are the history), not both")
        return self


class SearchRequest(BaseModel):
    query: str
    k: int | None = k_field("search")
    collection: CollectionName = None


class CitedSource(BaseModel):
    """What feedback keeps of a citation (qa.feedback.CITATION_FIELDS); other fields are ignored."""

    n: int | None = None
    source: Label = None
    title: Label = None
    location: Label = None
    start: int | None = None
    end: int | None = None
    score: float | None = None


class FeedbackRequest(BaseModel):
    rating: Literal["up", "down"]
    question: str = Field(max_length=MAX_QUESTION_CHARS)
    answer: str = Field(max_length=MAX_ANSWER_CHARS)
    citations: list[CitedSource] = Field(default=[], max_length=50)
    history: History = Field(default=[], description=HISTORY_DOC)
    comment: str = Field(default="", max_length=2000)
    collection: CollectionName = None
