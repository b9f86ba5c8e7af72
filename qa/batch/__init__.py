"""Question files -> answer files: the batch face over qa.pipeline, and evaluation beside it.

A questionnaire (CSV/TSV, JSONL, TXT or XLSX) is read whole (readers.py, in time and memory linear
in its size within the QA_MAX_* limits of qa.tables), its questions are streamed through
`QA.answer_stream` (run.py), and every input row gets one output row, in input order, with all its
columns passed through and the answer, abstention, confidence, citations and any error added
(output.py). Each batch is made durable before the next one starts, so an interrupted run leaves
a valid partial file that a resumed run continues without repeating or losing a row: CSV, TSV,
JSONL and TXT outputs are appended to in place (writers.py); a workbook cannot be appended to, so
XLSX rows go to a JSONL journal beside it and the workbook is rewritten atomically at checkpoints
and at the end (xlsx.py). A resumed run checks each row already written against the input's row
number and question. evaluate.py scores the answers against the expected ones a file carries.
"""

from qa.batch.evaluate import (
    EVAL_FIELDS,
    Expected,
    answer_hit,
    evaluate,
    evaluate_file,
    expectations,
    score,
    source_matches,
)
from qa.batch.output import result_fields
from qa.batch.readers import SUFFIXES, BatchFileError, InputRow, QuestionFile, read_questions
from qa.batch.run import BatchSummary, ProgressCallback, answer_file, answer_rows, run_batch
from qa.batch.writers import open_output
from qa.batch.xlsx import XlsxOutput
from qa.tables import TableLimits

__all__ = [
    "EVAL_FIELDS",
    "SUFFIXES",
    "TableLimits",
    "BatchFileError",
    "BatchSummary",
    "Expected",
    "InputRow",
    "ProgressCallback",
    "QuestionFile",
    "XlsxOutput",
    "answer_file",
    "answer_hit",
    "answer_rows",
    "evaluate",
    "evaluate_file",
    "expectations",
    "open_output",
    "read_questions",
    "result_fields",
    "run_batch",
    "score",
    "source_matches",
]
