"""Reasons in a salesperson's words: one wording per concept, from the company's own values.

Each concept (`reasons.CONCEPTS`) is worded from the values a company was given, for the side
it is on: a strength (FOR) or what holds the company back (AGAINST), compared with the free
companies the model was trained on when their quantiles are known ("more deal activity in
the last 13 weeks than 95% of free companies: 295 deal actions"). A wording returns None when
its words would not support the side (heavy use as a reason against, a comparison with fewer
than half the companies); never a statistic (no standard deviation, no "vary by").

Missing is missing: absent, NaN and infinite values are "not given", never zero usage;
`basis_of` tells "usage", "profile only" (the usage fields given say there was none) and
"usage not given" apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubscore.core.contract import EMPLOYEE_RANGES, USAGE_COLUMNS

USAGE, PROFILE_ONLY, NOT_GIVEN = "usage", "profile only", "usage not given"
BASES = (USAGE, PROFILE_ONLY, NOT_GIVEN)
FOR, AGAINST = 1, -1
TIMES = "\u00d7"  # the multiplication sign, as in "up 3.1x on the 4 weeks before"
OBJECTS = {
    "CRM_CONTACTS": ("contacts", "contact"),
    "CRM_COMPANIES": ("company records", "company-record"),
    "CRM_DEALS": ("deals", "deal"),
    "EMAIL": ("email", "email"),
}
"""Usage object -> (concept name, adjective)."""
ACTIVITY_COUNTS = (
    "total_actions",
    "total_users",
    "days_active",
    "actions_recent",
    "actions_prior",
    "weeks_active_recent",
    "peak_users_recent",
    "peak_users_prior",
    "objects_recent",
    *(f"{c}_{s}" for c in USAGE_COLUMNS for s in ("sum", "max")),
)
"""Counts that are 0, never missing, for a company without usage (sql/features.sql)."""
ACTIVITY_SINCE = ("recency_days", "tenure_days")
"""Missing exactly when a company never used the product (given as absent otherwise)."""
MAJORITY = 0.5
"""A comparison with other companies is worth saying only about most of them."""
NOTABLE_FALL = 0.1
"""A fall in use smaller than this share is not said as a reason against."""


@dataclass(frozen=True)
class Row:
    """One company's raw feature values, the model's windows and the training quantiles."""

    values: Mapping[str, Any]
    recent_weeks: int
    lookback_weeks: int
    quantiles: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    """Feature -> [(level, value)], ascending: the training rows' quantiles."""

    def get(self, name: str) -> float | str | None:
        """Return a value; absence, NaN and infinity read as not given (as the encoders do)."""
        value = self.values.get(name)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return None
        return value if isinstance(value, str) else float(value)

    def number(self, name: str) -> float | None:
        """Return a numeric value, or None when it is not given."""
        value = self.get(name)
        return None if value is None or isinstance(value, str) else value

    def more_than(self, name: str, value: float) -> float | None:
        """Return the largest share of training rows known to hold less than `value`."""
        below = [level for level, q in self.quantiles.get(name, ()) if q < value]
        return max(below) if below else None

    def less_than(self, name: str, value: float) -> float | None:
        """Return the largest share of training rows known to hold more than `value`."""
        above = [1.0 - level for level, q in self.quantiles.get(name, ()) if q > value]
        return max(above) if above else None

    def none_below(self, name: str, share: float) -> bool:
        """Return whether at least `share` of the training rows had none (a quantile of 0)."""
        return any(level >= share and q <= 0 for level, q in self.quantiles.get(name, ()))

    def compared(self, name: str) -> bool:
        """Return whether the training quantiles of `name` are known (newer run folders)."""
        return bool(self.quantiles.get(name))


Wording = Callable[[Row, int], str | None]
"""(row, side) -> the sentence, or None when the concept cannot be said on that side."""


def _count(value: float) -> str:
    return f"{value:,.0f}" if abs(value) < 1e9 else f"{value:.2g}"  # no 300-digit counts


def _share(share: float) -> str:
    return f"{share:.0%}"


def _weeks(days: float) -> str:
    weeks = round(days / 7)
    return "1 week" if weeks == 1 else f"{weeks:,} weeks"


def _peers(row: Row, name: str, value: float, side: int, what: str) -> str | None:
    """Return "more <what> than 95% of free companies" for a strength (side FOR), "less ..."
    for a weakness, "" for a strength when no training quantiles are known (old run
    folders), else None: a company not ahead of (or behind) most free companies gives no
    comparison that supports the side, and without quantiles no weakness can be told."""
    if not row.compared(name):
        return "" if side == FOR else None
    share = row.more_than(name, value) if side == FOR else row.less_than(name, value)
    if share is None or share < MAJORITY:
        return None
    if side == FOR and row.none_below(name, share):  # "more than 95%" of zeros: say so
        return f"{what}, where {_share(share)} of free companies had none"
    return f"{'more' if side == FOR else 'less'} {what} than {_share(share)} of free companies"


