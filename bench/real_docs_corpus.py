"""Assemble the real-document benchmark corpus from Debian documentation packages.

    python bench/real_docs_corpus.py [--out /work/realdocs/corpus] [--debs /work/realdocs/debs]

Each package is fetched with `apt-get download` into the cache folder (a .deb already there is
used as is, so a rerun downloads nothing) and unpacked there with `dpkg-deb -x` (no root install).
The selected files are copied into the corpus folder under the package's name: manual pages and
guides as HTML, manuals as PDF, READMEs and FAQs as hard-wrapped .txt, API docs as .md (`.gz`
files gunzipped). Eight HTML pages with tables become .docx through pandoc (`pypandoc_binary`,
in the `bench` extra), and Python's general and design FAQs become one CSV of question/answer
rows. Files already in place with the same content are left alone. The manifest of where each
file came from is written beside the corpus folder (sources.tsv), since hidden files inside it
would be ignored by `qa index`. bench/real_docs_questions.jsonl holds questions about these files.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_OUT = Path("/work/realdocs/corpus")
DEFAULT_DEBS = Path("/work/realdocs/debs")

GIT_DOC = "usr/share/doc/git-doc/"
GIT_PAGES = """
git git-add git-am git-annotate git-archive git-bisect git-blame git-branch git-bugreport git-bundle
git-checkout git-cherry-pick git-clean git-clone git-commit git-count-objects git-daemon git-describe
git-diagnose git-diff git-difftool git-fast-export git-fast-import git-fetch git-fetch-pack
git-filter-branch git-format-patch git-fsck git-gc git-grep git-help git-http-backend git-init
git-instaweb git-log git-maintenance git-merge git-merge-tree git-mergetool git-mv git-notes
git-pack-refs git-prune git-pull git-push git-range-diff git-rebase git-reflog git-remote git-repack
git-replace git-rerere git-reset git-restore git-revert git-rm git-send-pack git-shell git-shortlog
git-show git-show-branch git-sparse-checkout git-stash git-status git-submodule git-switch git-tag
git-update-server-info git-verify-commit git-verify-tag git-version git-whatchanged git-worktree
gitattributes gitcli gitcore-tutorial gitcredentials gitcvs-migration gitdiffcore giteveryday gitfaq
gitglossary githooks gitignore gitmailmap gitmodules gitnamespaces gitremote-helpers
gitrepository-layout gitrevisions gitsubmodules gittutorial gittutorial-2 gitworkflows scalar
user-manual everyday MyFirstContribution SubmittingPatches ReviewingGuidelines
""".split()
GIT_TECHNICAL_TXT = "rerere sparse-checkout remembering-renames directory-rename-detection commit-graph".split()

PYTHON_DOC = "usr/share/doc/python3.11/html/"
PYTHON_LIBRARY = """
os.path pathlib shutil glob fnmatch tempfile re string textwrap json csv configparser argparse
subprocess shlex collections itertools functools heapq bisect enum dataclasses contextlib copy pprint
random statistics math hashlib secrets uuid base64 zipfile tarfile gzip sqlite3 urllib.request
urllib.parse http.server venv unittest timeit sys threading queue calendar zoneinfo getpass platform
tomllib pickle signal functions exceptions
""".split()
PYTHON_HOWTO = """
annotations argparse curses descriptor enum functional ipaddress logging pyporting regex sockets
sorting unicode urllib2
""".split()
PYTHON_FAQ_HTML = "programming library extending windows gui installed".split()
PYTHON_FAQ_CSV = ("general", "design")  # kept out of the HTML so the CSV is their only copy

SQLITE_DOC = "usr/share/doc/sqlite3/"
SQLITE_PAGES = """
whentouse faq quirks lang_createtable lang_select lang_insert lang_upsert lang_vacuum
lang_transaction lang_attach lang_corefunc lang_aggfunc lang_altertable lang_createindex lang_with
lang_returning lang_delete lang_update lang_savepoint lang_conflict wal autoinc foreignkeys limits
lockingv3 backup cli json1 isolation howtocorrupt serverless zeroconf selfcontained transactional
different omitted nulls rowidtable withoutrowid stricttables gencol partialindex expridx queryplanner
lang_explain inmemorydb tempfiles uri loadext lang_keywords mostdeployed about features flextypegood
appfileformat
""".split()

# the manual's chapters; its other pages only redirect to a node inside one of them
DIFFUTILS_CHAPTERS = """
Overview Comparison Output-Formats Incomplete-Lines Comparing-Directories Adjusting-Output diff-Performance
Comparing-Three-Files diff3-Merging Merging-with-patch Making-Patches Invoking-cmp Invoking-diff
Invoking-diff3 Invoking-patch Invoking-sdiff Standards-conformance Projects Interactive-Merging
""".split()
RESTIC_PAGES = """
020_installation 030_preparing_a_new_repo 040_backup 045_working_with_repos 047_tuning_backup_parameters
050_restore 060_forget 070_encryption 075_scripting 080_examples 090_participating 100_references
REST_backend cache design developer_information faq manual_rest
""".split()
MKDOCS_PAGES = """
getting-started user-guide/installation user-guide/writing-your-docs user-guide/configuration
user-guide/deploying-your-docs user-guide/choosing-your-theme user-guide/customizing-your-theme
user-guide/localizing-your-theme user-guide/cli dev-guide/themes dev-guide/plugins dev-guide/translations
dev-guide/api about/contributing about/release-notes
""".split()

LATEX_BASE = "usr/share/doc/texlive-doc/latex/"
LATEX_BASE_PDFS = """
base/usrguide base/clsguide base/fntguide base/cfgguide base/lppl base/ltnews36 base/modguide
graphics/grfguide firstaid/latex2e-first-aid-for-external-files amsmath/amsldoc geometry/geometry
""".split()
LATEX_RECOMMENDED_PDFS = "microtype/microtype caption/caption float/float pdfpages/pdfpages".split()

NODEJS_API = """
documentation synopsis path timers console modules packages cluster os dns readline repl
child_process debugger permissions corepack report globals tty querystring
""".split()

# package -> [(path inside the package (a glob), where it goes in the corpus)]; a destination
# ending in "/" is a folder that keeps the file names (minus .gz).
SELECTION: dict[str, list[tuple[str, str]]] = {
    "git-doc": [(f"{GIT_DOC}{name}.html", "git-doc/") for name in GIT_PAGES]
    + [(f"{GIT_DOC}howto/*.html", "git-doc/howto/")]
    + [(f"{GIT_DOC}technical/{name}.txt", "git-doc/technical/") for name in GIT_TECHNICAL_TXT],
    "python3.11-doc": [(f"{PYTHON_DOC}library/{name}.html", "python3.11-doc/library/") for name in PYTHON_LIBRARY]
    + [(f"{PYTHON_DOC}tutorial/*.html", "python3.11-doc/tutorial/")]
    + [(f"{PYTHON_DOC}howto/{name}.html", "python3.11-doc/howto/") for name in PYTHON_HOWTO]
    + [(f"{PYTHON_DOC}faq/{name}.html", "python3.11-doc/faq/") for name in PYTHON_FAQ_HTML],
    "sqlite3-doc": [(f"{SQLITE_DOC}{name}.html", "sqlite3-doc/") for name in SQLITE_PAGES],
    "diffutils-doc": [(f"usr/share/doc/diffutils/{name}.html", "diffutils-doc/") for name in DIFFUTILS_CHAPTERS],
    "restic": [(f"usr/share/doc/restic/html/{name}.html", "restic/") for name in RESTIC_PAGES],
    "mkdocs-doc": [(f"usr/share/doc/mkdocs/html/{name}.html", f"mkdocs-doc/{name}.html") for name in MKDOCS_PAGES],
    "developers-reference": [
        (f"usr/share/developers-reference/{name}.html", "developers-reference/")
        for name in "scope new-maintainer resources developer-duties pkgs best-pkging-practices "
        "beyond-pkging l10n tools".split()
    ],
    "debian-reference-en": [("usr/share/debian-reference/ch*.en.html", "debian-reference-en/")],
    "bash-doc": [
        ("usr/share/doc/bash-doc/bashref.html", "bash-doc/"),
        ("usr/share/doc/bash-doc/examples/shellmath/README.md", "bash-doc/shellmath-README.md"),
    ],
    "texlive-latex-base-doc": [(f"{LATEX_BASE}{name}.pdf", "texlive-latex-base-doc/") for name in LATEX_BASE_PDFS],
    "texlive-latex-recommended-doc": [
        (f"{LATEX_BASE}{name}.pdf", "texlive-latex-recommended-doc/") for name in LATEX_RECOMMENDED_PDFS
    ],
    "maint-guide": [("usr/share/doc/maint-guide/maint-guide.en.pdf", "maint-guide/")],
    "nodejs-doc": [(f"usr/share/doc/nodejs/api/{name}.md*", "nodejs-doc/") for name in NODEJS_API],
    "sudo": [(f"usr/share/doc/sudo/{name}*", "sudo/") for name in ("README.md", "TROUBLESHOOTING.md", "UPGRADE.md")],
    "httpie": [("usr/share/doc/httpie/README.md.gz", "httpie/")],
    "sed": [("usr/share/doc/sed/sedfaq.txt.gz", "sed/")],
    "screen": [("usr/share/doc/screen/FAQ.gz", "screen/FAQ.txt")],
    "procmail": [
        ("usr/share/doc/procmail/FAQ", "procmail/FAQ.txt"),
        ("usr/share/doc/procmail/README", "procmail/README.txt"),
    ],
    "xz-utils": [
        ("usr/share/doc/xz-utils/faq.txt.gz", "xz-utils/"),
        ("usr/share/doc/xz-utils/README.gz", "xz-utils/README.txt"),
    ],
    "openssh-client": [
        ("usr/share/doc/openssh-client/OVERVIEW.gz", "openssh-client/OVERVIEW.txt"),
        ("usr/share/doc/openssh-client/README.tun.gz", "openssh-client/README.tun.txt"),
    ],
    "make": [("usr/share/doc/make/README.gz", "make/README.txt")],
    "gzip": [("usr/share/doc/gzip/README.gz", "gzip/README.txt")],
    "coreutils": [("usr/share/doc/coreutils/README.gz", "coreutils/README.txt")],
    "cron": [("usr/share/doc/cron/README", "cron/README.txt"), ("usr/share/doc/cron/FEATURES", "cron/FEATURES.txt")],
    "fetchmail": [("usr/share/doc/fetchmail/README.SSL.gz", "fetchmail/README.SSL.txt")],
    "mutt": [("usr/share/doc/mutt/PGP-Notes.txt.gz", "mutt/")],
    "grep": [("usr/share/doc/grep/NEWS.gz", "grep/NEWS.txt")],
    "wget": [("usr/share/doc/wget/NEWS.gz", "wget/NEWS.txt")],
}

# HTML pages with tables, converted to .docx (and kept out of the HTML part)
DOCX = [
    ("python3.11-doc", f"{PYTHON_DOC}library/datetime.html", "python3.11-doc/docx/datetime.docx"),
    ("python3.11-doc", f"{PYTHON_DOC}library/time.html", "python3.11-doc/docx/time.docx"),
    ("python3.11-doc", f"{PYTHON_DOC}library/struct.html", "python3.11-doc/docx/struct.docx"),
    ("python3.11-doc", f"{PYTHON_DOC}library/array.html", "python3.11-doc/docx/array.docx"),
    ("python3.11-doc", f"{PYTHON_DOC}library/logging.html", "python3.11-doc/docx/logging.docx"),
    ("python3.11-doc", f"{PYTHON_DOC}library/webbrowser.html", "python3.11-doc/docx/webbrowser.docx"),
    ("sqlite3-doc", f"{SQLITE_DOC}lang_datefunc.html", "sqlite3-doc/docx/lang_datefunc.docx"),
    ("sqlite3-doc", f"{SQLITE_DOC}datatype3.html", "sqlite3-doc/docx/datatype3.docx"),
]
FAQ_CSV = "python3.11-doc/python-faq.csv"


def unpacked(package: str, debs: Path) -> Path:
    """The package's files, downloaded and unpacked into the cache folder on first use."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        print(f"  downloading {package}")
        done = subprocess.run(["apt-get", "download", "-q", package], cwd=debs, capture_output=True, text=True)
        if done.returncode:  # apt's warnings (an unsandboxed download as root) are noise when it works
            sys.exit(f"apt-get download {package} failed:\n{done.stderr.strip()}")
        found = sorted(debs.glob(f"{package}_*.deb"))
    deb = found[-1]
    root = debs / "unpacked" / deb.stem
    if not root.is_dir():
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
        partial.rename(root)
    return root


