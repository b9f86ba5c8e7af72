"""Saved conversations over the JSON API: list, read, delete and export the asker's own, and what
/api/ask needs to continue one (its history) and to save each answer into one.

The owner of every request is qa.web.sessions.request_owner's; another owner's conversation is
answered exactly as an unknown one, 404. The export is Markdown: each question with its answer and
numbered citations (source, location, the quoted passage), as a download.
"""

from __future__ import annotations

import re
import time

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from qa.config import MAX_HISTORY_TURNS
from qa.errors import ConversationNotFound
from qa.pipeline import ConversationStore, SavedTurn
from qa.types import Turn
from qa.web.sessions import request_owner

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # what the store makes (new_id), with room to spare


def earlier_turns(conversation_turns: list[SavedTurn]) -> list[Turn]:
    """A saved conversation as the history of its next question: the last MAX_HISTORY_TURNS, each
    with the answer text given ("" when declined)."""
    return [Turn.answered(t.question, t.answer, t.abstained) for t in conversation_turns[-MAX_HISTORY_TURNS:]]


def saved_turn(answer: dict, collection: str | None = None) -> SavedTurn:
    """What is kept of an answer (its JSON, as /api/ask returns it)."""
    return SavedTurn(answer["question"], answer["answer"], answer["abstained"], answer["confidence"],
                     answer["citations"], answer["sentences"], collection)


def owned(request: Request) -> str:
    """The request's owner; a client with none (no session cookie yet) owns no conversation."""
    owner = request_owner(request)
    if owner is None:
        raise ConversationNotFound()
    return owner


def history_of(store: ConversationStore, request: Request, conversation_id: str) -> list[Turn]:
    """The history of the next question of the asker's conversation: ConversationNotFound (404)
    unless theirs, ConversationFull (409) when it holds as many turns as allowed."""
    owner = owned(request)
    store.check_room(owner, conversation_id)
    return earlier_turns(store.get(owner, conversation_id, last=MAX_HISTORY_TURNS).turns)


def export_markdown(conversation) -> str:
    lines = [f"# {conversation.title}", "",
             f"Exported {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {conversation.turn_count} questions"]
    for number, turn in enumerate(conversation.turns, start=1):
        lines += ["", f"## {number}. {' '.join(turn.question.split())}", ""]
        lines.append(f"Not found in the documents. {turn.answer}".strip() if turn.abstained else turn.answer)
        lines += ["", f"Confidence {turn.confidence:.0%}"]
        for c in turn.citations:
            where = " · ".join(p for p in (c.get("title"), c.get("location")) if p and p != c.get("source"))
            lines += ["", f"[{c['n']}] {c['source']}" + (f" · {where}" if where else "")
                      + f" (characters {c['start']}-{c['end']})", ""]
            lines += [f"> {line}" if line.strip() else ">" for line in c["passage"].splitlines() or [""]]
    return "\n".join(lines) + "\n"


def export_filename(title: str) -> str:
    """An ASCII file name made of the title: "What is the leave policy?" -> what-is-the-leave-policy.md."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower())[:60].strip("-")
    return f"{slug or 'conversation'}.md"


def add_conversation_routes(app: FastAPI, store: ConversationStore) -> None:
    def checked_id(conversation_id: str) -> str:
        if not re.fullmatch(ID_PATTERN, conversation_id):
            raise ConversationNotFound()
        return conversation_id

    @app.get("/api/conversations", tags=["conversations"])
    def list_conversations(request: Request) -> dict:
        """Your saved conversations, the most recently updated first: id, title, created, updated and
        the number of questions (`turns`). Yours: those of your browser session (its `qa_session`
        cookie), or of the signed-in user."""
        owner = request_owner(request)
        found = store.list(owner) if owner else []
        return {"conversations": [c.summary() for c in found]}

    @app.get("/api/conversations/{conversation_id}", tags=["conversations"])
    def get_conversation(conversation_id: str, request: Request) -> dict:
        """One of your conversations with its turns, oldest first: each question with its answer,
        whether it was declined, confidence, citations and collection. 404 unless yours."""
        conversation = store.get(owned(request), checked_id(conversation_id))
        return {**conversation.summary(), "turns": [t.to_dict() for t in conversation.turns]}

    @app.delete("/api/conversations/{conversation_id}", tags=["conversations"])
    def delete_conversation(conversation_id: str, request: Request) -> dict:
        """Delete one of your conversations. 404 unless yours."""
        store.delete(owned(request), checked_id(conversation_id))
        return {"deleted": conversation_id}

    @app.get("/api/conversations/{conversation_id}/export", tags=["conversations"])
    def export_conversation(conversation_id: str, request: Request) -> Response:
        """One of your conversations as a Markdown file: each answer with its numbered citations
        (source, location, the passage quoted). 404 unless yours."""
        conversation = store.get(owned(request), checked_id(conversation_id))
        return Response(export_markdown(conversation), media_type="text/markdown; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{export_filename(conversation.title)}"'})


async def save_answer(store: ConversationStore, request: Request, conversation_id: str | None, answer: dict,
                      collection: str | None = None) -> str:
    """Save the answer as the next turn of the asker's conversation (a new one for None); its id."""
    return await run_in_threadpool(store.add_turn, owned(request), conversation_id, saved_turn(answer, collection))
