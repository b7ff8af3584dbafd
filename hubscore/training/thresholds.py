"""Thresholds and priority tiers: rules cut on a model's own scores, and what tiers realised.

A threshold is a rule any model's calibrated scores can be cut by without labels: the weekly
capacity (a count a week), a share of a week's companies (the priority tiers), or the share
the F-beta optimum admitted on out-of-fold predictions (labels choose it there, and only
there). `thresholds_for` cuts the rules on one model's scores of reference weeks: the
evaluated fit's, for honest test metrics, and the shipped model's, for the manifest, so the
shipped thresholds admit what they promise through the model and calibration that ship.
`outcome_by_tier` says how often each tier converted on weeks the evaluated fit never saw.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve

from hubscore.training.evaluate import INTERVAL_RESAMPLES, Ints, Vector, company_resamples


def fbeta_threshold(y: Ints, p: Vector, beta: float) -> float:
    """Return the threshold that maximises F-beta on (validation) predictions."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]
    denom = beta**2 * precision + recall
    score = np.divide(
        (1 + beta**2) * precision * recall, denom, where=denom > 0, out=np.zeros_like(denom)
    )
    return _clip_threshold(float(thresholds[int(np.argmax(score))]))


def weekly_cut(p: Vector, weeks: Ints, *, count: int = 0, share: float = 0.0) -> float:
    """Return the probability that admits `count` rows (or `share` of them) in the median week.

    Each week's cut lies midway between the last row it admits and the first it leaves out, so
    a probability a float32 rounding away still falls on its side; the cut is the lower median
    of the weeks' cuts. Then at least half the weeks admit `count` or more and at least half
    `count` or fewer: the lower median of the weekly counts is `count` (ties apart).
    """
    cuts = []
    for week in np.unique(weeks):
        scores = np.sort(p[weeks == week])[::-1]
        k = min(max(count or round(share * scores.size), 1), scores.size)
        below = scores[k] if k < scores.size else scores[-1] / 2
        cuts.append((scores[k - 1] + below) / 2)
    return _clip_threshold(float(np.sort(cuts)[(len(cuts) - 1) // 2])) if cuts else 0.5


def admitted(p: Vector, weeks: Ints, threshold: float) -> dict[str, float]:
    """Return how many rows a week has at or above `threshold`: lower median, min, max, mean."""
    counts = [int((p[weeks == week] >= threshold).sum()) for week in np.unique(weeks)]
    if not counts:
        return {"median": 0, "min": 0, "max": 0, "mean": 0.0}
    ordered = sorted(counts)
    return {
        "median": ordered[(len(ordered) - 1) // 2],
        "min": ordered[0],
        "max": ordered[-1],
        "mean": float(np.mean(counts)),
    }


def weekly_share(p: Vector, weeks: Ints, threshold: float) -> float:
    """Return the mean share of a week's rows at or above `threshold`."""
    shares = [float(np.mean(p[weeks == week] >= threshold)) for week in np.unique(weeks)]
    return float(np.mean(shares)) if shares else 0.0


def _clip_threshold(value: float) -> float:
    return float(min(max(value, 1e-6), 1 - 1e-6))


def choose_f_beta(folds: Sequence[tuple[Ints, Vector, Ints]], *, beta: float) -> dict[str, float]:
    """Pick the F-beta threshold on out-of-fold predictions (never on test) and its weekly
    share: the share carries it to any other model's scores, label-free."""
    y = np.concatenate([f[0] for f in folds])
    p = np.concatenate([f[1] for f in folds])
    weeks = np.concatenate([f[2] for f in folds])
    threshold = fbeta_threshold(y, p, beta)
    return {"threshold": threshold, "weekly_share": weekly_share(p, weeks, threshold)}


@dataclass(frozen=True)
class ThresholdRules:
    """What each threshold promises, in terms any model's scores can be cut by, label-free."""

    capacity: int
    """Rows a week the capacity threshold admits (`training.weekly_capacity`)."""
    f_beta_share: float
    """The share of a week's rows the F-beta threshold admitted on out-of-fold predictions."""
    decision: str | float
    """"capacity", "f_beta" or a fixed probability (`training.decision_threshold`)."""
    tier_shares: tuple[float, ...]
    """Cumulative shares of a week's rows that end the tiers above "low"."""


def thresholds_for(p: Vector, weeks: Ints, rules: ThresholdRules) -> dict[str, Any]:
    """Cut one model's calibrated scores on reference weeks by `rules`: every threshold and
    tier bound, and how many rows each admitted per week there."""
    capacity = weekly_cut(p, weeks, count=rules.capacity)
    f_beta = weekly_cut(p, weeks, share=rules.f_beta_share)
    decision = rules.decision
    cut = {"capacity": capacity, "f_beta": f_beta}.get(str(decision), decision)
    assert isinstance(cut, float | int)
    tiers = {
        name: weekly_cut(p, weeks, share=share)
        for name, share in zip(PRIORITY_TIERS, rules.tier_shares, strict=False)
    }
    return {
        "decision": float(cut),
        "capacity": capacity,
        "f_beta": f_beta,
        "priority": tiers,
        "admitted_per_week": {
            "decision": admitted(p, weeks, float(cut)),
            "capacity": admitted(p, weeks, capacity),
            "f_beta": admitted(p, weeks, f_beta),
            **{name: admitted(p, weeks, bound) for name, bound in tiers.items()},
        },
    }


def confidence_bands(thresholds: Mapping[str, float]) -> dict[str, float]:
    """Return band lower bounds from the F-beta and weekly-capacity thresholds.

    Of the two, the stricter starts "high" and the looser starts "medium": when the F-beta
    threshold is stricter, "high" is what the model calls a likely converter and "medium" the
    rest of the week's calls; when the capacity threshold is stricter, "high" is about a
    week's calls and "medium" the other likely converters. Below both is "low".
    """
    f_beta, capacity = thresholds["f_beta"], thresholds["capacity"]
    return {"high": max(f_beta, capacity), "medium": min(f_beta, capacity)}


PRIORITY_TIERS = ("very high", "high", "medium", "low")


def tiers_by_share(p: Vector, weeks: Ints, shares: Sequence[float]) -> Ints:
    """Return each row's tier index: each week's rows ranked, the first `shares[0]` of them
    "very high" (at least one row), up to `shares[1]` "high" and so on; ties keep row order."""
    tiers = np.empty(len(p), dtype=np.int64)
    for week in np.unique(weeks):
        rows = np.flatnonzero(weeks == week)
        order = rows[np.lexsort((rows, -p[rows]))]  # best first; ties keep row order
        ends = [max(round(share * order.size), 1) for share in shares]
        tiers[order] = np.searchsorted(np.asarray(ends), np.arange(order.size), side="right")
    return tiers


def outcome_by_tier(
    companies: Ints,
    y: Ints,
    p: Vector,
    weeks: Ints,
    shares: Sequence[float],
    *,
    resamples: int = INTERVAL_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Return each tier's rows, conversions, conversion rate with a 90% interval that
    resamples companies, and lift over the base rate; and whether the rates fall tier by tier.

    A tier is a share of each week's ranked companies, as the shipped thresholds cut them.
    """
    tiers = tiers_by_share(p, weeks, shares)
    n_tiers = len(PRIORITY_TIERS)
    rows = np.bincount(tiers, minlength=n_tiers)
    converted = np.bincount(tiers, weights=y, minlength=n_tiers)
    rates = np.divide(converted, rows, out=np.zeros(n_tiers), where=rows > 0)
    base = float(y.mean()) if y.size else 0.0
    drawn = _tier_rates_resampled(companies, y, tiers, resamples=resamples, seed=seed)
    table = []
    for index, name in enumerate(PRIORITY_TIERS):
        seen = drawn[:, index][~np.isnan(drawn[:, index])]
        interval = (
            [float(np.percentile(seen, 5)), float(np.percentile(seen, 95))] if seen.size else None
        )
        table.append(
            {
                "priority": name,
                "top_share": shares[index] if index < len(shares) else 1.0,
                "rows": int(rows[index]),
                "converted": int(converted[index]),
                "conversion_rate": float(rates[index]),
                "interval": interval,
                "lift": float(rates[index]) / base if base else None,
                "share_of_converters": float(converted[index]) / max(int(y.sum()), 1),
            }
        )
    filled = [r for r, n in zip(rates.tolist(), rows.tolist(), strict=True) if n]
    monotone = all(a >= b for a, b in itertools.pairwise(filled))
    return {"tiers": table, "monotone": monotone, "base_rate": base}


def _tier_rates_resampled(
    companies: Ints, y: Ints, tiers: Ints, *, resamples: int, seed: int
) -> npt.NDArray[np.float64]:
    """Return (resamples, tiers) conversion rates, companies drawn with replacement."""
    n_tiers = len(PRIORITY_TIERS)
    rates = []
    for copies in company_resamples(companies, resamples=resamples, seed=seed):
        listed = np.bincount(tiers, weights=copies, minlength=n_tiers)
        hits = np.bincount(tiers, weights=copies * y, minlength=n_tiers)
        rates.append(np.divide(hits, listed, out=np.full(n_tiers, np.nan), where=listed > 0))
    return np.array(rates).reshape(-1, n_tiers)
