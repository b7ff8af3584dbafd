"""How much the cross-validation folds can tell: their power, and paired comparisons.

A company is a row at every weekly cutoff and a positive at several in a row, so the unit of
evidence is the company, not the row. Every interval here resamples companies (with
replacement, as integer row weights), and a comparison of two models draws the same companies
for both: the paired difference cancels what the two share, which is most of the noise.

Draw b is a function of (seed, b) and the folds' companies only, so every trial of a search
meets exactly the same draws without storing them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hubscore.core.errors import ConfigError
from hubscore.training.evaluate import WeeklyRanking

Vector = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
DRAWS = 200
LEVEL = 0.90
"""Two-sided intervals at 90%: a difference is "beyond noise" when its 5th percentile is
above zero, a one-sided 95% test."""
METRICS_ON_FOLDS = ("pr_auc", "roc_auc")
_AT_K = re.compile(r"(precision|recall)_at_(\d+)")


@dataclass(frozen=True)
class FoldEvidence:
    """The validation rows of every fold: labels, weeks and company positions."""

    y: list[Ints]
    weeks: list[Ints]
    company: list[Ints]
    """Each row's company as a position in 0 .. companies - 1, shared across folds."""
    companies: int
    seed: int
    row_weights: list[Vector] | None = None
    """A sampled frame's row weights per fold (a kept negative stands for m rows)."""
    draws: int = DRAWS

    @classmethod
    def of(
        cls,
        y: Sequence[Ints],
        weeks: Sequence[Ints],
        ids: Sequence[Ints],
        *,
        seed: int,
        row_weights: Sequence[Vector] | None = None,
    ) -> FoldEvidence:
        """Index the folds' companies once; every metric and comparison reuses it."""
        uniq, inverse = np.unique(np.concatenate(list(ids)), return_inverse=True)
        bounds = np.cumsum([0, *(len(i) for i in ids)])
        company = [inverse[a:b].astype(np.int64) for a, b in itertools.pairwise(bounds)]
        weights = None if row_weights is None else list(row_weights)
        return cls(list(y), list(weeks), company, int(uniq.size), seed, weights)

    def weights(self, draw: int) -> list[Vector]:
        """Per fold, each row's multiplicity in resample `draw` (its company's count, times
        its own weight)."""
        rng = np.random.default_rng([self.seed, draw])
        counts = np.bincount(
            rng.integers(0, self.companies, self.companies), minlength=self.companies
        ).astype(np.float64)
        per_row = [counts[c] for c in self.company]
        if self.row_weights is None:
            return per_row
        return [r * w for r, w in zip(per_row, self.row_weights, strict=True)]

    def power(self) -> dict[str, object]:
        """Positive rows and converting companies per fold, and in all."""
        per_fold = [
            int(np.unique(c[y == 1]).size) for y, c in zip(self.y, self.company, strict=True)
        ]
        everyone = np.unique(
            np.concatenate([c[y == 1] for y, c in zip(self.y, self.company, strict=True)])
        )
        return {
            "folds": len(self.y),
            "positive_rows": [int(y.sum()) for y in self.y],
            "positive_companies": per_fold,
            "positive_companies_in_all": int(everyone.size),
            "companies": self.companies,
        }


@dataclass(frozen=True)
class Measured:
    """A metric of one set of fold predictions: the point value and its resampled values."""

    metric: str
    value: float
    draws: Vector

    def interval(self) -> list[float] | None:
        """The 90% interval of the metric over companies (None when no resample computes it)."""
        return _interval(self.draws)

    def standard_error(self) -> float | None:
        """The metric's standard error over company resamples."""
        seen = self.draws[~np.isnan(self.draws)]
        return float(np.std(seen, ddof=1)) if seen.size > 1 else None

    def versus(self, other: Measured) -> dict[str, object]:
        """The paired difference self - other, its 90% interval and whether it is beyond noise."""
        interval = _interval(self.draws - other.draws)
        return {
            "difference": self.value - other.value,
            "interval": interval,
            "beyond_noise": interval is not None and interval[0] > 0,
        }


