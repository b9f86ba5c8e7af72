"""The chat UI: a Gradio Blocks app mounted at / by qa.web.

Each answer is one assistant message (the answer with its [n] markers and confidence, or a
distinct "not found" box) followed by one collapsed message per citation, titled with its source,
title and page/section, that opens to the passage with the answering sentence marked and a link
to the whole document (served by /source, scrolled to the passage). Follow-ups send the earlier
questions, with the answers given, as history. Thumbs up/down on an answer append it, with its
citations, to the feedback file. Every document and user string goes through qa.web.render's
escaping. A conversation keeps its last MAX_HISTORY_TURNS answered questions, as the API takes:
older ones leave the chat, the history and what a vote stores. With several collections, a
selector picks the one asked (switching starts a new conversation); the Documents tab
(qa.web.documents_tab) lists, adds and removes the selected collection's documents. Each answer
is saved in the asker's conversation (qa.web.conversation_ui); a page load reopens the latest one,
and a selector lists the others with New, Delete and Export.
"""

from __future__ import annotations

import html
import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no calls home

import gradio as gr  # noqa: E402

from qa.config import MAX_HISTORY_TURNS, MAX_QUESTION_CHARS  # noqa: E402
from qa.errors import (  # noqa: E402
    BadQuestion,
    CollectionRefused,
    ConversationFull,
    ConversationNotFound,
    UnknownCollection,
)
from qa.pipeline import NOT_FOUND, ConversationStore  # noqa: E402
from qa.types import Turn, counted  # noqa: E402
from qa.web import conversation_ui  # noqa: E402
from qa.web.auth import READER  # noqa: E402
from qa.web.conversation_routes import saved_turn  # noqa: E402
from qa.web.examples import example_questions  # noqa: E402
from qa.web.render import answer_markdown, citation_label, escape_md, passage_markdown, source_url  # noqa: E402
from qa.web.sessions import request_owner  # noqa: E402
from qa.web.uploads import refuse_remote_files  # noqa: E402

if TYPE_CHECKING:
    from qa.web.app import WebConfig
    from qa.web.collections import Collections
    from qa.web.documents import BuildOptions

