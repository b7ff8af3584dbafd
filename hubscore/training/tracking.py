"""Log an accepted run folder to MLflow: params, metrics and the folder with its ONNX model.

Optional: imported only when a tracking URI is configured or `train --track` is given, and
needs the `tracking` extra. That extra is mlflow-skinny plus sqlalchemy and alembic (what
its SQL store needs), because full mlflow pins pyarrow below the version hubscore locks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubscore.core.errors import ConfigError


def log_run(run_dir: Path, *, uri: str, experiment: str) -> str:
    """Log `run_dir` (manifest, metrics, config, files) as one MLflow run; return its id."""
    mlflow = _mlflow(uri)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id if found else _create_experiment(client, experiment, run_dir)
    )
    run = client.create_run(experiment_id, run_name=run_dir.name, tags=_tags(manifest))
    run_id: str = run.info.run_id
    for key, value in sorted(_params(run_dir).items()):
        client.log_param(run_id, key, value)
    for name, number in sorted(flat_metrics(metrics).items()):
        client.log_metric(run_id, name, number)
    client.log_artifacts(run_id, str(run_dir), artifact_path=run_dir.name)
    client.set_terminated(run_id)
    return run_id


def _mlflow(uri: str) -> Any:
    """Return the mlflow module, or say how to install it."""
    try:
        import mlflow
        import mlflow.exceptions
    except ImportError:
        raise ConfigError(
            f"tracking to {uri} needs MLflow, which is not installed",
            hint="install the extra: uv sync --extra tracking (or unset tracking.uri)",
        ) from None
    return mlflow


def _create_experiment(client: Any, name: str, run_dir: Path) -> str:
    # Artifacts go beside the run folders, not into ./mlruns of whatever the cwd is.
    root = (run_dir.parent / "mlartifacts").resolve()
    experiment_id: str = client.create_experiment(name, artifact_location=root.as_uri())
    return experiment_id


def _tags(manifest: Mapping[str, Any]) -> dict[str, str]:
    return {
        "model_kind": str(manifest["model_kind"]),
        "model_version": str(manifest["model_version"]),
        "hubscore_version": str(manifest["hubscore_version"]),
        "target": str(manifest["target"].get("target")),
    }


def _params(run_dir: Path) -> dict[str, str]:
    """Flatten config.yaml's training, encoding and model sections into dotted params."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    kind = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["model_kind"]
    sections = {
        "training": config["training"],
        "encoding": config["encoding"],
        "features": config["features"],
        f"models.{kind}": config["models"].get(kind, {}),
    }
    return {
        f"{section}.{key}": str(value)[:500]
        for section, values in sections.items()
        for key, value in values.items()
    }


def flat_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Return numeric test, baseline, CV-mean and verification metrics as flat names."""
    flat: dict[str, float] = {}
    for section in ("test", "baseline", "verification"):
        for key, value in metrics.get(section, {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                flat[key if section == "test" else f"{section}_{key}"] = float(value)
    for key, value in metrics.get("cv", {}).items():
        flat[f"cv_{key}_mean"] = float(value["mean"])
        flat[f"cv_{key}_std"] = float(value["std"])
    return flat


def set_alias(run_name: str, alias: str, *, uri: str, experiment: str) -> str | None:
    """Point the registered model `experiment`'s `alias` at run `run_name`'s model version.

    The run folder logged by `log_run` is registered as a model version on first use (its
    source is the run folder's artifacts). Returns the version, or None when the run was
    never tracked (trained without tracking): the alias then stays where it was.
    """
    mlflow = _mlflow(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = (
        client.search_runs(
            [found.experiment_id], filter_string=f"attributes.run_name = '{run_name}'"
        )
        if found
        else []
    )
    if not runs:
        return None
    run = runs[0]
    with contextlib.suppress(mlflow.exceptions.MlflowException):  # registered by an earlier move
        client.create_registered_model(experiment)
    wanted = f"name = '{experiment}' and run_id = '{run.info.run_id}'"
    versions = client.search_model_versions(wanted)
    version = (
        versions[0]
        if versions
        else client.create_model_version(
            experiment, source=f"{run.info.artifact_uri}/{run_name}", run_id=run.info.run_id
        )
    )
    client.set_registered_model_alias(experiment, alias, version.version)
    return str(version.version)