def measure(evidence: FoldEvidence, predictions: Sequence[Vector], metric: str) -> Measured:
    """Return the fold-mean of `metric` and its value in every company resample."""
    check_metric(metric)
    scorers = [_Scorer.of(p, w) for p, w in zip(predictions, evidence.weeks, strict=True)]

    def fold_mean(weights: Sequence[Vector] | None) -> float:
        values = [
            s.value(metric, y, None if weights is None else weights[i])
            for i, (s, y) in enumerate(zip(scorers, evidence.y, strict=True))
        ]
        seen = [v for v in values if not np.isnan(v)]
        return float(np.mean(seen)) if seen else float("nan")

    draws = np.array([fold_mean(evidence.weights(b)) for b in range(evidence.draws)])
    return Measured(metric, fold_mean(evidence.row_weights), draws)


def fold_value(
    metric: str, y: Ints, p: Vector, weeks: Ints, weights: Vector | None = None
) -> float:
    """Return `metric` of one fold's predictions (NaN when the fold cannot compute it)."""
    return _Scorer.of(p, weeks).value(metric, y, weights)


def check_metric(metric: str) -> None:
    """Refuse a metric the folds cannot be resampled on."""
    if metric not in METRICS_ON_FOLDS and not _AT_K.fullmatch(metric):
        raise ConfigError(
            f"config key training.search.metric is {metric!r}",
            hint="use pr_auc, roc_auc, precision_at_K or recall_at_K",
        )


@dataclass(frozen=True)
class _Scorer:
    """One fold's predictions sorted once (best first), with their tie groups."""

    order: Ints
    group_end: Ints
    """Positions in `order` where a group of equal scores ends (exclusive), ascending."""
    ranking: WeeklyRanking

    @classmethod
    def of(cls, p: Vector, weeks: Ints) -> _Scorer:
        order = np.argsort(-p, kind="stable")
        ends = np.r_[np.flatnonzero(np.diff(p[order]) != 0) + 1, p.size]
        return cls(order, ends.astype(np.int64), WeeklyRanking.of(p, weeks))

    def value(self, metric: str, y: Ints, weights: Vector | None) -> float:
        at_k = _AT_K.fullmatch(metric)
        if at_k:
            precision, recall = self.ranking.top_k(y, [int(at_k.group(2))], weights)[0]
            value = precision if at_k.group(1) == "precision" else recall
            return float("nan") if value is None else float(value)
        w = np.ones(y.size) if weights is None else weights[self.order].astype(np.float64)
        hits = w * y[self.order]
        true_pos = np.cumsum(hits)[self.group_end - 1]
        everyone = np.cumsum(w)[self.group_end - 1]
        positives, total = (
            true_pos[-1] if true_pos.size else 0.0,
            everyone[-1] if everyone.size else 0.0,
        )
        if positives == 0 or positives == total:
            return float("nan")
        gained = np.diff(np.r_[0.0, true_pos])
        if metric == "pr_auc":  # average precision, thresholds at distinct scores (sklearn's)
            share = np.divide(true_pos, everyone, out=np.zeros_like(true_pos), where=everyone > 0)
            return float(np.sum(gained * share) / positives)
        false_pos = everyone - true_pos  # roc_auc: P(positive above negative) + half the ties
        negatives = total - positives
        lost = np.diff(np.r_[0.0, false_pos])
        below = negatives - false_pos
        return float(np.sum(gained * (below + 0.5 * lost)) / (positives * negatives))


def _interval(values: Vector) -> list[float] | None:
    seen = values[~np.isnan(values)]
    if not seen.size:
        return None
    tail = (1 - LEVEL) / 2 * 100
    return [float(np.percentile(seen, tail)), float(np.percentile(seen, 100 - tail))]
