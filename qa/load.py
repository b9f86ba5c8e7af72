"""Files -> Documents. One loader per format, chosen by suffix; a file that cannot be read
raises LoadError with a one-line reason, and the caller reports it and goes on.

A corpus may hold anything, so reading is defensive: a file is read once, up to a size limit,
only if it is a regular file inside the corpus folder; text is decoded by the rule of qa.text
(UTF-8, or UTF-16 by its byte order mark; text that is not UTF-8 falls back to Windows-1252); an
office file (.docx, .pptx, .xlsx, .odt, .odp, .ods) that would unzip to an absurd size is refused
before it is unzipped (qa.office, qa.opendocument); a .csv/.jsonl table becomes one document per
row (qa.corpus_tables), read in linear time without padding its rows (qa.tables), and the index
folder is never walked as corpus."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from qa.boilerplate import main_content
from qa.corpus_tables import TableFields, load_csv, load_jsonl
from qa.errors import LoadError, megabytes, one_line
from qa.html import html_text
from qa.office import load_docx, load_pptx, load_xlsx
from qa.opendocument import load_odp, load_ods, load_odt
from qa.pdf import load_pdf
from qa.prose import (
    CONTROL,
    TextBuilder,
    collapse,
    is_furniture,
    line_width,
    running_lines,
    strip_furniture,
    table_lines,
    text_heading,
    unwrap,
    vocabulary,
)
from qa.tables import TableError
from qa.text import NotText, clean_lines, clean_text, decode_or_windows_1252
from qa.types import Document


def _plain_pages(text: str) -> list[list[str]]:
    """A plain text's lines, page by page (a form feed starts a page, as in an RFC), without the
    pages' running headers and footers, page numbers or contents lines."""
    pages = [clean_lines(page) for page in text.split("\f")]
    running = running_lines(pages)
    if len(pages) < 2:
        return [[line for line in page if not is_furniture(line)] for page in pages]
    return [strip_furniture(page, running, keep_blank=True) for page in pages]


