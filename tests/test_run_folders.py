"""`hubscore runs list|prune`: old run folders go, the one models/latest points at stays."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core.run_folders import list_runs, prune_runs

GOLDEN_RUN = Path(__file__).parent / "golden" / "basic" / "run"
runner = CliRunner()


def make_runs(models: Path, days: list[int], *, latest_day: int) -> None:
    """Copy the golden run folder once per day of December 2026; point latest at one."""
    for day in days:
        run = models / f"hubscore_202612{day:02d}_080000"
        shutil.copytree(GOLDEN_RUN, run)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["created_at"] = f"2026-12-{day:02d}T08:00:00+00:00"
        (run / "manifest.json").write_text(json.dumps(manifest))
    os.symlink(f"hubscore_202612{latest_day:02d}_080000", models / "latest")


def test_list_runs_newest_first_with_latest_marked(tmp_path: Path) -> None:
    make_runs(tmp_path, [3, 1, 2], latest_day=1)
    (tmp_path / ".hubscore_x.hubscore-tmp-abc").mkdir()  # a killed run's litter: not a run
    runs = list_runs(tmp_path)
    assert [run.name[-13:-7] for run in runs] == ["261203", "261202", "261201"]
    assert [run.is_latest for run in runs] == [False, False, True]


def test_prune_keeps_the_newest_and_the_run_latest_points_at(tmp_path: Path) -> None:
    make_runs(tmp_path, [1, 2, 3, 4], latest_day=1)
    result = runner.invoke(app, ["runs", "prune", "--keep", "2", "--models-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert left == [
        "hubscore_20261201_080000",
        "hubscore_20261203_080000",
        "hubscore_20261204_080000",
        "latest",
    ]
    assert (tmp_path / "latest" / "manifest.json").is_file()
    assert result.stdout.split() == [str(tmp_path / "hubscore_20261202_080000")]


def test_prune_keep_zero_still_keeps_latest(tmp_path: Path) -> None:
    make_runs(tmp_path, [1, 2], latest_day=2)
    removed = prune_runs(tmp_path, keep=0)
    assert [run.name for run in removed] == ["hubscore_20261201_080000"]
    assert [run.name for run in list_runs(tmp_path)] == ["hubscore_20261202_080000"]


def test_dry_run_deletes_nothing_and_list_prints_every_run(tmp_path: Path) -> None:
    make_runs(tmp_path, [1, 2, 3], latest_day=3)
    dry = runner.invoke(
        app, ["runs", "prune", "--keep", "0", "--dry-run", "--models-dir", str(tmp_path)]
    )
    assert dry.exit_code == 0
    assert len(dry.stdout.split()) == 2
    listed = runner.invoke(app, ["runs", "list", "--models-dir", str(tmp_path)])
    assert listed.exit_code == 0
    assert all(f"hubscore_202612{d:02d}_080000" in listed.stdout for d in (1, 2, 3))
