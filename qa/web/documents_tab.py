"""The chat UI's Documents tab: the selected collection's documents listed, added (uploaded) and
removed, with the build's progress shown while it runs.

Adding or removing streams its progress from the one event (no polling timer, whose every tick
would be a POST counted by the rate limit) until the collection's build is done. Everything shown
from a document or a file name is escaped (the list is a table of plain text).
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from qa.errors import CollectionRefused, QAError
from qa.pipeline import DOCUMENT_SUFFIXES
from qa.types import counted
from qa.web.auth import ADMIN
from qa.web.documents import (
    MAX_DOCUMENT_BYTES,
    BuildOptions,
    add_documents,
    builds_of,
    list_documents,
    remove_document,
)

HEADERS = ["source", "title", "size (bytes)", "chunks", "indexed at"]
POLL_SECONDS = 0.5
MAX_WAIT_SECONDS = 3600.0  # an event stops following a build this long (the status still shows it)


def _rows(documents: list[dict]) -> list[list[str]]:
    return [[d["source"], d["title"], f"{d['size']:,}" if d["size"] is not None else "",
             "" if d["chunks"] is None else str(d["chunks"]),
             (d["indexed_at"] or "waiting for the build").replace("T", " ").replace("Z", " UTC")] for d in documents]


def status_html(status: dict, note: str = "") -> str:
    """The build in progress (a progress bar) or the last build's report, and a note (what an
    upload or removal did), all escaped."""
    parts = [f'<p class="qa-doc-note">{html.escape(note)}</p>'] if note else []
    progress = status["progress"]
    if progress is not None:
        unit = "chunks" if progress["stage"] == "embedding" else "files"
        done, total = progress["done"], progress["total"]
        # Before a stage knows its total (a build starting), the bar runs without a count.
        count, bar = ((f" {done} / {total} {unit}", f'<progress value="{done}" max="{total}"></progress>') if total
                      else ("", "<progress></progress>"))
        parts.append(f'<p class="qa-doc-progress">Indexing: {html.escape(progress["stage"])}{count}<br>{bar}</p>')
    elif status["queued"]:
        parts.append('<p class="qa-doc-progress">Indexing: waiting to start</p>')
    last = status["last_build"]
    if last is not None and progress is None:
        when = last["finished_at"].replace("T", " ").replace("Z", " UTC")
        if last["ok"]:
            text = (f"Last build {when}: {last['embedded']} embedded, {last['reused']} reused, "
                    f"{last['removed']} removed, {len(last['skipped'])} skipped.")
            skipped = "".join(f"<li>{html.escape(s['file'])}: {html.escape(s['reason'])}</li>" for s in last["skipped"])
            parts.append(f'<p class="qa-doc-last">{html.escape(text)}</p>' + (f"<ul>{skipped}</ul>" if skipped else ""))
        else:
            parts.append(f'<p class="qa-doc-last">Last build {html.escape(when)} failed: '
                         f'{html.escape(last["error"])}</p>')
    return "".join(parts) or "<p>No build since the server started.</p>"


def documents_tab(tab: gr.Tab, selector: gr.Dropdown, chosen: Callable, options: BuildOptions,
                  info: gr.Markdown, describe: Callable) -> None:
    """Build the tab's components and events (inside `with gr.Tab(...)`); once an upload's or a
    removal's build is done, `describe(name, request)` refreshes the page's `info` line."""
    status = gr.HTML(elem_id="qa-doc-status")
    # Widths of its own for each column, so a long title wraps instead of pushing the rest out of sight.
    table = gr.Dataframe(headers=HEADERS, datatype=["str"] * len(HEADERS), interactive=False,
                         elem_id="qa-doc-list", label="Documents", wrap=True,
                         column_widths=["22%", "38%", "12%", "8%", "20%"])
    upload = gr.File(file_count="multiple", file_types=list(DOCUMENT_SUFFIXES), type="filepath",
                     label=f"Add documents ({', '.join(DOCUMENT_SUFFIXES)}; at most {MAX_DOCUMENT_BYTES // 2**20} MB "
                           "each; a file of the same name is replaced)", elem_id="qa-doc-upload")
    with gr.Row(equal_height=True) as removal:
        source = gr.Dropdown(choices=[], label="Document to remove", elem_id="qa-doc-source", scale=4)
        delete = gr.Button("Remove", variant="stop", elem_id="qa-doc-delete", scale=1)
        refresh = gr.Button("Refresh", elem_id="qa-doc-refresh", scale=1)

    def view(collection, note: str = ""):
        documents = list_documents(collection)
        sources = [d["source"] for d in documents]
        return (status_html(builds_of(collection, options).status(), note), _rows(documents),
                gr.Dropdown(choices=sources, value=None), gr.update(value=None, visible=True), gr.update(visible=True))

    def follow(collection, note: str):
        """Yield the view until the collection's build (queued or running) is done."""
        yield view(collection, note)
        builds = builds_of(collection, options)
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while time.monotonic() < deadline:
            current = builds.status()
            if current["progress"] is None and not current["queued"]:
                break
            time.sleep(POLL_SECONDS)
            yield view(collection, note)
        yield view(collection, note)

    def refused(exc: QAError):
        """A reader's tab: why, and no controls that could only be refused."""
        return (f"<p class=\"qa-doc-refused\">{html.escape(str(exc))}</p>", [], gr.Dropdown(choices=[], value=None),
                gr.update(value=None, visible=False), gr.update(visible=False))

    def show(name: str, request: gr.Request):
        try:
            return view(chosen(name, request, ADMIN))
        except CollectionRefused as exc:  # a reader: the tab is for admins
            return refused(exc)

    def add(paths: list[str] | None, name: str, request: gr.Request):
        try:
            collection = chosen(name, request, ADMIN)
        except CollectionRefused as exc:
            yield refused(exc)
            return
        files = []
        for path in paths or []:
            with open(path, "rb") as f:
                files.append((Path(path).name, f.read(MAX_DOCUMENT_BYTES + 1)))
        result = add_documents(collection, files, options)
        said = [f"Added {counted(len(result['accepted']), 'file')}."] if result["accepted"] else []
        said += [f"Refused {r['reason']}" if r["reason"].startswith("'") else f"Refused {r['file']}: {r['reason']}"
                 for r in result["refused"]]
        yield from follow(collection, " ".join(said))

    def remove(chosen_source: str | None, name: str, request: gr.Request):
        try:
            collection = chosen(name, request, ADMIN)
        except CollectionRefused as exc:
            yield refused(exc)
            return
        if not chosen_source:
            yield view(collection, "Choose a document to remove.")
            return
        try:
            remove_document(collection, chosen_source, options)
        except QAError as exc:
            yield view(collection, str(exc))
            return
        yield from follow(collection, f"Removed {chosen_source}.")

    shown = [status, table, source, upload, removal]
    events = dict(api_visibility="private", concurrency_limit=4)
    tab.select(show, selector, shown, **events)
    refresh.click(show, selector, shown, **events)
    selector.change(show, selector, shown, **events)
    upload.upload(add, [upload, selector], shown, **events).then(describe, selector, info, **events)
    delete.click(remove, [source, selector], shown, **events).then(describe, selector, info, **events)
