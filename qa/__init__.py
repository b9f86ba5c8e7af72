"""qa: offline question answering over a folder of documents, with every answer cited."""

from qa.errors import QAError
from qa.pipeline import NOT_FOUND, QA, build
from qa.types import Answer, AnswerSentence, Chunk, Citation, Document, Passage

__all__ = [
    "QA",
    "build",
    "NOT_FOUND",
    "QAError",
    "Answer",
    "AnswerSentence",
    "Chunk",
    "Citation",
    "Document",
    "Passage",
]