def version(root: Path) -> str:
    return root.name.split("_")[1].replace("%3a", ":")


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def target(file: Path, dest: str) -> str:
    if not dest.endswith("/"):
        return dest
    return dest + file.name.removesuffix(".gz")


def main_html(page: Path) -> str:
    """The page's main content as a small HTML document (no menus, sidebars, images or ¶ links)."""
    import lxml.html

    tree = lxml.html.fromstring(page.read_bytes())
    body = (tree.xpath("//div[@role='main']") or tree.xpath("//div[@class='fancy']") or [tree.body])[0]
    for node in body.xpath(".//a[@class='headerlink'] | .//img | .//script | .//div[@class='fancy_toc']"):
        node.drop_tree()
    heading = (tree.xpath("//div[@class='fancy_title']") or body.xpath(".//h1") or [None])[0]
    title = " ".join(heading.text_content().split()) if heading is not None else page.stem
    html = lxml.html.tostring(body, encoding="unicode")
    return f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>{html}</body></html>"


def to_docx(page: Path, out: Path) -> None:
    import pypandoc

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / page.name
        source.write_text(main_html(page), encoding="utf-8")
        pypandoc.convert_file(str(source), "docx", format="html", outputfile=str(out), extra_args=["--quiet"])


def faq_rows(page: Path) -> list[tuple[str, str]]:
    """(question, answer) for each section of a Sphinx FAQ page whose heading is a question."""
    import lxml.html

    tree = lxml.html.fromstring(page.read_bytes())
    rows = []
    for section in tree.xpath("//div[@role='main']//section"):
        heading = section.xpath("./h1 | ./h2 | ./h3 | ./h4")
        if not heading:
            continue
        for link in heading[0].xpath(".//a[@class='headerlink']"):
            link.drop_tree()
        question = " ".join(heading[0].text_content().split())
        if not question.endswith("?"):
            continue
        blocks = []
        for child in section:
            if child is heading[0] or child.tag == "section":
                continue
            text = child.text_content().strip()
            if child.tag in ("pre", "div") and child.xpath(".//pre"):
                blocks.append(text)  # code keeps its lines
            elif text:
                blocks.append(" ".join(text.split()))
        if blocks:
            rows.append((question, "\n".join(blocks)))
    return rows


