"""Thresholds and tiers live in the shipped model's space, and tiers mean what they say."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubscore.core.artifacts import read_manifest
from hubscore.engine.scorer import PRIORITY_LEVELS, load_scorer
from hubscore.training import dataset, thresholds

Y = np.array([1, 0, 0, 1, 0, 1, 0, 0])
P = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.6, 0.3, 0.05])
WEEKS = np.array([0, 0, 0, 0, 7, 7, 7, 7])


def test_fbeta_threshold_is_chosen_on_the_folds_with_its_weekly_share() -> None:
    assert thresholds.fbeta_threshold(Y, P, 0.5) == pytest.approx(0.9)  # precision-heavy: top 1
    assert thresholds.fbeta_threshold(Y, P, 10.0) <= 0.2  # recall-heavy: take everything
    chosen = thresholds.choose_f_beta(Y, P, WEEKS, beta=0.5)
    assert chosen["threshold"] == pytest.approx(0.9)
    assert chosen["weekly_share"] == pytest.approx((1 / 4 + 0 / 4) / 2)


def test_a_weekly_cut_lies_between_the_last_admitted_and_the_first_left_out() -> None:
    # week 0: 0.9 0.8 | 0.2 0.1 ; week 7: 0.7 0.6 | 0.3 0.05 -> cuts 0.5 and 0.45; lower median
    assert thresholds.weekly_cut(P, WEEKS, count=2) == pytest.approx(0.45)
    assert thresholds.weekly_cut(P, WEEKS, share=0.25) == pytest.approx(0.65)  # 1 of 4 a week
    assert thresholds.admitted(P, WEEKS, 0.25) == {"median": 2, "min": 2, "max": 3, "mean": 2.5}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(3, 40), min_size=1, max_size=9),
    st.integers(1, 30),
    st.floats(0.01, 0.9),
    st.integers(0, 2**32 - 1),
)
def test_the_cut_admits_what_it_promises_in_the_median_week(
    sizes: list[int], count: int, share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    weeks = np.repeat(np.arange(len(sizes)), sizes)
    p = rng.random(weeks.size)  # no ties
    cut = thresholds.weekly_cut(p, weeks, count=count)
    expected = [min(count, n) for n in sizes]
    found = [int((p[weeks == w] >= cut).sum()) for w in range(len(sizes))]
    assert sorted(np.subtract(found, expected))[(len(sizes) - 1) // 2] == 0
    cut = thresholds.weekly_cut(p, weeks, share=share)
    expected = [min(max(round(share * n), 1), n) for n in sizes]
    found = [int((p[weeks == w] >= cut).sum()) for w in range(len(sizes))]
    assert sorted(np.subtract(found, expected))[(len(sizes) - 1) // 2] == 0


def test_thresholds_are_rules_cut_on_a_models_own_scores() -> None:
    rules = thresholds.ThresholdRules(
        capacity=1, f_beta_share=0.5, decision="capacity", tier_shares=(0.25, 0.5, 0.75)
    )
    cut = thresholds.thresholds_for(P, WEEKS, rules)
    assert cut["decision"] == cut["capacity"] == thresholds.weekly_cut(P, WEEKS, count=1)
    assert cut["f_beta"] == thresholds.weekly_cut(P, WEEKS, share=0.5)
    assert list(cut["priority"]) == ["very high", "high", "medium"]
    assert cut["priority"]["very high"] >= cut["priority"]["high"] >= cut["priority"]["medium"]
    assert cut["admitted_per_week"]["capacity"]["median"] == 1
    fixed = thresholds.thresholds_for(
        P, WEEKS, thresholds.ThresholdRules(1, 0.5, 0.42, (0.1, 0.2, 0.3))
    )
    assert fixed["decision"] == 0.42
    bands = thresholds.confidence_bands({"f_beta": 0.3, "capacity": 0.7})
    assert bands == {"high": 0.7, "medium": 0.3}


def test_tiers_are_shares_of_each_week_and_their_rates_come_with_intervals() -> None:
    rng = np.random.default_rng(3)
    companies = np.tile(np.arange(200), 4)
    weeks = np.repeat(np.arange(4), 200)
    p = rng.random(800)
    y = (rng.random(800) < p**4).astype(np.int64)  # converts far more often near the top
    out = thresholds.outcome_by_tier(companies, y, p, weeks, (0.05, 0.2, 0.5), resamples=30)
    rows = [t["rows"] for t in out["tiers"]]
    assert rows == [4 * 10, 4 * 30, 4 * 60, 4 * 100]
    assert out["monotone"] is True
    for tier in out["tiers"]:
        low, high = tier["interval"]
        assert low <= tier["conversion_rate"] <= high
        assert tier["lift"] == pytest.approx(tier["conversion_rate"] / y.mean())
    flipped = thresholds.outcome_by_tier(companies, y, -p, weeks, (0.05, 0.2, 0.5), resamples=5)
    assert flipped["monotone"] is False


def held_out(features_file: Path) -> pl.DataFrame:
    """The test side of the trained fixture: the weeks its thresholds were cut on."""
    from conftest_train import small_config

    ff = dataset.read_features(features_file)
    return dataset.take(ff.frame, dataset.split_rows(ff, small_config()).test)


def per_week(scores: pl.DataFrame, expression: pl.Expr) -> pl.DataFrame:
    return scores.group_by("cutoff").agg(expression.alias("n"), pl.len().alias("rows"))


@pytest.mark.slow
def test_the_manifests_thresholds_admit_what_they_promise_through_the_shipped_scorer(
    trained_artifact: Any, features_file: Path
) -> None:
    run = trained_artifact.run_dir
    manifest, rules = read_manifest(run), trained_artifact.metrics["thresholds"]["rules"]
    # The documented Python API, on the held-out rows: the shipped ONNX model, calibrated.
    scores = load_scorer(run).score(held_out(features_file))
    capacity = per_week(scores, (pl.col("prediction") == 1).sum())
    assert (
        manifest.decision_threshold == trained_artifact.metrics["thresholds"]["shipped"]["decision"]
    )
    # Half the weeks admit at least the capacity and half at most: the lower median is it.
    assert sorted(capacity["n"].to_list())[(capacity.height - 1) // 2] == rules["capacity"]
    for depth, share in enumerate(rules["tier_shares"], start=1):
        listed = per_week(scores, pl.col("priority").is_in(PRIORITY_LEVELS[:depth]).sum())
        promised = [max(round(share * n), 1) for n in listed["rows"]]
        excess = sorted(np.subtract(listed["n"].to_list(), promised).tolist())
        assert excess[(len(excess) - 1) // 2] == 0, (PRIORITY_LEVELS[depth - 1], excess)
    bounds = manifest.priority_thresholds
    assert bounds["very high"] >= bounds["high"] >= bounds["medium"]


@pytest.mark.slow
def test_the_tiers_outcome_is_measured_on_weeks_the_evaluated_fit_never_saw(
    trained_artifact: Any,
) -> None:
    metrics = trained_artifact.metrics
    tiers = metrics["priority_tiers"]
    assert [t["priority"] for t in tiers["tiers"]] == list(PRIORITY_LEVELS)
    assert sum(t["rows"] for t in tiers["tiers"]) == metrics["test"]["rows"]
    assert sum(t["converted"] for t in tiers["tiers"]) == metrics["test"]["positives"]
    top = tiers["tiers"][0]
    assert top["rows"] <= 0.02 * metrics["test"]["rows"] + metrics["test"]["weeks"]  # small
    rates = [t["conversion_rate"] for t in tiers["tiers"]]
    assert tiers["monotone"] == all(a >= b for a, b in itertools.pairwise(rates))
    assert tiers["monotone"], rates  # the fixture's signal is strong enough to order them
    # the evaluated fit's own cut, for the honest threshold metrics, is recorded beside
    evaluated = metrics["thresholds"]["evaluated"]
    assert metrics["test"]["threshold"] == evaluated["decision"]


@pytest.mark.slow
def test_one_row_per_company_is_cut_as_one_group_not_by_its_dates(tmp_path: Path) -> None:
    # is_customer: every customer at its own date; cut by date, each would be its own "week".
    from conftest_train import make_features, small_config, write_features

    from hubscore.training.runs import train_and_export

    frame = make_features(400, 1, target="is_customer")
    path = write_features(frame, tmp_path / "f.parquet", target="is_customer")
    (run,) = train_and_export(path, small_config("logreg"), out_dir=tmp_path / "models")
    tiers = run.metrics["priority_tiers"]["tiers"]
    n = sum(t["rows"] for t in tiers)
    ends = [max(round(share * n), 1) for share in (0.01, 0.05, 0.2)] + [n]
    assert list(np.cumsum([t["rows"] for t in tiers])) == ends
    assert run.metrics["thresholds"]["shipped"]["admitted_per_week"]["capacity"]["median"] == 5
