"""Errors a user may see. Each message is one line that says what is wrong and how to fix it.

Every error declares how each face reports it: `exit_code` is what `qa` exits with, `http_status`
what the web app answers. A status under 500 is the client's to fix, so the web shows it the
message; from 500 up the message names folders of the server and goes to the server log only.
"""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An unexpected exception as one bounded line, "Type: message", for a reason shown to a user."""
    message = " ".join(str(exc).split())
    message = message if len(message) <= limit else message[: limit - 3] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def megabytes(size: float) -> str:
    """A size in bytes as a user reads it: "1.5 MB", "200 MB", "0.002 MB"."""
    mb = size / 1e6
    return (f"{mb:,.1f}".removesuffix(".0") if mb >= 0.1 else f"{mb:g}") + " MB"


class QAError(Exception):
    """An error shown to the user as one line, with a non-zero exit code."""

    exit_code = 2
    http_status = 500


class BadSetting(QAError):
    """A setting (a QA_* variable or its flag) whose value cannot be used."""

    exit_code = 2
    http_status = 500  # the server's own configuration, not the request


class CorpusNotFound(QAError):
    exit_code = 2
    http_status = 500

    def __init__(self, path):
        super().__init__(f"corpus folder not found: {path} (create it or pass --corpus DIR)")


class EmptyCorpus(QAError):
    exit_code = 2
    http_status = 500

    def __init__(self, path, skipped: list[tuple[str, str]] = ()):
        formats = "add .txt, .md, .html, .pdf, .docx, .pptx, .xlsx, .odt, .jsonl or .csv files"
        if not skipped:
            super().__init__(f"no readable documents in {path} ({formats})")
            return
        # the skipped files are why there is nothing to index, so name them (on this one line)
        why = "; ".join(f"{file} ({reason})" for file, reason in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        super().__init__(f"no readable documents in {path}: could not read {why}{more} (fix them or {formats})")


class LoadError(QAError):
    """A file that cannot be turned into documents; the message is the one-line reason. `qa index`
    skips the file, says why and exits 1 once the rest is indexed."""

    exit_code = 1
    http_status = 422


class IndexNotFound(QAError):
    exit_code = 2
    http_status = 500

    def __init__(self, path):
        super().__init__(f"no index at {path}: build one with `qa index --index {path}`")


class IndexMismatch(QAError):
    """The index was built with another model or settings than the ones asked for."""

    exit_code = 2
    http_status = 500


class IndexDamaged(QAError):
    """A file of the live build cannot be read, or does not fit the others."""

    exit_code = 2
    http_status = 500

    def __init__(self, path, reason: str):
        self.reason = reason
        super().__init__(f"the index at {path} is damaged ({reason}): rebuild it with `qa index --index {path}`")


class IndexBusy(QAError):
    exit_code = 2
    http_status = 503

    def __init__(self, path):
        super().__init__(f"another `qa index` is writing {path}; wait for it to finish and run again")


class DiskFull(QAError):
    exit_code = 2
    http_status = 507

    def __init__(self, path, reason):
        super().__init__(
            f"no room to write the new index in {path} ({reason}): the disk is full or a size limit was hit; "
            "the previous index is unchanged. Free some space and run `qa index` again"
        )


class ModelUnavailable(QAError):
    exit_code = 2
    http_status = 500

    def __init__(self, name, reason):
        super().__init__(
            f"cannot load embedding model {name!r} offline ({reason}); "
            "give a local model folder with --model or QA_MODEL"
        )


class BadQuestion(QAError):
    """An empty or oversized question."""

    exit_code = 2
    http_status = 422


class BatchFileError(QAError):
    """A question or answer file that cannot be used as asked; the message says how to fix it."""

    exit_code = 2
    http_status = 422


class UnknownCollection(QAError):
    exit_code = 2
    http_status = 404

    def __init__(self, name: str, names: list[str]):
        super().__init__(f"no collection {name!r} here (collections: {', '.join(names)})")


class CollectionRefused(QAError):
    """A request from an origin, or by a key, that may use other collections, not this one; or by a
    reader where the admin role is needed (adding and removing documents)."""

    exit_code = 2
    http_status = 403


class DocumentRefused(QAError):
    """An uploaded file that is not written to the corpus; the message is the reason."""

    exit_code = 1
    http_status = 422


class NoSuchDocument(QAError):
    exit_code = 2
    http_status = 404


class DocumentConflict(QAError):
    """A change the collection cannot take as it is (its last document removed)."""

    exit_code = 2
    http_status = 409


class ConversationNotFound(QAError):
    """A saved conversation that does not exist or is not the asker's (never told apart)."""

    exit_code = 2
    http_status = 404

    def __init__(self):
        super().__init__("no such conversation (it was deleted, or belongs to another user or browser)")


class ConversationFull(QAError):
    """A saved conversation holding as many questions as QA_MAX_TURNS allows."""

    exit_code = 2
    http_status = 409

    def __init__(self, limit: int):
        super().__init__(f"this conversation holds {limit:,} questions, the limit (QA_MAX_TURNS): start a new one")


class RayUnavailable(QAError):
    """`--ray` asked for, but Ray is not installed, cannot be reached, or its job failed."""

    exit_code = 2
    http_status = 500


RAY_EXTRA = 'pip install -e ".[ray]" (or pip install "ray[data]>=2.40")'
