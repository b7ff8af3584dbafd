"""Draw a run's plots and write its self-contained report.html."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from hubscore.core.contract import DATA_ASSUMPTIONS
from hubscore.training.evaluate import Ints, Vector, WeeklyRanking, threshold_metrics


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
    *DATA_ASSUMPTIONS,
    "The ablation below shows how much lift survives without the missingness flags.",
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
