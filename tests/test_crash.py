"""SIGKILL `build-features` and `train` mid-run: previous outputs stay, the next run cleans up.

Each kill point is a state the killed process is seen in (a file it is writing), not a delay.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hubscore.core.atomic import TEMP_MARKER

ROOT = Path(__file__).parent.parent
DATA = ROOT / "data"
BUILD_OUTPUTS = ("features.parquet", "rejects.parquet", "quality.json")
Seen = Callable[[], bool]


def hubscore(*args: str | Path, cwd: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "hubscore", *map(str, args)]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()


def kill_when(proc: subprocess.Popen[bytes], seen: Seen, what: str) -> None:
    """SIGKILL `proc` as soon as `seen()` holds; fail if it exits first."""
    while not seen():
        assert proc.poll() is None, f"the run finished before {what}: no kill point reached"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def litter(folder: Path) -> list[str]:
    """Names a run leaves that are not outputs: our temps, DuckDB's `tmp_` files, spills."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if TEMP_MARKER in p.name or p.name.startswith("tmp_") or p.name == ".tmp"
    )


def digests(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


def test_build_features_killed_at_each_point_keeps_outputs_and_leaves_no_litter(
    tmp_path: Path,
) -> None:
    out = tmp_path / "build"
    build = ("build-features", "--data-dir", DATA, "--out", out)
    finish(hubscore(*build, cwd=tmp_path))
    before = digests(out, BUILD_OUTPUTS)
    scratch = f".build{TEMP_MARKER}*"

    def named(folder: Path, pattern: str) -> Seen:
        return lambda: any(folder.glob(pattern))

    # Every output is staged in the scratch folder and published as one set at the end
    # (tests/test_output_sets.py kills the publishing at each of its steps).
    points = {
        "the scratch folder exists": named(tmp_path, scratch),
        "DuckDB's database file exists": named(tmp_path, f"{scratch}/build.duckdb"),
        "the rejects are staged": named(tmp_path, f"{scratch}/outputs/rejects.parquet"),
        "the features are being written": named(tmp_path, f"{scratch}/outputs/features.parquet"),
    }
    for what, seen in points.items():
        kill_when(hubscore(*build, cwd=tmp_path), seen, what)
        assert digests(out, BUILD_OUTPUTS) == before, f"killed when {what}"
    assert litter(tmp_path)  # what the kills left; the next run must remove it

    finish(hubscore(*build, cwd=tmp_path))
    assert litter(tmp_path) == []
    assert digests(out, BUILD_OUTPUTS) == before  # the same inputs give the same bytes
    kept = {p.name for p in (out / ".sets").iterdir()}  # the current set and the one before
    assert (out / ".current").resolve().name in kept and len(kept) <= 2


@pytest.mark.slow
def test_train_killed_at_each_point_keeps_latest_and_leaves_no_litter(
    tmp_path: Path, features_file: Path, trained_artifact: Any
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    # The previous run: the session's trained run folder (training one more costs ~10 s).
    latest = Path(shutil.copytree(trained_artifact.run_dir, models / trained_artifact.run_dir.name))
    (models / "latest").symlink_to(latest.name)
    before = {p.name: p.read_bytes() for p in latest.iterdir()}
    train = ("train", "--features", features_file, "--model", "logreg", "--models-dir", models)

    points = {
        "the run folder is staged": lambda: any(models.glob(f"*{TEMP_MARKER}*")),
        "the report is written": lambda: any(models.glob(f"*{TEMP_MARKER}*/report.html")),
    }
    for what, seen in points.items():
        kill_when(hubscore(*train, cwd=tmp_path), seen, what)
        assert (models / "latest").resolve() == latest.resolve(), f"killed when {what}"
        assert {p.name: p.read_bytes() for p in latest.iterdir()} == before
    assert litter(models)

    finish(hubscore(*train, cwd=tmp_path))
    assert litter(tmp_path) == []
    assert (models / "latest").resolve() != latest.resolve()  # the new run was accepted
