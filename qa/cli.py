"""The `qa` command: a thin face over qa.pipeline. Errors become one line and an exit code."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path

import click

from qa.config import DEFAULT_MODEL, SETTINGS, Setting, Settings, read_settings
from qa.errors import BadSetting, LoadError, QAError, one_line
from qa.types import counted

SKIPPED_EXIT = LoadError.exit_code  # `qa index` finished but some files could not be indexed


class _OneLineUsageError(click.BadParameter):
    """A bad flag value said as one line, like every other error (click would add the usage)."""

    def show(self, file=None) -> None:
        say(f"error: {self.message}", err=True)


class SettingType(click.ParamType):
    """A flag's value read by its declaration's parser, with the bounds of the command's face."""

    def __init__(self, setting: Setting):
        self.setting = setting
        self.name = type(setting.parse).__name__.lower()  # shown as the metavar: WHOLE, NUMBER, TEXT...

    def convert(self, value, param, ctx):
        """Checked here, parsed by `read_settings`: the text is kept, since a parsed value may be
        None ("--rate-limit 0" means no limit), which would read as a flag left out."""
        if not isinstance(value, str):
            return value
        try:
            self.setting.read(value, ctx.command.name if ctx else None)
        except BadSetting as exc:
            raise _OneLineUsageError(str(exc)) from None
        return value


def option(name: str, *short: str, help: str | None = None):
    """A click option declared from qa.config.SETTINGS. Left out, it is None: `read_settings` then
    takes its QA_* variable or its default, so the variable and the default are read in one place."""
    s = SETTINGS[name]
    shown = s.default or "empty"
    bare = {"is_flag": False, "flag_value": s.bare} if s.bare is not None else {}
    return click.option(s.flag, *short, name, type=SettingType(s), default=None, multiple=bool(s.repeat), **bare,
                        help=f"{help or s.help}  [env: {s.env}; default: {shown}]")


def face_options(face: str, short: dict[str, str] | None = None):
    """Every setting the face has, as options, in declaration order."""
    short = short or {}

    def decorate(command):
        for s in reversed([s for s in SETTINGS.values() if face in s.faces]):
            command = option(s.name, *([short[s.name]] if s.name in short else []),
                             help=_MODEL_HELP if s.name == "model" and face != "index" else None)(command)
        return command

    return decorate


_MODEL_HELP = "Model the index must have been built with (default: the index's own)."


def settings_of(face: str) -> Settings:
    """The command's settings: its flags over QA_* variables over defaults."""
    params = click.get_current_context().params
    given = {name: params.get(name) for name in SETTINGS}
    for name, value in given.items():
        if isinstance(value, tuple):  # a flag given once per item: its items, or left out when none
            given[name] = ",".join(value) if value else None
    return read_settings(face, given)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def say(text: str, err: bool = False) -> None:
    """Print a line for a person. Control characters (a file name may hold a terminal escape
    sequence) are shown as \\x.. escapes, never sent to the terminal."""
    click.echo(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text), err=err)