THEME = gr.themes.Default(primary_hue="blue", font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
CSS = """
/* Gradio's subdued text colour is too faint on white (contrast 1.8): a darker grey in light mode. */
#qa-info { color: #57606a; font-size: var(--text-sm); }
.qa-abstain { border-left: 4px solid #d4a72c; background: #fff8e6; color: #4d3800; padding: .5em .8em;
  border-radius: 6px; }
.qa-confidence { color: #57606a; font-size: var(--text-sm); }
/* One selector a rule: Gradio scopes a selector list's .dark wrongly after the first. */
.dark #qa-info { color: var(--body-text-color-subdued); }
.dark .qa-confidence { color: var(--body-text-color-subdued); }
#qa-chat .qa-cite { color: var(--link-text-color); cursor: pointer; font-size: .85em; vertical-align: .1em; }
#qa-chat .qa-cite:hover, #qa-chat .qa-cite:focus { text-decoration: underline; }
#qa-chat mark { background: #ffd33d; color: #1f2328; padding: 0 1px; }
.qa-abstain .qa-confidence { color: #6b5518; }
/* Gradio's dark mode (its .dark class, set from the browser's prefers-color-scheme or ?__theme=dark). */
.dark .qa-abstain { background: #3a2f0b; color: #f3dfa2; border-left-color: #d4a72c; }
.dark .qa-abstain .qa-confidence { color: #dcc98e; }
.dark #qa-chat mark { background: #6e5600; color: #fff6d5; }
/* On a phone the question box and Ask stay on the first screen: the chat takes what is left of the
   screen's height, and the box and Ask share one line instead of stacking (the chat's own trash
   button starts a new conversation there). */
@media (max-width: 640px) {
  #qa-chat { height: max(180px, calc(100svh - 330px)) !important; }
  #qa-input-row { flex-wrap: nowrap !important; gap: 6px; }
  #qa-input-row > * { min-width: 0 !important; }
  #qa-question { flex: 1 1 auto !important; }
  #qa-ask { flex: 0 0 auto !important; width: auto !important; padding: 0 14px; }
  #qa-new { display: none !important; }
  #qa-info { font-size: var(--text-xs); }
  /* With several collections the title and the selector share one short line. */
  #qa-header { flex-wrap: nowrap !important; align-items: center; gap: 8px; }
  #qa-title { min-width: 0 !important; flex: 1 1 auto !important; }
  #qa-title h2 { font-size: var(--text-lg); margin: 0; word-break: normal; overflow-wrap: normal; }
  #qa-header > .form { flex: 0 0 130px !important; min-width: 0 !important; }  /* the selector's wrapper */
  #qa-collection { padding: 4px !important; }
  #qa-collection [data-testid="block-info"] { display: none; }
}
"""
# A message's copy button copies the text shown, not its Markdown source; an [n] marker opens its passage.
HEAD = "".join(
    f"<script>{(Path(__file__).parent / 'static' / name).read_text(encoding='utf-8')}</script>"
    for name in ("chat_copy.js", "chat_cite.js")
)
MAX_SESSIONS = 10_000  # conversations whose collection is remembered (the oldest forgotten first)


def indexed_line(info: dict) -> str:
    built = info["built_at"].replace("T", " ").replace("Z", " UTC")
    text = (
        f"Indexed: {counted(info['documents'], 'document')} from {counted(info['files'], 'file')}, "
        f"{counted(info['chunks'], 'chunk')} · last build {built} · model {info['model']}"
    )
    return escape_md(text)


def answer_messages(answer: dict, collection: str = "") -> list[dict]:
    """The chat messages for one answer (see the module docstring); `collection` names the
    collection in source links (left out: the default one)."""
    confidence = f"confidence {answer['confidence']:.0%}"
    if answer["abstained"]:
        # Inside an HTML block Markdown is not read, so the text is HTML-escaped only (a Markdown
        # escape would show its backslash), and the pipeline's own "not found" sentence is the label:
        # what follows it ("The documents never mention X.") is said after the label.
        reason = answer["answer"].removeprefix(NOT_FOUND).strip()
        said = f" {html.escape(reason)}" if reason else ""
        content = (
            f'<div class="qa-abstain"><strong>Not found in the documents.</strong>{said}'
            f'<br><span class="qa-confidence">{confidence}</span></div>'
        )
        return [{"role": "assistant", "content": content}]
    note = f"{confidence} · {counted(len(answer['citations']), 'source')} below: open one to see the passage"
    text = f'{answer_markdown(answer)}\n\n<span class="qa-confidence">{note}</span>'
    messages = [{"role": "assistant", "content": text}]
    for c in answer["citations"]:
        body = passage_markdown(c["passage"], c["start"], c["highlights"])
        messages.append({
            "role": "assistant",
            "content": f"{body}\n\n[Open the full source ↗]({source_url(c, collection=collection)})",
            "metadata": {"title": escape_md(citation_label(c)), "status": "done"},  # rendered as Markdown
        })
    return messages


def earlier_turn(turn: dict) -> Turn:
    """An answered question as history for the next one: its answer text, or "" when declined."""
    answer = turn["answer"]
    return Turn.answered(turn["question"], answer["answer"], answer["abstained"])


def saved_in(turns: list) -> str | None:
    """The id of the saved conversation a chat's turns are in (None before the first answer)."""
    return turns[-1]["conversation"] if turns else None


def keep_last_turns(messages: list, turns: list, limit: int = MAX_HISTORY_TURNS) -> tuple[list, list]:
    """The chat and its turns without the turns before the last `limit`: their messages (and any
    message shown before them) leave the chat, and the kept turns' message indexes move with it."""
    if len(turns) <= limit:
        return messages, turns
    kept = turns[-limit:]
    cut = kept[0]["first"] - 1  # the kept turn's question
    return messages[cut:], [{**t, "first": t["first"] - cut, "last": t["last"] - cut} for t in kept]


def build_ui(collections: Collections, conversations: ConversationStore, config: WebConfig, options: BuildOptions,
             signs_in: bool = False) -> gr.Blocks:
    """The UI answers with the server's settings (`config.k`, and for the Batch tab its batch size and limits);
    `signs_in`: visitors sign in (qa.web.signin), so the page offers to sign out."""
    from qa.web.batch_tab import batch_tab
    from qa.web.documents_tab import documents_tab

    def chosen(name: str | None, request: gr.Request | None = None, role: str = READER):
        return collections.for_request(name, request, role)

    # The collection each conversation asks, by Gradio session: kept here rather than sent with
    # every question, so a question event takes the same inputs with one collection or several.
    picked: OrderedDict[str, str] = OrderedDict()

    def pick(name: str, request: gr.Request) -> None:
        picked[request.session_hash] = name
        picked.move_to_end(request.session_hash)
        while len(picked) > MAX_SESSIONS:
            picked.popitem(last=False)

    def asked_of(request: gr.Request):
        return chosen(picked.get(request.session_hash), request)

    def link_name(name: str | None) -> str:
        """The collection named in source links: none for the default one."""
        return name if name and name != collections.default.name else ""

    def described(name: str, request: gr.Request) -> str:
        """The "Indexed: ..." line of a collection."""
        return indexed_line(chosen(name, request).qa.info())

    with gr.Blocks(title="Ask the documents") as ui:
        with gr.Row(equal_height=True, elem_id="qa-header"):
            gr.Markdown("## Ask the documents", elem_id="qa-title")
            selector = gr.Dropdown(
                choices=collections.names, value=collections.default.name, label="Collection",
                visible=len(collections) > 1, interactive=len(collections) > 1, elem_id="qa-collection", scale=0,
                min_width=220,
            )
        info = gr.Markdown(elem_id="qa-info")
        # One entry per answered question: the question, its history, the answer JSON, its collection,
        # the indexes of its messages in the chat (to find what a thumbs up/down refers to) and the id
        # of the saved conversation holding it (a chat without answers has none yet).
        turns = gr.State([])
        with gr.Tab("Chat"):
            chat = gr.Chatbot(
                elem_id="qa-chat", label="Conversation", height=540, feedback_options=("Like", "Dislike"),
                latex_delimiters=[], allow_tags=False, buttons=["copy"],
                placeholder="Answers come only from the indexed documents, each sentence with its source.",
            )
            with gr.Row(equal_height=True, elem_id="qa-input-row"):
                # Both open once the page has reopened the latest conversation, which would
                # otherwise replace a conversation begun on a slow start.
                box = gr.Textbox(
                    placeholder="Ask a question about the documents…", show_label=False, scale=6,
                    max_length=MAX_QUESTION_CHARS, elem_id="qa-question", autofocus=True, interactive=False,
                )
                ask = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask", interactive=False)
                new = gr.Button("New conversation", scale=1, elem_id="qa-new")
            # Saved conversations, below the question box so that on a phone the box stays on the first screen.
            with gr.Row(equal_height=True):
                saved = gr.Dropdown(label="Conversations", choices=[], value=None, scale=6,
                                    elem_id="qa-conversations", interactive=True)
                delete = gr.Button("Delete", scale=1, elem_id="qa-delete")
                export = gr.Button("Export", scale=1, elem_id="qa-export")
            exported = gr.File(label="Exported conversation", visible=False, interactive=False,
                               elem_id="qa-export-file")
            # Each collection's own (read once, at start-up), shown for the one selected.
            examples = {c.name: [[q] for q in example_questions(c.qa.documents(), given=config.examples)]
                        for c in collections}
            shown_examples = gr.Examples(examples=examples[collections.default.name], inputs=[box],
                                         label="Examples", elem_id="qa-examples").dataset
        with gr.Tab("Batch"):
            batch_tab(lambda name, request: chosen(name, request).qa, config, selector)
        with gr.Tab("Documents", elem_id="qa-documents-tab") as documents:
            documents_tab(documents, selector, chosen, options, info, described)
        gr.Markdown(
            "JSON API: [/docs](/docs) · Intranet widget: `<script src=\"…/widget.js\" defer></script>` · "
            "[/embed](/embed) for an iframe",
            elem_id="qa-footer",
        )
        if signs_in:  # a button, since a Markdown link opens a new tab
            gr.Button("Sign out", link="/signout", link_target="_self", size="sm", elem_id="qa-signout")

        def no_export():
            return gr.update(value=None, visible=False)

        def listed(owner: str | None, chosen_id: str | None):
            return gr.update(choices=conversation_ui.choices(conversations, owner), value=chosen_id)

        def respond(question: str, messages: list, turns: list, request: gr.Request):
            question = (question or "").strip()
            if not question:
                return "", messages, turns, gr.update()
            owner = request_owner(request)
            conversation_id = saved_in(turns)
            history = [earlier_turn(t) for t in turns[-MAX_HISTORY_TURNS:]]
            asked = {"role": "user", "content": escape_md(question)}
            try:
                collection = asked_of(request)
                if conversation_id is not None:
                    conversations.check_room(owner, conversation_id)
                answer = collection.qa.ask(question, k=config.k, history=history).to_dict()
            except (BadQuestion, CollectionRefused, ConversationFull) as exc:
                said = [asked, {"role": "assistant", "content": escape_md(str(exc))}]
                return "", messages + said, turns, gr.update()
            except ConversationNotFound:  # deleted meanwhile (another tab): this chat goes on in a new one
                conversation_id = None
                answer = collection.qa.ask(question, k=config.k, history=history).to_dict()
            conversation_id = conversations.add_turn(owner, conversation_id, saved_turn(answer, collection.name))
            new_messages = [asked, *answer_messages(answer, link_name(collection.name))]
            first = len(messages) + 1
            turn = {"question": question, "history": history, "answer": answer, "collection": collection.name,
                    "conversation": conversation_id, "first": first, "last": len(messages) + len(new_messages) - 1}
            return "", *keep_last_turns(messages + new_messages, turns + [turn]), listed(owner, conversation_id)

        def reopen(conversation_id: str | None, request: gr.Request):
            """The chosen conversation (None: the latest one, if any) in the chat, asking its collection
            again, and the list and export cleared."""
            owner = request_owner(request)
            found = conversation_ui.choices(conversations, owner)
            conversation_id = conversation_id or (found[0][1] if found else None)
            try:
                messages, turns = (conversation_ui.chat_of(conversations, owner, conversation_id,
                                                           lambda a, name: answer_messages(a, link_name(name)))
                                   if conversation_id else ([], []))
            except ConversationNotFound:  # deleted meanwhile
                conversation_id, messages, turns = None, [], []
            name = turns[-1]["collection"] if turns else None
            if name in collections.names:
                pick(name, request)
            shown_name = gr.update(value=name) if name in collections.names else gr.update()
            return messages, turns, gr.update(choices=found, value=conversation_id), no_export(), shown_name

        def reopen_latest(request: gr.Request):
            return *reopen(None, request), gr.update(interactive=True), gr.update(interactive=True)

        def delete_current(turns: list, request: gr.Request):
            owner = request_owner(request)
            conversation_id = saved_in(turns)
            if conversation_id is not None and owner is not None:
                try:
                    conversations.delete(owner, conversation_id)
                except ConversationNotFound:
                    pass  # already gone: the chat is cleared all the same
            return [], [], listed(owner, None), no_export()

        def export_current(turns: list, request: gr.Request):
            conversation_id = saved_in(turns)
            if conversation_id is None:
                gr.Info("Ask a question first: there is nothing to export yet.")
                return no_export()
            try:
                path = conversation_ui.export_file(conversations, request_owner(request), conversation_id)
            except ConversationNotFound:
                gr.Info("This conversation was deleted.")
                return no_export()
            return gr.update(value=str(path), visible=True)

        def vote(turns: list, data: gr.LikeData, request: gr.Request):
            index = data.index if isinstance(data.index, int) else data.index[0]
            turn = next((t for t in turns if t["first"] <= index <= t["last"]), None)
            if turn is None or data.liked not in (True, False):
                return
            answer = turn["answer"]
            collection = chosen(turn.get("collection"), request)
            collection.feedback.add(
                "up" if data.liked else "down", answer["question"], answer["answer"], answer["citations"],
                abstained=answer["abstained"], confidence=answer["confidence"], history=turn["history"], via="ui",
                collection=collection.name if len(collections) > 1 else "",
            )
            gr.Info("Thanks: your feedback was saved.")

        events = dict(api_visibility="private", concurrency_limit=8)
        for trigger in (box.submit, ask.click):
            trigger(respond, [box, chat, turns], [box, chat, turns, saved], **events)
        shown = [chat, turns, saved, exported]
        new.click(lambda: ([], [], gr.update(value=None), no_export()), None, shown, **events)
        # The chat's own trash button starts over too.
        chat.clear(lambda: ([], gr.update(value=None), no_export()), None, shown[1:], **events)
        chat.like(vote, [turns], None, **events)
        saved.input(reopen, [saved], [*shown, selector], **events)
        delete.click(delete_current, [turns], shown, **events)
        export.click(export_current, [turns], [exported], **events)
        def switched(name: str, request: gr.Request):
            """Another collection: a new conversation, and what that collection holds."""
            pick(name, request)
            return [], [], described(name, request)

        def opened(request: gr.Request):
            """The selector offers the collections this visitor may use (a key may be limited to some),
            starting on the first of them."""
            names = [c.name for c in collections.usable(request)]
            if not names:
                return gr.update(choices=[], value=None, visible=False), "You may not use any collection here."
            pick(names[0], request)
            return (gr.update(choices=names, value=names[0], visible=len(names) > 1, interactive=len(names) > 1),
                    described(names[0], request))

        # The latest conversation is reopened after, so that its collection is the one left selected.
        ui.load(opened, None, [selector, info], **events).then(
            reopen_latest, None, [*shown, selector, box, ask], **events
        ).then(None, None, None, js="() => document.querySelector('#qa-question textarea')?.focus()")
        # Only a visitor's own choice starts a new conversation: reopening one sets the selector too.
        selector.input(switched, selector, [chat, turns, info], **events)
        selector.change(described, selector, info, **events)
        def examples_of(name: str, request: gr.Request):
            """A collection's examples, only for a visitor who may use it (they are read from its documents)."""
            try:
                samples = examples[chosen(name, request).name]
            except (CollectionRefused, UnknownCollection):
                samples = []
            return gr.Dataset(samples=samples, visible=bool(samples))

        selector.change(examples_of, selector, shown_examples, **events)
    refuse_remote_files(ui)
    return ui
