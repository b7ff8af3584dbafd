"""Outputs published as one set: several files that readers only ever see together.

`build-features` writes features.parquet, rejects.parquet and quality.json. Renamed one by one,
a kill between two renames would leave a features file of one run beside the quality profile
of another. Here the files are written into a set folder, `OUT/.sets/<id>/`; each name in OUT
is a symlink through `OUT/.current`, itself a symlink to the set folder:

    OUT/features.parquet -> .current/features.parquet
    OUT/.current         -> .sets/<id>

Publishing a set is one atomic rename: a new `.current` over the old one. A kill before it
leaves the previous set whole, a kill after it the new one. An OUT written before sets (plain
files) is adopted first, without a moment where any name shows other bytes: its files are
hard-linked into a set of their own, `.current` points there, then each name becomes a link.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from hubscore.core.atomic import TEMP_MARKER, replace_symlink

SETS = ".sets"
CURRENT = ".current"


@contextlib.contextmanager
def staged_set(out: Path, names: Sequence[str], *, stage: Path) -> Iterator[dict[str, Path]]:
    """Yield a path per name inside the empty folder `stage`; publish them in `out` as one set
    only if the block succeeds.

    Args:
        stage: a folder on the same filesystem as `out` (the build's scratch folder), removed
            by its owner if the block fails.
    """
    stage.mkdir()
    yield {name: stage / name for name in names}
    publish_set(out, stage, names)


def publish_set(out: Path, stage: Path, names: Sequence[str]) -> Path:
    """Move the complete set folder `stage` into `out` and make it the current set."""
    sets = out / SETS
    sets.mkdir(parents=True, exist_ok=True)
    _remove_litter(sets)
    if any(_is_plain(out / name) for name in names):
        _adopt_plain_files(out, names)
    final = sets / _set_name()
    os.rename(stage, final)
    for name in names:
        _link_through_current(out, name)
    previous = _current_set(out)
    replace_symlink(out / CURRENT, f"{SETS}/{final.name}")  # the one step that publishes
    # The set it replaces stays until the next publish: a reader that resolved its files
    # before this moment (a long `train`) goes on reading one whole set.
    for old in sets.iterdir():
        if old not in (final, previous):
            _remove(old)
    return final


def _current_set(out: Path) -> Path | None:
    current = out / CURRENT
    return (out / os.readlink(current)) if current.is_symlink() else None


def _set_name() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _is_plain(path: Path) -> bool:
    return path.exists() and not path.is_symlink()


def _adopt_plain_files(out: Path, names: Sequence[str]) -> None:
    """Make what `out` shows now a set of its own, then point every name through `.current`."""
    adopted = out / SETS / f".{_set_name()}{TEMP_MARKER}adopt"
    adopted.mkdir()
    for name in names:
        shown = out / name
        if shown.is_file():
            os.link(shown.resolve(), adopted / name)
        elif shown.is_dir():  # a Parquet folder: its files, linked one by one
            shutil.copytree(shown.resolve(), adopted / name, copy_function=os.link)
    final = adopted.with_name(_set_name())
    os.rename(adopted, final)
    replace_symlink(out / CURRENT, f"{SETS}/{final.name}")
    for name in names:
        if _is_plain(out / name):
            _link_through_current(out, name)


def _link_through_current(out: Path, name: str) -> None:
    """Make `out/name` the link `.current/name` (atomically, over a plain file too)."""
    link = out / name
    target = f"{CURRENT}/{name}"
    if link.is_symlink() and os.readlink(link) == target:
        return
    temp = out / f".{name}{TEMP_MARKER}link"
    temp.unlink(missing_ok=True)
    temp.symlink_to(target)
    if link.is_dir() and not link.is_symlink():
        # A folder cannot be replaced by a rename; its content lives on in the adopted set.
        shutil.rmtree(link)
    os.replace(temp, link)


def _remove_litter(sets: Path) -> None:
    """Remove set folders a killed run left half-adopted."""
    for stale in sets.glob(f"*{TEMP_MARKER}*"):
        _remove(stale)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
