"""The calendar the spines are cut from: weekly cutoffs, and the day conversions are known until.

A label says whether a company converted within the horizon after a cutoff, so it is only
true where the files saw the whole horizon. They saw usage up to its last complete week, and
conversions up to the day they were exported: `known_until`, given (`--known-until`,
`features.known_until`) or derived from the files. Derived, it is the last usage day, carried
forward through the CLOSEDATEs that follow it at most a week apart (a customers file is often
exported a little after the usage file). A mistyped close years ahead cannot move it: it lies
after a longer gap, and is flagged in quality.json instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from hubscore.core.config import FeaturesConfig
from hubscore.core.errors import ValidationError

CLOSE_GAP_DAYS = 7
"""The longest gap between consecutive CLOSEDATEs after the last usage day that still carries
the derived known-until date forward."""
LAST_WEEK_DAYS = 6
"""Days after the last usage day that a cutoff may lie and still see no missing usage week."""


@dataclass(frozen=True)
class KnownUntil:
    """The last day the files know conversions for, and where that date comes from."""

    day: date
    source: str


def labels_known_until(timeline: Mapping[str, Any], cfg: FeaturesConfig) -> KnownUntil:
    """Return the configured known-until date, or the one derived from the usage calendar."""
    if cfg.known_until is not None:
        return KnownUntil(cfg.known_until, "given (--known-until, features.known_until)")
    usage_end: date = timeline["usage_end"]
    known = usage_end
    for close in sorted(d for d in timeline.get("close_dates") or [] if d > usage_end):
        if (close - known).days > CLOSE_GAP_DAYS:
            break
        known = close
    if known == usage_end:
        return KnownUntil(known, "derived: the last usage day")
    return KnownUntil(
        known,
        f"derived: the last usage day ({usage_end}) carried forward through the CLOSEDATEs "
        f"that follow it at most {CLOSE_GAP_DAYS} days apart",
    )


def weekly_cutoffs(timeline: Mapping[str, Any], cfg: FeaturesConfig) -> list[date]:
    """Return the Sunday cutoffs after the warm-up whose horizon ends by the known-until date.

    The first cutoff has `warmup_days` of history (the whole look-back when the warm-up is as
    long); earlier windows are partly before the files start, which weeks_observed tells.
    """
    first_week: date = timeline["first_week"]
    usage_end: date = timeline["usage_end"]
    known_until = labels_known_until(timeline, cfg).day
    warmup_days = min(cfg.warmup_days, cfg.lookback_days)
    weeks_back = math.ceil(max(warmup_days - 7, 0) / 7)
    first = first_week + timedelta(days=6 + 7 * weeks_back)
    last = min(usage_end, known_until - timedelta(days=cfg.horizon_days))
    last -= timedelta(days=(last.isoweekday() % 7))  # back to a Sunday
    if first > last:
        raise ValidationError(
            f"usage from {first_week} to {usage_end} (conversions known until {known_until}) "
            f"is too short for a {warmup_days}-day warm-up and a {cfg.horizon_days}-day horizon",
            hint="lower --warmup-days or --horizon-days, set --known-until, or use more history",
        )
    return [first + timedelta(weeks=n) for n in range(((last - first).days // 7) + 1)]


def is_customer_cutoffs(
    timeline: Mapping[str, Any], cfg: FeaturesConfig, as_of: date
) -> tuple[date, date]:
    """Return the first and last cutoff at which an is_customer row compares with the others.

    A row's whole look-back window must lie in the files: from the first usage week on (so
    weeks_observed and the tenure cap are the same for customers and free companies, whatever
    `warmup_days`) and not past the week after the last usage week (missing weeks would read
    as inactivity). Free companies are seen at `as_of`, which must lie in that range too.
    """
    first = timeline["first_week"] + timedelta(days=cfg.lookback_days)
    last = timeline["usage_end"] + timedelta(days=LAST_WEEK_DAYS)
    if not first <= as_of <= last:
        raise ValidationError(
            f"is_customer sees free companies at {as_of}, outside {first}..{last}: the "
            f"{cfg.lookback_days}-day look-back window before it must lie within the usage "
            f"weeks ({timeline['first_week']} to {timeline['usage_end']})",
            hint="use files with more history than the look-back window, or a shorter "
            "--lookback-days",
        )
    return first, last
