"""`qa index --ray` and `qa batch --ray` on a real local Ray (2 CPUs, started once for the module):
the same index and the same answer files as the local commands, resuming included; and without
Ray installed, one line naming the extra. Deselect the Ray ones with `-m "not ray"`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SEED, write_corpus
from test_batch import CORPUS, QUESTIONS, write_questions

from qa.cli import main
from qa.config import SETTINGS
from qa.errors import BadSetting
from qa.pipeline import QA

ray_only = pytest.mark.ray
# Rows a batch must carry through as they are: an empty question and one over the length limit.
ROWS = [{"id": str(n), "question": q} for n, q in enumerate(
    QUESTIONS * 5 + ["", "x" * 2001, "Why does the alliance need reinforcement?"])]


@pytest.fixture(autouse=True)
def no_qa_settings_from_the_environment(monkeypatch):
    for setting in SETTINGS.values():
        monkeypatch.delenv(setting.env, raising=False)


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray for the module, joined the way `--ray` joins it; the commands reuse it."""
    from qa.distributed import connect

    connect("local", num_cpus=2, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-corpus")
    return write_corpus(folder, {**CORPUS, SEED.name: SEED.read_text(encoding="utf-8")})


@pytest.fixture(scope="module")
def indexes(local_ray, corpus, tmp_path_factory) -> tuple[Path, Path, str]:
    """The corpus indexed by plain `qa index` and by `qa index --ray`, and the latter's stderr."""
    root = tmp_path_factory.mktemp("ray-indexes")
    plain = CliRunner().invoke(main, ["index", "--corpus", str(corpus), "--index", str(root / "local")])
    assert plain.exit_code == 0, plain.output
    on_ray = CliRunner().invoke(main, ["index", "--corpus", str(corpus), "--index", str(root / "ray"), "--ray"])
    assert on_ray.exit_code == 0, on_ray.output
    return root / "local", root / "ray", on_ray.stderr


def qa_batch(*args: str):
    return CliRunner().invoke(main, ["batch", *args])


def arrays(path: Path) -> list[np.ndarray]:
    """The numbers a build file holds, whatever its format (a FAISS index, NumPy files)."""
    if path.suffix == ".faiss":
        import faiss

        index = faiss.read_index(str(path))
        return [index.reconstruct_n(0, index.ntotal)]
    loaded = np.load(path)
    return [loaded[name] for name in sorted(loaded.files)] if path.suffix == ".npz" else [loaded]


def segment_aliases(build: Path) -> dict[str, str]:
    """Segment folders are named by when they were written: name them by their order instead."""
    return {p.name: f"segment-{i}" for i, p in enumerate(sorted(p for p in build.iterdir() if p.is_dir()))}


def build_files(build: Path) -> dict[str, Path]:
    aliases = segment_aliases(build)
    files = {}
    for path in build.rglob("*"):
        if path.is_file():
            parts = path.relative_to(build).parts
            files["/".join((aliases.get(parts[0], parts[0]), *parts[1:]))] = path
    return files


def comparable_manifest(build: Path) -> dict:
    """The manifest without what differs between two builds of the same files: when they were built
    and written, and so the names of their segment folders."""
    text = (build / "manifest.json").read_text()
    for name, alias in segment_aliases(build).items():
        text = text.replace(name, alias)
    manifest = json.loads(text)
    for key in ("built_at", "build_seconds", "build_stats", "build_files"):
        manifest.pop(key, None)
    for info in manifest["files"].values():
        del info["indexed_at"]
    return manifest


@ray_only
def test_index_on_ray_writes_the_same_files_and_vectors_as_a_local_index(indexes):
    local, on_ray, stderr = indexes
    local_files, ray_files = (build_files((folder / "current").resolve()) for folder in (local, on_ray))
    assert sorted(local_files) == sorted(ray_files)
    numeric = 0
    for name in sorted(local_files):
        mine, theirs = local_files[name], ray_files[name]
        if name == "manifest.json":
            assert comparable_manifest(mine.parent) == comparable_manifest(theirs.parent)
        elif name == "manifest.sha256":
            continue  # the manifest's own hash: it holds the build's times
        elif mine.suffix in (".faiss", ".npy", ".npz"):
            numeric += 1
            for a, b in zip(arrays(mine), arrays(theirs), strict=True):
                assert a.shape == b.shape and np.allclose(a, b, atol=1e-3), name
        else:
            assert mine.read_bytes() == theirs.read_bytes(), name
    assert numeric >= 2  # the chunk vectors and the sentence vectors were compared, not skipped
    assert "embedding: 100%" in stderr  # the driver showed the workers' progress


@ray_only
def test_an_index_built_on_ray_gives_the_same_answers(indexes):
    local, on_ray, _ = indexes
    asked = [QA(folder).ask_many(QUESTIONS) for folder in (local, on_ray)]
    for mine, theirs in zip(*asked, strict=True):
        mine, theirs = mine.to_dict(), theirs.to_dict()
        del mine["timings_ms"], theirs["timings_ms"]
        assert mine == theirs


@ray_only
def test_batch_on_ray_writes_the_same_answer_file_as_a_local_batch(indexes, tmp_path):
    index = str(indexes[0])
    questions = write_questions(tmp_path / "questions.csv", ROWS)
    assert qa_batch(str(questions), "-o", str(tmp_path / "local.csv"), "--index", index).exit_code == 1  # 2 bad rows
    on_ray = qa_batch(str(questions), "--ray", "-o", str(tmp_path / "ray.csv"), "--index", index)
    assert on_ray.exit_code == 1, on_ray.output
    assert "2 errors" in on_ray.stdout
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@ray_only
def test_batch_on_ray_resumes_a_file_cut_short_by_a_kill(indexes, tmp_path):
    index = str(indexes[0])
    questions = write_questions(tmp_path / "questions.jsonl", ROWS)
    full = tmp_path / "local.jsonl"
    qa_batch(str(questions), "-o", str(full), "--index", index)
    lines = full.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:17]) + lines[17][:40])  # 17 rows done, the 18th torn mid-write
    resumed = qa_batch(str(questions), "-o", str(cut), "--index", index, "--ray", "--resume", "--batch-size", "8")
    assert resumed.exit_code == 1, resumed.output
    assert "17 rows were already done" in resumed.stdout

    def without_timings(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            if row["result"]:
                del row["result"]["timings_ms"]
        return rows

    assert without_timings(cut) == without_timings(full)
    assert cut.read_bytes()[: sum(map(len, lines[:17]))] == b"".join(lines[:17])  # kept rows untouched


@ray_only
def test_an_error_on_a_worker_is_one_line(indexes, tmp_path):
    questions = write_questions(tmp_path / "questions.csv", ROWS[:3])
    result = qa_batch(str(questions), "--ray", "--index", str(indexes[0]), "--model", "another-model")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "another-model" in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_ray_flags_without_ray_installed_say_which_extra_to_install(tmp_path, seed_index):
    questions = write_questions(tmp_path / "questions.csv", ROWS[:3])
    blocked = "import sys; sys.modules['ray'] = None; from qa.cli import main; main()"  # `import ray` fails
    for args in (["index", "--corpus", str(SEED.parent), "--index", str(tmp_path / "new-index"), "--ray"],
                 ["batch", str(questions), "--index", str(seed_index), "--ray", "auto"]):
        done = subprocess.run([sys.executable, "-c", blocked, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert 'pip install -e ".[ray]"' in done.stderr
    assert not (tmp_path / "new-index").exists() and not (tmp_path / "questions.answers.csv").exists()


def test_importing_qa_never_imports_ray():
    code = "import sys, qa, qa.cli, qa.batch, qa.pipeline; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_bare_ray_flag_means_a_local_ray_and_must_follow_the_file(tmp_path):
    from qa.config import read_settings

    assert read_settings("batch", {"ray": "local"}).ray == "local"
    assert read_settings("batch", environ={"QA_RAY": "head.example:6379"}).ray == "head.example:6379"
    with pytest.raises(BadSetting, match="Ray Data does not run through Ray Client"):
        read_settings("index", {"ray": "ray://head:10001"})
    assert read_settings("batch", environ={}).ray == ""
    questions = write_questions(tmp_path / "questions.csv", ROWS[:3])
    swallowed = qa_batch("--ray", str(questions))  # the file name is taken as the address
    assert swallowed.exit_code == 2 and len(swallowed.output.splitlines()) == 1
    assert "--ray / QA_RAY" in swallowed.output and "after the command's file arguments" in swallowed.output
