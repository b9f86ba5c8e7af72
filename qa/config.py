"""Every setting, declared once: its environment variable, default and one-line help.

The CLI turns each into a flag (`--index` <-> `QA_INDEX`); the web app and batch read the same
declarations, so a setting never has two defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def env(self) -> str:
        return "QA_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def value(self) -> str:
        return os.environ.get(self.env, self.default)


DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MAX_FILE_MB = 50.0

SETTINGS = {
    s.name: s
    for s in [
        Setting("corpus", "corpus", "Folder of documents to index (walked recursively)."),
        Setting("index", "index", "Folder holding the built index."),
        Setting("model", DEFAULT_MODEL, "Sentence-transformers model name or local folder."),
        Setting("chunk_tokens", "200", "Chunk size in model tokens (capped by the model's limit)."),
        Setting("chunk_overlap", "32", "Tokens shared by neighbouring chunks."),
        Setting("k", "5", "Passages retrieved per question."),
        Setting("min_confidence", "0.5", "Answers whose confidence (0-1) is lower are declined as not found; "
                "check a value on your own questions with `qa eval`."),
        Setting("batch_size", "256", "Questions encoded and searched together by `qa batch` and `qa eval`."),
        Setting("text_field", "text", "Field holding the text in .jsonl/.csv corpus files."),
        Setting("title_field", "title", "Field holding the title in .jsonl/.csv corpus files."),
        Setting("id_field", "id", "Field holding a row id in .jsonl/.csv corpus files."),
        Setting("max_file_mb", f"{DEFAULT_MAX_FILE_MB:g}", "Corpus files larger than this many MB are skipped unread."),
        Setting("cache", "", "Folder keeping the model exported for ONNX Runtime "
                "(default: $XDG_CACHE_HOME/qa or ~/.cache/qa; 'off' keeps none)."),
        Setting("host", "127.0.0.1", "Address the web server listens on."),
        Setting("port", "7860", "Port the web server listens on."),
        Setting("allowed_origins", "", "Comma-separated origins allowed to embed the widget and call the API."),
        Setting("allowed_hosts", "", "Comma-separated host names the server answers to (empty: any; guards against "
                "DNS rebinding)."),
        Setting("api_key", "", "If set, API calls must send it as `Authorization: Bearer KEY` or `X-API-Key`."),
        Setting("rate_limit", "30/minute", "Requests per client to the API and chat UI (every POST), e.g. 30/minute "
                "(0 disables)."),
        Setting("trusted_proxies", "", "Comma-separated addresses or networks (10.0.0.0/8) of reverse proxies whose "
                "X-Forwarded-For and X-Forwarded-Proto are believed (empty: none, the client is the connecting "
                "address)."),
        Setting("feedback", "", "File storing thumbs up/down feedback (default: INDEX/../feedback.jsonl)."),
    ]
}

MAX_QUESTION_CHARS = 2000
MAX_HISTORY_TURNS = 20  # earlier turns a follow-up is read with, in the API and the chat UI


def setting(name: str) -> str:
    return SETTINGS[name].value()


# Limits on tables: question files (`qa batch`, `qa eval`, the web Batch tab) and the corpus's
# .csv/.tsv/.jsonl tables. Past one, the file is refused with a one-line reason naming the variable.
SETTINGS.update({
    s.name: s
    for s in [
        Setting("max_rows", "100000", "Question files with more rows (questions) than this are refused."),
        Setting("max_columns", "1000", "Question files and corpus tables with a row of more columns than this are "
                "refused."),
        Setting("max_cell_chars", "32767", "Question files with a cell longer than this many characters are refused "
                "(32,767 is Excel's own limit)."),
    ]
})
