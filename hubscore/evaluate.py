"""Score predictions the way the sales team uses them: a weekly list, read from the top.

Every metric takes labels `y`, probabilities `p` and `weeks` (the cutoff of each row, as a
day number); weekly metrics rank each cutoff's rows separately and average over weeks.
Ties keep the row order, which `train` made a seeded hash of (id, cutoff).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)

Vector = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
BASELINE_FEATURE = "actions_recent"
RANKING_KEYS = ("roc_auc", "pr_auc", "base_rate")
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
        self, y: Ints, sizes: Sequence[int], weights: Ints | None = None
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


def ranking_metrics(y: Ints, p: Vector, weeks: Ints, top_k: Sequence[int]) -> dict[str, Any]:
    """Return ROC-AUC, PR-AUC, base rate and precision/recall/lift at each k."""
    two_classes = np.unique(y).size == 2
    base = float(y.mean()) if y.size else 0.0
    out: dict[str, Any] = {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else None,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else None,
        "base_rate": base,
        "rows": int(y.size),
        "positives": int(y.sum()),
        "weeks": int(np.unique(weeks).size),
    }
    at_k = WeeklyRanking.of(p, weeks).top_k(y, top_k)
    for k, (precision, recall) in zip(top_k, at_k, strict=True):
        out[f"precision_at_{k}"] = precision
        out[f"recall_at_{k}"] = recall
        out[f"lift_at_{k}"] = precision / base if base else None
    return out


def probability_metrics(y: Ints, p: Vector) -> dict[str, Any]:
    """Return log loss and Brier score."""
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return {
        "log_loss": float(log_loss(y, clipped, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


def threshold_metrics(y: Ints, p: Vector, threshold: float) -> dict[str, Any]:
    """Return precision, recall, F1 and the confusion matrix at `threshold` (p >= t)."""
    predicted = p >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    tn = int((~predicted & (y == 0)).sum())
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


def fbeta_threshold(y: Ints, p: Vector, beta: float) -> float:
    """Return the threshold that maximises F-beta on (validation) predictions."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]
    denom = beta**2 * precision + recall
    score = np.divide(
        (1 + beta**2) * precision * recall, denom, where=denom > 0, out=np.zeros_like(denom)
    )
    return _clip_threshold(float(thresholds[int(np.argmax(score))]))


def capacity_threshold(p: Vector, weeks: Ints, k: int) -> float:
    """Return the median over weeks of the k-th highest score: a list of about k per week."""
    kth = []
    for week in np.unique(weeks):
        scores = np.sort(p[weeks == week])[::-1]
        kth.append(scores[min(k, scores.size) - 1])
    return _clip_threshold(float(np.median(kth)))


def _clip_threshold(value: float) -> float:
    return float(min(max(value, 1e-6), 1 - 1e-6))


def threshold_table(
    y: Ints, p: Vector, weeks: Ints, thresholds: Iterable[float]
) -> list[dict[str, float]]:
    """Return threshold -> precision, recall and mean list size per week, ascending."""
    n_weeks = max(np.unique(weeks).size, 1)
    rows = []
    for t in sorted(set(thresholds)):
        chosen = threshold_metrics(y, p, t)
        listed = int((p >= t).sum())
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


def choose_thresholds(
    folds: Sequence[tuple[Ints, Vector, Ints]], *, beta: float, capacity: int, fixed: float | None
) -> dict[str, float]:
    """Pick the decision and capacity thresholds on out-of-fold predictions, never on test."""
    y = np.concatenate([f[0] for f in folds])
    p = np.concatenate([f[1] for f in folds])
    weeks = np.concatenate([f[2] for f in folds])
    f_beta = fbeta_threshold(y, p, beta)
    at_capacity = capacity_threshold(p, weeks, capacity)
    return {
        "decision": fixed if fixed is not None else f_beta,
        "f_beta": f_beta,
        "capacity": at_capacity,
    }


def confidence_bands(thresholds: Mapping[str, float]) -> dict[str, float]:
    """Return band lower bounds from the decision and weekly-capacity thresholds.

    Of the two, the stricter starts "high" and the looser starts "medium": when the F-beta
    decision threshold is stricter, "high" is what the model calls a converter and "medium"
    the rest of the week's call list; when the capacity threshold is stricter, "high" is about
    a week's calls and "medium" the other predicted converters. Below both is "low".
    """
    decision, capacity = thresholds["decision"], thresholds["capacity"]
    return {"high": max(decision, capacity), "medium": min(decision, capacity)}


