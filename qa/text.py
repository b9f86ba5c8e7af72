"""Bytes -> text: the one decoder for every file read as text, the corpus's documents and tables
(qa.load) and question files (qa.batch).

The rule: a UTF-16 byte order mark means UTF-16; otherwise a NUL byte anywhere means binary data;
otherwise the text is UTF-8 (a UTF-8 byte order mark dropped). Bytes that are not UTF-8 are kept
as lone surrogates (U+DC80-U+DCFF), so that the caller decides what they mean: a question file
reports the rows holding them and answers the rest (`has_bad_bytes`, `replace_bad_bytes`), while
a corpus file that is not UTF-8 at all is most likely from an older Windows program and is read as
Windows-1252 (`decode_or_windows_1252`).
"""

from __future__ import annotations

import codecs
import re

from qa.prose import CONTROL


class NotText(ValueError):
    """Bytes that are not text: binary data, or a byte order mark over bytes that are not UTF-16."""

    def __init__(self, binary: bool):
        super().__init__("binary file, not text" if binary else "not valid UTF-16 text")
        self.binary = binary


_BAD_BYTE = re.compile("[\udc80-\udcff]")
# a character outside ASCII that decoded as UTF-8: the sign of a UTF-8 text with a few damaged bytes
_UTF8_LETTER = re.compile("[^\x00-\x7f\ufffd\udc80-\udcff]")


def decode(data: bytes) -> str:
    """The text of `data` by the rule above, bytes that are not UTF-8 kept as lone surrogates."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise NotText(binary=False) from None
    if b"\x00" in data:
        raise NotText(binary=True)
    return data.decode("utf-8-sig", errors="surrogateescape")


def has_bad_bytes(text: str) -> bool:
    return _BAD_BYTE.search(text) is not None


def replace_bad_bytes(text: str) -> str:
    """The text with each run of bytes that are not UTF-8 replaced by U+FFFD, as a UTF-8 decoder's
    "replace" would."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def decode_or_windows_1252(data: bytes) -> str:
    """The text of `data`, where a text that is not UTF-8 is read as Windows-1252 unless it holds
    valid UTF-8 characters: then its few damaged bytes become U+FFFD."""
    text = decode(data)
    if not has_bad_bytes(text):
        return text
    if _UTF8_LETTER.search(text):
        return replace_bad_bytes(text)
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
        return data.decode("latin-1")


def clean_lines(text: str) -> list[str]:
    """The lines of a text, without trailing spaces or control characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\v", "\n")
    return [line.rstrip() for line in CONTROL.sub("", text).split("\n")]


def clean_text(text: str) -> str:
    """The text with its lines cleaned (clean_lines), trimmed."""
    return "\n".join(clean_lines(text)).strip()
