"""How the command line shows results: the score summary, the leaderboard, progress.

Results go to stdout or files; progress, tables and errors to stderr (cron mail stays clean).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.table import Table

from hubscore.core.display import cell

# Never wrap: logs and cron mail are greppable. Off a terminal Rich assumes 80 columns, which
# truncates the leaderboard and quality tables, so logs get a wider page.
stderr = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 140)
stdout = Console()


class LogFormat(StrEnum):
    """How `score` writes its log lines on stderr."""

    text = "text"
    json = "json"


@contextlib.contextmanager
def progress_bar(*, enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """Yield a progress callback drawing a bar on stderr, or None (no bar garbage in cron mail)."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=stderr, transient=True) as progress:
        task = progress.add_task("scoring", total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def render_summary(
    summary: dict[str, Any], *, as_json: bool, quiet: bool, log_format: LogFormat
) -> None:
    """Print the run summary: JSON on stdout with --json, a log on stderr unless --quiet."""
    if as_json:
        print(json.dumps(summary, sort_keys=True))
    if quiet:
        return
    if log_format is LogFormat.json:
        print(json.dumps({"event": "scored", **summary}, sort_keys=True), file=sys.stderr)
        return
    for line in summary_lines(summary):
        stderr.print(line, highlight=False, markup=False, soft_wrap=True)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """Return the human-readable summary, one fact per line."""
    probs = summary["probability"]
    conf = summary["confidence"]
    lines = [
        f"scored {summary['rows_scored']} rows with model {summary['model_version']} "
        f"in {summary['duration_s']:.2f} s; wrote {summary['rows_written']} to {summary['output']}",
        f"prediction 1 (probability >= {summary['threshold']:.4g}): {summary['positives']} "
        f"(confidence high {conf['high']}, medium {conf['medium']}, low {conf['low']})",
    ]
    if summary.get("priority"):
        tiers = ", ".join(f"{tier} {n:,}" for tier, n in summary["priority"].items())
        lines.append(f"priority: {tiers}")
    if probs:
        lines.append("probability " + ", ".join(f"{k} {v:.4f}" for k, v in probs.items()))
    if summary["drift_worst"]:
        worst = ", ".join(f"{d['feature']} {d['psi']:.3f}" for d in summary["drift_worst"])
        lines.append(f"drift (PSI, worst first): {worst}")
    lines += ledger_lines(summary.get("ledger"))
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return lines


def ledger_lines(ledger: dict[str, Any] | None) -> list[str]:
    """Return where the run was recorded (and its shadows), one line each."""
    if not ledger:
        return []
    if "skipped" in ledger:
        return [f"ledger: nothing recorded ({ledger['skipped']})"]
    lines = [f"ledger: recorded {ledger['rows']} rows as {ledger['role']} in {ledger['file']}"]
    if ledger["held"]:
        lines.append(
            f"control group: {ledger['held']} listed companies marked hold (do not call them)"
        )
    lines += [
        f"ledger: shadow {shadow['model_version']} recorded {shadow['rows']} rows in "
        f"{shadow['file']}"
        for shadow in ledger.get("shadows", [])
    ]
    return lines


def leaderboard_table(results: list[Any], metric: str, top_k: tuple[int, ...]) -> Table:
    """Return a Rich table of test metrics per run, best first, with the baseline last."""
    columns = [metric, "roc_auc", "pr_auc", *(f"precision_at_{k}" for k in top_k), "brier"]
    columns = list(dict.fromkeys(columns))
    table = Table(title=f"leaderboard by {metric} (test weeks)")
    for name in ["model", *columns, "max |Δp|"]:
        table.add_column(name)
    for r in results:
        values = [cell(r.test.get(c)) for c in columns]
        table.add_row(r.model, *values, f"{r.max_abs_delta:.1e}")
    baseline = results[0].baseline
    table.add_row("baseline (actions_recent)", *(cell(baseline.get(c)) for c in columns), "")
    return table


class TrainingDisplay:
    """Training progress (a `training.progress.Progress`): one live line on a terminal
    (family, step, trial, fold, elapsed, what is left), plain log lines elsewhere."""

    def __init__(self, *, live: bool, console: Console = stderr) -> None:
        self.console = console
        self.status: Status | None = console.status("training") if live else None
        self.started = time.monotonic()
        self.where = ""
        self.left_after = ""
        self.text = ""
        self.trials = (0, 0)
        self.left = ""
        """What is left of the current search, from its pace so far."""
        self.folds: list[float] = []
        """When each fold of the current family's search ended (monotonic seconds)."""
        self.search_started = 0.0

    def __enter__(self) -> TrainingDisplay:
        if self.status is not None:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.stop()

    def family(self, name: str, index: int, count: int) -> None:
        """Start family `index` of `count`."""
        self.where = f"{name} ({index}/{count})"
        after = count - index
        self.left_after = (
            f"then {after} more {'family' if after == 1 else 'families'}" if after else ""
        )
        self.trials, self.folds, self.left = (0, 0), [], ""
        self.show("started", log=True)

    def step(self, text: str) -> None:
        """Start one step of the current family."""
        self.text, self.trials, self.left = text, (0, 0), ""
        self.search_started = time.monotonic()
        self.show(text, log=True)

    def trial(self, number: int, total: int) -> None:
        """Start a search trial."""
        self.trials = (number, total)
        self.left = ""
        self.show(f"{self.text}: trial {number}/{total}", log=True, short=f"trial {number}/{total}")

    def fold(self, number: int, total: int) -> None:
        """End a fold of the current trial: the search's pace gives what is left."""
        self.folds.append(time.monotonic())
        trial, trials = self.trials
        per_fold = (self.folds[-1] - self.search_started) / len(self.folds)
        remaining = (trials - trial) * total + (total - number)
        self.left = f"about {_clock(per_fold * remaining)} left in the search" if remaining else ""
        self.show(
            f"{self.text}: trial {trial}/{trials}, fold {number}/{total} done",
            short=f"trial {trial}/{trials}, fold {number}/{total} done",
        )

    def show(self, text: str, *, log: bool = False, short: str = "") -> None:
        """Update the live line, or print a log line (steps and trials, not folds).

        The live line puts the clock and what is left first and the step last (`short` for
        it, when given): a narrow terminal cuts the end of a line, not its start.
        """
        elapsed = _clock(time.monotonic() - self.started)
        rest = ", ".join(part for part in (self.left, self.left_after) if part)
        clock = f"[{elapsed} elapsed{'; ' + rest if rest else ''}]"
        if self.status is not None:
            self.status.update(f"{self.where} {clock} {short or text}")
        elif log:
            line = f"train: {self.where}: {text} {clock}"
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    """Return 75 s as "1m15s", 9 s as "9s"."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"
