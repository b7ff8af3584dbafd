"""Reasons people read: model columns grouped back into features, worded from the row's values.

Every encoded column belongs to one feature a person knows: the INDUSTRY one-hot levels to
"industry", each `<name>_missing` flag to its feature, `alexa_no_rank` to ALEXA_RANK. A row's
group contribution is the sum of its columns'. The three largest positive groups are the
reasons for, the most negative the reason against. A company with no active week before the
cutoff has `basis` "profile only", and its usage groups merge into one reason: it has no
usage to speak of, and the model knows it. `WORDING` holds each group's sentence.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hubscore.core.contract import (
    ACTIVITY_FEATURES,
    BREADTH_FEATURES,
    EMPLOYEE_RANGES,
    HISTORY_FEATURES,
    OBJECT_RECENCY_FEATURES,
    USAGE_COLUMNS,
    USAGE_STAT_FEATURES,
)

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "reason_against")
BASIS, BASE_VALUE, CONTRIBUTIONS = "basis", "base_value", "contributions"
EXPLANATION_COLUMNS = (*REASON_COLUMNS, BASIS, BASE_VALUE, CONTRIBUTIONS)
EXPLANATION_DTYPES: dict[str, pl.DataType] = {
    name: pl.Float64() if name == BASE_VALUE else pl.String() for name in EXPLANATION_COLUMNS
}
USAGE, PROFILE_ONLY = "usage", "profile only"
USAGE_GROUPS = frozenset(
    (
        *ACTIVITY_FEATURES,
        *USAGE_STAT_FEATURES,
        *HISTORY_FEATURES,
        *OBJECT_RECENCY_FEATURES,
        *BREADTH_FEATURES,
    )
)
NO_USAGE = "no product usage yet: listed on company profile only"
FOLDED_OF = {"alexa_no_rank": "ALEXA_RANK"}
OBJECTS = {"CRM_CONTACTS": "contact", "CRM_COMPANIES": "company", "CRM_DEALS": "deal"}
OBJECTS |= {"EMAIL": "email"}
TIMES = "\u00d7"  # the multiplication sign, as in "3.1x the 4 weeks before"


@dataclass(frozen=True)
class Row:
    """One company's raw feature values and the model's windows, for wording."""

    values: Mapping[str, Any]
    recent_weeks: int
    lookback_weeks: int

    def get(self, name: str) -> Any:
        """Return a value, with NaN read as missing."""
        value = self.values.get(name)
        return None if isinstance(value, float) and math.isnan(value) else value


Wording = Callable[[Row], str]


def group_of(column: str) -> str:
    """Return the feature a model column belongs to ("INDUSTRY=retail" -> "INDUSTRY")."""
    if column.startswith(("INDUSTRY=", "INDUSTRY_")):  # one-hot levels, frequency, flag
        return "INDUSTRY"
    if column.endswith("_missing"):
        column = column.removesuffix("_missing")
    return FOLDED_OF.get(column, column)


def _count(value: Any) -> str:
    return f"{float(value):,.0f}"


def _employees(row: Row) -> str:
    raw = row.get("EMPLOYEE_RANGE")
    if raw is None or not str(raw).strip():
        return "employee count not given"
    folded = re.sub(r"\s+", " ", str(raw).replace(",", "").strip().lower())
    known = {re.sub(r"\s+", " ", r.replace(",", "").lower()): r for r in EMPLOYEE_RANGES}
    if folded not in known:
        return f"employee count not recognised: {str(raw).strip()!r}"
    bucket = known[folded]
    return "1 employee" if bucket == "1" else f"{bucket} employees"


def _industry(row: Row) -> str:
    raw = row.get("INDUSTRY")
    if raw is None or not str(raw).strip():
        return "industry not given"
    return f"industry: {str(raw).strip()}"


def _alexa(row: Row) -> str:
    if row.get("alexa_no_rank"):
        return "no web traffic rank (Alexa)"
    rank = row.get("ALEXA_RANK")
    return "web traffic rank (Alexa) not given" if rank is None else f"Alexa rank {_count(rank)}"


def _recent(row: Row) -> str:
    recent, prior, weeks = row.get("actions_recent"), row.get("actions_prior"), row.recent_weeks
    text = f"actions in the last {weeks} weeks: {_count(recent or 0)}"
    if not prior:
        return f"{text}, none the {weeks} weeks before"
    return f"{text}, {float(recent or 0) / float(prior):.1f}{TIMES} the {weeks} weeks before"


def _trend(row: Row) -> str:
    trend = row.get("trend_actions")
    if trend is None:
        return "no activity trend yet"
    return (
        f"activity trend: {math.exp(float(trend)):.1f}{TIMES} the {row.recent_weeks} weeks before"
    )


def _stat(column: str, stat: str) -> Wording:
    kind, obj = column.split("_", 1)
    thing = f"{OBJECTS[obj]} {'actions' if kind == 'ACTIONS' else 'users'}"
    name = f"{column}_{stat}"

    def word(row: Row) -> str:
        value, weeks = row.get(name), row.lookback_weeks
        if value is None:
            return f"no {thing} in the last {weeks} weeks"
        if stat == "sum":
            unit = thing if kind == "ACTIONS" else f"{OBJECTS[obj]} user-weeks"
            return f"{unit} in the last {weeks} weeks: {_count(value)}"
        if stat == "mean":
            return f"{thing} per week (last {weeks} weeks): {float(value):,.1f}"
        if stat == "max":
            return f"{thing} in the busiest of the last {weeks} weeks: {_count(value)}"
        return f"{thing} vary by {float(value):,.1f} from week to week (last {weeks} weeks)"

    return word


def _when_present(name: str, text: str, missing: str) -> Wording:
    """Word a numeric feature with `text` (formatted with v=value, L/R=weeks) or `missing`."""

    def word(row: Row) -> str:
        value = row.get(name)
        if value is None:
            return missing.format(L=row.lookback_weeks, R=row.recent_weeks)
        return text.format(v=float(value), L=row.lookback_weeks, R=row.recent_weeks)

    return word


def _tenure(row: Row) -> str:
    # tenure_days is capped at the look-back window (no calendar clock): at the cap it means
    # "at least this long", not "exactly".
    value = row.get("tenure_days")
    if value is None:
        return "no usage history"
    if float(value) >= 7 * row.lookback_weeks:
        return f"using the product for {row.lookback_weeks} weeks or more"
    return f"first used the product {float(value):,.0f} days ago"


def _frequency(row: Row) -> str:
    # A share of the weeks the files cover: fewer than the look-back's only early in the files.
    value, observed = row.get("activity_frequency"), row.get("weeks_observed")
    weeks = f"the last {row.lookback_weeks} weeks"
    if observed is not None and observed < row.lookback_weeks:
        weeks = f"the {observed:,.0f} weeks with usage on file"
    if not value:
        return f"no active week in {weeks}"
    return f"active in {float(value):.0%} of {weeks}"


WORDING: dict[str, Wording] = {
    "EMPLOYEE_RANGE": _employees,
    "INDUSTRY": _industry,
    "ALEXA_RANK": _alexa,
    "total_actions": _when_present(
        "total_actions",
        "{v:,.0f} actions in the last {L} weeks",
        "no actions in the last {L} weeks",
    ),
    "total_users": _when_present(
        "total_users", "{v:,.0f} user-weeks in the last {L} weeks", "no users in the last {L} weeks"
    ),
    "actions_per_user": _when_present(
        "actions_per_user",
        "{v:,.1f} actions per user-week (last {L} weeks)",
        "no users in the last {L} weeks",
    ),
    "days_active": lambda row: (
        f"active {float(row.get('days_active') or 0) / 7:.0f} "
        f"of the last {row.lookback_weeks} weeks"
    ),
    "activity_frequency": _frequency,
    **{f"{c}_{s}": _stat(c, s) for c in USAGE_COLUMNS for s in ("sum", "mean", "max", "std")},
    "recency_days": _when_present("recency_days", "last active {v:,.0f} days ago", "never active"),
    "tenure_days": _tenure,
    "actions_recent": _recent,
    "actions_prior": _when_present(
        "actions_prior",
        "actions in the {R} weeks before the last {R}: {v:,.0f}",
        "no actions in the {R} weeks before the last {R}",
    ),
    "trend_actions": _trend,
    "weeks_active_recent": _when_present(
        "weeks_active_recent", "active {v:,.0f} of the last {R} weeks", "no active week lately"
    ),
    "weeks_observed": _when_present(
        "weeks_observed",
        "usage on file for {v:,.0f} of the last {L} weeks",
        "no usage on file yet",
    ),
    **{
        f"{obj}_recency_days": _when_present(
            f"{obj}_recency_days",
            f"last used {name}s {{v:,.0f}} days ago",
            f"no {name} actions in the last {{L}} weeks",
        )
        for obj, name in OBJECTS.items()
    },
    "peak_users_recent": _when_present(
        "peak_users_recent",
        "up to {v:,.0f} users on one object in a week (last {R} weeks)",
        "no users in the last {R} weeks",
    ),
    "peak_users_prior": _when_present(
        "peak_users_prior",
        "up to {v:,.0f} users on one object in a week ({R} weeks before the last {R})",
        "no users in the {R} weeks before the last {R}",
    ),
    "trend_users": lambda row: (
        f"users: {math.exp(float(row.get('trend_users') or 0.0)):.1f}{TIMES} "
        f"the {row.recent_weeks} weeks before"
    ),
    "objects_recent": lambda row: (
        f"used {float(row.get('objects_recent') or 0):.0f} of 4 CRM objects "
        f"in the last {row.recent_weeks} weeks"
    ),
    USAGE: lambda row: NO_USAGE,
}


def basis_of(row: Row) -> str:
    """Return "profile only" when the company had no active week before the cutoff."""
    return PROFILE_ONLY if row.get("recency_days") is None else USAGE


def explain_rows(
    frame: pl.DataFrame,
    contributions: npt.NDArray[np.float64],
    columns: Sequence[str],
    *,
    recent_days: int,
    lookback_days: int,
) -> pl.DataFrame:
    """Return the explanation columns for each row of raw `frame` and its contributions."""
    groups = [group_of(c) for c in columns]
    records: dict[str, list[Any]] = {name: [] for name in EXPLANATION_COLUMNS}
    for i, values in enumerate(frame.iter_rows(named=True)):
        row = Row(values, recent_days // 7, lookback_days // 7)
        basis = basis_of(row)
        reasons = strongest(_grouped(groups, contributions[i, :-1], basis))
        for name, group in zip(REASON_COLUMNS, reasons, strict=True):
            records[name].append(WORDING[group](row) if group else None)
        records[BASIS].append(basis)
        records[BASE_VALUE].append(float(contributions[i, -1]))
        shares = dict(zip(columns, contributions[i, :-1].tolist(), strict=True))
        records[CONTRIBUTIONS].append(json.dumps(shares, allow_nan=False))
    return pl.DataFrame(records, schema=EXPLANATION_DTYPES)


def _grouped(
    groups: Sequence[str], values: npt.NDArray[np.float64], basis: str
) -> dict[str, float]:
    totals: dict[str, float] = {}
    for group, value in zip(groups, values.tolist(), strict=True):
        if basis == PROFILE_ONLY and group in USAGE_GROUPS:
            group = USAGE
        totals[group] = totals.get(group, 0.0) + value
    return totals


def strongest(totals: Mapping[str, float]) -> list[str | None]:
    """Return the three largest positive groups (None-padded), then the most negative one."""
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    positive = [group for group, value in ranked if value > 0][:3]
    negative = [group for group, value in reversed(ranked) if value < 0]
    return [*positive, *[None] * (3 - len(positive)), negative[0] if negative else None]
