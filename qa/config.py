"""Every setting, declared once: its type and bounds (a parser), default, environment variable,
help and the faces (commands) that have it.

The CLI turns each into a flag (`--index` <-> `QA_INDEX`) whose click type is the declaration's
parser; the web app builds one `Settings` at startup with `read_settings` and its request models
take their defaults and bounds from here. The engine takes plain values from the faces and never
reads the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa.errors import BadSetting


@dataclass(frozen=True)
class Whole:
    """A whole number from lo to hi."""

    lo: int
    hi: int | None = None

    def __call__(self, text: str) -> int:
        value = text.strip()
        number = int(value) if re.fullmatch(r"[+-]?\d+", value) else None
        if number is None or number < self.lo or (self.hi is not None and number > self.hi):
            upper = f" to {self.hi:,}" if self.hi is not None else " or more"
            raise ValueError(f"must be a whole number from {self.lo:,}{upper}, not {text!r}")
        return number


@dataclass(frozen=True)
class Number:
    """A number from lo to hi; `lo_open` excludes lo itself."""

    lo: float
    hi: float | None = None
    lo_open: bool = False

    def __call__(self, text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        low_ok = number > self.lo if self.lo_open else number >= self.lo
        if not (low_ok and (self.hi is None or number <= self.hi)):  # NaN fails both
            lower = f"over {self.lo:g}" if self.lo_open else f"from {self.lo:g}"
            upper = f" to {self.hi:g}" if self.hi is not None else ""
            raise ValueError(f"must be a number {lower}{upper}, not {text!r}")
        return number


@dataclass(frozen=True)
class Text:
    """Any text, kept as given."""

    def __call__(self, text: str) -> str:
        return text


@dataclass(frozen=True)
class OneOf:
    """One of the words given."""

    words: tuple[str, ...]

    def __call__(self, text: str) -> str:
        if text.strip().lower() not in self.words:
            raise ValueError(f"must be {' or '.join(self.words)}, not {text!r}")
        return text.strip().lower()


@dataclass(frozen=True)
class Folder:
    """A path (which need not exist yet)."""

    def __call__(self, text: str) -> Path:
        if not text.strip():
            raise ValueError("must name a folder, not ''")
        return Path(text)


@dataclass(frozen=True)
class Names:
    """A comma-separated list: its items, stripped, blanks dropped ("" gives none)."""

    def __call__(self, text: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class LinesOf:
    """A text file named by the setting: its non-blank lines, stripped ("" gives none)."""

    def __call__(self, text: str) -> tuple[str, ...]:
        if not text.strip():
            return ()
        try:
            content = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {text!r}: {getattr(exc, 'strerror', None) or exc}") from None
        return tuple(line.strip() for line in content.splitlines() if line.strip())


@dataclass(frozen=True)
class RayAddress:
    """Where Ray runs: "" (or "off") none; "local" a Ray on this machine (`ray.init()`: the one
    `ray start` runs here, or a new one); "auto" the cluster this machine is part of; or the
    address of a cluster's head, "HOST:PORT". Not "ray://...": Ray Data cannot run through Ray
    Client (ray-project/ray#49969)."""

    def __call__(self, text: str) -> str:
        value = text.strip()
        if value.lower() in ("", "off", "none"):
            return ""
        if value.lower() in ("local", "auto"):
            return value.lower()
        if value.startswith("ray://"):
            raise ValueError(f"cannot be a Ray Client address ({text!r}): Ray Data does not run through Ray "
                             "Client; run qa on a machine of the cluster with auto or HEAD:6379")
        if re.fullmatch(r"[\w.\-]+:\d{1,5}", value):
            return value
        raise ValueError(f"must be local, auto or HOST:PORT, not {text!r} "
                         "(a bare --ray goes after the command's file arguments)")


_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True)
class Pairs:
    """Comma-separated NAME=VALUE items, "hr=index/hr, eng=index/eng" -> (("hr", "index/hr"), ...);
    "" gives none. A name is letters, digits, "-" and "_" (it appears in URLs); with `unique` a
    name may appear once."""

    unique: bool = False

    def __call__(self, text: str) -> tuple[tuple[str, str], ...]:
        pairs = []
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            name, sep, value = (part.strip() for part in item.partition("="))
            if not sep or not value or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
                raise ValueError(f"must be NAME=VALUE items (a name of letters, digits, - or _), not {text!r}")
            if self.unique and name in dict(pairs):
                raise ValueError(f"names {name!r} twice in {text!r}")
            pairs.append((name, value))
        return tuple(pairs)


@dataclass(frozen=True)
class Rate:
    """Requests per period, "30/minute" -> (30, 60.0); "0" (or "", "off", "none") -> None, no limit."""

    def __call__(self, text: str) -> tuple[int, float] | None:
        value = text.strip().lower()
        if value in ("", "0", "off", "none"):
            return None
        m = re.fullmatch(r"(\d+)\s*/\s*(second|minute|hour|day)s?", value)
        if not m:
            raise ValueError(f"must be like 30/minute (per second, minute, hour or day) or 0 for none, not {text!r}")
        count = int(m.group(1))
        return (count, _PERIODS[m.group(2)]) if count else None