def friendly_errors(command):
    """Show QAError and bad input as one line on stderr; tracebacks only with --debug."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug")
        try:
            return command(*args, **kwargs)
        except QAError as exc:
            if debug:
                raise
            say(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            say("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # the reader went away (`qa search ... | head`): nothing is wrong, stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except Exception as exc:
            if debug:
                raise
            say(f"error: {one_line(exc)} (run `qa --debug ...` for details)", err=True)
            sys.exit(QAError.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="qa")
def main(debug: bool) -> None:
    """Answer questions from a folder of documents, citing the passages used."""


class _Progress:
    """tqdm bars for the stages of an index build, on stderr."""

    def __init__(self):
        self.bars = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            unit = "file" if stage == "reading" else "chunk"
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, leave=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self):
        for bar in self.bars.values():
            bar.close()


@main.command()
@face_options("index")
@click.option("--optimize", is_flag=True, help="Merge the index's segments into one (searches a little faster).")
@click.option("--verify", is_flag=True, help="Hash every file of the live build before reusing it (by default only "
              "files whose size or time changed are).")
@friendly_errors
def index(optimize, verify, **_):
    """Index the documents in CORPUS (re-embedding only what changed).

    Exit code 0: all files indexed; 1: indexed, but some files were skipped (listed); 2: error.
    """
    settings = settings_of("index")
    embedder = None
    if settings.ray:
        from qa.pipeline import RayEmbedder

        embedder = RayEmbedder(settings.ray, settings.model or DEFAULT_MODEL, settings.cache, settings.precision)
    report = _build(settings, embedder, optimize=optimize, verify_all=verify)
    say(
        f"indexed {counted(report.files, 'file')} ({counted(report.documents, 'document')}, "
        f"{counted(report.chunks, 'chunk')}) into {settings.index} "
        f"in {report.seconds:.1f}s: {report.embedded} embedded, {report.reused} unchanged, "
        f"{report.removed} removed, {len(report.skipped)} skipped"
        + (f", {report.ignored.total()} ignored ({_ignored(report.ignored)})" if report.ignored else "")
    )
    if report.skipped:
        sys.exit(SKIPPED_EXIT)


def _ignored(kinds) -> str:
    """ "2 hidden, 3 .doc, 1 without a suffix": what a build passed over, so that a file type qa
    does not read is seen rather than silently missing."""
    said = [f"{n} hidden" if kind == "hidden" else f"{n} {kind or 'without a suffix'}"
            for kind, n in sorted(kinds.items(), key=lambda item: (item[0] != "hidden", -item[1], item[0]))]
    return ", ".join(said)


def _build(s: Settings, embedder=None, optimize: bool = False, verify_all: bool = False):
    """Build the index with progress bars, then say on stderr why files were skipped."""
    from qa.pipeline import ChunkSettings, TableFields, build

    progress = _Progress()
    try:
        report = build(
            s.corpus, s.index, embedder.name if embedder else s.model or DEFAULT_MODEL,
            ChunkSettings(s.chunk_tokens, s.chunk_overlap),
            TableFields(s.text_field, s.title_field, s.id_field, s.max_columns), on_progress=progress,
            embedder=embedder, max_file_mb=s.max_file_mb, cache=s.cache, optimize=optimize,
            ann_threshold=s.ann_threshold, verify_all=verify_all, precision=s.precision,
        )
    finally:
        progress.close()
    if report.full_rebuild_reason:
        say(f"rebuilt from scratch: {report.full_rebuild_reason}", err=True)
    for file, reason in report.skipped:
        say(f"skipped {file}: {reason}", err=True)
    return report


def _open(s: Settings):
    from qa.pipeline import QA

    return QA(s.index, model=s.model or None, min_confidence=getattr(s, "min_confidence", 0.0), cache=s.cache)


@main.command()
@click.argument("question")
@face_options("ask", {"k": "-k"})
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@friendly_errors
def ask(question, as_json, **_):
    """Answer QUESTION from the indexed documents, with citations."""
    from qa.pipeline import check_question

    settings = settings_of("ask")
    check_question(question)  # before loading the model, so a bad question fails at once
    answer = _open(settings).ask(question, k=settings.k)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    say(answer.answer)
    for c in answer.citations:
        where = ", ".join(x for x in (c.location, f"chars {c.start}-{c.end}") if x)
        say(f"\n[{c.n}] {c.source} - {c.title} ({where}; score {c.score:.2f})")
        for start, end in c.highlights:
            quote = c.passage[start - c.start : end - c.start]
            say(click.wrap_text(quote, initial_indent="    > ", subsequent_indent="      "))
    say(f"\nconfidence {answer.confidence:.2f}", err=True)


@main.command()
@click.argument("query")
@face_options("search", {"k": "-k"})
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the passages as JSON.")
@friendly_errors
def search(query, mode, as_json, **_):
    """Show the passages ranked for QUERY, without composing an answer."""
    from qa.pipeline import check_question

    settings = settings_of("search")
    check_question(query)
    found = _open(settings).search(query, k=settings.k, mode=mode)
    if as_json:
        rows = [p.to_dict(rank) for rank, p in enumerate(found, start=1)]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r, p in enumerate(found, start=1):
        where = ", ".join(x for x in (p.chunk.location, f"chars {p.chunk.start}-{p.chunk.end}") if x)
        say(f"{r}. {p.chunk.source} ({where}; score {p.score:.3f})")
        say(click.wrap_text(p.chunk.text, initial_indent="   ", subsequent_indent="   ") + "\n")


@main.command()
@face_options("info")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def info(as_json, **_):
    """Describe an index: files, chunks, model, build time and settings."""
    from qa.pipeline import describe_search, precision_of, read_manifest

    index = settings_of("info").index
    manifest = read_manifest(index)
    if as_json:
        click.echo(json.dumps(manifest, ensure_ascii=False, indent=2))
        return
    counts = manifest["counts"]
    say(f"index      {index}")
    say(f"built      {manifest['built_at']} in {manifest['build_seconds']}s")
    say(f"model      {manifest['model']} ({manifest['dimension']} dimensions, {precision_of(manifest)})")
    say(f"chunking   {manifest['chunking']['tokens']} tokens, {manifest['chunking']['overlap']} overlap")
    say(f"contents   {counted(counts['files'], 'file')}, {counted(counts['documents'], 'document')}, "
        f"{counted(counts['chunks'], 'chunk')}")
    segments = manifest["segments"]
    searched = sorted({describe_search(s["dense"]) for s in segments})
    say(f"search     {' and '.join(searched)} dense search; segments of over "
        f"{manifest['dense']['ann_threshold']:,} chunks are approximate")
    sizes = ", ".join(counted(s["chunks"] - s["deleted"]["chunks"], "chunk") for s in segments)
    say(f"segments   {len(segments)} ({sizes})")
    for file, entry in sorted(manifest["files"].items()):
        say(f"  {file}  ({counted(entry['chunks'], 'chunk')})")
    for skipped in manifest["skipped"]:
        say(f"  skipped {skipped['file']}: {skipped['reason']}")


@main.command()
@face_options("serve")
@friendly_errors
def serve(**_):
    """Serve the chat UI (/), the widget (/widget.js, /embed) and the JSON API (/api, docs at /docs).

    If INDEX holds no index yet, it is built from CORPUS first. With --collection (once per
    collection, NAME=INDEX_FOLDER), each named index is served as a collection of its own.
    """
    from qa.errors import CorpusNotFound
    from qa.pipeline import Embedder, has_index
    from qa.web import WebConfig
    from qa.web import serve as run

    settings = settings_of("serve")
    config = WebConfig.from_settings(settings)
    embedder = None
    if not settings.collections and not has_index(settings.index):  # collections name built indexes
        if not settings.corpus.is_dir():  # before loading the model, which takes a while
            raise CorpusNotFound(settings.corpus)
        say(f"no index at {settings.index}: building it from {settings.corpus}", err=True)
        embedder = Embedder(settings.model or DEFAULT_MODEL, cache=settings.cache, precision=settings.precision)
        report = _build(settings, embedder)  # with the settings `qa index` would use (QA_CHUNK_TOKENS, ...)
        built = f"{counted(report.documents, 'document')} ({counted(report.chunks, 'chunk')})"
        say(f"indexed {built} into {settings.index}", err=True)
    run(config, settings.host, settings.port, embedder=embedder)


class _RowProgress:
    """A tqdm bar over question rows, with rate and ETA, on stderr."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, initial=done, desc=self.desc, unit="q", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _batch_options(face: str):
    def decorate(command):
        command = face_options(face, {"k": "-k"})(command)
        return click.option("--question-column",
                            help="Column holding the questions (default: found by name, e.g. question).")(command)

    return decorate


