"""One list's outcome: its maturity and, at each k, what converted against what was promised.

A list scored at cutoff C by a model with horizon H counts a company as converted when its
CLOSEDATE is in (C, C + H], as the label `train` learned. It is *mature* when C + H is at or
before the day conversions are known until, *immature* when that day is at or before C (none
of its horizon is known), and *maturing* in between: then only conversions up to that day are
counted, against the share of the expected conversions the days known cover (conversions
assumed spread evenly over the horizon: the files give no better shape for few converters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from hubscore.core.ledger import LedgerEntry, scan_list
from hubscore.monitoring.outcomes import Outcomes
from hubscore.monitoring.stats import expected_figures, wilson

MATURE, MATURING, IMMATURE = "mature", "maturing", "immature"
PROBABILITY = "conversion_probability"


@dataclass(frozen=True)
class ListResult:
    """One list (a model's ranking at one cutoff) joined with what happened after it."""

    entry: LedgerEntry
    cutoff: date
    status: str
    days_known: int
    """Days of the horizon the files cover (0 .. horizon)."""
    scored: int
    converters: int
    """Scored companies that converted in the known part of the horizon."""
    top: pl.DataFrame
    """The rows ranked within the largest k (and the run's list): id, rank, probability,
    listed, hold, converted."""
    closed_before: int
    """Of those rows, companies whose CLOSEDATE is at or before the cutoff (a late export, or an
    input older than the customers file): counted as not converted."""
    missing: int | None
    """Of those rows, companies in neither company file (None without a noncustomers file)."""

    @property
    def horizon(self) -> int:
        """The model's horizon in days."""
        return self.entry.horizon_days

    @property
    def known_share(self) -> float:
        """The share of the horizon the files cover."""
        return self.days_known / self.horizon

    def at(self, k: int) -> dict[str, Any]:
        """Return the figures of the top `k`: counts, precision, recall, lift, expected."""
        top = self.top.filter(pl.col("rank") <= k)
        listed = top.height
        p = top.get_column(PROBABILITY).cast(pl.Float64)
        expected, variance = float(p.sum()), float((p * (1 - p)).sum())
        out: dict[str, Any] = {"listed": listed, "expected": expected}
        if self.status == IMMATURE:
            return out | {"converted": None, "precision": None}
        converted = int(top.get_column("converted").sum())
        share = self.known_share
        precision = converted / listed if listed else None
        base = self.converters / self.scored if self.scored else None
        low, high = wilson(converted, listed)
        recall_low, recall_high = wilson(converted, self.converters)
        return out | {
            "converted": converted,
            "precision": precision,
            "precision_low": low,
            "precision_high": high,
            "recall": converted / self.converters if self.converters else None,
            "recall_low": recall_low,
            "recall_high": recall_high,
            "lift": precision / base if precision is not None and base else None,
            "share_known": share,
            **so_far(expected_figures(converted, expected * share, variance * share)),
        }

    def uplift(self) -> dict[str, Any] | None:
        """Return called vs held conversion of the list handed out (with a control group)."""
        if self.entry.holdout is None or self.status == IMMATURE:
            return None
        listed = self.top.filter(pl.col("listed"))
        counts = {}
        for name, rows in (
            ("called", listed.filter(~pl.col("hold"))),
            ("held", listed.filter("hold")),
        ):
            converted = int(rows.get_column("converted").sum())
            low, high = wilson(converted, rows.height)
            rate = converted / rows.height if rows.height else None
            counts[name] = {"companies": rows.height, "converted": converted, "rate": rate}
            counts[name] |= {"rate_low": low, "rate_high": high}
        called, held = counts["called"]["rate"], counts["held"]["rate"]
        diff = called - held if called is not None and held is not None else None
        return counts | {"uplift": diff}


def so_far(figures: dict[str, Any]) -> dict[str, Any]:
    """Name a list's expected figures for the days known (`expected_so_far`, ...)."""
    names = {"expected": "expected_so_far", "expected_low": "expected_so_far_low"}
    names |= {"expected_high": "expected_so_far_high"}
    return {names.get(key, key): value for key, value in figures.items()}


def maturity(cutoff: date, horizon: int, known_until: date) -> tuple[str, int]:
    """Return a list's status and the days of its horizon the files cover."""
    days = (known_until - cutoff).days
    if days >= horizon:
        return MATURE, horizon
    if days <= 0:
        return IMMATURE, 0
    return MATURING, days


def load_list(
    entry: LedgerEntry, cutoff: date, outcomes: Outcomes, *, known_until: date, depth: int
) -> ListResult:
    """Read one list's top rows and converters from the ledger (lazily: a run can be huge)."""
    status, days = maturity(cutoff, entry.horizon_days, known_until)
    window_end = cutoff + timedelta(days=days)
    scan = scan_list(entry, cutoff)
    closes = outcomes.closes.lazy()
    converted = (
        scan.select("id", "rank")
        .join(closes, on="id")
        .filter((pl.col("closed") > cutoff) & (pl.col("closed") <= window_end))
        .collect()
    )
    deep = max(depth, entry.top_k or 0)
    top = (
        scan.filter(pl.col("rank") <= deep)
        .select("id", "rank", PROBABILITY, "listed", "hold")
        .collect()
        .with_columns(pl.col("id").is_in(converted.get_column("id").implode()).alias("converted"))
    )
    early = closes.filter(pl.col("closed") <= cutoff).collect()
    known = outcomes.known
    return ListResult(
        entry=entry,
        cutoff=cutoff,
        status=status,
        days_known=days,
        scored=_scored(entry, cutoff),
        converters=converted.height,
        top=top,
        closed_before=top.join(early, on="id", how="semi").height,
        missing=None if known is None else top.join(known, on="id", how="anti").height,
    )


def _scored(entry: LedgerEntry, cutoff: date) -> int:
    wanted = cutoff.isoformat()
    return next(int(c["rows"]) for c in entry.cutoffs if c["cutoff"] == wanted)
