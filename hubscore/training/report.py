"""Write a run's self-contained report.html from its metrics.json, and nothing else.

Every sentence is built from this run's numbers (`summary_sentences`): the report claims only
what the run computed. Plots are inlined, so the page is one file.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

OVER, UNDER = 1.15, 1 / 1.15
"""Σp / converters beyond these bounds is called over- or under-stated."""


def summary_sentences(metrics: Mapping[str, Any], *, capacity: int, horizon: int) -> list[str]:
    """Return the plain-language summary for a sales lead, computed from `metrics`."""
    weekly = metrics.get("test_weekly", [])
    baseline = metrics.get("baseline_weekly", [])
    sentences = []
    key = f"hits_at_{capacity}"
    if weekly and key in weekly[0]:
        hits = _mean([w[key] for w in weekly])
        found = _mean([w[key] for w in baseline]) if baseline else None
        interval = metrics.get("test_intervals", {}).get(f"precision_at_{capacity}")
        span = f" (90% interval {interval[0] * capacity:.1f} to {interval[1] * capacity:.1f})"
        text = (
            f"Of the {capacity} companies listed each test week ({len(weekly)} weeks, "
            f"{weekly[0]['cutoff']} to {weekly[-1]['cutoff']}), {hits:.1f} converted within "
            f"{horizon} days on average{span if interval else ''}"
        )
        if found is not None:
            text += f"; ranking by recent activity found {found:.1f}"
        sentences.append(text + ".")
        converters = sum(w["converters"] for w in weekly)
        listed = sum(w[key] for w in weekly)
        if converters:
            sentences.append(
                f"The lists held {listed} of the {converters} company-weeks that converted "
                f"({listed / converters:.0%})."
            )
    sentences += _calibration_sentences(metrics.get("calibration"))
    sentences += _shipped_sentences(metrics)
    sentences += _leaderboard_sentences(metrics)
    return sentences


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
        f"positive) with cutoffs {shipped['first_cutoff']} to {shipped['last_cutoff']}"
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
    close = [row["model"] for row in board[1:] if row.get("overlaps_winner")]
    text = (
        f"{len(board)} families were trained; {board[0]['model']} ranked first by {metric} "
        f"({_fmt(board[0][metric])})"
    )
    if close:
        text += f", and the 90% intervals of {', '.join(close)} overlap it"
    return [text + "."]


def write_report(path: Path, metrics: Mapping[str, Any], *, plots: Sequence[Path]) -> None:
    """Write a self-contained report.html: summary, leaderboard, weekly lists, calibration,
    search, metrics, thresholds, verification, plots and the data-quality profile."""
    horizon = int(metrics["horizon_days"])
    capacity = int(metrics["weekly_capacity"])
    sections = [
        f"<h1>hubscore run {escape(str(metrics.get('run', '')))}</h1>",
        f"<p class='lead'>Model <b>{escape(str(metrics['model']))}</b>, target "
        f"<b>{escape(str(metrics['target']))}</b>.</p>",
        "<h2>In short</h2><ul>",
        *(
            f"<li>{escape(s)}</li>"
            for s in summary_sentences(metrics, capacity=capacity, horizon=horizon)
        ),
        "</ul>",
        *_section("Leaderboard (all families of this run)", _leaderboard(metrics)),
        *_section("The weekly list, week by week (test side)", _weekly(metrics)),
        *_section("Test metrics vs the baseline (rank by recent activity)", _compare(metrics)),
        *_section(
            "90% intervals, resampling companies",
            "<p>A company appears at many weekly cutoffs, so intervals resample companies.</p>"
            + _table(
                [
                    {"metric": k, "low": v[0], "high": v[1]}
                    for k, v in metrics.get("test_intervals", {}).items()
                ]
            ),
        ),
        *_section("Calibration (test side)", _calibration(metrics.get("calibration"))),
        *_section("Why each choice", _choices(metrics)),
        *_section(
            "Cross-validation (expanding window, mean ± std over folds)",
            _table([{"metric": k, **v} for k, v in metrics["cv"].items()]),
        ),
        *_section("Split and shipped model", _split(metrics)),
        *_section(
            "Thresholds (chosen on calibrated out-of-fold predictions)",
            _table([{"name": k, "value": v} for k, v in metrics["thresholds"].items()])
            + _table(
                [
                    {"band": k, "from probability": v}
                    for k, v in metrics.get("confidence_bands", {}).items()
                ]
            )
            + _table(metrics["threshold_table"]),
        ),
        *_section(
            "Outcome by priority tier (test weeks)",
            "<p><code>score</code> tiers each week's ranked list by share "
            "(scoring.priority_quantiles).</p>" + _table(metrics.get("priority_tiers")),
        ),
        *_section(
            "Lift without missingness flags",
            _table([{"metric": k, "value": v} for k, v in metrics["ablation"].items()]),
        ),
        *_section(
            "Export verification",
            _table([{"check": k, "value": v} for k, v in metrics.get("verification", {}).items()]),
        ),
        "<h2>Plots (test side)</h2><div class='plots'>",
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
    "body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1.5em;"
    "color:#1a1a1a;line-height:1.45}.lead{font-size:1.1em}"
    "h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{margin-bottom:.3em}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}"
    "td,th{border:1px solid #ccc;padding:3px 10px;vertical-align:top;overflow-wrap:break-word}"
    "th{background:#f3f5f8;text-align:left;white-space:nowrap}"  # headers never break mid-word
    "td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    ".plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(30em,1fr));gap:1em}"
    "figure{margin:0}img{max-width:100%;height:auto}"
)
"""One stylesheet inline: the report stays one self-contained file."""


def _section(title: str, body: str) -> list[str]:
    return [f"<h2>{escape(title)}</h2>", body] if body else []


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


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
        return f"{value:.3g}" if value and abs(value) < 1e-3 else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return escape(", ".join(_plain(v) for v in value))
    if isinstance(value, Mapping):
        return escape("; ".join(f"{k}: {_plain(v)}" for k, v in value.items()))
    return escape(str(value))


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]] | None) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may differ
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{_fmt(row.get(c))}</td>"
            if isinstance(row.get(c), int | float) and not isinstance(row.get(c), bool)
            else f"<td>{_fmt(row.get(c))}</td>"
            for c in columns
        )
        + "</tr>"
        for row in rows
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{body}</table></div>"


def _leaderboard(metrics: Mapping[str, Any]) -> str:
    board = metrics.get("leaderboard") or []
    if not board:
        return ""
    metric = str(metrics["leaderboard_metric"])
    first = ["place", "model", metric, "interval", "overlaps_winner"]
    order = [*first, *(k for k in board[0] if k not in (*first, "run")), "run"]
    return _table([{k: row.get(k) for k in order} for row in board])


def _weekly(metrics: Mapping[str, Any]) -> str:
    baseline = {w["cutoff"]: w for w in metrics.get("baseline_weekly", [])}
    rows = []
    for week in metrics.get("test_weekly", []):
        hits = sorted((k for k in week if k.startswith("hits_at_")), key=lambda k: int(k[8:]))
        row = {k: week[k] for k in ("cutoff", "companies", "converters", *hits)}
        for key in hits:
            row[f"baseline_{key}"] = baseline.get(week["cutoff"], {}).get(key)
        rows.append(row)
    note = "<p>hits_at_k: converters within the week's top k; baseline: rank by recent actions.</p>"
    return note + _table(rows) if rows else ""


def _compare(metrics: Mapping[str, Any]) -> str:
    test, baseline = metrics["test"], metrics["baseline"]
    rows = [
        {"metric": k, "model": v, "baseline": baseline.get(k)}
        for k, v in test.items()
        if not isinstance(v, dict)
    ]
    rows += [
        {"metric": f"confusion {k}", "model": v, "baseline": None}
        for k, v in test.get("confusion", {}).items()
    ]
    return _table(rows)


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
    reliability = "<p>By decile of calibrated probability:</p>" + _table(
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
    return gap + _table(rows)


def _quality(quality: Mapping[str, Any] | None) -> str:
    """Render quality.json as one titled table (or list) per section, not a JSON dump."""
    if not quality:
        return "<p>No quality.json was found next to the feature file.</p>"
    sections = sorted(quality.items(), key=lambda item: item[0] != "assumptions")
    return "".join(f"<h3>{escape(str(name))}</h3>{_value(value)}" for name, value in sections)


def _value(value: Any) -> str:
    """Render JSON-like data: mappings and lists of records as tables, plain lists as lists."""
    if isinstance(value, Mapping):
        if value and all(isinstance(v, Mapping) for v in value.values()):
            return _table([{"": name, **v} for name, v in value.items()])
        return _table([{"name": k, "value": v} for k, v in value.items()])
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
