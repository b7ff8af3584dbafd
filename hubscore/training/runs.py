"""Run orchestration: train the configured families, evaluate them, and write each run folder.

The run folder is staged beside its final name and renamed only after the verification gate
(`export.verify_export`) passes. `models/latest` moves only after that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from hubscore import __version__
from hubscore.core import artifacts, atomic, encoding
from hubscore.core.config import MODEL_NAMES, Config, ModelName
from hubscore.core.contract import RAW_FEATURES
from hubscore.core.drift import profile_features
from hubscore.core.errors import ConfigError
from hubscore.core.explain import EXPLAIN_FILE
from hubscore.training import dataset, evaluate, explanations, models, report
from hubscore.training.export import (
    INPUT,
    OUTPUT,
    library_versions,
    save_native,
    to_onnx,
    verify_export,
)


@dataclass
class RunLog:
    """Timestamped lines for training_log.txt."""

    started: float = field(default_factory=time.perf_counter)
    lines: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        """Append a line stamped with seconds since the run started."""
        self.lines.append(f"[{time.perf_counter() - self.started:8.2f}s] {message}")

    def text(self) -> str:
        """Return the log as text."""
        return "\n".join(self.lines) + "\n"


def run_name(out_dir: Path, experiment: str, *, now: datetime | None = None) -> str:
    """Return `<experiment>_<YYYYMMDD_HHMMSS>` (UTC), suffixed when that folder exists."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")
    name, n = f"{experiment}_{stamp}", 1
    while (out_dir / name).exists():
        n += 1
        name = f"{experiment}_{stamp}_{n}"
    return name


def write_yaml(path: Path, data: Any) -> None:
    """Write `data` as block YAML with sorted keys."""
    path.write_text(yaml.safe_dump(data, sort_keys=True, allow_unicode=True), encoding="utf-8")


def update_latest(out_dir: Path, name: str) -> None:
    """Point `out_dir/latest` at run `name` atomically."""
    atomic.replace_symlink(out_dir / "latest", name)


def file_hashes(run_dir: Path) -> dict[str, str]:
    """Return the sha256 of every file in the run folder except the manifest itself."""
    return {
        p.name: artifacts.sha256_file(p)
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.name != artifacts.MANIFEST
    }


@dataclass(frozen=True)
class RunResult:
    """One accepted run: its family, folder and metrics.json content."""

    model: str
    run_dir: Path
    metrics: dict[str, Any]


def train_and_export(
    features: Path,
    config: Config,
    *,
    out_dir: Path,
    track: bool = False,
    since: date | None = None,
    until: date | None = None,
) -> list[RunResult]:
    """Train the configured family (or all four), export each run, move `latest` to the best.

    Nothing is written unless every check passes; with `all`, `latest` moves only after all
    four runs were accepted, to the best by `training.leaderboard_metric`.
    """

    names = MODEL_NAMES if config.training.model == "all" else (config.training.model,)
    check_leaderboard_metric(config)
    for name in names:
        models.make_model(name, config)  # reject bad hyperparameters before any training
    ff = dataset.read_features(features, since=since, until=until)  # cutoffs in [since, until]
    split = dataset.split_rows(ff, config)
    results = []
    with atomic.exclusive_lock(out_dir / "latest"):
        atomic.remove_all_temps(out_dir)  # a killed run's staged folder has another name
        for name in names:
            prefix = config.experiment.name + (f"-{name}" if len(names) > 1 else "")
            results.append(_run_family(name, ff, split, config, out_dir=out_dir, prefix=prefix))
        best = leaderboard(results, config.training.leaderboard_metric)[0]
        update_latest(out_dir, best.run_dir.name)
    if track or config.tracking.uri:
        from hubscore.training import tracking

        uri = config.tracking.uri or f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"
        for result in results:
            tracking.log_run(result.run_dir, uri=uri, experiment=config.experiment.name)
    return results


def check_leaderboard_metric(config: Config) -> None:
    """Refuse a leaderboard metric that no run reports."""
    known = {"roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"}
    known |= {f"{m}_at_{k}" for m in ("precision", "recall", "lift") for k in config.training.top_k}
    if config.training.leaderboard_metric not in known:
        raise ConfigError(
            f"config key training.leaderboard_metric is {config.training.leaderboard_metric!r}",
            hint=f"use one of: {', '.join(sorted(known))}",
        )