def evaluate_predictions(
    y: Ints,
    p: Vector,
    weeks: Ints,
    *,
    top_k: Sequence[int],
    threshold: float,
) -> dict[str, Any]:
    """Return every test metric of one model at `threshold`."""
    return {
        **ranking_metrics(y, p, weeks, top_k),
        **probability_metrics(y, p),
        **threshold_metrics(y, p, threshold),
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
) -> dict[str, list[float]]:
    """Return 90% intervals of ROC-AUC and precision@k from resampling companies.

    A company is a row at every weekly cutoff and a positive at several in a row, so rows are
    not independent: each resample draws companies with replacement and keeps all their rows
    (as row weights: sorting once serves every resample).
    """
    rng = np.random.default_rng(seed)
    _, company = np.unique(companies, return_inverse=True)
    n = int(company.max()) + 1 if company.size else 0
    ranking = WeeklyRanking.of(p, weeks)
    by_score = np.argsort(p, kind="stable")  # roc_auc_score sorts sorted input faster
    y_sorted, p_sorted = y[by_score], p[by_score]
    drawn: dict[str, list[float]] = {"roc_auc": [], **{f"precision_at_{k}": [] for k in top_k}}
    for _ in range(resamples if n else 0):
        copies = np.bincount(rng.integers(0, n, n), minlength=n)[company]  # per row
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


