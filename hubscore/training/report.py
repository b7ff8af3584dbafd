"""Draw a run's plots and write its self-contained report.html."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from hubscore.training.evaluate import Ints, Vector, WeeklyRanking, threshold_metrics

IMPORTANCE_MEANINGS = {
    "logreg": "|coefficient| on the scaled inputs",
    "random_forest": "mean decrease in Gini impurity (sums to 1)",
    "xgboost": "gain: mean loss reduction per split (sums to 1)",
    "lightgbm": "gain: total loss reduction over its splits",
}
"""What each family's `feature_importance` measures: the importance chart's axis label."""


def write_plots(
    out_dir: Path,
    y: Ints,
    p: Vector,
    weeks: Ints,
    *,
    threshold: float,
    importance: pl.DataFrame,
    model: str | None = None,
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
        "feature_importance.png": lambda ax: _plot_importance(ax, importance, model),
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
        # White on the dark cells: black on Blues' navy end cannot be read.
        color = "white" if value > grid.max() / 2 else "black"
        ax.text(j, i, f"{value:,}", ha="center", va="center", color=color, fontsize=12)
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


def _plot_importance(ax: Any, importance: pl.DataFrame, model: str | None) -> None:
    top = importance.head(20).reverse()
    ax.barh(top.get_column("feature").to_list(), top.get_column("importance").to_list())
    xlabel = IMPORTANCE_MEANINGS.get(model or "", "importance")
    ax.set(title="Feature importance (top 20)", xlabel=xlabel)
    ax.tick_params(axis="y", labelsize=7)


ASSUMPTIONS = (
    "There is no sign-up date: a free company counts as eligible from the start of the file.",
    "About a quarter of converters show no usage before converting; usage cannot find them, "
    "so recall has a ceiling.",
    "Firmographic missingness differs sharply between customers and free companies; if fields "
    "were filled in after conversion, missingness flags leak the label. The section "
    "'Lift without missingness flags' shows how much lift survives without them.",
    "Positives are few and clustered (one company is positive at several consecutive "
    "cutoffs): small differences between models may be noise.",
    "When training.class_weight weights positives up, probabilities are over-stated; rank "
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
        "<h2>Outcome by priority tier (test weeks)</h2>",
        "<p>`score` tiers each week's ranked list by share (default: quartiles).</p>",
        _html_table(metrics.get("priority_tiers", [])),
        "<h2>Lift without missingness flags</h2>",
        _html_table([{"metric": k, "value": v} for k, v in metrics["ablation"].items()]),
        "<h2>Export verification</h2>",
        _html_table([{"check": k, "value": v} for k, v in metrics.get("verification", {}).items()]),
        "<h2>Plots</h2>",
        "<div class='plots'>",
        *(_html_image(p) for p in plots),
        "</div>",
        "<h2>Data quality</h2>",
        _html_quality(metrics.get("quality")),
        "<h2>What the data cannot tell</h2><ul>",
        *(f"<li>{escape(a)}</li>" for a in ASSUMPTIONS),
        "</ul>",
    ]
    style = STYLE
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>hubscore report</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path.write_text(html, encoding="utf-8")


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1.5em;"
    "color:#1a1a1a;line-height:1.4}"
    "h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{margin-bottom:.3em}"
    "table{border-collapse:collapse;margin:.6em 0 1.2em;max-width:100%}"
    "td,th{border:1px solid #ccc;padding:3px 10px;vertical-align:top;overflow-wrap:anywhere}"
    "th{background:#f3f5f8;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "td table{margin:0}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(30em,1fr));gap:1em}"
    "figure{margin:0}img{max-width:100%;height:auto}"
)
"""One stylesheet inline: the report stays one self-contained file."""


def _fmt(value: Any) -> str:
    """Format a cell: thousands separators, 4 significant digits, never 5.326e+04."""
    if isinstance(value, bool) or value is None:
        return escape("—" if value is None else str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return escape(str(value))


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may differ
    head = "".join(f"<th>{escape(str(k))}</th>" for k in columns)
    body = "".join(
        "<tr>" + "".join(_html_cell(row.get(k)) for k in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_cell(value: Any) -> str:
    """Return one cell: numbers right-aligned, nested data as a nested table or list."""
    if isinstance(value, Mapping | list | tuple):
        return f"<td>{_html_value(value)}</td>"
    numeric = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    return f"<td class='n'>{_fmt(value)}</td>" if numeric else f"<td>{_fmt(value)}</td>"


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
    """Render quality.json as one titled table (or list) per section, not a JSON dump."""
    if not quality:
        return "<p>No quality.json was found next to the feature file.</p>"
    if not isinstance(quality, Mapping):
        return _html_value(quality)
    sections = sorted(quality.items(), key=lambda item: item[0] != "assumptions")
    return "".join(f"<h3>{escape(str(name))}</h3>{_html_value(value)}" for name, value in sections)


def _html_value(value: Any) -> str:
    """Render JSON-like data: mappings and lists of records as tables, plain lists as lists."""
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            return _html_table([{"": name, **v} for name, v in value.items()])
        return _html_table([{"name": k, "value": v} for k, v in value.items()])
    if isinstance(value, list | tuple):
        if not value:
            return "<p>none</p>"
        if all(isinstance(v, Mapping) for v in value):
            return _html_table(value)
        return "<ul>" + "".join(f"<li>{_fmt(v)}</li>" for v in value) + "</ul>"
    return f"<p>{_fmt(value)}</p>"
