"""Saved conversations: the web app's chats kept in one SQLite file, per owner.

An owner is an opaque string the web face chooses (a signed-in user, or a browser session). A
conversation has a random, unguessable id, its owner, a title (its first question, cut), when it
was created and last updated, and its turns: each question with the answer text, whether it was
declined, the confidence, the citations and sentences as the answer JSON gives them and the
collection asked, if any. Every read and write names the owner, so another owner's conversation is indistinguishable
from one that does not exist. Two caps bound the file: turns per conversation (a question past it
is refused) and conversations per owner (the one updated longest ago is deleted).

One connection per store, used under a lock (several server threads), in WAL mode with a busy
timeout (several server processes on the same file).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from qa.config import DEFAULT_MAX_CONVERSATIONS, DEFAULT_MAX_TURNS
from qa.errors import BadSetting, ConversationFull, ConversationNotFound

TITLE_CHARS = 80

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    turns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    asked REAL NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    confidence REAL NOT NULL,
    citations TEXT NOT NULL,
    sentences TEXT NOT NULL,
    collection TEXT,
    PRIMARY KEY (conversation, n)
);
"""


@dataclass(frozen=True)
class SavedTurn:
    question: str
    answer: str
    abstained: bool
    confidence: float
    citations: list[dict]  # as the answer JSON has them
    sentences: list[dict] = field(default_factory=list)  # as the answer JSON has them: text, citation, offsets
    collection: str | None = None
    asked: float = 0.0  # seconds since the epoch

    def answer_dict(self) -> dict:
        """The turn as the answer JSON the chat and widget render (without sentences and timings)."""
        return {"question": self.question, "answer": self.answer, "abstained": self.abstained,
                "confidence": self.confidence, "citations": self.citations, "sentences": self.sentences}

    def to_dict(self) -> dict:
        return {**self.answer_dict(), "collection": self.collection, "asked": _iso(self.asked)}


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    turn_count: int
    turns: list[SavedTurn] = field(default_factory=list)  # filled only when asked for

    def summary(self) -> dict:
        return {"id": self.id, "title": self.title, "created": _iso(self.created), "updated": _iso(self.updated),
                "turns": self.turn_count}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def default_path(index: Path, chosen: str = "") -> Path:
    """The file chosen (the conversations setting), else conversations.sqlite beside the index folder."""
    return Path(chosen or Path(index).resolve().parent / "conversations.sqlite")


def title_of(question: str) -> str:
    words = " ".join(question.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1].rstrip() + "…"


def new_id() -> str:
    return secrets.token_urlsafe(18)  # 144 random bits


class ConversationStore:
    def __init__(self, path: Path, max_turns: int = DEFAULT_MAX_TURNS,
                 max_conversations: int = DEFAULT_MAX_CONVERSATIONS):
        self.path = Path(path)
        self.max_turns = max_turns
        self.max_conversations = max_conversations
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a power cut may lose the last turn
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BadSetting(f"--conversations / QA_CONVERSATIONS: cannot keep conversations in {self.path} "
                             f"({exc}): name a writable SQLite file") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql_steps):
        """Run `sql_steps(db)` in one immediate transaction (it takes the write lock at once, so a
        check and the write after it see the same file across processes)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = sql_steps(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def list(self, owner: str) -> list[Conversation]:
        """The owner's conversations, the most recently updated first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, title, created, updated, turns FROM conversations WHERE owner = ? "
                "ORDER BY updated DESC, rowid DESC", (owner,)).fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, owner: str, conversation_id: str, last: int = -1) -> Conversation:
        """The conversation with its turns (the `last` ones, -1: all), oldest first;
        ConversationNotFound unless the owner's."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, title, created, updated, turns FROM conversations WHERE id = ? AND owner = ?",
                (conversation_id, owner)).fetchone()
            if row is None:
                raise ConversationNotFound()
            turns = self._db.execute(
                "SELECT question, answer, abstained, confidence, citations, sentences, collection, asked FROM turns "
                "WHERE conversation = ? ORDER BY n DESC LIMIT ?", (conversation_id, last)).fetchall()
        saved = [SavedTurn(q, a, bool(ab), c, json.loads(cites), json.loads(sentences), coll, asked)
                 for q, a, ab, c, cites, sentences, coll, asked in reversed(turns)]
        return Conversation(*row, turns=saved)

    def check_room(self, owner: str, conversation_id: str) -> None:
        """ConversationNotFound unless the owner's, ConversationFull if it holds max_turns: checked
        before a question is answered, so a refused one costs no answering."""
        with self._lock:
            row = self._db.execute("SELECT turns FROM conversations WHERE id = ? AND owner = ?",
                                   (conversation_id, owner)).fetchone()
        if row is None:
            raise ConversationNotFound()
        if row[0] >= self.max_turns:
            raise ConversationFull(self.max_turns)

    def add_turn(self, owner: str, conversation_id: str | None, turn: SavedTurn) -> str:
        """Append the turn to the owner's conversation, or to a new one (None), and return its id.
        A new conversation past max_conversations deletes the owner's least recently updated ones."""
        now = time.time()
        citations = json.dumps(turn.citations, ensure_ascii=False)
        sentences = json.dumps(turn.sentences, ensure_ascii=False)

        def steps(db: sqlite3.Connection) -> str:
            chosen = conversation_id
            if chosen is None:
                chosen = new_id()
                db.execute("INSERT INTO conversations (id, owner, title, created, updated) VALUES (?, ?, ?, ?, ?)",
                           (chosen, owner, title_of(turn.question), now, now))
                db.execute(
                    "DELETE FROM conversations WHERE id IN (SELECT id FROM conversations WHERE owner = ? "
                    "ORDER BY updated DESC, rowid DESC LIMIT -1 OFFSET ?)", (owner, self.max_conversations))
            row = db.execute("SELECT turns FROM conversations WHERE id = ? AND owner = ?", (chosen, owner)).fetchone()
            if row is None:
                raise ConversationNotFound()
            if row[0] >= self.max_turns:
                raise ConversationFull(self.max_turns)
            db.execute(
                "INSERT INTO turns (conversation, n, asked, question, answer, abstained, confidence, citations, "
                "sentences, collection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (chosen, row[0], now, turn.question, turn.answer, int(turn.abstained), turn.confidence, citations,
                 sentences, turn.collection))
            db.execute("UPDATE conversations SET turns = turns + 1, updated = ? WHERE id = ?", (now, chosen))
            return chosen

        return self._write(steps)

    def delete(self, owner: str, conversation_id: str) -> None:
        """Delete the owner's conversation with its turns; ConversationNotFound unless the owner's."""

        def steps(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?",
                          (conversation_id, owner)).rowcount == 0:
                raise ConversationNotFound()

        self._write(steps)
