"""The run folders under `models/`: list them, and prune old ones without touching `latest`.

Every `train` adds a folder (four with `--model all`) and nothing else removes them. Pruning
holds the lock `train` holds while it writes runs and moves `latest`, so it never deletes a
run being written nor the one `latest` is about to point at; the run `latest` points at is
always kept, whatever `--keep` says, and so is the champion before it (where `rollback` goes).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubscore.core import atomic
from hubscore.core.artifacts import MANIFEST
from hubscore.core.errors import ConfigError
from hubscore.core.promotions import champion_history, read_log

LATEST = "latest"


@dataclass(frozen=True)
class RunFolder:
    """One run folder as its manifest describes it."""

    path: Path
    model_kind: str
    created_at: str
    metrics: dict[str, Any]
    is_latest: bool

    @property
    def name(self) -> str:
        """Return the folder's name (the model version)."""
        return self.path.name


def list_runs(models_dir: Path) -> list[RunFolder]:
    """Return the run folders in `models_dir`, newest first; `latest` is marked."""
    if not models_dir.is_dir():
        return []
    latest = latest_run(models_dir)
    runs = [
        _read_run(path, is_latest=path.name == latest)
        for path in models_dir.iterdir()
        if _is_run(path)
    ]
    return sorted(runs, key=lambda run: (run.created_at, run.name), reverse=True)


def latest_run(models_dir: Path) -> str | None:
    """Return the name of the run folder `models_dir/latest` points at, if any."""
    link = models_dir / LATEST
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def prune_runs(models_dir: Path, *, keep: int, dry_run: bool = False) -> list[RunFolder]:
    """Delete all but the `keep` newest run folders, never the one `latest` points at.

    Returns the runs removed (or, with `dry_run`, the runs that would be).
    """
    if keep < 0:
        raise ConfigError(f"keep must be 0 or more, got {keep}", hint="pass --keep N with N >= 0")
    with atomic.exclusive_lock(models_dir / LATEST):  # the lock `train` holds
        runs = list_runs(models_dir)
        # `hubscore rollback` returns to the champion before latest: keep it too.
        previous = set(champion_history(read_log(models_dir))[-2:-1])
        doomed = [run for run in runs[keep:] if not run.is_latest and run.name not in previous]
        if not dry_run:
            for run in doomed:
                _remove(run.path)
    return doomed


def _is_run(path: Path) -> bool:
    """A run folder: a real folder (not `latest`, not a temp) holding a manifest."""
    hidden = path.name.startswith(".")
    return not hidden and not path.is_symlink() and (path / MANIFEST).is_file()


def _read_run(path: Path, *, is_latest: bool) -> RunFolder:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}  # listed, so a broken folder can still be seen and pruned
    return RunFolder(
        path=path,
        model_kind=str(manifest.get("model_kind", "?")),
        created_at=str(manifest.get("created_at", "")),
        metrics=dict(manifest.get("metrics") or {}),
        is_latest=is_latest,
    )


def _remove(path: Path) -> None:
    """Rename the folder to a temp name first: a crash mid-delete leaves recognised litter."""
    doomed = path.with_name(f".{path.name}{atomic.TEMP_MARKER}pruned")
    os.rename(path, doomed)
    shutil.rmtree(doomed)
