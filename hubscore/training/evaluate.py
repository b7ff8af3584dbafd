"""Score predictions the way the sales team uses them: a weekly list, read from the top.

Every metric takes labels `y`, probabilities `p` and `weeks` (the cutoff of each row, as a
day number); weekly metrics rank each cutoff's rows separately and average over weeks.
Ties keep the row order, which `train` made a seeded hash of (id, cutoff).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

Vector = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


class Fold(NamedTuple):
    """One out-of-fold prediction set: validation labels, predictions, week codes and the
    rows' weights (None when every row was read)."""

    y: Ints
    p: Vector
    weeks: Ints
    weights: Vector | None = None


BASELINE_FEATURE = "actions_recent"
INTERVAL_RESAMPLES = 100


def weekly_top_k(y: Ints, p: Vector, weeks: Ints, k: int) -> tuple[float, float | None]:
    """Return precision@k and recall@k averaged over weeks (recall: weeks with positives)."""
    return WeeklyRanking.of(p, weeks).top_k(y, [k])[0]


@dataclass(frozen=True)
class WeeklyRanking:
    """Every week's rows ranked best first (ties keep row order), sorted once for any k.

    Rows may carry integer weights: a row of weight w counts as w adjacent copies of itself,
    which is how a company resample repeats rows without materialising them.
    """

    order: Ints
    """Row positions, week by week, best first."""
    week: Ints
    """The week index (0 .. weeks - 1) of each entry of `order`."""
    weeks: int

    @classmethod
    def of(cls, p: Vector, weeks: Ints) -> WeeklyRanking:
        order = np.lexsort((-p, weeks))  # stable: ties keep row order
        _, week = np.unique(weeks[order], return_inverse=True)
        return cls(order, week.astype(np.int64), int(week.max()) + 1 if week.size else 0)

    def top_k(
        self, y: Ints, sizes: Sequence[int], weights: npt.NDArray[Any] | None = None
    ) -> list[tuple[float, float | None]]:
        """Return (mean precision@k, mean recall@k) over the weeks that have rows, per k."""
        w = np.ones(self.order.size) if weights is None else weights[self.order].astype(float)
        if not w.size:
            return [(float("nan"), None) for _ in sizes]
        ranked_y = y[self.order]
        before = np.cumsum(w) - w  # copies ranked above each row, from the first week on
        first = np.r_[0, np.flatnonzero(np.diff(self.week)) + 1]  # each week's first entry
        above = before - before[first][self.week]  # copies ranked above it in its week
        positives = np.bincount(self.week, weights=w * ranked_y, minlength=self.weeks)
        with_positives = positives > 0
        out = []
        for k in sizes:
            on_list = np.flatnonzero(above < k)
            taken = np.minimum(k - above[on_list], w[on_list])  # copies on the top-k list
            week = self.week[on_list]
            hits = np.bincount(week, weights=taken * ranked_y[on_list], minlength=self.weeks)
            listed = np.bincount(week, weights=taken, minlength=self.weeks)
            present = listed > 0
            precision = float(np.mean(hits[present] / listed[present]))
            recall = hits[with_positives] / positives[with_positives]
            out.append((precision, float(np.mean(recall)) if recall.size else None))
        return out


def weekly_precision(
    y: Ints, p: Vector, weeks: Ints, top_k: Sequence[int], weights: Vector | None = None
) -> list[dict[str, Any]]:
    """Return, week by week, the converters and how many of them each top-k list held."""
    w = np.ones(y.size) if weights is None else weights
    rows = []
    for week in np.unique(weeks):
        rows_of_week = np.flatnonzero(weeks == week)
        order = rows_of_week[np.argsort(-p[rows_of_week], kind="stable")]
        ranked, copies = y[order], w[order]
        above = np.cumsum(copies) - copies  # copies ranked above each row
        row: dict[str, Any] = {
            "cutoff": str(np.datetime64(int(week), "D")),
            "companies": round(copies.sum()),
            "converters": round((copies * ranked).sum()),
        }
        for k in top_k:
            taken = np.clip(k - above, 0, copies)  # a row's copies on the top-k list
            row[f"hits_at_{k}"] = round((taken * ranked).sum())
        rows.append(row)
    return rows