def write_plots(
    out_dir: Path, y: Ints, p: Vector, weeks: Ints, *, threshold: float, importance: pl.DataFrame
) -> list[Path]:
    """Draw the evaluation plots as PNG files in `out_dir`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cron hosts; must precede pyplot
    import matplotlib.pyplot as plt

    drawers: dict[str, Callable[[Any], None]] = {
        "confusion_matrix.png": lambda ax: _plot_confusion(ax, y, p, threshold),
        "roc_curve.png": lambda ax: _plot_roc(ax, y, p),
        "pr_curve.png": lambda ax: _plot_pr(ax, y, p),
        "calibration.png": lambda ax: _plot_calibration(ax, y, p),
        "precision_recall_vs_list_size.png": lambda ax: _plot_list_size(ax, y, p, weeks),
        "feature_importance.png": lambda ax: _plot_importance(ax, importance),
    }
    paths = []
    for name, draw in drawers.items():
        fig, ax = plt.subplots(figsize=(6, 4.5 if name != "feature_importance.png" else 6))
        draw(ax)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90, metadata={"Software": None})
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def _plot_confusion(ax: Any, y: Ints, p: Vector, threshold: float) -> None:
    c = threshold_metrics(y, p, threshold)["confusion"]
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, str(value), ha="center", va="center")
    ax.set_xticks([0, 1], ["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1], ["actual 0", "actual 1"])
    ax.set_title(f"Confusion matrix at threshold {threshold:.4f}")


def _plot_roc(ax: Any, y: Ints, p: Vector) -> None:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend()


def _plot_pr(ax: Any, y: Ints, p: Vector) -> None:
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"model (AP {average_precision_score(y, p):.3f})")
    ax.axhline(float(y.mean()), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
    ax.legend()


def _plot_calibration(ax: Any, y: Ints, p: Vector) -> None:
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(edges.size - 2, 0))
    mean_p = [float(p[bins == b].mean()) for b in np.unique(bins)]
    rate = [float(y[bins == b].mean()) for b in np.unique(bins)]
    ax.plot(mean_p, rate, "o-", label="model (deciles of score)")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title="Calibration")
    ax.legend()


def _plot_list_size(ax: Any, y: Ints, p: Vector, weeks: Ints) -> None:
    sizes = np.unique(
        np.geomspace(
            5, max(10, np.bincount(np.unique(weeks, return_inverse=True)[1]).max()), 25
        ).astype(int)
    )
    pairs = WeeklyRanking.of(p, weeks).top_k(y, [int(k) for k in sizes])
    ax.plot(sizes, [pr[0] for pr in pairs], label="precision@k")
    ax.plot(sizes, [pr[1] or 0.0 for pr in pairs], label="recall@k")
    ax.set_xscale("log")
    ax.set(
        xlabel="list size per week (k)", ylabel="share", title="Precision and recall vs list size"
    )
    ax.legend()


def _plot_importance(ax: Any, importance: pl.DataFrame) -> None:
    top = importance.head(20).reverse()
    ax.barh(top.get_column("feature").to_list(), top.get_column("importance").to_list())
    ax.set(title="Feature importance (top 20)", xlabel="importance")
    ax.tick_params(axis="y", labelsize=7)


ASSUMPTIONS = (
    "There is no sign-up date: a free company counts as eligible from the start of the file.",
    "About a quarter of converters show no usage before converting; usage cannot find them, "
    "so recall has a ceiling.",
    "Firmographic missingness differs sharply between customers and free companies; if fields "
    "were filled in after conversion, missingness flags leak the label. The ablation below "
    "shows how much lift survives without them.",
    "Positives are few and clustered (one company is positive at several consecutive "
    "cutoffs): small differences between models may be noise.",
    "Models weight positives up (class imbalance), so probabilities are over-stated; rank "
    "and thresholds, not the raw probability, carry the meaning.",
)


def write_report(path: Path, metrics: Mapping[str, Any], *, plots: Sequence[Path]) -> None:
    """Write a self-contained report.html: metrics, split, thresholds, plots inlined."""
    parts = [
        f"<h1>hubscore run {escape(str(metrics.get('run', '')))}</h1>",
        f"<p>Model <b>{escape(str(metrics['model']))}</b>, target "
        f"<b>{escape(str(metrics['target']))}</b>. Rows are company-week snapshots; "
        "weekly metrics rank each cutoff's companies and average over test weeks.</p>",
        "<h2>Test metrics vs baseline (rank by recent activity)</h2>",
        _html_compare(metrics["test"], metrics["baseline"]),
        "<h2>90% intervals, resampling companies</h2>",
        "<p>A company appears at many weekly cutoffs, so intervals resample companies, not "
        "rows.</p>",
        _html_table(
            [
                {"metric": k, "low": lo, "high": hi}
                for k, (lo, hi) in metrics.get("test_intervals", {}).items()
            ]
        ),
        "<h2>Cross-validation (mean ± std)</h2>",
        _html_table(
            [{"metric": k, "mean": v["mean"], "std": v["std"]} for k, v in metrics["cv"].items()]
        ),
        "<h2>Split</h2>",
        _html_split(metrics["split"]),
        "<h2>Thresholds</h2>",
        _html_table([{"name": k, "value": v} for k, v in metrics["thresholds"].items()]),
        _html_table(metrics["threshold_table"]),
        "<h2>Lift without missingness flags</h2>",
        _html_table([{"metric": k, "value": v} for k, v in metrics["ablation"].items()]),
        "<h2>Export verification</h2>",
        _html_table([{"check": k, "value": v} for k, v in metrics.get("verification", {}).items()]),
        "<h2>Plots</h2>",
        *(_html_image(p) for p in plots),
        "<h2>Data quality</h2>",
        _html_quality(metrics.get("quality")),
        "<h2>What the data cannot tell</h2><ul>",
        *(f"<li>{escape(a)}</li>" for a in ASSUMPTIONS),
        "</ul>",
    ]
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px}"
        "img{max-width:100%}"
    )
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>hubscore report</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path.write_text(html, encoding="utf-8")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape("—" if value is None else str(value))


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_compare(test: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    rows = [
        {"metric": k, "model": v, "baseline": baseline.get(k)}
        for k, v in test.items()
        if not isinstance(v, dict)
    ]
    confusion = test.get("confusion", {})
    rows += [
        {"metric": f"confusion {k}", "model": v, "baseline": None} for k, v in confusion.items()
    ]
    return _html_table(rows)


def _html_split(split: Mapping[str, Any]) -> str:
    rows = [{"side": side, **split[side]} for side in ("train", "test")]
    return f"<p>{escape(split['kind'])} split, gap {split['gap_days']} days</p>" + _html_table(rows)


def _html_image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{escape(path.stem)}' src='data:image/png;base64,{data}'></figure>"


def _html_quality(quality: Any) -> str:
    if not quality:
        return "<p>No quality.json was found next to the feature file.</p>"
    return f"<pre>{escape(json.dumps(quality, indent=2, sort_keys=True, default=str))}</pre>"
