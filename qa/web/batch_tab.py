"""The Batch tab of the web UI: upload a question file, download it answered, with citations.

A thin face over qa.batch: the answered file is written, in the upload's format or the one chosen,
to a fresh folder inside Gradio's upload folder, where the web app serves it from and
qa.web.uploads removes it after a while.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from gradio.utils import get_upload_folder

from qa.batch import (
    SUFFIXES,
    BatchSummary,
    InputRow,
    ProgressCallback,
    open_output,
    read_questions,
    result_fields,
    run_batch,
)
from qa.errors import QAError
from qa.pipeline import QA
from qa.types import counted

if TYPE_CHECKING:
    from qa.web.app import WebConfig

SAME_FORMAT = "same as the upload"
PREVIEW_ROWS = 50  # answered rows shown in the tab's table; the file holds them all
PREVIEW_COLUMNS = ["row", "question", "answer", "declined", "confidence", "sources"]


def preview_row(row: InputRow, fields: dict) -> list:
    """One row of the preview table, as plain text (the table shows text, never markup)."""
    declined = "" if fields["abstained"] is None else "yes" if fields["abstained"] else "no"
    confidence = "" if fields["confidence"] is None else f"{fields['confidence']:.0%}"
    answer = fields["answer"] or f"error: {fields['error']}"
    return [row.row, row.question, answer, declined, confidence, fields["citations"]]


def answer_upload(
    qa: QA, config: WebConfig, upload: Path | str, question_column: str = "", output_format: str = SAME_FORMAT,
    on_progress: ProgressCallback | None = None,
) -> tuple[Path, BatchSummary, list[list]]:
    """Answer an uploaded question file into a new file in a fresh folder of Gradio's upload folder
    (served from there as it is: Gradio copies a file from anywhere else). Returns the file, the
    summary and the first PREVIEW_ROWS rows for the preview table."""
    upload = Path(upload)
    source = read_questions(upload, question_column.strip() or None, config.table_limits)
    suffix = upload.suffix.lower() if output_format == SAME_FORMAT else output_format
    uploads = Path(get_upload_folder())
    uploads.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="qa-batch-", dir=uploads))
    output = open_output(folder / f"{upload.stem}.answers{suffix}", source)
    preview: list[list] = []

    def keep_for_preview(row: InputRow, answer, error: str) -> None:
        if len(preview) < PREVIEW_ROWS:
            preview.append(preview_row(row, result_fields(answer, error)))

    summary = run_batch(
        qa, source, output, k=config.k, batch_size=config.batch_size, on_progress=on_progress,
        on_result=keep_for_preview,
    )
    return output.path, summary, preview


def summary_markdown(summary: BatchSummary) -> str:
    errors = f", **{counted(summary.errors, 'error')}** (see the `error` column)" if summary.errors else ""
    return (
        f"**{counted(summary.done, 'question')}**: **{summary.answered}** answered, "
        f"**{summary.abstained}** declined{errors}, "
        f"in {summary.seconds:.1f} s ({summary.done / max(summary.seconds, 1e-9):.1f} questions/s)."
    )


def error_markdown(exc: QAError, upload: Path | str) -> str:
    """The error said for the web: the upload by its own name, the form's box instead of the CLI flag."""
    message = str(exc).replace(str(upload), Path(upload).name).replace("--question-column", "the question column box")
    return f"Could not answer the file: {message}"


def batch_tab(qa_of: Callable[[str, gr.Request], QA], config: WebConfig, selector: gr.Dropdown) -> None:
    """The tab's components, built inside the caller's gr.Blocks / gr.Tab context; questions are
    answered from the collection the `selector` shows (`qa_of(name, request)`)."""
    gr.Markdown(
        "Upload a questionnaire (CSV, TSV, JSONL, TXT with one question per line, or XLSX) and download it with "
        "every question answered: the answer, whether it was declined, the confidence and the numbered sources. "
        "Other columns are kept as they are."
    )
    with gr.Row():
        upload = gr.File(label="Question file", file_types=list(SUFFIXES), elem_id="qa-batch-upload")
        with gr.Column():
            column = gr.Textbox(
                label="Question column", placeholder="found by its name (question, query, …)",
                elem_id="qa-batch-column",
            )
            output_format = gr.Dropdown(
                [SAME_FORMAT, *SUFFIXES], value=SAME_FORMAT, label="Answer file format", elem_id="qa-batch-format",
            )
            run = gr.Button("Answer all questions", variant="primary", elem_id="qa-batch-run")
    summary = gr.Markdown(elem_id="qa-batch-summary")
    answered = gr.File(label="Answered file", interactive=False, elem_id="qa-batch-download")
    preview = gr.Dataframe(
        headers=PREVIEW_COLUMNS, datatype="str", interactive=False, wrap=True, visible=False,
        label=f"Preview (the first {PREVIEW_ROWS} rows; the file holds them all)", elem_id="qa-batch-preview",
    )

    def respond(path: str | None, question_column: str, chosen: str, name: str, request: gr.Request,
                progress=gr.Progress()):
        hidden = gr.Dataframe(visible=False)
        if not path:
            return None, "Choose a question file first.", hidden

        def report(done: int, total: int) -> None:
            progress((done, total), desc="answering", unit="questions")

        try:
            output, result, rows = answer_upload(
                qa_of(name, request), config, path, question_column or "", chosen, on_progress=report,
            )
        except QAError as exc:
            return None, error_markdown(exc, path), hidden
        table = gr.Dataframe(value=[[str(cell) for cell in row] for row in rows], visible=bool(rows))
        return str(output), summary_markdown(result), table

    run.click(respond, [upload, column, output_format, selector], [answered, summary, preview], concurrency_limit=1,
              api_visibility="private")