def _limits(s: Settings):
    from qa.batch import TableLimits

    return TableLimits(s.max_rows, s.max_columns, s.max_cell_chars)


def _stop_on_sigterm() -> None:
    """Let a plain `kill` end a batch like Ctrl-C does, so a workbook's last rows are saved."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


@main.command()
@click.argument("questions", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Answer file; its suffix picks the format: .csv .tsv .jsonl .txt .xlsx "
                   "(default: QUESTIONS.answers with the same suffix).")
@_batch_options("batch")
@click.option("--resume", is_flag=True, help="Continue an interrupted run: keep the rows OUTPUT holds, answer the rest")
@click.option("--overwrite", "--force", "overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@friendly_errors
def batch(questions, output, question_column, resume, overwrite, **_):
    """Answer every question in QUESTIONS (.csv .tsv .jsonl .txt .xlsx) into an answer file.

    Each output row is the input row, unchanged, plus answer, abstained, confidence, citations,
    error and row (its row in QUESTIONS). Rows are saved as they are answered: after Ctrl-C or a
    crash, run the same command with --resume to continue.

    Exit code 0: every row answered (or declined); 1: some rows had errors (see their error
    column); 2: error; 130: interrupted.
    """
    from qa.batch import open_output, read_questions, run_batch

    settings = settings_of("batch")
    answerer = None
    if settings.ray:
        from qa.batch.ray_answers import ray_answerer

        answerer = ray_answerer(settings.ray, settings.index, settings.model, settings.cache, settings.min_confidence)
    source = read_questions(questions, question_column, _limits(settings))
    output = output or questions.with_name(f"{questions.stem}.answers{questions.suffix}")
    out = open_output(output, source, resume=resume, overwrite=overwrite)
    if out.earlier:
        say(f"resuming {output}: {out.earlier:,} of {counted(len(source.rows), 'row')} already done", err=True)
    qa = None if answerer else _open(settings)
    progress = _RowProgress("answering")
    _stop_on_sigterm()
    try:
        summary = run_batch(qa, source, out, k=settings.k, batch_size=settings.batch_size, on_progress=progress,
                            answerer=answerer)
    except KeyboardInterrupt:
        progress.close()
        done = progress.bar.n if progress.bar is not None else out.earlier
        say(f"interrupted: {output} holds {done:,} of {counted(len(source.rows), 'row')}; "
            "run the same command with --resume to continue", err=True)
        sys.exit(130)
    progress.close()
    say(summary.line())
    if summary.errors:
        sys.exit(SKIPPED_EXIT)


@main.command(name="eval")
@click.argument("questions", type=click.Path(path_type=Path))
@_batch_options("eval")
@click.option("--answer-column", help="Column holding the expected answer, several separated by '|'; empty = "
                                      "should be declined (default: found by name, e.g. 'expected_answer').")
@click.option("--source-column", help="Column holding the expected source (default: found by name, e.g. 'source').")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Also write each row's answer, answer_hit and citation_hit (.csv .tsv .jsonl .txt .xlsx).")
@click.option("--overwrite", "--force", "overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@friendly_errors
def eval_(questions, question_column, answer_column, source_column, output, overwrite, as_json, **_):
    """Score the answers to QUESTIONS against the expected answers and sources in its columns.

    Prints the answer hit rate (an expected answer appears in the answer), citation hit rate
    (the expected source is cited), abstention precision and recall (rows with an empty expected
    answer should be declined) and latency. Use --batch-size 1 for one-by-one latencies.
    """
    from qa.batch import EVAL_FIELDS, evaluate, expectations, open_output, read_questions

    settings = settings_of("eval")
    source = read_questions(questions, question_column, _limits(settings))
    expected = expectations(source, answer_column, source_column)
    out = open_output(output, source, overwrite=overwrite, extra_fields=EVAL_FIELDS)
    qa = _open(settings)
    progress = _RowProgress("evaluating")
    try:
        metrics = evaluate(qa, source, expected, out, k=settings.k, batch_size=settings.batch_size,
                           on_progress=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(metrics.to_dict(), indent=2))
    else:
        say(metrics.report())
    if output:
        say(f"wrote {output}", err=True)
