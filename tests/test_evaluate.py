"""Evaluation: weekly list metrics, thresholds, ablation and the self-contained report."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubscore.training import evaluate, thresholds

Y = np.array([1, 0, 0, 1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.6, 0.3, 0.05])
WEEKS = np.array([0, 0, 0, 0, 7, 7, 7, 7])


def test_precision_and_recall_at_k_average_over_weeks() -> None:
    precision, recall = evaluate.weekly_top_k(Y, P, WEEKS, 1)
    assert precision == pytest.approx((1 + 0) / 2)
    assert recall == pytest.approx((1 / 2 + 0) / 2)
    precision, recall = evaluate.weekly_top_k(Y, P, WEEKS, 2)
    assert (precision, recall) == (pytest.approx(0.5), pytest.approx((0.5 + 1) / 2))


def top_k_by_week(y, p, weeks, k) -> tuple[float, float | None]:
    """The definition, week by week: a stable sort of each week's rows, its first k."""
    precisions, recalls = [], []
    for week in np.unique(weeks):
        rows = np.flatnonzero(weeks == week)
        top = rows[np.argsort(-p[rows], kind="stable")[:k]]
        precisions.append(y[top].sum() / top.size)
        if y[rows].sum():
            recalls.append(y[top].sum() / y[rows].sum())
    return float(np.mean(precisions)), float(np.mean(recalls)) if recalls else None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),
            st.sampled_from([0.1, 0.5, 0.9]),
            st.integers(0, 2),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 6),
)
def test_a_row_of_weight_w_ranks_like_w_adjacent_copies(rows, k) -> None:
    y, p, weeks, copies = (np.array(column) for column in zip(*rows, strict=True))
    if not copies.any():
        copies[0] = 1
    repeated = np.repeat(np.arange(y.size), copies)
    expected = top_k_by_week(y[repeated], p[repeated], weeks[repeated], k)
    assert evaluate.weekly_top_k(y, p, weeks, k) == pytest.approx(top_k_by_week(y, p, weeks, k))
    weighted = evaluate.WeeklyRanking.of(p, weeks).top_k(y, [k], copies)[0]
    assert weighted[0] == pytest.approx(expected[0])
    assert (weighted[1] is None) == (expected[1] is None)
    assert weighted[1] is None or weighted[1] == pytest.approx(expected[1])


def test_ranking_metrics_report_lift_over_base_rate() -> None:
    metrics = evaluate.ranking_metrics(Y, P, WEEKS, [2])
    assert metrics["base_rate"] == pytest.approx(3 / 8)
    assert metrics["lift_at_2"] == pytest.approx(0.5 / (3 / 8))
    assert 0 <= metrics["roc_auc"] <= 1 and 0 <= metrics["pr_auc"] <= 1
    single = evaluate.ranking_metrics(np.zeros(4, dtype=np.int64), P[:4], WEEKS[:4], [2])
    assert single["roc_auc"] is None and single["lift_at_2"] is None


def test_threshold_metrics_and_confusion() -> None:
    metrics = evaluate.threshold_metrics(Y, P, 0.5)
    assert metrics["confusion"] == {"tn": 3, "fp": 2, "fn": 1, "tp": 2}
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert evaluate.probability_metrics(Y, P)["brier"] == pytest.approx(np.mean((P - Y) ** 2))


def test_threshold_table_lists_size_per_week() -> None:
    table = evaluate.threshold_table(Y, P, WEEKS, [0.5, 0.15])
    assert [row["threshold"] for row in table] == [0.15, 0.5]
    assert table[1]["list_size_per_week"] == pytest.approx(4 / 2)
    assert table[0]["recall"] == pytest.approx(1.0)
    grid = evaluate.table_thresholds(P, [0.42])
    assert 0.42 in grid and grid == sorted(grid)


def test_cv_summary_and_ablation() -> None:
    summary = evaluate.summarise_folds([{"a": 1.0, "b": None}, {"a": 3.0, "b": None}])
    assert summary == {"a": {"mean": 2.0, "std": 1.0}}
    ablation = evaluate.ablation_summary({"lift_at_5": 3.0}, {"lift_at_5": 2.0}, [5])
    assert ablation["lift_retained_at_5"] == pytest.approx(0.5)


def test_company_intervals_resample_companies_and_bracket_the_estimate() -> None:
    rng = np.random.default_rng(0)
    companies = np.repeat(np.arange(60), 8)  # 60 companies, each at 8 weekly cutoffs
    weeks = np.tile(np.arange(8), 60)
    y = (rng.random(companies.size) < 0.2).astype(np.int64)
    p = np.clip(y * 0.3 + rng.random(companies.size) * 0.7, 0, 1)
    intervals = evaluate.company_intervals(companies, y, p, weeks, top_k=[5], resamples=50)
    low, high = intervals["roc_auc"]
    estimate = evaluate.ranking_metrics(y, p, weeks, [5])["roc_auc"]
    assert 0.5 < low <= estimate <= high <= 1.0
    assert intervals["precision_at_5"][0] <= intervals["precision_at_5"][1]
    again = evaluate.company_intervals(companies, y, p, weeks, top_k=[5], resamples=50)
    assert again == intervals, "seeded: the same intervals every run"


def test_a_row_of_weight_m_counts_as_m_copies_in_every_test_metric() -> None:
    # What a sampled frame relies on: 1 in m negatives kept, each weighing m.
    rng = np.random.default_rng(5)
    n = 600
    y = (rng.random(n) < 0.08).astype(np.int64)
    p = np.round(rng.random(n) * 0.5 + 0.3 * y, 3)
    weeks = np.repeat(np.arange(6) * 7, n // 6).astype(np.int64)
    copies = np.where(y == 1, 1, rng.integers(1, 4, n))
    expanded = np.repeat(np.arange(n), copies)
    full = evaluate.evaluate_predictions(
        y[expanded], p[expanded], weeks[expanded], top_k=[5, 20], threshold=0.4
    )
    weighted = evaluate.evaluate_predictions(
        y, p, weeks, top_k=[5, 20], threshold=0.4, weights=copies.astype(float)
    )
    for key, value in full.items():
        if isinstance(value, float):
            assert weighted[key] == pytest.approx(value, rel=1e-9), key
    assert weighted["confusion"] == full["confusion"] and weighted["rows"] == expanded.size
    assert evaluate.weekly_precision(y, p, weeks, [5], copies.astype(float)) == (
        evaluate.weekly_precision(y[expanded], p[expanded], weeks[expanded], [5])
    )
    w = copies.astype(float)
    cut = thresholds.weekly_cut(p, weeks, count=7, weights=w)
    expanded_cut = thresholds.weekly_cut(p[expanded], weeks[expanded], count=7)
    assert thresholds.admitted(p, weeks, cut, w) == (
        thresholds.admitted(p[expanded], weeks[expanded], expanded_cut)
    )
    assert thresholds.fbeta_threshold(y, p, 0.5, w) == (
        thresholds.fbeta_threshold(y[expanded], p[expanded], 0.5)
    )