BUILD = ("index", "serve")  # serve builds the index when there is none
ANSWER = ("ask", "serve", "batch", "eval")
QUESTION_FILES = ("batch", "eval", "serve")  # the web Batch tab


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # as it would be written in the variable, shown in --help and the README
    help: str
    parse: Any  # text -> typed value, or ValueError with the reason; `lo`/`hi` are its bounds if any
    faces: tuple[str, ...]
    parse_by_face: Mapping[str, Any] = field(default_factory=dict)  # a face with other bounds
    repeat: str = ""  # a flag given once per item (`--collection a=x --collection b=y`), named so
    bare: str | None = None  # the value of the flag given without one (`--ray`); None: it needs one

    @property
    def env(self) -> str:
        return "QA_" + self.name.upper()

    @property
    def flag(self) -> str:
        return self.repeat or "--" + self.name.replace("_", "-")

    def parser(self, face: str | None = None):
        return self.parse_by_face.get(face, self.parse)

    def default_value(self, face: str | None = None):
        return self.parser(face)(self.default)

    def read(self, text: str, face: str | None = None):
        """The typed value of a flag's or the variable's text, or BadSetting naming both."""
        try:
            return self.parser(face)(text)
        except ValueError as exc:
            raise BadSetting(f"{self.flag} / {self.env} {exc}") from None


DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_PRECISION = "int8"
PRECISIONS = ("int8", "float32")

SETTINGS = {
    s.name: s
    for s in [
        Setting("corpus", "corpus", "Folder of documents to index (walked recursively).", Folder(), BUILD),
        Setting("index", "index", "Folder holding the built index.", Folder(),
                ("index", "ask", "search", "info", "serve", "batch", "eval")),
        Setting("model", "", f"Sentence-transformers model name or local folder (default: {DEFAULT_MODEL} for a new "
                "index; when asking, the index's own).", Text(),
                ("index", "ask", "search", "serve", "batch", "eval")),
        Setting("chunk_tokens", "200", "Chunk size in model tokens (capped by the model's limit).",
                Whole(16, 8192), BUILD),
        Setting("chunk_overlap", "32", "Tokens shared by neighbouring chunks.", Whole(0, 4096), BUILD),
        Setting("precision", DEFAULT_PRECISION, "What the model computes documents' vectors in: int8 (8-bit "
                "weights, about 1.5x faster, vectors within a cosine of 0.997 of float32's) or float32 (PyTorch's "
                "vectors). Questions are always encoded in float32.", OneOf(PRECISIONS), BUILD),
        Setting("k", "5", "Passages retrieved per question.", Whole(1, 50), ("ask", "search", "serve", "batch", "eval"),
                parse_by_face={"search": Whole(1, 100)}),
        Setting("min_confidence", "0.5", "Answers whose confidence (0-1) is lower are declined as not found; "
                "check a value on your own questions with `qa eval`.", Number(0, 1), ANSWER),
        Setting("batch_size", "256", "Questions encoded and searched together by `qa batch`, `qa eval` and the "
                "web Batch tab.", Whole(1, 4096), QUESTION_FILES),
        Setting("text_field", "text", "Field holding the text in .jsonl/.csv corpus files.", Text(), BUILD),
        Setting("title_field", "title", "Field holding the title in .jsonl/.csv corpus files.", Text(), BUILD),
        Setting("id_field", "id", "Field holding a row id in .jsonl/.csv corpus files.", Text(), BUILD),
        Setting("ann_threshold", "50000", "Index segments of more chunks than this are searched through an "
                "approximate (IVF) index instead of exactly.", Whole(1), BUILD),
        Setting("max_file_mb", "50", "Corpus files larger than this many MB are skipped unread.",
                Number(0, lo_open=True), BUILD),
        Setting("cache", "", "Folder keeping the model exported for ONNX Runtime "
                "(default: $XDG_CACHE_HOME/qa or ~/.cache/qa; 'off' keeps none).", Text(),
                ("index", "ask", "search", "serve", "batch", "eval")),
        Setting("ray", "", "Run the work on Ray: a bare --ray starts or uses a Ray on this machine; "
                "'auto' or HEAD:6379 joins a cluster (needs the ray extra).", RayAddress(),
                ("index", "batch"), bare="local"),
        Setting("host", "127.0.0.1", "Address the web server listens on.", Text(), ("serve",)),
        Setting("port", "7860", "Port the web server listens on.", Whole(1, 65535), ("serve",)),
        Setting("allowed_origins", "", "Comma-separated origins allowed to embed the widget and call the API.",
                Names(), ("serve",)),
        Setting("allowed_hosts", "", "Comma-separated host names the server answers to (empty: any; guards against "
                "DNS rebinding).", Names(), ("serve",)),
        Setting("api_key", "", "A key with the reader role. If any key is set, every route but /api/health, "
                "/widget.js and static files needs one: sent as `Authorization: Bearer KEY` or `X-API-Key`, or "
                "given once at /signin in a browser.", Text(), ("serve",)),
        Setting("admin_key", "", "A key with the admin role (also the document routes); 16 or more characters.",
                Text(), ("serve",)),
        Setting("keys_file", "", "File of named keys, one `NAME:ROLE:KEY[:COLLECTION,...]` a line (ROLE reader or "
                "admin; the collections, if listed, are the only ones the key may use).", Text(), ("serve",)),
        Setting("session_hours", "12", "How long a browser sign-in (/signin) lasts, in hours.",
                Number(0, 24 * 366, lo_open=True), ("serve",)),
        Setting("trusted_user_header", "", "Single sign-on: the header (X-Forwarded-User) in which a proxy of "
                "QA_TRUSTED_PROXIES names the signed-in user; ignored from any other address (empty: off).", Text(),
                ("serve",)),
        Setting("admin_users", "", "Comma-separated users of the trusted user header who get the admin role "
                "(the others are readers).", Names(), ("serve",)),
        Setting("rate_limit", "30/minute", "Requests per client to the API and chat UI (every POST), e.g. 30/minute "
                "(0 disables).", Rate(), ("serve",)),
        Setting("trusted_proxies", "", "Comma-separated addresses or networks (10.0.0.0/8) of reverse proxies whose "
                "X-Forwarded-For and X-Forwarded-Proto are believed (empty: none, the client is the connecting "
                "address).", Names(), ("serve",)),
        Setting("collections", "", "Collections served, each NAME=INDEX_FOLDER: its own corpus and index (the flag "
                "once per collection; the variable comma-separated). Empty: one collection, `default`, the --index "
                "folder.", Pairs(unique=True), ("serve",), repeat="--collection"),
        Setting("collection_origins", "", "Origins that may call the API for one collection only, each NAME=ORIGIN "
                "(the flag once per origin; the variable comma-separated), besides --allowed-origins.", Pairs(),
                ("serve",), repeat="--collection-origins"),
        Setting("feedback", "", "File storing thumbs up/down feedback (default: INDEX/../feedback.jsonl).", Text(),
                ("serve",)),
        Setting("conversations", "", "SQLite file keeping the web app's saved conversations (default: "
                "INDEX/../conversations.sqlite).", Text(), ("serve",)),
        Setting("max_turns", "200", "Questions a saved conversation may hold; past it, start a new conversation.",
                Whole(1, 100_000), ("serve",)),
        Setting("max_conversations", "500", "Saved conversations per user (or browser session); past it, the one "
                "used least recently is deleted.", Whole(1, 1_000_000), ("serve",)),
        Setting("examples", "", "Text file of example questions the chat UI offers, one per line (default: "
                "questions found in the documents, or about the topics they return to).", LinesOf(), ("serve",)),
        # Limits on tables: question files (`qa batch`, `qa eval`, the web Batch tab) and the corpus's
        # .csv/.tsv/.jsonl tables. Past one, the file is refused with a one-line reason naming the variable.
        Setting("max_rows", "100000", "Question files with more rows (questions) than this are refused.",
                Whole(1), QUESTION_FILES),
        Setting("max_columns", "1000", "Question files and corpus tables with a row of more columns than this are "
                "refused.", Whole(1), QUESTION_FILES + ("index",)),
        Setting("max_cell_chars", "32767", "Question files with a cell longer than this many characters are refused "
                "(32,767 is Excel's own limit).", Whole(1), QUESTION_FILES),
    ]
}

