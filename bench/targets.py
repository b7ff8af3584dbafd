"""PASS/MISS against a benchmark's targets, each measured against its in-run baseline.

Shared by bench_score.py, bench_serve.py and bench_spark.py: one table on stdout, one list of
dicts for the JSON file.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

COMPARE = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Target:
    """One issue target: `value op bound` passes."""

    label: str
    op: str
    bound: float

    def met(self, value: float) -> bool:
        """Return whether `value` meets the target."""
        return bool(COMPARE[self.op](value, self.bound))


def report(
    targets: Mapping[str, Target],
    now: Mapping[str, float],
    before: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Print each measured target (before, now, PASS/MISS); return the rows for the JSON."""
    before = before or {}
    print(f"{'target':52} {'wanted':>12} {'before':>12} {'now':>12}  verdict")
    rows = []
    for key, value in now.items():
        target = targets[key]
        verdict = "PASS" if target.met(value) else "MISS"
        wanted = f"{target.op} {target.bound:,}"
        was = f"{before[key]:,.3g}" if key in before else "-"
        print(f"{target.label:52} {wanted:>12} {was:>12} {value:>12,.3g}  {verdict}")
        rows.append(
            {"target": target.label, "wanted": wanted, "before": before.get(key), "now": value}
            | {"verdict": verdict}
        )
    return rows
