"""An independent Polars computation of the point-in-time usage features, for cross-checks.

Written from the definitions in sql/features.sql's header, not from its SQL, so a test that
compares the two catches a mistake in either.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl

from hubscore.core.contract import USAGE_COLUMNS

ACTIONS = [c for c in USAGE_COLUMNS if c.startswith("ACTIONS")]
USERS = [c for c in USAGE_COLUMNS if c.startswith("USERS")]


def read_usage_csv(path: str) -> pl.DataFrame:
    """Read a clean usage CSV with a week_start/week_end per row."""
    usage = pl.read_csv(path, null_values=[""], schema_overrides={"WHEN_TIMESTAMP": pl.Utf8})
    week_start = pl.col("WHEN_TIMESTAMP").str.to_datetime("%Y-%m-%d %H:%M:%S%.3f").dt.date()
    return usage.with_columns(week_start=week_start).with_columns(
        week_end=pl.col("week_start") + timedelta(days=6)
    )


def reference_features(
    usage: pl.DataFrame, company_id: int, cutoff: date, *, lookback: int, recent: int
) -> dict[str, object]:
    """Compute one spine row's usage features the slow, obvious way."""
    first_week_end: date = usage["week_end"].min()  # type: ignore[assignment]
    weeks_to_cutoff = (cutoff - first_week_end).days // 7 + 1
    week_ends = [first_week_end + timedelta(weeks=k) for k in range(max(weeks_to_cutoff, 0))]
    observed = sum(1 for end in week_ends if end <= cutoff and (cutoff - end).days < lookback)
    seen = usage.filter((pl.col("id") == company_id) & (pl.col("week_end") <= cutoff))
    age = (pl.lit(cutoff) - pl.col("week_end")).dt.total_days()
    seen = seen.with_columns(
        age=age,
        actions=pl.sum_horizontal(ACTIONS),
        users=pl.sum_horizontal(USERS),
    )
    window = seen.filter(pl.col("age") < lookback)
    active = seen.filter(pl.col("actions") > 0)
    total_actions = int(window["actions"].sum())
    total_users = int(window["users"].sum())
    row: dict[str, object] = {
        "total_actions": total_actions,
        "total_users": total_users,
        "actions_per_user": total_actions / total_users if total_users else None,
        "days_active": 7 * window.filter(pl.col("actions") > 0).height,
        "weeks_observed": observed,
        "activity_frequency": window.filter(pl.col("actions") > 0).height / max(observed, 1),
        "recency_days": (cutoff - active["week_end"].max()).days if active.height else None,
        "tenure_days": min((cutoff - seen["week_start"].min()).days, lookback)
        if seen.height
        else None,
        "actions_recent": int(window.filter(pl.col("age") < recent)["actions"].sum()),
        "actions_prior": int(
            window.filter((pl.col("age") >= recent) & (pl.col("age") < 2 * recent))["actions"].sum()
        ),
    }
    recent_rows = window.filter(pl.col("age") < recent)
    prior_rows = window.filter((pl.col("age") >= recent) & (pl.col("age") < 2 * recent))
    peak = {  # the most users on one object in any week of the window (0 without rows)
        side: int(rows.select(pl.max_horizontal(USERS).max()).item() or 0)
        for side, rows in (("recent", recent_rows), ("prior", prior_rows))
    }
    row["peak_users_recent"], row["peak_users_prior"] = peak["recent"], peak["prior"]
    row["trend_users"] = math.log((peak["recent"] + 1) / (peak["prior"] + 1))
    row["objects_recent"] = sum(int(recent_rows[a].sum() > 0) for a in ACTIONS)
    for action in ACTIONS:
        used = window.filter(pl.col(action) > 0)
        name = action.removeprefix("ACTIONS_") + "_recency_days"
        row[name] = int(used["age"].min()) if used.height else None  # type: ignore[arg-type]
    for column in USAGE_COLUMNS:
        values = window[column]
        row[f"{column}_sum"] = int(values.sum())
        row[f"{column}_max"] = int(values.max()) if window.height else 0  # type: ignore[arg-type]
        row[f"{column}_mean"] = values.mean() if window.height else None
        row[f"{column}_std"] = values.std(ddof=0) if window.height else None
    return row
