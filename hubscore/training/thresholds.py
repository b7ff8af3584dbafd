"""Thresholds and priority tiers: rules cut on a model's own scores, and what tiers realised.

A threshold is a rule any model's calibrated scores can be cut by without labels: the weekly
capacity (a count a week), a share of a week's companies (the priority tiers), or the share
the F-beta optimum admitted on out-of-fold predictions (labels choose it there, and only
there). `thresholds_for` cuts the rules on one model's scores of reference weeks: the
evaluated fit's, for honest test metrics, and the shipped model's, for the manifest, so the
shipped thresholds admit what they promise through the model and calibration that ship.
`outcome_by_tier` says how often each tier converted on weeks the evaluated fit never saw.

With negatives sampled (`training.max_rows`), each function takes the rows' weights: a kept
negative stands for the rows it was sampled from, so counts and shares are the whole file's.
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


def fbeta_threshold(y: Ints, p: Vector, beta: float, weights: Vector | None = None) -> float:
    """Return the threshold that maximises F-beta on (validation) predictions."""
    precision, recall, thresholds = precision_recall_curve(y, p, sample_weight=weights)
    precision, recall = precision[:-1], recall[:-1]
    denom = beta**2 * precision + recall
    score = np.divide(
        (1 + beta**2) * precision * recall, denom, where=denom > 0, out=np.zeros_like(denom)
    )
    return _clip_threshold(float(thresholds[int(np.argmax(score))]))


def weekly_cut(
    p: Vector,
    weeks: Ints,
    *,
    count: int = 0,
    share: float = 0.0,
    weights: Vector | None = None,
) -> float:
    """Return the probability that admits `count` rows (or `share` of them) in the median week.

    Each week's cut lies midway between the last row it admits and the first it leaves out
    (rows tied with the last are admitted too), so a probability a float32 rounding away still
    falls on its side; the cut is the lower median of the weeks' cuts. Then at least half the
    weeks admit `count` or more and at least half `count` or fewer: the lower median of the
    weekly counts is `count` (ties apart).
    """
    w = _ones_or(weights, p)
    cuts = []
    for week in np.unique(weeks):
        rows = np.flatnonzero(weeks == week)
        order = rows[np.argsort(-p[rows], kind="stable")]
        scores, reached = p[order], np.cumsum(w[order])
        k = min(max(count or round(share * reached[-1]), 1), reached[-1])
        last = int(np.searchsorted(reached, k))  # the row that holds the k-th weighted row
        # Rows tied with it are admitted with it: the cut lies below every tied score, never
        # on one, so a float32 rounding of the exported model cannot flip a tied row.
        after = int(np.searchsorted(-scores, -scores[last], side="right"))
        below = scores[after] if after < scores.size else scores[-1] / 2
        cuts.append((scores[last] + below) / 2)
    return _clip_threshold(float(np.sort(cuts)[(len(cuts) - 1) // 2])) if cuts else 0.5


def admitted(
    p: Vector, weeks: Ints, threshold: float, weights: Vector | None = None
) -> dict[str, float]:
    """Return how many rows a week has at or above `threshold`: lower median, min, max, mean."""
    w = _ones_or(weights, p)
    counts = [
        round(float(w[(weeks == week) & (p >= threshold)].sum())) for week in np.unique(weeks)
    ]
    if not counts:
        return {"median": 0, "min": 0, "max": 0, "mean": 0.0}
    ordered = sorted(counts)
    return {
        "median": ordered[(len(ordered) - 1) // 2],
        "min": ordered[0],
        "max": ordered[-1],
        "mean": float(np.mean(counts)),
    }


def weekly_share(p: Vector, weeks: Ints, threshold: float, weights: Vector | None = None) -> float:
    """Return the mean share of a week's rows at or above `threshold`."""
    w = _ones_or(weights, p)
    shares = [
        float(np.average(p[weeks == week] >= threshold, weights=w[weeks == week]))
        for week in np.unique(weeks)
    ]
    return float(np.mean(shares)) if shares else 0.0


def _ones_or(weights: Vector | None, like: Vector) -> Vector:
    return np.ones(like.size) if weights is None else weights


def _clip_threshold(value: float) -> float:
    return float(min(max(value, 1e-6), 1 - 1e-6))