def load_text(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    pages = _plain_pages(decode_or_windows_1252(data))
    lines = [line for page in pages for line in page]
    headline, text = main_content("\n".join(lines).strip("\n"))
    width, words = line_width(lines), vocabulary(text)
    builder = TextBuilder()
    for block in re.split(r"\n\s*\n", text):
        block_lines = block.split("\n")
        if heading := text_heading(block_lines):
            builder.heading(heading)
            continue
        for i, paragraph in enumerate(unwrap(block_lines, width, words)):
            builder.add(paragraph, tight=i > 0)
    return [builder.document(source, headline or path.stem)]


def _inline_text(token) -> str:
    """The text of a markdown inline token as it reads: markup dropped, soft line breaks joined."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
        elif child.type == "html_inline" and child.content.lower().startswith("<br"):
            parts.append("\n")
    return "\n".join(collapse(line) for line in "".join(parts).split("\n"))


def load_markdown(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(clean_text(decode_or_windows_1252(data)))
    builder, title = TextBuilder(), ""
    in_item, row, rows, header_rows = 0, [], [], 0
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            heading = _inline_text(tokens[i + 1])
            builder.heading(heading)
            title = title or heading
        elif token.type == "list_item_open":
            in_item += 1
        elif token.type == "list_item_close":
            in_item -= 1
        elif token.type == "inline" and tokens[i - 1].type == "paragraph_open":
            builder.add(_inline_text(token), tight=bool(in_item))
        elif token.type in ("fence", "code_block"):
            builder.add(token.content.rstrip())
        elif token.type == "html_block":
            builder.add(html_text(token.content)[1].text)
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(_inline_text(token))
        elif token.type == "tr_close":
            rows.append(row)
            header_rows += tokens[i - 1].type == "th_close" and header_rows == len(rows) - 1
        elif token.type == "table_close":
            for j, line in enumerate(table_lines(rows, header_rows)):
                builder.add(line, tight=j > 0)
            rows, header_rows = [], 0
    return [builder.document(source, title or path.stem)]


def load_html(path: Path, source: str, data: bytes, fields: TableFields) -> list[Document]:
    title, builder = html_text(decode_or_windows_1252(data))
    document = builder.document(source, title or path.stem)
    if not document.text.strip():
        raise LoadError("no main text found in the HTML")
    return [document]


LOADERS: dict[str, Callable[[Path, str, bytes, TableFields], list[Document]]] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".pptx": load_pptx,
    ".xlsx": load_xlsx,
    ".odt": load_odt,
    ".ods": load_ods,
    ".odp": load_odp,
    ".jsonl": load_jsonl,
    ".csv": load_csv,
    ".tsv": load_csv,
}


def load_file(path: Path, source: str, data: bytes, fields: TableFields = TableFields()) -> list[Document]:
    """Turn one file's bytes into Documents, or raise LoadError saying why not."""
    if not data.strip():
        raise LoadError("the file is empty")
    try:
        documents = [d for d in LOADERS[path.suffix.lower()](path, source, data, fields) if d.text.strip()]
    except LoadError:
        raise
    except (NotText, TableError) as exc:
        raise LoadError(str(exc)) from None
    except Exception as exc:  # a parser bug on one odd file must not stop the others
        raise LoadError(f"could not be parsed ({one_line(exc)})") from None
    if not documents:
        raise LoadError("no text found")
    # a title is shown on one line, in a terminal too: no newlines or escape sequences
    return [replace(d, title=" ".join(CONTROL.sub("", d.title).split()) or path.stem) for d in documents]


def read_file(path: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of a corpus file, read once, or LoadError saying why it cannot be read.

    Nothing outside `root` is opened (a symlink may point anywhere), nor a pipe or device
    (reading one could block forever), and no more than `max_bytes` are held, even if the
    file grows while it is read."""
    try:
        target = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        raise LoadError("broken symlink: its target is missing" if path.is_symlink()
                        else "the file disappeared while indexing") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("symlink loop: the link leads back to itself") from None
        raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None
    if not target.is_relative_to(os.path.realpath(root)):
        raise LoadError("points outside the corpus folder")
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise LoadError("the file disappeared while indexing") from None
    except OSError as exc:
        raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LoadError("not a regular file")
        if info.st_size > max_bytes:
            raise LoadError(f"the file is {megabytes(info.st_size)}, over the {megabytes(max_bytes)} limit "
                            "(raise it with --max-file-mb or QA_MAX_FILE_MB)")
        try:
            data = f.read(info.st_size + 1)  # the whole file, and one byte more if it grew since fstat
            if len(data) > info.st_size:
                data += f.read(max_bytes + 1 - len(data))
        except OSError as exc:
            raise LoadError(f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise LoadError(f"the file grew past the {megabytes(max_bytes)} limit while it was read")
    return data


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    source: str  # relative to the corpus folder, with forward slashes


def walk_corpus(root: Path, skip: Callable[[Path], bool] = lambda folder: False,
                ) -> tuple[list[CorpusFile], Counter[str]]:
    """The indexable files under root (recursively) and the count of those passed over, by kind:
    "hidden", or the suffix qa does not read (".doc", "" for none). A folder for which `skip` is
    true (an index folder) is not entered at all.

    Symlinked folders are not walked (os.walk does not follow them), so a link loop cannot
    trap the walk: one that points inside the corpus would only repeat files indexed under their
    own path, and one that points outside is listed so that reading it reports why it is skipped."""
    found = []
    for folder, folders, names in os.walk(root):
        here = Path(folder)
        found.extend(here / name for name in folders if (here / name).is_symlink())
        folders[:] = [name for name in folders if not (here / name).is_symlink() and not skip(here / name)]
        found.extend(here / name for name in names)
    files, ignored = [], Counter()
    inside = os.path.realpath(root)
    for path in sorted(found):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            ignored["hidden"] += path.is_file()
            continue
        if path.is_dir():
            if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(inside):
                files.append(CorpusFile(path, relative.as_posix()))
            continue
        if path.suffix.lower() in LOADERS:  # broken symlinks and pipes too: reading reports them
            files.append(CorpusFile(path, relative.as_posix()))
        else:
            ignored[path.suffix.lower()] += 1
    return files, +ignored  # no "hidden: 0"