def leaderboard(results: Sequence[RunResult], metric: str) -> list[RunResult]:
    """Sort runs best first by a test metric (lower is better for log_loss and brier)."""
    sign = 1.0 if metric in ("log_loss", "brier") else -1.0

    def key(result: RunResult) -> tuple[float, str]:
        value = result.metrics["test"].get(metric)
        return (sign * value if value is not None else float("inf"), result.model)

    return sorted(results, key=key)


def _run_family(
    name: ModelName,
    ff: dataset.FeatureFile,
    split: dataset.Split,
    config: Config,
    *,
    out_dir: Path,
    prefix: str,
) -> RunResult:

    log = RunLog()
    log.add(f"hubscore {__version__}: training {name} on {ff.path} ({ff.frame.height} rows)")
    log.add(f"split: {json.dumps(split.report, sort_keys=True)}")
    trained = models.train_family(name, ff, split, config)
    log.add(f"cross-validated ({config.training.cv_folds} folds) and fitted {name}")
    without, spec = models.fit_family(name, trained.train_frame, config, missing_flags=False)
    p_without = without.predict_proba(encoding.encode(trained.test, spec))
    log.add("fitted the ablation without missingness flags")
    metrics = evaluate_trained(trained, p_without, config, ff)
    target = out_dir / run_name(out_dir, prefix)
    return RunResult(name, target, _write_run(trained, metrics, config, ff, target, log))


def evaluate_trained(
    trained: models.Trained, p_without: np.ndarray, config: Config, ff: dataset.FeatureFile
) -> dict[str, Any]:
    """Return metrics.json: test, baseline, CV, thresholds, threshold table and ablation."""

    t = config.training
    y, p, weeks = trained.y_test, trained.p_test, dataset.week_codes(trained.test)
    fixed = None if t.decision_threshold == "auto" else float(t.decision_threshold)
    thresholds = evaluate.choose_thresholds(
        trained.folds, beta=t.f_beta, capacity=t.weekly_capacity, fixed=fixed
    )
    recent = trained.test.get_column(evaluate.BASELINE_FEATURE).cast(pl.Float64)
    baseline_p = recent.fill_nan(None).fill_null(0.0).to_numpy()
    test = evaluate.evaluate_predictions(
        y, p, weeks, top_k=t.top_k, threshold=thresholds["decision"]
    )
    folds = [evaluate.ranking_metrics(*fold, t.top_k) for fold in trained.folds]
    grid = evaluate.table_thresholds(p, [thresholds["decision"], thresholds["capacity"]])
    without = evaluate.ranking_metrics(y, p_without, weeks, t.top_k)
    quality = ff.path.parent / "quality.json"
    return {
        "model": trained.name,
        "target": ff.metadata["target"],
        "split": trained.split.report,
        "test": test,
        "test_intervals": evaluate.company_intervals(
            trained.test.get_column("id").to_numpy(), y, p, weeks, top_k=t.top_k, seed=t.random_seed
        ),
        "baseline": evaluate.ranking_metrics(y, baseline_p, weeks, t.top_k),
        "cv": evaluate.summarise_folds(folds),
        "thresholds": {**thresholds, "chosen_on": "out-of-fold cross-validation predictions"},
        "confidence_bands": evaluate.confidence_bands(thresholds),
        "threshold_table": evaluate.threshold_table(y, p, weeks, grid),
        "ablation": evaluate.ablation_summary(test, without, t.top_k),
        "priority_tiers": evaluate.outcome_by_tier(y, p, weeks, config.scoring.priority_quantiles),
        "quality": json.loads(quality.read_text(encoding="utf-8")) if quality.is_file() else None,
    }