def ranking_metrics(
    y: Ints, p: Vector, weeks: Ints, top_k: Sequence[int], weights: Vector | None = None
) -> dict[str, Any]:
    """Return ROC-AUC, PR-AUC, base rate and precision/recall/lift at each k.

    Args:
        weights: row weights of a sampled frame (a kept negative stands for m rows).
    """
    two_classes = np.unique(y).size == 2
    w = np.ones(y.size) if weights is None else weights
    rows = float(w.sum())
    base = float((w * y).sum() / rows) if y.size else 0.0
    out: dict[str, Any] = {
        "roc_auc": float(roc_auc_score(y, p, sample_weight=weights)) if two_classes else None,
        "pr_auc": float(average_precision_score(y, p, sample_weight=weights))
        if two_classes
        else None,
        "base_rate": base,
        "rows": round(rows),
        "positives": round(float((w * y).sum())),
        "weeks": int(np.unique(weeks).size),
    }
    at_k = WeeklyRanking.of(p, weeks).top_k(y, top_k, weights)
    for k, (precision, recall) in zip(top_k, at_k, strict=True):
        out[f"precision_at_{k}"] = precision
        out[f"recall_at_{k}"] = recall
        out[f"lift_at_{k}"] = precision / base if base else None
    return out


def fold_metrics(fold: Fold, top_k: Sequence[int]) -> dict[str, Any]:
    """Return the ranking and probability metrics of one cross-validation fold."""
    y, p, weeks, weights = fold
    return {**ranking_metrics(y, p, weeks, top_k, weights), **probability_metrics(y, p, weights)}


LOWER_IS_BETTER = ("log_loss", "brier")


def probability_metrics(y: Ints, p: Vector, weights: Vector | None = None) -> dict[str, Any]:
    """Return log loss and Brier score."""
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "log_loss": float(log_loss(y, clipped, labels=[0, 1], sample_weight=weights)),
        "brier": float(brier_score_loss(y, p, sample_weight=weights)),
    }


def threshold_metrics(
    y: Ints, p: Vector, threshold: float, weights: Vector | None = None
) -> dict[str, Any]:
    """Return precision, recall, F1 and the confusion matrix at `threshold` (p >= t)."""
    w = np.ones(y.size) if weights is None else weights
    predicted = p >= threshold
    tp = round(float(w[predicted & (y == 1)].sum()))
    fp = round(float(w[predicted & (y == 0)].sum()))
    fn = round(float(w[~predicted & (y == 1)].sum()))
    tn = round(float(w[~predicted & (y == 0)].sum()))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }


def threshold_table(
    y: Ints,
    p: Vector,
    weeks: Ints,
    thresholds: Iterable[float],
    weights: Vector | None = None,
) -> list[dict[str, float]]:
    """Return threshold -> precision, recall and mean list size per week, ascending."""
    n_weeks = max(np.unique(weeks).size, 1)
    w = np.ones(p.size) if weights is None else weights
    rows = []
    for t in sorted(set(thresholds)):
        chosen = threshold_metrics(y, p, t, weights)
        listed = float(w[p >= t].sum())
        rows.append(
            {
                "threshold": t,
                "precision": chosen["precision"],
                "recall": chosen["recall"],
                "list_size_per_week": listed / n_weeks,
            }
        )
    return rows


def table_thresholds(p: Vector, extra: Iterable[float]) -> list[float]:
    """Return score quantiles from the middle to the far tail, plus `extra` thresholds."""
    quantiles = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
    grid = [float(q) for q in np.quantile(p, quantiles)] if p.size else []
    return sorted({round(t, 6) for t in grid} | {float(t) for t in extra})


