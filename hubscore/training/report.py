"""Write a run's self-contained report.html from its metrics.json, and nothing else.

Read by a sales lead (the summary first, in plain words, and what each priority tier means)
and by a data scientist (every table after it). Every sentence is built from this run's
numbers (`summary.summary_sentences`); names are the words people use, not JSON keys; tables
fit a 1280-pixel page; numbers are rounded to what they mean. Plots are inlined, so the page
is one file.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from hubscore.training.summary import FAMILIES, day, percent, summary_sentences

__all__ = ["STYLE", "summary_sentences", "write_report"]

LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "base_rate": "base rate",
    "positives": "converting rows",
    "f1": "F1",
    "ece": "calibration error (ECE)",
    "expected_over_observed": "predicted ÷ actual conversions",
    "mean_predicted": "mean predicted",
    "observed_rate": "observed rate",
    "max_abs_delta": "largest |Δp| ONNX vs native (before calibration)",
    "mean_abs_delta": "mean |Δp| ONNX vs native",
    "label_flips": "predictions flipped",
    "list_size_per_week": "companies a week",
    "overlaps_winner": "interval overlaps the winner's",
    "hubscore_version": "hubscore version",
    "files": "Rows read and rejected, per file",
    "rejects": "Why rows were rejected",
    "duplicates": "Duplicates resolved",
    "missing_by_label": "Missing fields, customers against free companies",
    "unseen_employee_ranges": "Employee ranges not recognised",
    "usage": "Usage",
    "customers": "Customers",
    "assumptions": "What the files cannot tell",
    "spine": "Training rows (the spine)",
}
"""Readable names for metrics.json and quality.json keys; others lose their underscores."""
TIMES = "\u00d7"
SHORT_TEXT = 12
"""Text cells this short (a tier, a model) never wrap."""
LONG_WORD = 24
"""Text cells with a longer word (run names, paths) may break anywhere, not widen the table."""
_AT_K = re.compile(r"^(precision|recall|lift|hits)_at_(\d+)$")
_AT_ANY = re.compile(r"(precision|recall|lift)_at_(\d+)")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FIGURES = re.compile(r"^[\d.,%()\s]+(to [\d.,%()\s]+)?$")


def label(key: str) -> str:
    """Return the name a person reads for a metrics key: "precision_at_50" -> "precision@50"."""
    if key in LABELS:
        return LABELS[key]
    found = _AT_K.match(key)
    if found:
        kind, k = found.groups()
        return f"found in top {k}" if kind == "hits" else f"{kind}@{k}"
    text = _AT_ANY.sub(r"\1@\2", key).replace("pr_auc", "PR-AUC").replace("roc_auc", "ROC-AUC")
    return text.replace("_at_", " at ").replace("_", " ")


def write_report(path: Path, metrics: Mapping[str, Any], *, plots: Sequence[Path]) -> None:
    """Write a self-contained report.html: summary, tiers, leaderboard, weekly lists,
    metrics, thresholds, calibration, search, split, verification, plots and data quality."""
    horizon = int(metrics["horizon_days"])
    capacity = int(metrics["weekly_capacity"])
    family = FAMILIES.get(str(metrics["model"]), str(metrics["model"]))
    sections = [
        f"<h1>hubscore run <span class='run'>{escape(str(metrics.get('run', '')))}</span></h1>",
        f"<p class='lead'>A <b>{escape(family)}</b> model ranking free companies by how likely "
        f"they are to become customers within {horizon} days.</p>",
        "<h2>In short</h2><ul class='summary'>",
        *(
            f"<li>{escape(s)}</li>"
            for s in summary_sentences(metrics, capacity=capacity, horizon=horizon)
        ),
        "</ul>",
        *_section("Priority tiers on the test weeks", _tiers(metrics.get("priority_tiers"))),
        *_section("Leaderboard (all families of this run)", _leaderboard(metrics)),
        *_section("The weekly list, week by week (test weeks)", _weekly(metrics)),
        *_section(
            "Test metrics against the baseline (ranking by recent activity)", _compare(metrics)
        ),
        *_section("90% intervals, resampling companies", _intervals(metrics)),
        *_section("Thresholds", _thresholds(metrics)),
        *_section("Calibration (test weeks)", _calibration(metrics.get("calibration"))),
        *_section("Why each choice", _choices(metrics)),
        *_section(
            "Cross-validation (expanding window, mean ± std over folds)",
            _table([{"metric": label(k), **v} for k, v in metrics["cv"].items()]),
        ),
        *_section("Split and shipped model", _split(metrics)),
        *_section(
            "Lift without missingness flags",
            _table([{"metric": label(k), "value": v} for k, v in metrics["ablation"].items()]),
        ),
        *_section(
            "Export verification",
            _table(
                [
                    {"check": label(k), "value": v}
                    for k, v in metrics.get("verification", {}).items()
                ]
            ),
        ),
        "<h2>Plots (test weeks)</h2><div class='plots'>",
        *(_image(p) for p in plots),
        "</div>",
        *_section("Data quality", _quality(metrics.get("quality"))),
    ]
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>hubscore report {escape(str(metrics.get('run', '')))}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
    path.write_text(html, encoding="utf-8")


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1.5em;"
    "color:#1a1a1a;line-height:1.45}.lead{font-size:1.1em}.run{font-weight:normal;"
    "overflow-wrap:anywhere}ul.summary li{margin:.35em 0}"
    "h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{margin-bottom:.3em}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em;"
    "max-width:100%}td,th{border:1px solid #ccc;padding:3px 8px;vertical-align:top;"
    "overflow-wrap:break-word}td.t{max-width:28em}td.l{overflow-wrap:anywhere;max-width:22em}"
    "th{background:#f3f5f8;text-align:left;font-weight:600}"
    "td.n,td.d{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.d{text-align:left}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(28em,1fr));gap:1em}"
    "figure{margin:0}img{max-width:100%;height:auto}"
)
"""One stylesheet inline: the report stays one self-contained file. Numbers and dates never
break inside; long text (run names, parameters) breaks anywhere rather than widen a table."""


def _section(title: str, body: str) -> list[str]:
    return [f"<h2>{escape(title)}</h2>", body] if body else []


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return escape({True: "yes", False: "no", None: "—"}[value])
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or abs(value) == float("inf"):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"  # never 5.326e+04
        return f"{value:.3g}"  # three significant digits: what a metric can tell
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(isinstance(v, float) for v in value):
            return escape(f"{value[0]:.3g} to {value[1]:.3g}")  # an interval
        return escape(", ".join(_plain(v) for v in value))
    if isinstance(value, Mapping):  # parameters keep their library's names
        return escape("; ".join(f"{k} {_plain(v)}" for k, v in value.items()))
    if isinstance(value, str) and _ISO_DAY.match(value):
        return escape(day(value))
    return escape(str(value))


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Mapping) and set(value) == {"per_positive"}:
        return f"{value['per_positive']:.3g} {TIMES} positives"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"<td class='n'>{_fmt(value)}</td>"
    if isinstance(value, str) and _ISO_DAY.match(value):
        return f"<td class='d'>{_fmt(value)}</td>"
    text = _fmt(value)
    if _FIGURES.match(text) or len(text) <= SHORT_TEXT:  # "0.34% to 0.85%", "very high"
        return f"<td class='d'>{text}</td>"
    long = max((len(word) for word in text.split()), default=0) > LONG_WORD
    return f"<td class='{'l' if long else 't'}'>{text}</td>"


def _table(rows: Sequence[Mapping[str, Any]] | None) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may differ
    head = "".join(f"<th>{escape(label(str(c)))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _tiers(tiers: Mapping[str, Any] | None) -> str:
    if not tiers or not isinstance(tiers, Mapping):
        return ""
    rows, previous = [], 0.0
    for row in tiers["tiers"]:
        interval = row.get("interval")
        rows.append(
            {
                "tier": row["priority"],
                "share of a week's companies": (
                    f"{percent(previous)} to {percent(row['top_share'])}"
                ),
                "company-weeks": row["rows"],
                "converted": row["converted"],
                "conversion rate": percent(row["conversion_rate"]),
                "90% interval": f"{percent(interval[0])} to {percent(interval[1])}"
                if interval
                else "—",
                f"{TIMES} the average": round(row["lift"], 1)
                if row.get("lift") is not None
                else None,
                "share of all conversions": percent(row["share_of_converters"]),
            }
        )
        previous = row["top_share"]
    note = (
        "<p>A tier is a share of each week's free companies, ranked by the model. The shipped "
        "model's tier bounds are probabilities that cut its own scores of these weeks into the "
        "same shares; the rates here are of the fit that never saw these weeks. Base rate: "
        f"{percent(tiers['base_rate'])} of company-weeks converted.</p>"
    )
    return note + _table(rows)


def _leaderboard(metrics: Mapping[str, Any]) -> str:
    board = metrics.get("leaderboard") or []
    if not board:
        return ""
    metric = str(metrics["leaderboard_metric"])
    first = ["place", "model", metric, "interval", "overlaps_winner"]
    order = [*first, *(k for k in board[0] if k not in (*first, "run")), "run"]
    rows = [{k: row.get(k) for k in order} for row in board]
    for row in rows:
        row["model"] = FAMILIES.get(str(row["model"]), row["model"])
    return _table(rows)


def _weekly(metrics: Mapping[str, Any]) -> str:
    baseline = {w["cutoff"]: w for w in metrics.get("baseline_weekly", [])}
    rows = []
    for week in metrics.get("test_weekly", []):
        hits = sorted((k for k in week if k.startswith("hits_at_")), key=lambda k: int(k[8:]))
        row: dict[str, Any] = {
            "week": week["cutoff"],
            **{k: week[k] for k in ("companies", "converters", *hits)},
        }
        for key in hits:
            row[f"baseline top {key[8:]}"] = baseline.get(week["cutoff"], {}).get(key)
        rows.append(row)
    note = (
        "<p>Converters of each week (within the horizon) found in the model's top k, and in "
        "the top k by recent actions (the baseline).</p>"
    )
    return note + _table(rows) if rows else ""


def _compare(metrics: Mapping[str, Any]) -> str:
    test, baseline = metrics["test"], metrics["baseline"]
    at_threshold = ("precision", "recall", "f1")
    rows = [
        {
            "metric": f"{label(k)} at the threshold" if k in at_threshold else label(k),
            "model": v,
            "baseline": baseline.get(k),
        }
        for k, v in test.items()
        if not isinstance(v, dict) and k != "threshold"
    ]
    rows += [
        {"metric": f"at the threshold: {k}", "model": v, "baseline": None}
        for k, v in test.get("confusion", {}).items()
    ]
    return _table(rows)


def _intervals(metrics: Mapping[str, Any]) -> str:
    rows = [
        {"metric": label(k), "low": v[0], "high": v[1]}
        for k, v in metrics.get("test_intervals", {}).items()
    ]
    note = "<p>A company appears at many weekly cutoffs, so intervals resample companies.</p>"
    return note + _table(rows) if rows else ""


def _thresholds(metrics: Mapping[str, Any]) -> str:
    thresholds = metrics.get("thresholds", {})
    shipped, evaluated = thresholds.get("shipped"), thresholds.get("evaluated")
    if not isinstance(shipped, Mapping) or not isinstance(evaluated, Mapping):
        return _table([{"name": k, "value": v} for k, v in thresholds.items()])
    rules = thresholds["rules"]
    promises = {
        "decision": f"prediction = 1 ({rules['decision']})",
        "capacity": f"{rules['capacity']} companies a week",
        "f_beta": f"the F-beta share on the folds ({percent(rules['f_beta_share'])} of a week)",
        **{
            name: f"a week's top {percent(share)}: {name}"
            for name, share in zip(shipped["priority"], rules["tier_shares"], strict=False)
        },
    }
    rows = []
    for key, promise in promises.items():
        bound = shipped["priority"].get(key, shipped.get(key))
        done = shipped["admitted_per_week"][key]
        rows.append(
            {
                "rule": promise,
                "shipped threshold": percent(float(bound)),
                "companies a week (median, range)": (
                    f"{done['median']:,} ({done['min']:,} to {done['max']:,})"
                ),
                "evaluated fit's threshold": percent(
                    float(evaluated["priority"].get(key, evaluated.get(key)))
                ),
            }
        )
    note = (
        "<p>Each threshold is a rule cut on a model's own calibrated scores of the test weeks, "
        "without labels: the shipped thresholds through the shipped model and calibration (so "
        "they admit what they promise there), the evaluated fit's through its own, for the "
        "metrics above. The F-beta rule's share was chosen on out-of-fold predictions. "
        "Confidence: high from "
        f"{percent(metrics['confidence_bands']['high'])}, medium from "
        f"{percent(metrics['confidence_bands']['medium'])}.</p>"
    )
    return note + _table(rows) + _table(metrics.get("threshold_table"))


def _calibration(calibration: Mapping[str, Any] | None) -> str:
    if not calibration:
        return ""
    summary = [
        {"": side, **{k: calibration[side][k] for k in ("brier", "ece", "expected_over_observed")}}
        for side in ("before", "after")
    ]
    chosen = (
        f"<p>Method <b>{escape(str(calibration['method']))}</b>: "
        f"{escape(str(calibration.get('chosen_by')))}.</p>"
    )
    reliability = "<p>By tenth of the calibrated probability:</p>" + _table(
        calibration["after"]["reliability"]
    )
    return chosen + _table(summary) + reliability


def _choices(metrics: Mapping[str, Any]) -> str:
    """The run's choices with their evidence, then the search's trials when it ran."""
    rows = metrics.get("choices", [])
    search = metrics.get("search") or {}
    trials = [
        {
            "trial": r["trial"],
            "params": r["params"],
            str(r["metric"]): r["metric_value"],
            "vs trial 0": (r.get("versus_trial_0") or {}).get("difference"),
            "90% interval": (r.get("versus_trial_0") or {}).get("interval"),
        }
        for r in search.get("history", [])
    ]
    body = _table(rows) if rows else ""
    if search.get("ran"):
        body += f"<p>{search['trials']} trials ({search.get('pruned', 0)} more pruned):</p>"
        body += _table(trials)
    return body


def _split(metrics: Mapping[str, Any]) -> str:
    split = metrics["split"]
    rows = [{"side": side, **split[side]} for side in ("train", "test")]
    shipped = metrics.get("shipped")
    if shipped:
        rows.append(
            {
                "side": f"shipped (refit: {shipped['refit']})",
                **{k: shipped.get(k) for k in split["train"]},
            }
        )
    gap = f"<p>{escape(split['kind'])} split, gap {split['gap_days']} days.</p>"
    return gap + _sampled(metrics.get("sampling")) + _table(rows)


def _sampled(sampling: Mapping[str, Any] | None) -> str:
    """Say that the rows counted below were read, and what each stands for (training.max_rows)."""
    if not sampling:
        return ""
    return (
        f"<p>The file holds {sampling['rows']:,} rows, more than training.max_rows "
        f"({sampling['max_rows']:,}): every positive row and {sampling['negatives_kept']} "
        f"negative rows were read ({sampling['rows_read']:,} rows). The counts below are rows "
        "read; every metric above weighs each negative read as the rows it stands for.</p>"
    )


def _quality(quality: Mapping[str, Any] | None) -> str:
    """Render quality.json as one titled table (or list) per section, not a JSON dump."""
    if not quality:
        return "<p>No quality.json was found next to the feature file.</p>"
    sections = sorted(quality.items(), key=lambda item: item[0] != "assumptions")
    return "".join(
        f"<h3>{escape(label(str(name)))}</h3>{_value(value)}" for name, value in sections
    )


def _value(value: Any) -> str:
    """Render JSON-like data: mappings and lists of records as tables, plain lists as lists."""
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            return _table([{"": name, **v} for name, v in value.items()])
        return _table([{"name": label(str(k)), "value": v} for k, v in value.items()])
    if isinstance(value, list | tuple):
        if not value:
            return "<p>none</p>"
        if all(isinstance(v, Mapping) for v in value):
            return _table(value)
        return "<ul>" + "".join(f"<li>{_fmt(v)}</li>" for v in value) + "</ul>"
    return f"<p>{_fmt(value)}</p>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{escape(path.stem)}' src='data:image/png;base64,{data}'></figure>"