def faq_csv(pages: list[Path]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["question", "answer"])
    for page in pages:
        writer.writerows(faq_rows(page))
    return out.getvalue().encode()


def assemble(out: Path, debs: Path, manifest: Path) -> None:
    debs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    packages = list(dict.fromkeys([*SELECTION, *(p for p, _, _ in DOCX)]))
    roots = {}
    print(f"packages ({len(packages)}) in {debs}:")
    for package in packages:
        roots[package] = unpacked(package, debs)
        print(f"  {package} {version(roots[package])}")

    rows, written, missing = [], 0, []
    for package, picks in SELECTION.items():
        root = roots[package]
        for pattern, dest in picks:
            files = sorted(root.glob(pattern))
            if not files:
                missing.append(f"{package}: {pattern}")
            for file in files:
                name = target(file, dest)
                data = file.read_bytes()
                if file.suffix == ".gz":
                    data = gzip.decompress(data)
                written += write_if_changed(out / name, data)
                rows.append((name, package, version(root), str(file.relative_to(root))))

    converted = 0
    for package, page, name in DOCX:
        root = roots[package]
        if not (out / name).is_file():
            to_docx(root / page, out / name)
            converted += 1
        rows.append((name, package, version(root), page + " (pandoc)"))

    root = roots["python3.11-doc"]
    pages = [root / f"{PYTHON_DOC}faq/{name}.html" for name in PYTHON_FAQ_CSV]
    written += write_if_changed(out / FAQ_CSV, faq_csv(pages))
    rows.append((FAQ_CSV, "python3.11-doc", version(root), " + ".join(str(p.relative_to(root)) for p in pages)))

    listed = {name for name, *_ in rows}
    present = (str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    extra = sorted(name for name in present if name not in listed)
    ours = {line.split("\t", 1)[0] for line in manifest.read_text().splitlines()[1:]} if manifest.is_file() else set()
    removed = [name for name in extra if name in ours]  # an earlier selection's files; others are left alone
    for name in removed:
        (out / name).unlink()
    extra = [name for name in extra if name not in ours]
    lines = ["path\tformat\tpackage\tversion\tfrom"] + [
        f"{name}\t{Path(name).suffix.lstrip('.')}\t{package}\t{ver}\t{source}"
        for name, package, ver, source in sorted(rows)
    ]
    write_if_changed(manifest, ("\n".join(lines) + "\n").encode())

    by_format: dict[str, int] = {}
    for name, *_ in rows:
        suffix = Path(name).suffix.lstrip(".")
        by_format[suffix] = by_format.get(suffix, 0) + 1
    size = sum((out / name).stat().st_size for name in listed)
    print(
        f"corpus {out}: {len(rows)} files ({', '.join(f'{n} {k}' for k, n in sorted(by_format.items()))}), "
        f"{size / 1e6:.1f} MB on disk"
    )
    print(
        f"  {written} files written or updated, {converted} converted to .docx, "
        f"{len(rows) - written - converted} already up to date"
    )
    print(f"  manifest: {manifest}")
    if removed:
        print(f"  removed {len(removed)} files of an earlier selection, e.g. {removed[0]}")
    for pattern in missing:
        print(f"  warning: nothing matched {pattern}")
    if extra:
        print(f"  note: {len(extra)} files in the corpus folder are not part of this selection, e.g. {extra[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder (default %(default)s)")
    parser.add_argument("--debs", type=Path, default=DEFAULT_DEBS, help=".deb cache (default %(default)s)")
    parser.add_argument("--manifest", type=Path, help="where the file list goes (default: sources.tsv beside --out)")
    args = parser.parse_args()
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        sys.exit("needs apt-get and dpkg-deb (a Debian or Ubuntu system)")
    assemble(args.out, args.debs, args.manifest or args.out.parent / "sources.tsv")


if __name__ == "__main__":
    main()
