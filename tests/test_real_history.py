"""On the real history: each family ranks as well as its plain library fit, and runs repeat.

The real files as they stood on 2020-01-28 (`../shared/data/real-history`, beside the clone in
CI): `build-features` with the default config, hubscore's own time split. Each family is fitted
with its default parameters (the search off) on the training side, exactly as `train` fits it,
and compared on the held-out test weeks with the plain script of bench/quality_references.py
fitted on the same rows: the paired difference (companies resampled) must not be below zero
beyond its 90% interval, for ROC-AUC, PR-AUC and weekly recall@100.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from inputs import REAL_HISTORY

from hubscore.core.config import MODEL_NAMES, Config, ModelName, load_config
from hubscore.core.contract import KEY_COLUMNS
from hubscore.features.build import BuildRequest, build_features
from hubscore.training import dataset, evidence, models, runs

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("roc_auc", "pr_auc", "recall_at_100")


def plain_references() -> ModuleType:
    """bench/quality_references.py: the plain scripts bench-quality compares against."""
    spec = importlib.util.spec_from_file_location(
        "quality_references", ROOT / "bench" / "quality_references.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert REAL_HISTORY.is_dir(), f"the real history is missing: {REAL_HISTORY} (CI has it)"
    out = tmp_path_factory.mktemp("real")
    config = load_config(None, environ={})
    return build_features(BuildRequest(REAL_HISTORY, out, config.features)).features_path


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_each_family_ranks_the_test_weeks_as_well_as_its_plain_script(
    real_features: Path, name: ModelName
) -> None:
    config = load_config(None, overrides={"training.model": name}, environ={})
    ff = dataset.read_features(real_features)
    split = dataset.split_rows(ff, config)
    choice = models.Choice(dict(config.models[name]))
    trained = models.train_family(name, ff, split, config, choice=choice, folds=[])
    train_side = dataset.take(ff.frame, split.train).drop(dataset.ORDER)
    test_side = trained.test.drop(dataset.ORDER)
    plain = plain_references().plain_scores(name, train_side, test_side)
    y, weeks = trained.y_test, dataset.week_codes(trained.test)
    keys = trained.test.select(KEY_COLUMNS)
    assert plain.select(KEY_COLUMNS).equals(keys)  # the same rows, in the same order
    folds = evidence.FoldEvidence.of([y], [weeks], [trained.test["id"].to_numpy()], seed=0)
    for metric in METRICS:
        ours = evidence.measure(folds, [trained.p_test], metric)
        theirs = evidence.measure(folds, [plain["conversion_probability"].to_numpy()], metric)
        versus = ours.versus(theirs)
        said = f"{name} {metric}: {ours.value:.4f} vs plain {theirs.value:.4f} ({versus})"
        assert versus["interval"][1] >= 0, said


def quick(name: ModelName, **overrides: Any) -> Config:
    small = {"xgboost": {"n_estimators": 10, "max_depth": 2, "learning_rate": 0.3}}
    flags = {"training.model": name, "models.xgboost": small["xgboost"], **overrides}
    flags |= {"training.cv_folds": 2}
    return load_config(None, overrides=flags, environ={})


@pytest.mark.slow
@pytest.mark.parametrize("search", ["off", "on"])
def test_the_same_file_and_config_give_the_same_model_bytes_twice(
    real_features: Path, tmp_path: Path, search: str
) -> None:
    trials = {"trials": 2, "min_positive_companies": 1} if search == "on" else {"trials": 0}
    config = quick("xgboost", **{"training.search": trials})
    first, second = (
        runs.train_and_export(real_features, config, out_dir=tmp_path / side)[0]
        for side in ("a", "b")
    )
    assert first.metrics["search"]["ran"] == (search == "on")
    for name in ("model.onnx", "encoders.json", "explain.npz"):
        assert (first.run_dir / name).read_bytes() == (second.run_dir / name).read_bytes(), name
