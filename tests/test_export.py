"""Export: ONNX parity per family, the run folder, the verification gate, bad input via the CLI."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest
import xgboost as xgb
from conftest_train import make_features, small_config, write_features
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core import artifacts
from hubscore.core.config import MODEL_NAMES
from hubscore.core.contract import FEATURES_VERSION, RAW_FEATURES
from hubscore.core.errors import ArtifactError
from hubscore.engine import encoding
from hubscore.engine.scorer import load_scorer
from hubscore.training import dataset, export, models, runs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(features_file: Path) -> dict[str, Any]:
    frame = dataset.read_features(features_file).frame
    out = {}
    for name in MODEL_NAMES:
        model, spec = models.fit_family(name, frame, small_config(name))
        models.round_thresholds_down(model)
        session = ort.InferenceSession(export.to_onnx(model.estimator, len(spec.output_names)))
        out[name] = (model, spec, session)
    return out


def edge_rows(frame: pl.DataFrame) -> pl.DataFrame:
    rows = frame.head(6)
    floats = [c for c in RAW_FEATURES if rows.schema[c] == pl.Float64]
    weird = [None, math.nan, math.inf, -math.inf, 1e30, -1e30]
    return rows.with_columns(
        EMPLOYEE_RANGE=pl.Series([None, "", "unheard of", "1", "10,001 or more", " 6 TO 10"]),
        INDUSTRY=pl.Series([None, " ", "Brand New Industry", "COMPUTER_SOFTWARE", "x" * 40, "Ö"]),
        ALEXA_RANK=pl.Series([None, 1, 2**62, 0, -5, 16_000_001], dtype=pl.Int64),
        **{c: pl.Series(weird[i:] + weird[:i], dtype=pl.Float64) for i, c in enumerate(floats)},
    )


def onnx_proba(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    (out,) = session.run([export.OUTPUT], {export.INPUT: x})
    return np.asarray(out)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_onnx_matches_native_including_messy_rows(fitted, features_file: Path, name) -> None:
    model, spec, session = fitted[name]
    frame = dataset.read_features(features_file).frame
    data = pl.concat([frame, edge_rows(frame)])
    x = encoding.encode(data, spec)
    p = onnx_proba(session, x)
    assert p.dtype == np.float32 and p.shape == (data.height,)
    assert [o.name for o in session.get_outputs()] == [export.OUTPUT]
    np.testing.assert_allclose(p, model.predict_proba(x), rtol=1e-5, atol=1e-6)


messy = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(messy, min_size=8, max_size=8), words=st.lists(st.text(), min_size=8))
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parity_holds_for_any_values(fitted, name, values, words) -> None:
    model, spec, session = fitted[name]
    frame = make_features(8, 1, seed=5).with_columns(
        total_actions=pl.Series(values, dtype=pl.Float64),
        actions_recent=pl.Series(values[::-1], dtype=pl.Float64),
        INDUSTRY=pl.Series(words[:8], dtype=pl.String),
        EMPLOYEE_RANGE=pl.Series(words[:8][::-1], dtype=pl.String),
    )
    x = encoding.encode(frame, spec)
    np.testing.assert_allclose(onnx_proba(session, x), model.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_lightgbm_export_is_exact_on_large_magnitudes() -> None:
    rng = np.random.default_rng(1)
    x = (1e6 + rng.integers(0, 5000, (4000, 3)) * 0.37).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 300, 4000) > x[:, 1]).astype(np.int64)
    model = models.make_model("lightgbm", small_config("lightgbm")).fit(x, y)
    models.round_thresholds_down(model)
    session = ort.InferenceSession(export.to_onnx(model.estimator, 3))
    delta = np.abs(onnx_proba(session, x) - model.predict_proba(x)).max()
    assert delta <= 1e-6


def test_run_folder_holds_a_verified_artifact(trained_artifact) -> None:
    run = trained_artifact.run_dir
    names = {p.name for p in run.iterdir()}
    expected = {"model.onnx", "encoders.json", "manifest.json", "config.yaml", "metrics.json"}
    expected |= {"feature_importance.csv", "report.html", "training_log.txt", "model.xgb.json"}
    expected |= {"roc_curve.png", "pr_curve.png", "calibration.png", "confusion_matrix.png"}
    assert expected <= names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    manifest = artifacts.read_manifest(run)  # checks every sha256
    assert set(manifest.files) == names - {"manifest.json"}
    assert manifest.feature_names == list(RAW_FEATURES)
    assert manifest.target == {
        "target": "converted_within",
        "horizon_days": 14,
        "lookback_days": 91,
        "recent_days": 28,
        "features_version": FEATURES_VERSION,  # what the features meant: score checks it
    }
    assert manifest.verification["max_abs_delta"] <= export.MAX_DELTA
    assert manifest.verification["label_flips"] == 0
    assert manifest.confidence_bands["high"] >= manifest.confidence_bands["medium"]
    assert manifest.decision_threshold in manifest.confidence_bands.values()
    assert set(manifest.feature_distributions) == set(RAW_FEATURES)
    assert manifest.training_data["sha256"] and manifest.library_versions["onnxruntime"]
    assert (run.parent / "latest").resolve() == run.resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"test", "baseline", "cv", "threshold_table", "ablation", "split"} <= set(metrics)
    low, high = metrics["test_intervals"]["roc_auc"]
    assert low <= metrics["test"]["roc_auc"] <= high
    assert "resampling companies" in (run / "report.html").read_text()


def test_scorer_reads_the_run_folder(trained_artifact, features_file: Path) -> None:
    frame = dataset.read_features(features_file).frame
    scorer = load_scorer(trained_artifact.run_dir)
    p = scorer.predict_proba(frame.select(RAW_FEATURES))
    assert p.dtype == np.float32 and p.shape == (frame.height,)


def test_gate_rejects_disagreement(trained_artifact, features_file: Path) -> None:
    frame = dataset.read_features(features_file).frame.head(50)
    run = trained_artifact.run_dir
    # The native model from its own saved file, not the scorer: the gate compares the two.
    booster = xgb.Booster(model_file=str(run / "model.xgb.json"))
    spec = encoding.read_encoders(run / artifacts.ENCODERS_FILE)
    matrix = encoding.encode(frame, spec)
    # The model's own output: the gate holds the export to it (calibration is shared code).
    native = booster.predict(xgb.DMatrix(matrix)).astype(np.float64)
    ok = export.verify_export(run, frame, native, threshold=0.5, names=RAW_FEATURES)
    assert 0 <= ok["max_abs_delta"] <= export.MAX_DELTA and ok["label_flips"] == 0
    assert ok["rows"] == 50
    with pytest.raises(ArtifactError, match="disagrees"):
        export.verify_export(
            trained_artifact.run_dir, frame, native + 1e-3, threshold=0.5, names=RAW_FEATURES
        )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["logreg", "random_forest", "xgboost", "lightgbm"])
def test_same_data_config_and_seed_give_the_same_bytes(
    features_file: Path, tmp_path: Path, model: str
) -> None:
    twice = [
        runs.train_and_export(features_file, small_config(model), out_dir=tmp_path / str(i))[0]
        for i in range(2)
    ]
    a, b = (r.run_dir for r in twice)
    native = sorted(p.name for p in a.glob("model.*") if p.name != "model.onnx")
    for name in ("model.onnx", "encoders.json", "feature_importance.csv", *native):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert twice[0].metrics["test"] == twice[1].metrics["test"]
    assert twice[0].metrics["cv"] == twice[1].metrics["cv"]


def run_cli(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["train", *args], catch_exceptions=False)


def snapshot(out: Path) -> tuple[list[str], str | None]:
    latest = out / "latest"
    # The flock file stays by design (the kernel, not the file, holds the lock).
    names = sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock"))
    return names, os.readlink(latest) if latest.exists() else None


def test_cli_trains_and_prints_the_run_folder_last(features_file: Path, tmp_path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "training:\n  cv_folds: 2\n  top_k: [5]\n  leaderboard_metric: pr_auc\n"
        "models:\n  random_forest: {n_estimators: 10}\n"
    )
    result = run_cli(
        [
            "--features",
            str(features_file),
            "--model",
            "random_forest",
            "--out",
            str(tmp_path / "m"),
            "--config",
            str(config),
        ]
    )
    assert result.exit_code == 0, result.output
    last = Path(result.stdout.strip().splitlines()[-1])
    assert last.is_dir() and (last / "model.onnx").is_file()
    assert "leaderboard" in result.stderr and "baseline" in result.stderr


def bad_inputs(tmp_path: Path, good: Path) -> dict[str, tuple[list[str], int, str]]:
    frame = make_features(40, 12)
    single = write_features(frame.with_columns(label=pl.lit(0, pl.Int64)), tmp_path / "one.parquet")
    old = write_features(frame, tmp_path / "old.parquet", hubscore_version="0.0.1")
    foreign = tmp_path / "foreign.parquet"
    frame.write_parquet(foreign)
    return {
        "missing": (["--features", str(tmp_path / "nope.parquet")], 4, "does not exist"),
        "foreign": (["--features", str(foreign)], 4, "not a hubscore feature file"),
        "version": (["--features", str(old)], 4, "built by hubscore 0.0.1"),
        "single": (["--features", str(single)], 3, "single class"),
        "folds": (["--features", str(good)], 3, "time folds"),
        "model": (["--features", str(good), "--model", "svm"], 2, "training.model"),
        "param": (["--features", str(good)], 2, "models.xgboost.depth"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "foreign", "version", "single", "folds", "model", "param"]
)
def test_bad_input_fails_cleanly(features_file: Path, tmp_path, trained_artifact, case) -> None:
    out = tmp_path / "models"
    out.mkdir()
    (out / "old_run").mkdir()
    os.symlink("old_run", out / "latest")
    before = snapshot(out)
    args, code, message = bad_inputs(tmp_path, features_file)[case]
    config = tmp_path / "c.yaml"
    extra = {"folds": "training:\n  cv_folds: 500\n", "param": "models:\n  xgboost: {depth: 3}\n"}
    config.write_text(extra.get(case, "training:\n  cv_folds: 2\n"))
    result = run_cli([*args, "--out", str(out), "--config", str(config)])
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert snapshot(out) == before  # no run folder, no temp litter, latest untouched


def test_failed_gate_writes_nothing(features_file: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(export, "MAX_DELTA", -1.0)  # any difference at all now fails
    with pytest.raises(ArtifactError, match="no model was written"):
        runs.train_and_export(features_file, small_config("logreg"), out_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
