"""The report's summary in plain words, every sentence built from this run's metrics.

The report claims only what the run computed: no sentence here holds a number or a verdict
that does not come from `metrics.json` (tests/test_report.py changes the numbers and checks
that no sentence survives).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

OVER, UNDER = 1.15, 1 / 1.15
"""Σp / converters beyond these bounds is called over- or under-stated."""
FAMILIES = {
    "logreg": "logistic regression",
    "random_forest": "random forest",
    "xgboost": "XGBoost",
    "lightgbm": "LightGBM",
}
"""The model families as people name them."""
TIER_WORDS = {"very high": "a week's top", "high": "the next", "medium": "the next"}


def summary_sentences(metrics: Mapping[str, Any], *, capacity: int, horizon: int) -> list[str]:
    """Return the plain-language summary for a sales lead, computed from `metrics`."""
    sentences = _list_sentences(metrics, capacity=capacity, horizon=horizon)
    sentences += _tier_sentences(metrics.get("priority_tiers"))
    sentences += _capacity_sentences(metrics, capacity=capacity)
    sentences += _gap_sentences(metrics, capacity=capacity)
    sentences += _calibration_sentences(metrics.get("calibration"))
    sentences += _shipped_sentences(metrics)
    sentences += _leaderboard_sentences(metrics)
    return sentences


def day(text: str) -> str:
    """Return an ISO date as "2 Aug 2026" (unambiguous, and it does not wrap)."""
    try:
        parsed = date.fromisoformat(str(text)[:10])
    except ValueError:
        return str(text)
    return f"{parsed.day}\u00a0{parsed:%b}\u00a0{parsed.year}"


def percent(share: float) -> str:
    """Return a share as a percentage with the digits it needs (13.9%, 0.41%, 0.013%)."""
    value = 100 * share
    if value == 0:
        return "0%"
    digits = 1 if value >= 1 else 2 if value >= 0.1 else 3
    return f"{value:.{digits}f}%"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _list_sentences(metrics: Mapping[str, Any], *, capacity: int, horizon: int) -> list[str]:
    weekly, baseline = metrics.get("test_weekly", []), metrics.get("baseline_weekly", [])
    key = f"hits_at_{capacity}"
    if not weekly or key not in weekly[0]:
        return []
    hits = _mean([w[key] for w in weekly])
    interval = metrics.get("test_intervals", {}).get(f"precision_at_{capacity}")
    span = f" (90% interval {interval[0] * capacity:.1f} to {interval[1] * capacity:.1f})"
    text = (
        f"Of the {capacity} companies listed each test week ({len(weekly)} weeks, "
        f"{day(weekly[0]['cutoff'])} to {day(weekly[-1]['cutoff'])}), {hits:.1f} converted "
        f"within {horizon} days on average{span if interval else ''}"
    )
    if baseline:
        text += f"; ranking by recent activity alone found {_mean([w[key] for w in baseline]):.1f}"
    sentences = [text + "."]
    converters = sum(w["converters"] for w in weekly)
    listed = sum(w[key] for w in weekly)
    if converters:
        sentences.append(
            f"The lists held {listed} of the {converters} company-weeks that converted "
            f"({listed / converters:.0%})."
        )
    return sentences


def _tier_sentences(tiers: Mapping[str, Any] | None) -> list[str]:
    if not tiers or not isinstance(tiers, Mapping):
        return []
    parts, previous = [], 0.0
    for row in tiers["tiers"]:
        rate = percent(row["conversion_rate"])
        interval = row.get("interval")
        low_high = f" (90% interval {percent(interval[0])} to {percent(interval[1])})"
        words = TIER_WORDS.get(row["priority"], "the rest")
        share = f"{words} {percent(row['top_share'] - previous)}" if words != "the rest" else words
        lift = row.get("lift")
        times = f", {lift:.1f}\u00d7 the average" if lift is not None else ""
        parts.append(f"{row['priority']} ({share}) {rate}{low_high if interval else ''}{times}")
        previous = row["top_share"]
    order = (
        "each tier converted at least as often as the one below it"
        if tiers["monotone"]
        else "the tiers were NOT in order of conversion on these weeks"
    )
    return [f"Priority tiers on the test weeks converted at: {'; '.join(parts)}. So {order}."]


def _capacity_sentences(metrics: Mapping[str, Any], *, capacity: int) -> list[str]:
    shipped = metrics.get("thresholds", {}).get("shipped")
    if not isinstance(shipped, Mapping):
        return []
    rule = metrics["thresholds"]["rules"]["decision"]
    admitted = shipped["admitted_per_week"]["decision"]
    meaning = {
        "capacity": f"the companies within the weekly capacity of {capacity} calls",
        "f_beta": "the companies the F-beta rule calls likely converters",
    }.get(str(rule), f"the companies at or above the fixed probability {rule}")
    return [
        f"The prediction column is 1 for {meaning}: the shipped threshold "
        f"({percent(shipped['decision'])}) admitted {admitted['median']} companies in the "
        f"median test week ({admitted['min']} to {admitted['max']} across the weeks), through "
        "the model and calibration that ship."
    ]


def _gap_sentences(metrics: Mapping[str, Any], *, capacity: int) -> list[str]:
    """Explain the cross-validation vs test gap at the list by the base rates behind them."""
    key = f"precision_at_{capacity}"
    cv, test = metrics.get("cv", {}), metrics.get("test", {})
    cv_precision, cv_base = cv.get(key, {}).get("mean"), cv.get("base_rate", {}).get("mean")
    test_precision, test_base = test.get(key), test.get("base_rate")
    if not all((cv_precision, cv_base, test_precision, test_base)):
        return []
    cv_lift, test_lift = cv_precision / cv_base, test_precision / test_base
    return [
        f"In cross-validation a week's top {capacity} held {cv_precision * capacity:.1f} "
        f"converters, on the test weeks {test_precision * capacity:.1f} "
        f"({test_precision / cv_precision:.1f}\u00d7). A list's hits are the base rate times "
        f"its lift: the base rate went from {percent(cv_base)} of company-weeks in the "
        f"validation folds to {percent(test_base)} on the test weeks "
        f"({test_base / cv_base:.1f}\u00d7), the lift over it from {cv_lift:.0f}\u00d7 to "
        f"{test_lift:.0f}\u00d7 ({test_lift / cv_lift:.1f}\u00d7)."
    ]


def _calibration_sentences(calibration: Mapping[str, Any] | None) -> list[str]:
    if not calibration:
        return []
    after = calibration["after"]["expected_over_observed"]
    before = calibration["before"]["expected_over_observed"]
    return [
        f"Predicted probabilities add up to {after:.2f} times the conversions that happened "
        f"on the test weeks ({_stated(after)}; {_stated(before)} before calibration, "
        f"{before:.2f} times). Calibration: {calibration['method']}, chosen by "
        f"{calibration.get('chosen_by') or 'default'}."
    ]


def _stated(ratio: float) -> str:
    if ratio > OVER:
        return "over-stated"
    if ratio < UNDER:
        return "under-stated"
    return "within 15%"


def _shipped_sentences(metrics: Mapping[str, Any]) -> list[str]:
    shipped = metrics.get("shipped")
    if not shipped:
        return []
    text = (
        f"The shipped model was fitted on {shipped['rows']:,} rows ({shipped['positives']:,} "
        f"converting) with cutoffs {day(shipped['first_cutoff'])} to "
        f"{day(shipped['last_cutoff'])}"
    )
    if shipped["refit"] == "all":
        text += (
            "; the metrics here describe the same parameters fitted on the training side only "
            "and scored on weeks it never saw"
        )
    return [text + "."]


def _leaderboard_sentences(metrics: Mapping[str, Any]) -> list[str]:
    board = metrics.get("leaderboard") or []
    if len(board) < 2:
        return []
    metric = str(metrics["leaderboard_metric"])
    close = [
        FAMILIES.get(row["model"], row["model"]) for row in board[1:] if row.get("overlaps_winner")
    ]
    winner = FAMILIES.get(board[0]["model"], board[0]["model"])
    text = (
        f"{len(board)} families were trained; {winner} ranked first by "
        f"{metric.replace('_at_', '@')} ({board[0][metric]:.3f})"
    )
    if close:
        text += f", and the 90% intervals of {', '.join(close)} overlap it"
    return [text + "."]