def choose_f_beta(
    y: Ints, p: Vector, weeks: Ints, *, beta: float, weights: Vector | None = None
) -> dict[str, float]:
    """Pick the F-beta threshold on out-of-fold predictions (never on test) and its weekly
    share: the share carries it to any other model's scores, label-free."""
    threshold = fbeta_threshold(y, p, beta, weights)
    return {"threshold": threshold, "weekly_share": weekly_share(p, weeks, threshold, weights)}


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


def thresholds_for(
    p: Vector, weeks: Ints, rules: ThresholdRules, weights: Vector | None = None
) -> dict[str, Any]:
    """Cut one model's calibrated scores on reference weeks by `rules`: every threshold and
    tier bound, and how many rows each admitted per week there."""
    capacity = weekly_cut(p, weeks, count=rules.capacity, weights=weights)
    f_beta = weekly_cut(p, weeks, share=rules.f_beta_share, weights=weights)
    decision = rules.decision
    cut = {"capacity": capacity, "f_beta": f_beta}.get(str(decision), decision)
    assert isinstance(cut, float | int)
    tiers = {
        name: weekly_cut(p, weeks, share=share, weights=weights)
        for name, share in zip(PRIORITY_TIERS, rules.tier_shares, strict=False)
    }
    return {
        "decision": float(cut),
        "capacity": capacity,
        "f_beta": f_beta,
        "priority": tiers,
        "admitted_per_week": {
            "decision": admitted(p, weeks, float(cut), weights),
            "capacity": admitted(p, weeks, capacity, weights),
            "f_beta": admitted(p, weeks, f_beta, weights),
            **{name: admitted(p, weeks, bound, weights) for name, bound in tiers.items()},
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


def tiers_by_share(
    p: Vector, weeks: Ints, shares: Sequence[float], weights: Vector | None = None
) -> Ints:
    """Return each row's tier index: each week's rows ranked, the first `shares[0]` of them
    "very high" (at least one row), up to `shares[1]` "high" and so on; ties keep row order."""
    w = _ones_or(weights, p)
    tiers = np.empty(len(p), dtype=np.int64)
    for week in np.unique(weeks):
        rows = np.flatnonzero(weeks == week)
        order = rows[np.lexsort((rows, -p[rows]))]  # best first; ties keep row order
        before = np.cumsum(w[order]) - w[order]  # weighted rows ranked above each row
        ends = [max(round(share * w[order].sum()), 1) for share in shares]
        tiers[order] = np.searchsorted(np.asarray(ends), before, side="right")
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
    weights: Vector | None = None,
) -> dict[str, Any]:
    """Return each tier's rows, conversions, conversion rate with a 90% interval that
    resamples companies, and lift over the base rate; and whether the rates fall tier by tier.

    A tier is a share of each week's ranked companies, as the shipped thresholds cut them.
    """
    w = _ones_or(weights, p)
    tiers = tiers_by_share(p, weeks, shares, weights)
    n_tiers = len(PRIORITY_TIERS)
    rows = np.bincount(tiers, weights=w, minlength=n_tiers).round()
    converted = np.bincount(tiers, weights=w * y, minlength=n_tiers).round()
    rates = np.divide(converted, rows, out=np.zeros(n_tiers), where=rows > 0)
    base = float(np.average(y, weights=w)) if y.size else 0.0
    drawn = _tier_rates_resampled(companies, y, tiers, w, resamples=resamples, seed=seed)
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
                "share_of_converters": float(converted[index]) / max(float(converted.sum()), 1.0),
            }
        )
    filled = [r for r, n in zip(rates.tolist(), rows.tolist(), strict=True) if n]
    monotone = all(a >= b for a, b in itertools.pairwise(filled))
    return {"tiers": table, "monotone": monotone, "base_rate": base}


def _tier_rates_resampled(
    companies: Ints, y: Ints, tiers: Ints, weights: Vector, *, resamples: int, seed: int
) -> npt.NDArray[np.float64]:
    """Return (resamples, tiers) conversion rates, companies drawn with replacement."""
    n_tiers = len(PRIORITY_TIERS)
    rates = []
    for drawn in company_resamples(companies, resamples=resamples, seed=seed):
        copies = drawn * weights
        listed = np.bincount(tiers, weights=copies, minlength=n_tiers)
        hits = np.bincount(tiers, weights=copies * y, minlength=n_tiers)
        rates.append(np.divide(hits, listed, out=np.full(n_tiers, np.nan), where=listed > 0))
    return np.array(rates).reshape(-1, n_tiers)