def summarise_folds(folds: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Return mean and std over CV folds of every numeric metric."""
    keys = [k for k, v in folds[0].items() if isinstance(v, int | float)] if folds else []
    summary = {}
    for key in keys:
        values = [float(f[key]) for f in folds if isinstance(f.get(key), int | float)]
        if values:
            summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return summary


def joined_weights(folds: Sequence[Fold]) -> Vector | None:
    """The folds' row weights end to end (None when no fold was sampled)."""
    if all(f.weights is None for f in folds):
        return None
    return np.concatenate([np.ones(f.y.size) if f.weights is None else f.weights for f in folds])


def evaluate_predictions(
    y: Ints,
    p: Vector,
    weeks: Ints,
    *,
    top_k: Sequence[int],
    threshold: float,
    weights: Vector | None = None,
) -> dict[str, Any]:
    """Return every test metric of one model at `threshold`."""
    return {
        **ranking_metrics(y, p, weeks, top_k, weights),
        **probability_metrics(y, p, weights),
        **threshold_metrics(y, p, threshold, weights),
    }


def company_intervals(
    companies: Ints,
    y: Ints,
    p: Vector,
    weeks: Ints,
    *,
    top_k: Sequence[int],
    resamples: int = INTERVAL_RESAMPLES,
    seed: int = 0,
    weights: Vector | None = None,
) -> dict[str, list[float]]:
    """Return 90% intervals of ROC-AUC and precision@k from resampling companies.

    A company is a row at every weekly cutoff and a positive at several in a row, so rows are
    not independent: each resample draws companies with replacement and keeps all their rows
    (as row weights: sorting once serves every resample).
    """
    ranking = WeeklyRanking.of(p, weeks)
    by_score = np.argsort(p, kind="stable")  # roc_auc_score sorts sorted input faster
    y_sorted, p_sorted = y[by_score], p[by_score]
    drawn: dict[str, list[float]] = {"roc_auc": [], **{f"precision_at_{k}": [] for k in top_k}}
    for copies in company_resamples(companies, resamples=resamples, seed=seed):
        if weights is not None:  # a sampled negative already stands for m rows
            copies = copies * weights.astype(np.int64)
        if 0 < (y * copies).sum() < copies.sum():  # both classes drawn
            w = copies[by_score]
            kept = w > 0
            auc = roc_auc_score(y_sorted[kept], p_sorted[kept], sample_weight=w[kept])
            drawn["roc_auc"].append(float(auc))
        for k, (precision, _) in zip(top_k, ranking.top_k(y, top_k, copies), strict=True):
            drawn[f"precision_at_{k}"].append(precision)
    return {
        name: [float(np.percentile(v, 5)), float(np.percentile(v, 95))]
        for name, v in drawn.items()
        if v
    }


def company_resamples(companies: Ints, *, resamples: int, seed: int) -> Iterator[Ints]:
    """Yield, per resample, how many times each row is drawn: companies drawn with
    replacement, each with all its rows (a company is a row at every weekly cutoff)."""
    rng = np.random.default_rng(seed)
    _, company = np.unique(companies, return_inverse=True)
    n = int(company.max()) + 1 if company.size else 0
    for _ in range(resamples if n else 0):
        yield np.bincount(rng.integers(0, n, n), minlength=n)[company]


def ablation_summary(
    full: Mapping[str, Any], without: Mapping[str, Any], top_k: Sequence[int]
) -> dict[str, Any]:
    """Compare lift with and without missingness signals: how much of the lift survives."""
    out: dict[str, Any] = {}
    for k in top_k:
        lift, lift_without = full.get(f"lift_at_{k}"), without.get(f"lift_at_{k}")
        out[f"lift_at_{k}"] = lift
        out[f"lift_at_{k}_without_flags"] = lift_without
        retained = None
        if lift is not None and lift_without is not None and lift > 1:
            retained = (lift_without - 1) / (lift - 1)
        out[f"lift_retained_at_{k}"] = retained
    out["pr_auc_without_flags"] = without.get("pr_auc")
    return out
