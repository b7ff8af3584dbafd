"""Outputs published as one set: killed at any step, a folder shows the old set or the new one.

`publish_set` runs in a child process that SIGKILLs itself at its k-th filesystem call (a
rename, link, unlink, mkdir...), for every k until it completes: every state a kill can leave
is checked, not a sample of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.output_sets import CURRENT, SETS, publish_set

NAMES = ("features.parquet", "rejects.parquet", "quality.json")
# Runs publish_set(out, stage, NAMES), killing itself at the KILL_AT-th filesystem call
# (0: never; it then prints how many calls it made).
CHILD = """
import os, signal, sys
from pathlib import Path
from hubscore.core import output_sets

kill_at, calls = int(sys.argv[3]), 0

def counted(call):
    def run(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return call(*args, **kwargs)
    return run

for name in ("rename", "replace", "link", "symlink", "unlink", "mkdir", "rmdir"):
    setattr(os, name, counted(getattr(os, name)))
output_sets.publish_set(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[4:])
print(calls)
"""


def write_set(folder: Path, tag: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        (folder / name).write_text(f"{tag} {name}\n")
    return {name: f"{tag} {name}\n" for name in NAMES}


def shown(out: Path) -> dict[str, str | None]:
    """What a reader opening each name sees (None: no such file)."""
    return {n: (out / n).read_text() if (out / n).is_file() else None for n in NAMES}


def publish_in_child(out: Path, stage: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-c", CHILD, str(out), str(stage), str(kill_at), *NAMES]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def old_folder(tmp_path: Path, layout: str) -> tuple[Path, dict[str, str]]:
    """A folder holding a previous build: a published set, or plain files (hubscore < sets)."""
    out = tmp_path / "pristine"
    if layout == "plain":
        return out, write_set(out, "old")
    stage = tmp_path / "first-stage"
    old = write_set(stage, "old")
    publish_set(out, stage, NAMES)
    return out, old


@pytest.mark.parametrize("layout", ["set", "plain", "empty"])
def test_a_kill_at_any_step_leaves_the_old_set_or_the_new_one(tmp_path: Path, layout: str) -> None:
    if layout == "empty":
        pristine, old = tmp_path / "pristine", dict.fromkeys(NAMES)
        pristine.mkdir()
    else:
        pristine, old = old_folder(tmp_path, layout)
    out, stage = tmp_path / "out", tmp_path / "stage"

    def fresh() -> None:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)
        shutil.copytree(pristine, out, symlinks=True)
        write_set(stage, "new")

    fresh()
    done = publish_in_child(out, stage, kill_at=0)
    assert done.returncode == 0, done.stderr
    new = shown(out)
    assert new == write_set(tmp_path / "expected", "new")
    steps = int(done.stdout)
    assert steps >= 4
    for kill_at in range(1, steps + 1):
        fresh()
        killed = publish_in_child(out, stage, kill_at)
        assert killed.returncode == -9, f"step {kill_at}: {killed.stderr}"
        assert shown(out) in (old, new), f"killed at step {kill_at} of {steps}: a mixed set"
        # The next publish cleans up whatever the kill left and publishes its own set.
        shutil.rmtree(stage, ignore_errors=True)
        write_set(tmp_path / "next", "next")
        publish_set(out, tmp_path / "next", NAMES)
        assert shown(out) == write_set(tmp_path / "expected-next", "next")
        kept = {p.name for p in (out / SETS).iterdir()}  # the current set and the one before
        assert (out / CURRENT).resolve().name in kept and len(kept) <= 2
        assert not [p for p in out.rglob("*") if TEMP_MARKER in p.name], f"litter at {kill_at}"


def test_readers_see_plain_names_that_link_through_the_current_set(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_set(tmp_path / "a", "a")
    first = publish_set(out, tmp_path / "a", NAMES)
    assert os.readlink(out / "features.parquet") == f"{CURRENT}/features.parquet"
    assert (out / CURRENT).resolve() == first.resolve()
    write_set(tmp_path / "b", "b")
    reader = (out / "quality.json").resolve()  # a reader resolves its files once...
    second = publish_set(out, tmp_path / "b", NAMES)
    assert (out / "quality.json").read_text() == "b quality.json\n"
    assert (out / CURRENT).resolve() == second.resolve()
    assert reader.read_text() == "a quality.json\n", "...and reads its set whole meanwhile"
    write_set(tmp_path / "c", "c")
    publish_set(out, tmp_path / "c", NAMES)
    assert not first.exists(), "a set is removed once two newer ones were published"