def _said(lead: str | None, figures: str, alone: str) -> str | None:
    """Return "lead: figures", or `alone` (the figures with their window) without a lead."""
    if lead is None:
        return None
    return f"{lead}: {figures}" if lead else alone


def _actions(n: float, kind: str = "") -> str:
    noun = f"{kind} action" if kind else "action"
    return f"{_count(n)} {noun}{'' if n == 1 else 's'}"


def _recent(row: Row, side: int) -> str | None:
    actions, weeks = row.number("actions_recent"), row.recent_weeks
    active, since = row.number("weeks_active_recent"), row.number("recency_days")
    window = f"the last {weeks} weeks"
    if actions is None and active is None and since is None:
        return "recent activity not given"
    if actions is None:  # only the weeks active or the recency were given
        return _recent_without_counts(side, active, since, weeks)
    if actions <= 0:
        if side == FOR:
            return None
        # A last active week inside the window contradicts its zero actions: not said.
        last = f", last active {_weeks(since)} ago" if since and since >= 7 * weeks else ""
        return f"no activity in {window}{last}"
    return _volume(row, side, ("actions_recent", actions), active, weeks, f"activity in {window}")


def _volume(
    row: Row, side: int, counted: tuple[str, float], active: float | None, weeks: int, what: str
) -> str | None:
    """Word a window's actions (and active weeks), compared with free companies on `name`:
    "more activity in the last 4 weeks than 95% of free companies: 412 actions, active in 3
    of the 4 weeks"."""
    name, actions = counted
    figures, alone = _actions(actions), f"{_actions(actions)} {what.split(' ', 1)[1]}"
    if active is not None:
        figures += f", active in {active:,.0f} of the {weeks} weeks"
        alone += f", active in {active:,.0f} of them"
    return _said(_peers(row, name, actions, side, what), figures, alone)


def _recent_without_counts(
    side: int, active: float | None, since: float | None, weeks: int
) -> str | None:
    if active is not None and active > 0:
        return f"active in {active:,.0f} of the last {weeks} weeks" if side == FOR else None
    if since is not None and since < 7:
        return "active in the last week" if side == FOR else None
    if since is not None:
        return f"last active {_weeks(since)} ago" if side == AGAINST else None
    return None if side == FOR else f"no active week in the last {weeks} weeks"


def _momentum(row: Row, side: int) -> str | None:
    recent, prior = row.number("actions_recent"), row.number("actions_prior")
    weeks = row.recent_weeks
    if recent is None or prior is None:
        return _trend_only(row, side)
    figures = f"{_actions(recent)} in the last {weeks} weeks against {_count(prior)}"
    if side == FOR:
        if recent <= prior:
            return None
        if prior <= 0:
            return f"new activity: {_actions(recent)} in the last {weeks} weeks, none before"
        return f"usage up {recent / prior:.1f}{TIMES} on the {weeks} weeks before: {figures}"
    if recent >= prior and recent > 0:
        return None
    if prior <= 0:
        return f"no activity in the last {2 * weeks} weeks"
    if recent <= 0:
        return f"stopped: no actions in the last {weeks} weeks after {_count(prior)} before"
    fell = 1 - recent / prior
    if fell < NOTABLE_FALL:  # a few percent is no reason to hold back
        return None
    size = "by half" if 0.45 <= fell <= 0.55 else f"by {fell:.0%}"
    return f"usage fell {size} against the {weeks} weeks before: {figures}"


def _trend_only(row: Row, side: int) -> str | None:
    trend, weeks = row.number("trend_actions"), row.recent_weeks
    if trend is None:
        return "activity trend not given"
    ratio = math.exp(trend)  # (recent + 1) / (prior + 1)
    if side == FOR and ratio > 1:
        return f"usage up {ratio:.1f}{TIMES} on the {weeks} weeks before"
    if side == AGAINST and ratio <= 1 - NOTABLE_FALL:
        return f"usage fell by {1 - ratio:.0%} against the {weeks} weeks before"
    return None


def _regular(row: Row, side: int) -> str | None:
    actions, days = row.number("total_actions"), row.number("days_active")
    share, observed = row.number("activity_frequency"), row.number("weeks_observed")
    weeks = row.lookback_weeks
    if observed is not None and 0 < observed < weeks:  # early in the files
        weeks = int(observed)
        window = f"the {weeks} weeks with usage on file"
    else:
        window = f"the last {weeks} weeks"
    active = days / 7 if days is not None else (None if share is None else share * weeks)
    if actions is None and active is None:
        return f"use over {window} not given"
    if not actions and not active:
        return None if side == FOR else f"no use in {window}"
    if actions is None:  # only how often was given
        return f"active in {active:,.0f} of {window}" if side == FOR else None
    return _volume(row, side, ("total_actions", actions), active, weeks, f"use in {window}")


