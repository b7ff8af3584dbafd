"""A trainer that talks: progress by family, step, trial and fold; a clean stop on a signal."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from hubscore.cli_render import TrainingDisplay
from hubscore.core.atomic import TEMP_MARKER
from hubscore.training.progress import SILENT


def drive(display: TrainingDisplay) -> None:
    """What train_and_export and the search tell a display, for two families."""
    for index, name in enumerate(("logreg", "xgboost"), start=1):
        display.family(name, index, 2)
        display.step("choose the parameters on the time folds")
        for trial in (1, 2):
            display.trial(trial, 2)
            for fold in (1, 2, 3):
                display.fold(fold, 3)
        display.step("refit on every labelled row")


def test_off_a_terminal_progress_is_plain_log_lines_of_steps_and_trials() -> None:
    out = io.StringIO()
    drive(TrainingDisplay(live=False, console=Console(file=out, width=200)))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("train: logreg (1/2): started [")
    assert lines[0].endswith("; then 1 more family]")
    assert any(
        "xgboost (2/2): choose the parameters on the time folds: trial 2/2 [" in x for x in lines
    )
    assert not any("fold 1/3" in line for line in lines)  # folds only move the live line
    assert len(lines) == 2 * (1 + 1 + 2 + 1)
    assert "\x1b[" not in out.getvalue()  # no terminal codes in a log


def test_on_a_terminal_one_live_line_says_what_is_left() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    display = TrainingDisplay(live=True, console=console)
    with display:
        display.family("xgboost", 1, 3)
        display.step("choose the parameters on the time folds")
        display.trial(2, 10)
        display.fold(1, 3)
        assert display.status is not None
        line = str(display.status.renderable.text)  # type: ignore[attr-defined]
    assert "xgboost (1/3)" in line and "trial 2/10, fold 1/3 done" in line
    assert "left in the search" in line and "then 2 more families" in line and "elapsed" in line


def test_the_silent_progress_takes_every_call() -> None:
    SILENT.family("x", 1, 1)
    SILENT.step("s")
    SILENT.trial(1, 1)
    SILENT.fold(1, 1)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_training_cleanly_with_nothing_written(
    features_file: Path, tmp_path: Path, signum: int
) -> None:
    from conftest_train import SMALL_MODELS

    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "training": {
                    "cv_folds": 2,
                    "top_k": [5, 10],
                    "weekly_capacity": 5,
                    "leaderboard_metric": "precision_at_5",
                },
                "models": SMALL_MODELS,
            }
        )
    )
    out = tmp_path / "models"
    command = [sys.executable, "-m", "hubscore", "train", "--features", str(features_file)]
    command += [
        "--model",
        "all",
        "--search",
        "off",
        "--models-dir",
        str(out),
        "--config",
        str(config),
    ]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        first = process.stderr.readline()  # off a terminal: plain lines, as they happen
        assert first.startswith("train: logreg (1/4): started"), first
        time.sleep(1.0)  # inside the first family's folds
        process.send_signal(signum)
        rest = process.stderr.read()
        assert process.wait(timeout=120) == 130, rest
    assert "interrupted; no run folder was written and models/latest is unchanged" in rest
    assert "Traceback" not in rest
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in left if TEMP_MARKER in name or name.startswith("hubscore")]
    assert not (out / "latest").exists()
    with (out / ".latest.lock").open("a") as handle:  # the lock was released
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert os.environ.get("HUBSCORE_CONFIG") is None


# A signal that lands while a C extension runs Python code through `PyRun_String` (one does in
# train's export step): CPython then remembers a KeyboardInterrupt as unhandled and, at exit,
# kills the process by SIGINT, though hubscore handled it and chose 130.
INTERRUPTED_INSIDE_PYRUN = """
import ctypes, sys, typer
from hubscore.cli import handle_interrupts
run = ctypes.pythonapi.PyRun_String
run.restype = ctypes.py_object
run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
code = b"import os, signal, time\\nos.kill(os.getpid(), signal.SIG{name})\\ntime.sleep(5)"
try:
    with handle_interrupts():
        run(code, 257, {{}}, {{}})  # 257: Py_file_input
except typer.Exit as stop:
    sys.exit(stop.exit_code)
"""


# A signal that lands while a C extension initialises: pybind11's modules re-raise the
# interrupt as ImportError("initialization failed") from it (train met one importing
# matplotlib). Here the signal is real and the wrapping is pybind11's, written in Python.
INTERRUPTED_INSIDE_AN_EXTENSION_INIT = """
import os, signal, sys, time, typer
from hubscore.cli import handle_interrupts
try:
    with handle_interrupts():
        try:
            os.kill(os.getpid(), signal.SIG{name})
            time.sleep(5)
        except KeyboardInterrupt as interrupt:
            raise ImportError("initialization failed") from interrupt
except typer.Exit as stop:
    sys.exit(stop.exit_code)
"""


@pytest.mark.parametrize("name", ["TERM", "INT"])
@pytest.mark.parametrize(
    "script",
    [INTERRUPTED_INSIDE_PYRUN, INTERRUPTED_INSIDE_AN_EXTENSION_INIT],
    ids=["inside-pyrun", "extension-init"],
)
def test_a_signal_that_an_extension_meets_still_exits_130(
    script: str, name: str, tmp_path: Path
) -> None:
    # Run with -m, as `hubscore` runs: with -c, sys.exit leaves before the check.
    (tmp_path / "interrupted.py").write_text(script.format(name=name))
    command = [sys.executable, "-m", "interrupted"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 130, done.stderr  # not -2: killed by SIGINT at exit
    assert "interrupted; the previous output is unchanged" in done.stderr
    assert "ImportError" not in done.stderr


def test_an_error_no_interrupt_caused_is_not_taken_for_one() -> None:
    from hubscore.cli import handle_interrupts

    with pytest.raises(ImportError), handle_interrupts():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("unrelated") from None  # the interrupt hidden, as a traceback would
