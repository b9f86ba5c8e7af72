"""Faults while indexing: `qa index` killed with SIGKILL in each phase of a run, and a disk that
fills up while a build is written. After every fault the index loads whole and answers, from the
old corpus or (once the swap is done) the new one, never a mix. bench/faults.py runs the longer
loop of 20 random kills and a serving soak; tests/fault_helpers.py holds the kill loop."""

from __future__ import annotations

import os
import resource
import signal
import subprocess

import pytest
from click.testing import CliRunner
from conftest import SEED, write_corpus
from fault_helpers import (
    KillPoint,
    build_edition,
    check_index,
    index_command,
    kill_and_check,
    leftovers,
    live_name,
    lock_is_free,
    run_index,
    write_edition,
)

from qa.cli import main
from qa.config import DEFAULT_MODEL
from qa.pipeline import QA, build

# One kill per phase of a run (about 6 s: 4-5 s to start and load the model, 1 s embedding, a
# few ms writing the build, then the swap). The write phase is short, so its kills are aimed at
# the moment its folder appears; where each kill landed is read from what it left on disk.
KILLS = [
    KillPoint("start", 2.0),  # loading the model
    KillPoint("embedding", 0.3),
    KillPoint("writing", 0.005),
    KillPoint("written"),  # the rename and the swap
]

PUFFINS = "Puffins return to the same burrow on the cliff every spring and mate for life."


def test_index_killed_in_each_phase_leaves_a_whole_index_that_answers(tmp_path, embedder):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    build_edition(corpus, index, 0, embedder)
    live, landed = 0, []
    for point in KILLS:
        run, live = kill_and_check(corpus, index, live, point, embedder)  # checks the index after the kill
        landed.append(f"{point} -> {run.landed}" + ("" if run.killed else " (finished first)"))
    assert any("before writing" in where for where in landed), landed
    info = CliRunner().invoke(main, ["info", "--index", str(index)])
    assert info.exit_code == 0 and "codeword.txt" in info.output

    spare = live_name(index)
    write_edition(corpus, live + 1)
    final = run_index(corpus, index)
    assert final.returncode == 0, final.stderr
    assert check_index(index, embedder, [live + 1]) == live + 1
    assert leftovers(index, spare) == [], landed  # partial and never-swapped builds of the kills are gone
    assert lock_is_free(index)


def _index_subprocess(corpus, index, preexec_fn=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    return subprocess.run(index_command(corpus, index), capture_output=True, text=True, env=env,
                          preexec_fn=preexec_fn, timeout=600)


def _seed_index(folder, embedder):
    corpus = write_corpus(folder / "corpus", {SEED.name: SEED.read_text(encoding="utf-8")})
    build(corpus, folder / "index", DEFAULT_MODEL, embedder=embedder)
    return corpus, folder / "index"


def _assert_failed_cleanly_and_old_index_answers(result, index, live, builds, embedder):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: no room to write the new index in {index}"), result.stderr
    assert "the previous index is unchanged" in last
    assert os.readlink(index / "current") == live
    assert set(os.listdir(index / "builds")) == builds  # the half-written build was removed
    qa = QA(index, embedder=embedder)
    assert {d.source for d in qa.index.documents()} == {SEED.name}
    assert qa.search("Where is Kadena Air Base?", k=1)[0].chunk.source == SEED.name


def _answers_puffins_after_a_rebuild(corpus, index, embedder):
    build(corpus, index, DEFAULT_MODEL, embedder=embedder)
    answer = QA(index, embedder=embedder).ask("Where do puffins return every spring?")
    assert PUFFINS.split(" and ")[0] in answer.answer


def test_a_file_size_limit_fails_with_one_clear_line_and_keeps_the_old_index(tmp_path, embedder):
    corpus, index = _seed_index(tmp_path, embedder)
    live, builds = os.readlink(index / "current"), set(os.listdir(index / "builds"))
    write_corpus(corpus, {"puffins.txt": PUFFINS})

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the seed article alone is 5.5 kB

    result = _index_subprocess(corpus, index, limit_file_size)
    _assert_failed_cleanly_and_old_index_answers(result, index, live, builds, embedder)
    assert "File too large" in result.stderr.splitlines()[-1]
    _answers_puffins_after_a_rebuild(corpus, index, embedder)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs mounted for this test (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the file size limit test covers a full disk")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_full_disk_fails_with_one_clear_line_and_keeps_the_old_index(small_disk, embedder):
    corpus, index = _seed_index(small_disk, embedder)
    live, builds = os.readlink(index / "current"), set(os.listdir(index / "builds"))
    write_corpus(corpus, {"puffins.txt": PUFFINS})
    filler = small_disk / "filler"
    with open(filler, "wb") as f:  # leave 16 kB: less than a build of the seed article needs
        f.write(b"\0" * (os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - 16 * 1024))
    os.sync()

    result = _index_subprocess(corpus, index)
    _assert_failed_cleanly_and_old_index_answers(result, index, live, builds, embedder)
    assert "No space left on device" in result.stderr.splitlines()[-1]
    filler.unlink()
    _answers_puffins_after_a_rebuild(corpus, index, embedder)
