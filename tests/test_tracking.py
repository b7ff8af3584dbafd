"""MLflow tracking, for real, against a local SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubscore.training import tracking

pytestmark = pytest.mark.slow


# mlflow-skinny's SQL store still uses a loader that SQLAlchemy 2.1 deprecates (not our code).
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_run_is_logged_to_a_sqlite_store(trained_artifact, tmp_path: Path, monkeypatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # nothing may land in ./mlruns of the caller
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = tracking.log_run(trained_artifact.run_dir, uri=uri, experiment="hubscore-test")
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    metrics = trained_artifact.metrics
    assert run.data.metrics["roc_auc"] == pytest.approx(metrics["test"]["roc_auc"])
    assert "verification_max_abs_delta" in run.data.metrics
    assert run.data.params["training.cv_folds"] == "2"
    assert run.data.tags["model_kind"] == "xgboost"
    folder = trained_artifact.run_dir.name
    logged = {Path(a.path).name for a in client.list_artifacts(run_id, folder)}
    assert {"model.onnx", "manifest.json", "encoders.json", "report.html"} <= logged
    assert not (tmp_path / "mlruns").exists()


def test_flat_metrics_keep_numbers_only() -> None:
    flat = tracking.flat_metrics(
        {
            "test": {"roc_auc": 0.7, "confusion": {"tp": 1}, "x": None},
            "cv": {"a": {"mean": 1, "std": 0}},
        }
    )
    assert flat == {"roc_auc": 0.7, "cv_a_mean": 1.0, "cv_a_std": 0.0}
