"""Atomic outputs and run locks, so cron never leaves a half-written file behind.

Every output is written to a temp name in its own folder (same filesystem, so the rename is
atomic) and renamed over the target only after it is complete. Temp names carry a fixed
marker, so a run killed with SIGKILL leaves litter that the next run recognises and removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from hubscore.core.errors import ConfigError, LockHeldError

TEMP_MARKER = ".hubscore-tmp-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(target: Path) -> str:
    return f".{target.name}{TEMP_MARKER}"


def remove_stale_temps(target: Path) -> int:
    """Delete temp files and folders a killed run left beside `target`; return how many.

    A name holding our temp prefix anywhere is litter: libraries writing to one of our temp
    paths add their own prefix (DuckDB's COPY ... TO writes `tmp_<name>`, then renames).
    """
    return _remove(target.parent.glob(f"*{_temp_prefix(target)}*"))


def remove_all_temps(folder: Path) -> int:
    """Delete every temp a killed run left in `folder`, whatever its target; return how many.

    For a folder whose outputs are new names each time (run folders are timestamped); only
    safe under a lock that keeps every other writer out of `folder`.
    """
    return _remove(folder.glob(f"*{TEMP_MARKER}*")) if folder.is_dir() else 0


def _remove(stale_paths: Iterator[Path]) -> int:
    removed = 0
    for stale in stale_paths:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; rename it over `target` only if the block succeeds."""
    if target.is_dir():  # else found only at the rename, after all the work
        raise ConfigError(f"output {target} is a folder", hint="name the file to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(target), dir=target.parent)
    os.close(fd)
    temp = Path(name)
    # mkstemp creates 0600; a finished output gets the usual umask-derived mode.
    temp.chmod(0o666 & ~_current_umask())
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder beside `target` for a library's scratch files; always remove it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    temp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
    try:
        yield temp
    finally:
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp folder beside `target`; rename it to `target` only if the block succeeds."""
    with scratch_dir(target) as temp:
        yield temp
        os.rename(temp, target)  # nothing left for scratch_dir to remove


def replace_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically (a new link renamed over the old one)."""
    temp = link.parent / f"{_temp_prefix(link)}link"
    temp.unlink(missing_ok=True)
    temp.symlink_to(target)
    os.replace(temp, link)


@contextlib.contextmanager
def exclusive_lock(target: Path) -> Iterator[None]:
    """Hold an flock on `<target>.lock`; the kernel releases it even after SIGKILL."""
    lock_path = target.parent / f".{target.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(
                f"another hubscore run is writing {target} (lock {lock_path} is held)",
                hint="wait for it to finish; the lock is released when that process exits",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to the handlers before.

    For a commit of several renames (run folders, then `latest`): an interrupt waits for it,
    so the outputs are all in place or none. Signals reach the main thread only; elsewhere
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    with signals_handled(hold):
        yield
    if caught:  # now the handlers from before act on it
        signal.raise_signal(caught[0])


@contextlib.contextmanager
def signals_handled(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to `handler` inside the block; restore the handlers after."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
