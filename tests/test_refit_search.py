"""The shipped model: refitted on every labelled row, with parameters the time folds chose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest_train import make_features, small_config, write_features

from hubscore.core.artifacts import read_manifest
from hubscore.engine.scorer import load_scorer
from hubscore.training import dataset, runs, search

SEARCH = {"trials": 4}
SPACE = {
    "xgboost": {
        "max_depth": {"low": 2, "high": 4, "int": True},
        "learning_rate": {"low": 0.05, "high": 0.3, "log": True},
        "min_child_weight": {"low": 0.001, "high": 0.05, "log": True, "per_positive": True},
        "encoding.industry": {"choices": ["missing_flag", "frequency", "onehot"]},
    },
}


def train(features: Path, out: Path, model: str = "xgboost", **overrides: Any) -> runs.RunResult:
    (result,) = runs.train_and_export(features, small_config(model, **overrides), out_dir=out)
    return result


@pytest.mark.slow
def test_the_shipped_model_is_refitted_on_the_test_side_too(
    features_file: Path, tmp_path: Path
) -> None:
    shipped = train(features_file, tmp_path / "all")
    ff = dataset.read_features(features_file)
    manifest = read_manifest(shipped.run_dir)
    assert manifest.fitted_on["refit"] == "all"
    assert manifest.fitted_on["rows"] == ff.frame.height
    split = shipped.metrics["split"]
    assert manifest.fitted_on["last_cutoff"] == split["test"]["last_cutoff"]
    assert "refitted on every labelled row" in manifest.metrics_describe
    side = train(features_file, tmp_path / "side", **{"training.refit": "train_side"})
    assert read_manifest(side.run_dir).fitted_on["rows"] == split["train"]["rows"]


@pytest.mark.slow
def test_changing_only_test_side_labels_changes_the_shipped_model(
    features_file: Path, tmp_path: Path
) -> None:
    ff = dataset.read_features(features_file)
    first_test = pl.lit(ff.frame.get_column("cutoff").max()) - pl.duration(days=21)
    changed = ff.frame.drop(dataset.ORDER).with_columns(
        label=pl.when(pl.col("cutoff") >= first_test).then(1 - pl.col("label")).otherwise("label")
    )
    other = write_features(changed, tmp_path / "changed.parquet")
    rows = ff.frame.head(200)
    before = load_scorer(train(features_file, tmp_path / "a").run_dir).score(rows)
    after_run = train(other, tmp_path / "b")
    after = load_scorer(after_run.run_dir).score(rows)
    # The train side is identical, so the train-side fit (what the metrics describe) is too...
    assert after_run.metrics["cv"] == train(features_file, tmp_path / "c").metrics["cv"]
    # ...but the shipped model saw the new test-side labels.
    diff = np.abs(before["conversion_probability"] - after["conversion_probability"]).to_numpy()
    assert diff.max() > 1e-3


@pytest.mark.slow
def test_the_same_seed_and_trials_choose_the_same_parameters_and_bytes(
    features_file: Path, tmp_path: Path
) -> None:
    overrides = {"training.search": SEARCH, "search_space.xgboost": SPACE["xgboost"]}
    first = train(features_file, tmp_path / "1", **overrides)
    second = train(features_file, tmp_path / "2", **overrides)
    searched = first.metrics["search"]
    assert searched["trials"] + searched["pruned"] == SEARCH["trials"]
    assert searched["chosen"] == second.metrics["search"]["chosen"]
    assert len(searched["history"]) == searched["trials"] >= 1
    for name in ("model.onnx", "encoders.json", "explain.npz"):
        assert (first.run_dir / name).read_bytes() == (second.run_dir / name).read_bytes()
    # Trial 0 is the config's own parameters (conftest_train.SMALL_MODELS): the bar to beat.
    baseline = searched["history"][0]["params"]
    assert (baseline["max_depth"], baseline["learning_rate"]) == (3, 0.2)
    chosen = searched["chosen"]["params"]
    assert set(SPACE["xgboost"]) <= set(chosen)
    # Sizes relative to the positives are resolved at fit time, trees by early stopping.
    assert all("per_positive" in r["params"]["min_child_weight"] for r in searched["history"][1:])
    assert chosen["n_estimators"] == int(np.median(searched["chosen"]["fold_trees"]))
    encoders = json.loads((first.run_dir / "encoders.json").read_text())
    assert encoders["industry"] == chosen["encoding.industry"]


def test_search_off_trains_the_config_parameters_through_the_same_folds(
    tmp_path: Path,
) -> None:
    features = write_features(make_features(80, 12), tmp_path / "f.parquet")
    result = train(features, tmp_path / "m", "logreg")
    searched = result.metrics["search"]
    assert searched["trials"] == 0 and searched["chosen_by"] == "config (search off)"
    assert searched["chosen"]["params"]["C"] == 0.5  # conftest_train.SMALL_MODELS
    # The chosen trial's CV figures are the run's CV figures: one set of folds.
    assert searched["chosen"]["tie_break_mean"] == pytest.approx(
        result.metrics["cv"]["pr_auc"]["mean"], rel=1e-3
    )


def trial(number: int, metric: float, pr_auc: float, std: float = 0.03) -> dict[str, Any]:
    return {"trial": number, "metric_mean": metric, "metric_std": std, "tie_break_mean": pr_auc}


def test_a_trial_replaces_the_config_only_beyond_a_standard_error_and_without_losing_pr_auc() -> (
    None
):
    config = trial(0, metric=0.040, pr_auc=0.050)  # standard error 0.03 / sqrt(3) = 0.0173
    within_noise = trial(1, metric=0.055, pr_auc=0.060)
    loses_pr_auc = trial(2, metric=0.080, pr_auc=0.049)
    better = trial(3, metric=0.060, pr_auc=0.050)
    number, why = search.choose_trial([config, within_noise, loses_pr_auc], folds=3)
    assert number == 0 and why is not None and "standard error (0.01732)" in why and "pr_auc" in why
    assert search.choose_trial([config, within_noise, loses_pr_auc, better], folds=3) == (3, None)
    best = trial(4, metric=0.060, pr_auc=0.070)  # ties on the metric: PR-AUC breaks it
    assert search.choose_trial([config, better, best], folds=3) == (4, None)


def test_each_new_trial_is_either_chosen_or_leaves_the_choice_as_it_was() -> None:
    # The search frees the predictions of trials that are not chosen so far: it relies on this.
    rng = np.random.default_rng(3)
    rows = [trial(0, metric=0.05, pr_auc=0.05, std=0.01)]
    chosen = 0
    for number in range(1, 60):
        rows.append(trial(number, metric=rng.uniform(0.03, 0.08), pr_auc=rng.uniform(0.03, 0.07)))
        now, _ = search.choose_trial(rows, folds=3)
        assert now in (chosen, number)
        chosen = now
    assert chosen != 0, "some trial clears both bars"
