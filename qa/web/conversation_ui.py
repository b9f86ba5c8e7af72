"""Saved conversations in the chat UI: the list shown in its selector, a saved conversation turned
back into chat messages, and its Markdown export as a file to download.

Plain functions of the store and the owner (qa.web.sessions.request_owner of the event's
gr.Request); qa.web.chat_ui wires them to its components.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from gradio.utils import get_upload_folder

from qa.config import MAX_HISTORY_TURNS
from qa.errors import ConversationNotFound
from qa.pipeline import ConversationStore
from qa.types import counted
from qa.web.conversation_routes import earlier_turns, export_filename, export_markdown
from qa.web.render import escape_md


def choices(store: ConversationStore, owner: str | None) -> list[tuple[str, str]]:
    """(label, id) of the owner's conversations, the most recently updated first. Gradio shows a
    label as text, never as markup."""
    if owner is None:
        return []
    labelled = []
    for c in store.list(owner):
        updated = time.strftime("%d %b %H:%M", time.gmtime(c.updated))
        labelled.append((f"{c.title} · {counted(c.turn_count, 'question')} · {updated}", c.id))
    return labelled


def chat_of(store: ConversationStore, owner: str | None, conversation_id: str, answer_messages) -> tuple[list, list]:
    """The chat messages and turn entries (as qa.web.chat_ui keeps them) of the owner's saved
    conversation, its last MAX_HISTORY_TURNS turns, each answer drawn by answer_messages(answer,
    collection); ConversationNotFound unless the owner's."""
    if owner is None:
        raise ConversationNotFound()
    saved = store.get(owner, conversation_id, last=MAX_HISTORY_TURNS).turns
    messages, turns = [], []
    for number, turn in enumerate(saved):
        shown = [{"role": "user", "content": escape_md(turn.question)},
                 *answer_messages(turn.answer_dict(), turn.collection)]
        turns.append({"question": turn.question, "history": earlier_turns(saved[:number]),
                      "answer": turn.answer_dict(), "collection": turn.collection, "conversation": conversation_id,
                      "first": len(messages) + 1,
                      "last": len(messages) + len(shown) - 1})
        messages += shown
    return messages, turns


def export_file(store: ConversationStore, owner: str | None, conversation_id: str) -> Path:
    """The owner's conversation as a Markdown file in a fresh folder of Gradio's upload folder (served
    from there, and removed after a while like the Batch tab's answered files)."""
    if owner is None:
        raise ConversationNotFound()
    conversation = store.get(owner, conversation_id)
    uploads = Path(get_upload_folder())
    uploads.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="qa-export-", dir=uploads)) / export_filename(conversation.title)
    path.write_text(export_markdown(conversation), encoding="utf-8")
    return path
