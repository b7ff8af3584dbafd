"""The shipped model: refitted on every labelled row, with parameters the time folds chose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl
import pytest
import yaml
from conftest_train import make_features, small_config, write_features
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core.artifacts import read_manifest
from hubscore.core.config import MODEL_NAMES, load_config
from hubscore.core.errors import LeakageError
from hubscore.engine.scorer import load_scorer
from hubscore.training import dataset, evidence, runs, search

SEARCH = {"trials": 4, "min_positive_companies": 1}
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
    # The report's "why each choice" names the rows each shipped calibrator was fitted on.
    assert "test-side rows" in shipped_calibration(shipped.metrics)
    assert "out-of-fold rows" in shipped_calibration(side.metrics)


def shipped_calibration(metrics: dict[str, Any]) -> str:
    rows = [c for c in metrics["choices"] if c["choice"] == "calibration of the shipped model"]
    return str(rows[0]["why"])


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
    assert searched["ran"] and searched["trials"] + searched["pruned"] == SEARCH["trials"]
    assert searched["chosen"] == second.metrics["search"]["chosen"]
    assert len(searched["history"]) == searched["trials"] >= 1
    for name in ("model.onnx", "encoders.json", "explain.npz"):
        assert (first.run_dir / name).read_bytes() == (second.run_dir / name).read_bytes()
    # Trial 0 is the config's own parameters (conftest_train.SMALL_MODELS): the bar to beat.
    baseline = searched["history"][0]["params"]
    assert (baseline["max_depth"], baseline["learning_rate"]) == (3, 0.2)
    assert baseline["n_estimators"] == 15  # a fixed budget: no fold ever stops it early
    assert all("per_positive" in r["params"]["min_child_weight"] for r in searched["history"][1:])
    chosen = searched["chosen"]
    if chosen["trial"]:  # a sampled trial replaced the config only beyond noise
        assert chosen["versus_trial_0"]["interval"][0] > 0
        encoders = json.loads((first.run_dir / "encoders.json").read_text())
        assert encoders["industry"] == chosen["params"]["encoding.industry"]


@pytest.mark.slow
def test_search_off_trains_the_config_parameters_through_the_same_folds(
    tmp_path: Path,
) -> None:
    features = write_features(make_features(80, 12), tmp_path / "f.parquet")
    result = train(features, tmp_path / "m", "logreg")
    searched = result.metrics["search"]
    assert not searched["ran"] and searched["chosen_by"] == "the config's parameters (search off)"
    assert searched["chosen"]["params"]["C"] == 0.5  # conftest_train.SMALL_MODELS
    # Trial 0's fold metric is the run's CV figure: one set of folds (calibration never
    # reorders a list).
    assert searched["chosen"]["metric_value"] == pytest.approx(
        result.metrics["cv"]["pr_auc"]["mean"], rel=1e-3
    )


@pytest.mark.slow
def test_the_search_does_not_run_on_folds_with_too_few_converting_companies(
    features_file: Path, tmp_path: Path
) -> None:
    search_on = {"trials": 4, "min_positive_companies": 100_000}
    result = train(features_file, tmp_path / "m", **{"training.search": search_on})
    searched = result.metrics["search"]
    assert not searched["ran"] and searched["trials"] == 1
    power = searched["power"]
    have = power["positive_companies_in_all"]
    assert 0 < have < 100_000 and len(power["positive_companies"]) == power["folds"] >= 1
    assert f"hold {have} converting companies" in searched["chosen_by"]


def measured(value: float, shift: float, spread: float) -> evidence.Measured:
    noise = np.random.default_rng(0).normal(0.0, 0.01, evidence.DRAWS)
    return evidence.Measured("pr_auc", value, value + shift + spread * noise)


def test_a_trial_replaces_the_config_only_when_its_paired_difference_is_beyond_noise() -> None:
    anchor = measured(0.050, 0.0, 1.0)
    same_draws = anchor.draws - anchor.value  # the anchor's own company noise
    lucky = evidence.Measured(
        "pr_auc", 0.056, 0.056 + same_draws * 1.0 + np.linspace(-0.02, 0.02, evidence.DRAWS)
    )
    steady = evidence.Measured("pr_auc", 0.054, 0.054 + same_draws)
    assert not lucky.versus(anchor)["beyond_noise"]  # a bigger point gain, but not paired-sure
    assert steady.versus(anchor)["beyond_noise"]
    assert steady.versus(anchor)["difference"] == pytest.approx(0.004)


def test_trial_0_is_exactly_the_configs_parameters_for_every_family() -> None:
    config = load_config(None)
    for name in MODEL_NAMES:
        values = search.config_values(name, config)
        space = config.search_space[name]
        assert set(values) == set(space)
        for key, value in values.items():
            spec = space[key]
            assert value is not None, f"{name}: {key} is searched but not set in models.{name}"
            if "choices" in spec:
                assert value in spec["choices"], (name, key, value)
            else:
                assert spec["low"] <= value <= spec["high"], (name, key, value)


def test_a_small_budget_samples_sobol_points_and_a_large_one_tpe() -> None:
    config = load_config(None)
    assert isinstance(search.make_sampler(9, config), optuna.samplers.QMCSampler)
    assert isinstance(search.make_sampler(64, config), optuna.samplers.TPESampler)


@pytest.mark.slow
def test_a_run_folders_config_refits_its_model_byte_for_byte(
    features_file: Path, tmp_path: Path
) -> None:
    overrides = {"training.search": SEARCH, "search_space.xgboost": SPACE["xgboost"]}
    first = train(features_file, tmp_path / "1", **overrides)
    saved = yaml.safe_load((first.run_dir / "config.yaml").read_text())
    chosen = first.metrics["search"]["chosen"]["params"]
    model_keys = {k: v for k, v in chosen.items() if not k.startswith("encoding.")}
    assert saved["models"]["xgboost"] == model_keys  # what was fitted, not what was searched
    assert saved["training"]["model"] == "xgboost"
    args = ["train", "--features", str(features_file), "--models-dir", str(tmp_path / "2")]
    args += ["--config", str(first.run_dir / "config.yaml"), "--search", "off"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = Path(result.stdout.strip().splitlines()[-1])
    for name in ("model.onnx", "encoders.json"):
        assert (again / name).read_bytes() == (first.run_dir / name).read_bytes(), name


@pytest.mark.slow
@pytest.mark.parametrize("where", ["fold", "test side"])
def test_a_planted_leak_is_caught_before_any_metric(
    features_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "fold":  # a fold that validates on rows it was fitted on (as an early stop would)
        honest = dataset._time_folds

        def leaky(days: Any, rows: Any, k: int, horizon: int) -> Any:
            return [(np.union1d(fit, val), val) for fit, val in honest(days, rows, k, horizon)]

        monkeypatch.setattr(dataset, "_time_folds", leaky)
    else:  # the held-out weeks slip into the training side
        honest_split = dataset._time_split

        def leaky_split(frame: Any, test_size: float, metadata: Any) -> Any:
            train, test = honest_split(frame, test_size, metadata)
            return np.union1d(train, test[:10]), test

        monkeypatch.setattr(dataset, "_time_split", leaky_split)
    with pytest.raises(LeakageError, match="rows it scores were among"):
        train(features_file, tmp_path / "m")
    assert not (tmp_path / "m" / "latest").exists()
