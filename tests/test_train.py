"""Training: feature-file checks, leak-free splits, model interface, hyperparameter errors."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest_train import make_features, small_config, write_features

from hubscore.core.config import MODEL_NAMES
from hubscore.core.errors import ConfigError, SchemaError, ValidationError
from hubscore.engine import encoding
from hubscore.training import dataset, models, runs


def test_missing_foreign_and_other_version_files_are_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        dataset.read_features(tmp_path / "nope.parquet")
    (tmp_path / "junk.parquet").write_text("id,label\n1,0\n")
    with pytest.raises(SchemaError, match="not a Parquet file"):
        dataset.read_features(tmp_path / "junk.parquet")
    foreign = tmp_path / "foreign.parquet"
    make_features(10, 2).write_parquet(foreign)
    with pytest.raises(SchemaError, match="not a hubscore feature file"):
        dataset.read_features(foreign)
    old = write_features(make_features(10, 2), tmp_path / "old.parquet", hubscore_version="0.0.1")
    with pytest.raises(SchemaError, match=r"built by hubscore 0\.0\.1"):
        dataset.read_features(old)
    lacking = write_features(make_features(10, 2).drop("INDUSTRY"), tmp_path / "lack.parquet")
    with pytest.raises(SchemaError, match="lacks columns: INDUSTRY"):
        dataset.read_features(lacking)


def test_row_order_ignores_file_order_and_id_order(features_file: Path, tmp_path: Path) -> None:
    ff = dataset.read_features(features_file)
    shuffled = ff.frame.drop(dataset.ORDER).sample(fraction=1.0, shuffle=True, seed=3)
    again = dataset.read_features(write_features(shuffled, tmp_path / "f.parquet"))
    assert again.frame.equals(ff.frame)
    first_week = ff.frame.filter(pl.col("cutoff") == pl.col("cutoff").min())
    ids = first_week.get_column("id").to_numpy()
    assert not (np.diff(ids) > 0).all()  # not sorted by id


def test_time_split_leaves_a_horizon_gap(features_file: Path) -> None:
    ff = dataset.read_features(features_file)
    split = dataset.split_rows(ff, small_config())
    days = dataset.week_codes(ff.frame)
    horizon = int(ff.metadata["horizon_days"])
    assert days[split.train].max() + horizon <= days[split.test].min()
    assert not set(split.train) & set(split.test)
    report = split.report
    assert report["kind"] == "time" and report["gap_days"] == horizon
    assert report["test"]["cutoffs"] == round(0.25 * 16)
    assert report["train"]["rows"] == split.train.size
    assert report["train"]["positives"] > 0 and report["test"]["positives"] > 0


def test_time_folds_expand_with_the_same_gap(features_file: Path) -> None:
    ff = dataset.read_features(features_file)
    config = small_config(**{"training.cv_folds": 3})
    split = dataset.split_rows(ff, config)
    folds = dataset.cv_folds(ff, split, config).rows
    days, horizon = dataset.week_codes(ff.frame), int(ff.metadata["horizon_days"])
    assert len(folds) == 3
    sizes = [fit.size for fit, _ in folds]
    assert sizes == sorted(sizes)
    for fit, val in folds:
        assert days[fit].max() + horizon <= days[val].min()
        assert set(val) <= set(split.train)


def test_time_sides_and_folds_are_zero_copy_slices(features_file: Path) -> None:
    ff = dataset.read_features(features_file)
    config = small_config(**{"training.cv_folds": 3})
    split = dataset.split_rows(ff, config)
    runs = [
        split.train,
        split.test,
        *(rows for fold in dataset.cv_folds(ff, split, config).rows for rows in fold),
    ]
    for rows in runs:
        taken = dataset.take(ff.frame, rows)
        assert taken.equals(ff.frame[rows])
        taken_ids = taken.get_column("id").to_numpy(allow_copy=False)
        assert np.shares_memory(taken_ids, ff.frame.get_column("id").to_numpy(allow_copy=False))
    for scattered in ([0, 2, 3], [0, 2, 1, 3]):  # the second spans 4 positions, out of order
        rows = np.array(scattered)
        assert dataset.take(ff.frame, rows).equals(ff.frame[rows])


def test_company_split_keeps_each_company_on_one_side(tmp_path: Path) -> None:
    frame = make_features(300, 1, target="is_customer")
    path = write_features(frame, tmp_path / "f.parquet", target="is_customer")
    ff = dataset.read_features(path)
    config = small_config()
    split = dataset.split_rows(ff, config)
    ids = ff.frame.get_column("id").to_numpy()
    assert not set(ids[split.train]) & set(ids[split.test])
    assert split.report["kind"] == "company"
    for fit, val in dataset.cv_folds(ff, split, config).rows:
        assert not set(ids[fit]) & set(ids[val])


def test_single_class_and_too_few_positives_are_validation_errors(tmp_path: Path) -> None:
    frame = make_features(30, 8)
    single = write_features(frame.with_columns(label=pl.lit(0, pl.Int64)), tmp_path / "a.parquet")
    with pytest.raises(ValidationError, match="single class"):
        dataset.split_rows(dataset.read_features(single), small_config())
    few = frame.with_columns(label=(pl.int_range(pl.len()) % 40 == 0).cast(pl.Int64))
    ff = dataset.read_features(write_features(few, tmp_path / "b.parquet"))
    config = small_config(**{"training.cv_folds": 5})
    with pytest.raises(ValidationError, match=r"cannot make 5 time folds|no positive"):
        dataset.cv_folds(ff, dataset.split_rows(ff, config), config)


def test_unknown_fixed_and_bad_hyperparameters_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"models\.xgboost\.max_dept"):
        models.make_model("xgboost", small_config(**{"models.xgboost": {"max_dept": 3}}))
    with pytest.raises(ConfigError, match=r"models\.lightgbm\.n_jobs.*fixed"):
        models.make_model("lightgbm", small_config(**{"models.lightgbm": {"n_jobs": 8}}))
    model = models.make_model("logreg", small_config(**{"models.logreg": {"C": -1.0}}))
    x = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match=r"models\.logreg.*'C'"):
        model.fit(x, np.arange(20) % 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_family_fits_predicts_and_explains(features_file: Path, name: str) -> None:
    ff = dataset.read_features(features_file)
    frame = ff.frame
    model, spec = models.fit_family(name, frame, small_config(name))
    x = encoding.encode(frame, spec)
    p = model.predict_proba(x)
    assert p.shape == (frame.height,) and ((p >= 0) & (p <= 1)).all()
    importance = model.feature_importance()
    assert importance.shape == (len(spec.output_names),) and (importance >= 0).all()
    again, _ = models.fit_family(name, frame, small_config(name))
    np.testing.assert_array_equal(again.predict_proba(x), p)  # every seed is fixed


@pytest.mark.slow
def test_rounding_thresholds_down_keeps_native_predictions_on_float32() -> None:
    rng = np.random.default_rng(0)
    # Large, finely spaced magnitudes: the case where float64 thresholds bite.
    x = (1e6 + rng.integers(0, 5000, (3000, 4)) * 0.37).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 300, 3000) > x[:, 1]).astype(np.int64)
    for name in ("lightgbm", "random_forest"):
        model = models.make_model(name, small_config(name)).fit(x, y)
        before = model.predict_proba(x)
        models.round_thresholds_down(model)
        np.testing.assert_array_equal(model.predict_proba(x), before)


def test_past_max_rows_every_positive_and_1_in_m_negatives_are_read_with_weight_m(
    tmp_path: Path,
) -> None:
    frame = make_features(300, 20)
    path = write_features(frame, tmp_path / "f.parquet")
    full = dataset.read_features(path)
    assert full.sampling is None and dataset.weights_of(full.frame) is None
    sampled = dataset.read_features(path, max_rows=1500)
    again = dataset.read_features(path, max_rows=1500)
    assert sampled.frame.equals(again.frame)  # the same rows every time (a hash, no RNG)
    m = int(sampled.sampling["negatives_kept"].split()[-1])
    assert m == math.ceil((frame.height - frame["label"].sum()) / (1500 - frame["label"].sum()))
    weights = dataset.weights_of(sampled.frame)
    y = dataset.labels(sampled.frame)
    assert int(y.sum()) == int(frame["label"].sum())  # every positive row
    assert set(weights[y == 1]) == {1.0} and set(weights[y == 0]) == {float(m)}
    assert abs(weights.sum() - frame.height) < 0.15 * frame.height  # stands for the whole file
    sampled_ids = set(zip(sampled.frame["id"], sampled.frame["cutoff"], strict=True))
    assert sampled_ids <= set(zip(frame["id"], frame["cutoff"], strict=True))


def test_class_weights_count_each_sampled_negative_as_the_rows_it_stands_for() -> None:
    y = np.array([1, 1, 0, 0, 0, 0], dtype=np.int64)
    sampled = np.array([1.0, 1.0, 25.0, 25.0, 25.0, 25.0])  # 1 in 25 negatives read
    x = np.arange(6, dtype=np.float32).reshape(-1, 1)
    config = small_config("xgboost", **{"training.class_weight": "balanced"})
    model = models.make_model("xgboost", config).fit(x, y, weights=sampled)
    assert model.estimator.get_params()["scale_pos_weight"] == 50.0  # 100 negatives / 2
    unsampled = models.make_model("xgboost", config).fit(x, y)
    assert unsampled.estimator.get_params()["scale_pos_weight"] == 2.0


def test_a_forest_tree_draws_at_most_max_rows_per_tree_with_leaves_shrunk_alike() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((8000, 3)).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 0.3, 8000) > 1.2).astype(np.int64)
    params = {"n_estimators": 5, "max_samples": 0.5, "min_samples_leaf": 40}
    capped = {**params, "max_rows_per_tree": 1000}  # 4,000 drawn rows a tree without the cap
    config = small_config("random_forest", **{"models.random_forest": capped})
    forest = models.make_model("random_forest", config).fit(x, y).estimator
    assert forest.max_samples == 1000 and forest.min_samples_leaf == 10  # 40 x 1,000 / 4,000
    assert {tree.tree_.weighted_n_node_samples[0] for tree in forest.estimators_} == {1000.0}
    roomy = {**params, "max_rows_per_tree": 4000}  # the share's rows fit: the share as it is
    config = small_config("random_forest", **{"models.random_forest": roomy})
    forest = models.make_model("random_forest", config).fit(x, y).estimator
    assert forest.max_samples == 0.5 and forest.min_samples_leaf == 40
    bad = small_config("random_forest", **{"models.random_forest": {"max_rows_per_tree": 0.5}})
    with pytest.raises(ConfigError, match=r"models\.random_forest: max_rows_per_tree must be"):
        models.make_model("random_forest", bad)


@pytest.mark.slow
def test_a_sampled_file_trains_and_reports_what_it_stands_for(tmp_path: Path) -> None:
    frame = make_features(300, 20)
    path = write_features(frame, tmp_path / "f.parquet")
    (result,) = runs.train_and_export(
        path, small_config("lightgbm", **{"training.max_rows": 2000}), out_dir=tmp_path / "m"
    )
    assert result.metrics["sampling"]["rows"] == frame.height
    split = result.metrics["split"]["test"]
    first_test = date.fromisoformat(split["first_cutoff"])
    whole_test_side = frame.filter(pl.col("cutoff") >= first_test)
    assert split["rows"] < 0.5 * whole_test_side.height  # what was read...
    # ...stands for the whole test side in every metric: weighted rows, every positive.
    assert abs(result.metrics["test"]["rows"] / whole_test_side.height - 1) < 0.15
    assert result.metrics["test"]["positives"] == whole_test_side["label"].sum()
    report = (result.run_dir / "report.html").read_text()
    assert f"The file holds {frame.height:,} rows" in report  # and the report says so
