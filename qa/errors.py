"""Errors a user may see. Each message is one line that says what is wrong and how to fix it."""


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An unexpected exception as one bounded line, "Type: message", for a reason shown to a user."""
    message = " ".join(str(exc).split())
    message = message if len(message) <= limit else message[: limit - 3] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class QAError(Exception):
    """An error shown to the user as one line, with a non-zero exit code."""

    exit_code = 2


class CorpusNotFound(QAError):
    def __init__(self, path):
        super().__init__(f"corpus folder not found: {path} (create it or pass --corpus DIR)")


class EmptyCorpus(QAError):
    def __init__(self, path, skipped: list[tuple[str, str]] = ()):
        formats = "add .txt, .md, .html, .pdf, .docx, .jsonl or .csv files"
        if not skipped:
            super().__init__(f"no readable documents in {path} ({formats})")
            return
        # the skipped files are why there is nothing to index, so name them (on this one line)
        why = "; ".join(f"{file} ({reason})" for file, reason in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        super().__init__(f"no readable documents in {path}: could not read {why}{more} (fix them or {formats})")


class IndexNotFound(QAError):
    def __init__(self, path):
        super().__init__(f"no index at {path}: build one with `qa index --index {path}`")


class IndexMismatch(QAError):
    """The index was built with another model or settings than the ones asked for."""


class IndexDamaged(QAError):
    """A file of the live build cannot be read, or does not fit the others."""

    def __init__(self, path, reason: str):
        self.reason = reason
        super().__init__(f"the index at {path} is damaged ({reason}): rebuild it with `qa index --index {path}`")


class IndexBusy(QAError):
    def __init__(self, path):
        super().__init__(f"another `qa index` is writing {path}; wait for it to finish and run again")


class ModelUnavailable(QAError):
    def __init__(self, name, reason):
        super().__init__(
            f"cannot load embedding model {name!r} offline ({reason}); "
            "give a local model folder with --model or QA_MODEL"
        )


class BadQuestion(QAError):
    """An empty or oversized question."""


class DiskFull(QAError):
    def __init__(self, path, reason):
        super().__init__(
            f"no room to write the new index in {path} ({reason}): the disk is full or a size limit was hit; "
            "the previous index is unchanged. Free some space and run `qa index` again"
        )