DEFAULT_MAX_FILE_MB = SETTINGS["max_file_mb"].default_value()
DEFAULT_ANN_THRESHOLD = SETTINGS["ann_threshold"].default_value()
DEFAULT_K = SETTINGS["k"].default_value()
DEFAULT_MIN_CONFIDENCE = SETTINGS["min_confidence"].default_value()
DEFAULT_BATCH_SIZE = SETTINGS["batch_size"].default_value()
DEFAULT_MAX_TURNS = SETTINGS["max_turns"].default_value()
DEFAULT_MAX_CONVERSATIONS = SETTINGS["max_conversations"].default_value()

MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 20  # earlier turns a follow-up is read with, in the API and the chat UI


class Settings:
    """The settings of one face, typed, by attribute (`settings.k`); read-only."""

    __slots__ = ("face", "_values")

    def __init__(self, face: str, values: Mapping[str, Any]):
        object.__setattr__(self, "face", face)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the {self.face} face has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are read-only")

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"Settings({self.face!r}, {self._values!r})"


def read_settings(face: str, given: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """The settings `face` has: values given (flags, request fields; None = not given) over QA_*
    variables over defaults. Text is parsed; a given value that is already typed is kept. A bad
    value raises BadSetting naming the flag and the variable."""
    given = given or {}
    environ = os.environ if environ is None else environ
    values = {}
    for s in SETTINGS.values():
        if face not in s.faces:
            continue
        chosen = given.get(s.name)
        if chosen is None:
            chosen = environ.get(s.env, s.default)
        values[s.name] = s.read(chosen, face) if isinstance(chosen, str) else chosen
    return Settings(face, values)
