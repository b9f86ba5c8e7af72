"""The package reads as the data flow: faces (the CLI, the web app, batch answering) stand on the
pipeline and never reach into the engine below it, and nothing below reaches up into a face."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qa"
FACES = ("qa.cli", "qa.web", "qa.batch")
# What a face may import: the pipeline and what it hands out, and the other faces' packages.
FACE_FLOOR = ("qa.pipeline", "qa.types", "qa.errors", "qa.config", *FACES)
# Question files are decoded and split by the same readers as corpus files.
SHARED_READERS = ("qa.text", "qa.tables", "qa.load")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "qa" or name.startswith("qa.")}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_faces_import_only_the_pipeline_types_errors_and_config():
    reaching = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if not within(name, FACES):
            continue
        allowed = FACE_FLOOR + (SHARED_READERS if within(name, ("qa.batch",)) else ())
        outside = sorted(m for m in imports(path) if not within(m, allowed))
        if outside:
            reaching[name] = outside
    assert reaching == {}


def test_nothing_below_the_faces_imports_a_face():
    upward = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if within(name, FACES) or name == "qa":
            continue
        faces = sorted(m for m in imports(path) if within(m, FACES))
        if faces:
            upward[name] = faces
    assert upward == {}