def _team(row: Row, side: int) -> str | None:
    users, weeks = row.number("total_users"), row.lookback_weeks
    window = f"the last {weeks} weeks"
    if users is None:
        per_user = row.number("actions_per_user")
        if per_user is None:
            return "number of users not given"
        return f"{per_user:,.1f} actions per user each week" if side == FOR else None
    if users <= 0:
        return None if side == FOR else f"no users in {window}"
    figures = f"{_count(users)} user-weeks (each week's users, added up)"
    lead = _peers(row, "total_users", users, side, f"people using it in {window}")
    return _said(lead, figures, f"{figures} in {window}")


def _tenure(row: Row, side: int) -> str | None:
    # tenure_days is capped at the look-back window (no calendar clock): at the cap it means
    # "at least this long", not "exactly".
    days, weeks = row.number("tenure_days"), row.lookback_weeks
    if days is None:
        return "time with the product not given"
    if days >= 7 * weeks:
        if side == FOR:
            return f"has used the product for {weeks} weeks or more"
        return f"has used the free product for {weeks} weeks or more without buying"
    started = f"{_weeks(days)} ago" if days >= 7 else "this week"
    return f"new to the product: first used it {started}"


def _object(obj: str) -> Wording:
    concept, adjective = OBJECTS[obj]

    def word(row: Row, side: int) -> str | None:
        actions, users = row.number(f"ACTIONS_{obj}_sum"), row.number(f"USERS_{obj}_sum")
        window = f"the last {row.lookback_weeks} weeks"
        if actions is None and users is None:
            return f"{adjective} activity not given"
        if not actions:  # without actions, no users either (USERS > 0 exactly when ACTIONS > 0)
            return None if side == FOR else f"has not used {concept} in {window}"
        figures = _actions(actions, adjective)
        what = f"{adjective} activity in {window}"
        lead = _peers(row, f"ACTIONS_{obj}_sum", actions, side, what)
        return _said(lead, figures, f"{figures} in {window}")

    return word


def _employees(row: Row, side: int) -> str | None:
    raw = row.get("EMPLOYEE_RANGE")
    if raw is None or not str(raw).strip():
        return "employee count not given"
    folded = re.sub(r"\s+", " ", str(raw).replace(",", "").strip().lower())
    known = {re.sub(r"\s+", " ", r.replace(",", "").lower()): r for r in EMPLOYEE_RANGES}
    if folded not in known:
        return f"employee count not recognised: {str(raw).strip()!r}"
    bucket = known[folded]
    return "1 employee" if bucket == "1" else f"{bucket} employees"


def _industry(row: Row, side: int) -> str | None:
    raw = row.get("INDUSTRY")
    if raw is None or not str(raw).strip():
        return "industry not given"
    return f"industry: {str(raw).strip()}"


def _web(row: Row, side: int) -> str | None:
    if row.get("alexa_no_rank"):
        return "website too little visited to have an Alexa traffic rank"
    rank = row.number("ALEXA_RANK")
    if rank is None:
        return "Alexa web traffic rank not given"
    detail = f"Alexa rank {_count(rank)}"
    if not row.compared("ALEXA_RANK"):
        return detail if side == FOR else None
    # A lower rank is a busier website: "busier" means a rank below the others'.
    share = row.less_than("ALEXA_RANK", rank) if side == FOR else row.more_than("ALEXA_RANK", rank)
    if share is None or share < MAJORITY:
        return None
    busier = "busier" if side == FOR else "less visited"
    return f"{busier} website than {_share(share)} of ranked free companies: {detail}"


def _usage(row: Row, side: int) -> str | None:
    if basis_of(row) == NOT_GIVEN:
        return "product usage not given"
    if side == FOR:
        return "no product usage yet: the company profile alone speaks for it"
    return "has not used the product yet"


WORDING: dict[str, Wording] = {
    "recent activity": _recent,
    "momentum": _momentum,
    "regular use": _regular,
    "team": _team,
    "time with the product": _tenure,
    **{concept: _object(obj) for obj, (concept, _) in OBJECTS.items()},
    "company size": _employees,
    "industry": _industry,
    "web presence": _web,
    USAGE: _usage,
}
"""Each concept's wording; "usage" is every usage concept merged, for a company without."""


def basis_of(row: Row) -> str:
    """Return "usage", "profile only" (the given usage fields say there was none) or "usage
    not given" (no usage field was given: nothing is assumed)."""
    counts = [row.number(name) for name in ACTIVITY_COUNTS]
    since = [row.number(name) for name in ACTIVITY_SINCE]
    if any(v is not None and v != 0 for v in counts) or any(v is not None for v in since):
        return USAGE
    return PROFILE_ONLY if any(v is not None for v in counts) else NOT_GIVEN
