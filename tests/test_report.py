"""report.html claims only what the run computed, and reads as a page people read."""

from __future__ import annotations

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
        (0.003938, "0.003938"),
        (0.8701413, "0.8701"),
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
    assert html.index("<h3>assumptions</h3>") == 0  # what the reader must know comes first
    assert "<li>There is no sign-up date.</li>" in html
    files = html.split("<h3>files</h3>")[1].split("<h3>")[0]
    assert re.search(r"<th></th><th>path</th><th>rows</th><th>rejected</th>", files)
    assert "<td class='n'>25,700</td>" in files
    by_label = html.split("<h3>missing_by_label</h3>")[1].split("<h3>")[0]
    # records with different keys share one header: the union, in order of appearance
    assert "<th>EMPLOYEE_RANGE_missing</th><th>INDUSTRY_missing</th>" in by_label
    assert "<td class='n'>308,729</td>" in html
    assert "overflow-wrap:break-word" in report.STYLE


def test_the_importance_axis_says_what_each_family_measures() -> None:
    assert set(runs.IMPORTANCE_KIND) == set(MODEL_NAMES)
    assert runs.IMPORTANCE_KIND["xgboost"].startswith("gain")
    assert runs.IMPORTANCE_KIND["lightgbm"].startswith("gain")
    assert "gain" not in runs.IMPORTANCE_KIND["random_forest"]
