"""report.html claims only what the run computed, and reads as a page people read."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import polars as pl
import pytest

from hubscore.core.config import MODEL_NAMES
from hubscore.training import assess, evaluate, plots, report, runs

matplotlib.use("Agg")

QUALITY = {
    "assumptions": ["There is no sign-up date.", "x" * 300],
    "files": {
        "customers": {"path": "data/customers.csv", "rows": 325, "rejected": 0},
        "usage_actions": {"path": "data/usage_actions.csv", "rows": 25700, "rejected": 2},
    },
    "missing_by_label": [
        {"companies": "customers", "rows": 325, "EMPLOYEE_RANGE_missing": 8},
        {"companies": "noncustomers", "rows": 4675, "INDUSTRY_missing": 3742},
    ],
    "rejects": [],
    "spine": {"rows": 308729, "positives": 1112, "first_cutoff": "2025-08-31"},
}


def run_metrics(scale: float, *, seed: int = 0) -> dict[str, Any]:
    """Metrics of a fake run whose probabilities are `scale` times the true rates."""
    rng = np.random.default_rng(seed)
    weeks = np.repeat(np.arange(8) * 7 + 20_000, 500)
    truth = rng.beta(0.5, 40, weeks.size)
    y = (rng.random(weeks.size) < truth).astype(np.int64)
    p = np.clip(truth * scale, 0, 1)
    fitted = {"method": "none", "chosen_by": "a test"}
    test = evaluate.evaluate_predictions(y, p, weeks, top_k=[10, 50], threshold=0.05)
    return {
        "run": "r1",
        "model": "xgboost",
        "target": "converted_within",
        "horizon_days": 30,
        "weekly_capacity": 50,
        "leaderboard_metric": "precision_at_50",
        "test": test,
        "test_weekly": evaluate.weekly_precision(y, p, weeks, [10, 50]),
        "baseline": evaluate.ranking_metrics(y, p[::-1].copy(), weeks, [10, 50]),
        "baseline_weekly": evaluate.weekly_precision(y, p[::-1].copy(), weeks, [10, 50]),
        "test_intervals": {"precision_at_50": [0.01, 0.2]},
        "cv": {"roc_auc": {"mean": 0.7, "std": 0.01}},
        "split": {"kind": "time", "gap_days": 30, "train": {"rows": 1}, "test": {"rows": 2}},
        "thresholds": {"decision": 0.05},
        "confidence_bands": {"high": 0.1, "medium": 0.05},
        "threshold_table": evaluate.threshold_table(y, p, weeks, [0.05]),
        "calibration": assess.calibration_report(y, p, p, fitted),
        "ablation": evaluate.ablation_summary(test, test, [10]),
        "verification": {"max_abs_delta": 1e-7},
        "quality": QUALITY,
        "y": y,
        "p": p,
        "weeks": weeks,
    }


@pytest.mark.parametrize(("scale", "word"), [(2.0, "over-stated"), (0.5, "under-stated")])
def test_the_summary_says_what_this_run_computed(scale: float, word: str) -> None:
    metrics = run_metrics(scale)
    sentences = report.summary_sentences(metrics, capacity=50, horizon=30)
    ratio = metrics["calibration"]["after"]["expected_over_observed"]
    calibration = next(s for s in sentences if "add up to" in s)
    assert f"{ratio:.2f} times" in calibration and word in calibration
    hits = np.mean([w["hits_at_50"] for w in metrics["test_weekly"]])
    assert f"{hits:.1f} converted within 30 days" in sentences[0]
    assert "(90% interval 0.5 to 10.0)" in sentences[0]


def test_no_sentence_survives_a_change_of_numbers() -> None:
    # Every sentence is built from numbers: two runs that differ share none of them.
    first = report.summary_sentences(run_metrics(2.0), capacity=50, horizon=30)
    second = report.summary_sentences(run_metrics(0.5, seed=1), capacity=50, horizon=30)
    assert not set(first) & set(second)


def test_the_report_is_one_self_contained_file(tmp_path: Path) -> None:
    metrics = run_metrics(1.0)
    y, p, weeks = metrics.pop("y"), metrics.pop("p"), metrics.pop("weeks")
    importance = pl.DataFrame({"feature": ["a", "b"], "importance": [2.0, 1.0]})
    figures = plots.write_plots(
        tmp_path,
        y,
        p,
        weeks,
        threshold=0.05,
        importance=importance,
        importance_kind="gain",
        calibration=metrics["calibration"],
    )
    assert len(figures) == 6 and all(path.read_bytes()[:4] == b"\x89PNG" for path in figures)
    report.write_report(tmp_path / "report.html", metrics, plots=figures)
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # nothing outside the file
    for needle in ("In short", "week by week", "Calibration", "gap 30 days", "sign-up date"):
        assert needle in html


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (53262.666, "53,263"),  # was 5.326e+04
        (75278, "75,278"),
        (0.003938, "0.00394"),  # three significant digits: what a metric can tell
        (0.8701413, "0.87"),
        (7.302e-07, "7.3e-07"),
        (None, "—"),
        (True, "yes"),
    ],
)
def test_numbers_read_as_numbers(value: object, shown: str) -> None:
    assert report._fmt(value) == shown


def test_the_quality_profile_is_tables_not_a_json_dump() -> None:
    html = report._quality(QUALITY)
    assert "<pre>" not in html and '"path":' not in html
    # what the reader must know comes first, under a name a person reads, not a JSON key
    assert html.index("<h3>What the files cannot tell</h3>") == 0
    assert "<li>There is no sign-up date.</li>" in html
    files = html.split("<h3>Rows read and rejected, per file</h3>")[1].split("<h3>")[0]
    assert re.search(r"<th></th><th>path</th><th>rows</th><th>rejected</th>", files)
    assert "<td class='n'>25,700</td>" in files
    by_label = html.split("<h3>Missing fields, customers against free companies</h3>")[1]
    # records with different keys share one header: the union, in order of appearance
    assert "<th>EMPLOYEE RANGE missing</th><th>INDUSTRY missing</th>" in by_label
    assert "<td class='n'>308,729</td>" in html
    assert "<td class='d'>31\u00a0Aug\u00a02025</td>" in html  # a date never wraps
    assert "overflow-wrap:break-word" in report.STYLE
    assert "_" not in "".join(re.findall(r"<h3>(.*?)</h3>", html))


def test_the_importance_axis_says_what_each_family_measures() -> None:
    assert set(runs.IMPORTANCE_KIND) == set(MODEL_NAMES)
    assert runs.IMPORTANCE_KIND["xgboost"].startswith("gain")
    assert runs.IMPORTANCE_KIND["lightgbm"].startswith("gain")
    assert "gain" not in runs.IMPORTANCE_KIND["random_forest"]


def tier_metrics(rates: list[float]) -> dict[str, Any]:
    tiers = [
        {
            "priority": name,
            "top_share": share,
            "rows": 100,
            "converted": round(rate * 100),
            "conversion_rate": rate,
            "interval": [rate / 2, rate * 1.5],
            "lift": rate / 0.01,
            "share_of_converters": 0.25,
        }
        for name, share, rate in zip(
            ("very high", "high", "medium", "low"), (0.01, 0.05, 0.2, 1.0), rates, strict=True
        )
    ]
    ordered = all(a >= b for a, b in itertools.pairwise(rates))
    return {"tiers": tiers, "monotone": ordered, "base_rate": 0.01}


def test_the_tiers_are_said_with_their_rates_intervals_and_order() -> None:
    metrics = {**run_metrics(1.0), "priority_tiers": tier_metrics([0.2, 0.05, 0.01, 0.001])}
    sentences = report.summary_sentences(metrics, capacity=50, horizon=30)
    tiers = next(s for s in sentences if s.startswith("Priority tiers"))
    assert "very high (a week's top 1.0%) 20.0% (90% interval 10.0% to 30.0%)" in tiers
    assert "low (the rest) 0.10%" in tiers
    assert "each tier converted at least as often as the one below it" in tiers
    metrics["priority_tiers"] = tier_metrics([0.05, 0.2, 0.01, 0.001])
    tiers = report.summary_sentences(metrics, capacity=50, horizon=30)
    assert any("NOT in order" in s for s in tiers)
    html = report._tiers(metrics["priority_tiers"])
    assert "<td class='d'>2.5% to 7.5%</td>" in html  # a figure never wraps


def test_the_cross_validation_gap_is_split_into_base_rate_and_lift() -> None:
    metrics = run_metrics(1.0)
    metrics["cv"] = {"precision_at_50": {"mean": 0.06}, "base_rate": {"mean": 0.002}}
    metrics["test"] = {**metrics["test"], "precision_at_50": 0.12, "base_rate": 0.003}
    gap = next(
        s
        for s in report.summary_sentences(metrics, capacity=50, horizon=30)
        if s.startswith("In cross-validation")
    )
    assert "held 3.0 converters, on the test weeks 6.0 (2.0\u00d7)" in gap
    assert "from 0.20% of company-weeks in the validation folds to 0.30%" in gap
    assert "(1.5\u00d7), the lift over it from 30\u00d7 to 40\u00d7 (1.3\u00d7)" in gap


def test_a_decile_without_conversions_is_drawn_apart_not_as_a_low_rate() -> None:
    import matplotlib.pyplot as plt

    rows = [
        {
            "decile": i,
            "rows": 10,
            "mean_predicted": 0.001 * i,
            "observed_rate": rate,
            "positives": 0,
        }
        for i, rate in enumerate([0.0, 0.0, 0.002, 0.004, 0.01], start=1)
    ]
    calibration = {
        "method": "platt",
        "before": {"reliability": rows},
        "after": {"reliability": rows},
    }
    fig, ax = plt.subplots()
    plots._plot_calibration(ax, calibration)
    empty = [line for line in ax.get_lines() if line.get_marker() == "v" and len(line.get_xdata())]
    assert empty and all(list(line.get_xdata()) == [0.001, 0.002] for line in empty)
    floor = empty[0].get_ydata()[0]
    assert floor < 0.002 / 2  # below every observed rate, on its own line
    assert ax.get_ylim()[0] < floor
    assert any(t.get_text() == "decile with no conversion" for t in ax.get_legend().get_texts())
    plt.close(fig)