def _write_run(
    trained: models.Trained,
    metrics: dict[str, Any],
    config: Config,
    ff: dataset.FeatureFile,
    target: Path,
    log: RunLog,
) -> dict[str, Any]:
    """Stage the run folder, pass the verification gate, rename it into place; return metrics."""
    with atomic.atomic_dir(target) as stage:
        stage.chmod(0o755)  # mkdtemp makes it owner-only; scoring may run as another user
        onnx_bytes = to_onnx(trained.model.estimator, len(trained.spec.output_names))
        (stage / artifacts.MODEL_FILE).write_bytes(onnx_bytes)
        (stage / artifacts.ENCODERS_FILE).write_text(trained.spec.to_json(), encoding="utf-8")
        # Only logreg needs the training matrix (its column means); trees read covers.
        linear = trained.name == "logreg"
        x_train = encoding.encode(trained.train_frame, trained.spec) if linear else None
        explanations.write_explain_file(stage, trained.model.estimator, trained.name, x_train)
        manifest = _manifest(trained, metrics, ff, target.name, file_hashes(stage))
        artifacts.write_manifest(stage, manifest)
        threshold = manifest.decision_threshold
        verification = verify_export(
            stage, trained.test, trained.p_test, threshold=threshold, names=RAW_FEATURES
        )
        log.add(f"verification: {json.dumps(verification, sort_keys=True)}")
        explained = explanations.verify_explanations(
            stage, trained.model.estimator, trained.name, trained.x_test
        )
        log.add(f"explanations: {json.dumps(explained, sort_keys=True)}")
        metrics = {**metrics, "run": target.name, "verification": verification}
        _write_outputs(stage, trained, metrics, config, log)
        final = replace(
            manifest,
            verification=verification,
            files=file_hashes(stage),
            explanations={"file": EXPLAIN_FILE, "space": explained["space"], "gate": explained},
        )
        artifacts.write_manifest(stage, final)
    return metrics


def _write_outputs(
    stage: Path, trained: models.Trained, metrics: dict[str, Any], config: Config, log: RunLog
) -> None:

    write_yaml(stage / "config.yaml", config.to_dict())
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False, default=str)
    (stage / "metrics.json").write_text(text + "\n", encoding="utf-8")
    importance = pl.DataFrame(
        {"feature": trained.spec.output_names, "importance": trained.model.feature_importance()}
    ).sort(["importance", "feature"], descending=[True, False])
    importance.write_csv(stage / "feature_importance.csv")
    save_native(trained.model.estimator, trained.name, stage)
    weeks = dataset.week_codes(trained.test)
    threshold = metrics["thresholds"]["decision"]
    plots = report.write_plots(
        stage,
        trained.y_test,
        trained.p_test,
        weeks,
        threshold=threshold,
        importance=importance,
        model=trained.name,
    )
    report.write_report(stage / "report.html", metrics, plots=plots)
    log.add("wrote metrics, plots and report")
    (stage / "training_log.txt").write_text(log.text(), encoding="utf-8")


def _manifest(
    trained: models.Trained,
    metrics: dict[str, Any],
    ff: dataset.FeatureFile,
    name: str,
    files: dict[str, str],
) -> artifacts.Manifest:
    schema = trained.train_frame.schema
    test = metrics["test"]
    summary = {k: v for k, v in test.items() if not isinstance(v, dict) and k != "threshold"}
    summary |= {f"cv_{k}_mean": v["mean"] for k, v in metrics["cv"].items()}
    meta = ff.metadata
    return artifacts.Manifest(
        model_version=name,
        model_kind=trained.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        hubscore_version=__version__,
        features=[{"name": n, "dtype": str(schema[n])} for n in RAW_FEATURES],
        onnx_input=INPUT,
        onnx_output=OUTPUT,
        files=files,
        target={
            "target": meta["target"],
            **{k: int(meta[k]) for k in ("horizon_days", "lookback_days", "recent_days")},
        },
        decision_threshold=float(metrics["thresholds"]["decision"]),
        confidence_bands=metrics["confidence_bands"],
        feature_distributions=profile_features(trained.train_frame, RAW_FEATURES),
        metrics=summary,
        training_data={
            "path": str(ff.path),
            "sha256": ff.fingerprint,
            "rows": ff.frame.height,
            "since": ff.since and ff.since.isoformat(),
            "until": ff.until and ff.until.isoformat(),
            "train_rows": int(trained.split.train.size),
            "test_rows": int(trained.split.test.size),
            "metadata": dict(sorted(meta.items())),
        },
        library_versions=library_versions(),
    )
