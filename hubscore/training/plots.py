"""Draw a run's evaluation plots as PNG files (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from hubscore.training.evaluate import Ints, Vector, WeeklyRanking, threshold_metrics


def write_plots(
    out_dir: Path,
    y: Ints,
    p: Vector,
    weeks: Ints,
    *,
    threshold: float,
    importance: pl.DataFrame,
    importance_kind: str,
    calibration: Mapping[str, Any],
) -> list[Path]:
    """Draw the evaluation plots (test side, calibrated) as PNG files; return their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display on cron hosts; must precede pyplot
    import matplotlib.pyplot as plt

    drawers: dict[str, Callable[[Any], None]] = {
        "confusion_matrix.png": lambda ax: _plot_confusion(ax, y, p, threshold),
        "roc_curve.png": lambda ax: _plot_roc(ax, y, p),
        "pr_curve.png": lambda ax: _plot_pr(ax, y, p),
        "calibration.png": lambda ax: _plot_calibration(ax, calibration),
        "precision_recall_vs_list_size.png": lambda ax: _plot_list_size(ax, y, p, weeks),
        "feature_importance.png": lambda ax: _plot_importance(ax, importance, importance_kind),
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
    ax.imshow(np.log1p(grid), cmap="Blues")  # log: one cell holds nearly every row
    dark = np.log1p(grid) > np.log1p(grid).max() / 2
    for (i, j), value in np.ndenumerate(grid):
        color = "white" if dark[i, j] else "black"  # readable on dark and light cells
        ax.text(j, i, f"{value:,}", ha="center", va="center", color=color)
    ax.set_xticks([0, 1], ["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1], ["actual 0", "actual 1"])
    ax.set_title(f"Confusion matrix at threshold {threshold:.4f}")


def _plot_roc(ax: Any, y: Ints, p: Vector) -> None:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right")


def _plot_pr(ax: Any, y: Ints, p: Vector) -> None:
    precision, recall, _ = precision_recall_curve(y, p)
    ax.plot(recall, precision, label=f"model (AP {average_precision_score(y, p):.3f})")
    ax.axhline(float(y.mean()), linestyle="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
    ax.legend(loc="upper right")


def _plot_calibration(ax: Any, calibration: Mapping[str, Any]) -> None:
    """Reliability by decile of predicted probability, before and after, on log scales.

    A decile in which nobody converted has no place on a log scale: it is drawn as an open
    triangle on a floor line below every observed rate, labelled, never as a low rate.
    """
    sides = {side: calibration[side]["reliability"] for side in ("before", "after")}
    seen = [
        r[k] for rows in sides.values() for r in rows for k in ("mean_predicted", "observed_rate")
    ]
    floor = min([v for v in seen if v > 0], default=1e-4) / 3
    empty_drawn = False
    for (side, rows), color in zip(sides.items(), ("tab:orange", "tab:blue"), strict=True):
        rows = [r for r in rows if r["mean_predicted"] > 0]
        hit = [r for r in rows if r["observed_rate"] > 0]
        style = "s--" if side == "before" else "o-"
        x = [r["mean_predicted"] for r in hit]
        ax.plot(
            x, [r["observed_rate"] for r in hit], style, color=color, label=f"{side} calibration"
        )
        empty = [r["mean_predicted"] for r in rows if r["observed_rate"] == 0]
        if empty:
            ax.plot(empty, [floor] * len(empty), "v", color=color, markerfacecolor="none", ms=8)
            empty_drawn = True
    if empty_drawn:
        ax.axhline(floor, color="grey", lw=0.5)
        ax.plot(
            [], [], "v", color="grey", markerfacecolor="none", label="decile with no conversion"
        )
    low = max(min([v for v in seen if v > 0], default=1e-4), 1e-6)
    ax.plot([low, 1], [low, 1], ":", color="grey", label="perfectly calibrated")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor / 1.5)
    ax.set(
        xlabel="mean predicted probability (decile)",
        ylabel="observed conversion rate",
        title=f"Reliability on the test weeks ({calibration['method']})",
    )
    ax.legend(loc="upper left", fontsize=8)


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
    ax.legend(loc="center right")  # "best" scans every point: slow, and it warns


def _plot_importance(ax: Any, importance: pl.DataFrame, kind: str) -> None:
    top = importance.head(20).reverse()
    ax.barh(top.get_column("feature").to_list(), top.get_column("importance").to_list())
    ax.set(title="Feature importance (top 20)", xlabel=kind)
    ax.tick_params(axis="y", labelsize=7)
