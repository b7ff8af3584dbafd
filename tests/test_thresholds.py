"""Thresholds and tiers live in the shipped model's space, and tiers mean what they say."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from hubscore.core.artifacts import read_manifest
from hubscore.engine.scorer import PRIORITY_LEVELS, load_scorer
from hubscore.training import dataset


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
