"""Convert a trained model to ONNX, verify it through the scorer, and write the run folder.

The run folder is staged beside its final name and renamed only after the verification gate
passes: the held-out rows are scored by `score.load_scorer` on the staged folder (JSON
encoders + onnxruntime, the scorer's own code path) and compared with the native model.
`models/latest` moves only after that.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import polars as pl
import yaml
from lightgbm import LGBMClassifier
from onnx import helper
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from xgboost import XGBClassifier

from hubscore import __version__, artifacts, atomic, encoders
from hubscore.config import MODEL_NAMES, Config, ModelName
from hubscore.errors import ArtifactError, ConfigError
from hubscore.features import RAW_FEATURES

if TYPE_CHECKING:
    from hubscore import train

INPUT = "input"
OUTPUT = "probability"
MAX_DELTA = 1e-5
OPSET = {"": 17, "ai.onnx.ml": 3}  # fixed, so a converter upgrade cannot change the bytes
LIBRARIES: tuple[str, ...] = ("polars", "numpy", "scikit-learn", "xgboost", "lightgbm", "onnx")
LIBRARIES += ("skl2onnx", "onnxmltools", "onnxruntime", "matplotlib", "pyarrow")
_CONVERTERS_READY = False


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


def register_converters() -> None:
    """Register the onnxmltools converters for XGBoost and LightGBM with skl2onnx (once)."""
    global _CONVERTERS_READY
    if _CONVERTERS_READY:
        return
    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for cls, alias, converter in (
        (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
        (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
    ):
        update_registered_converter(
            cls, alias, calculate_linear_classifier_output_shapes, converter, options=options
        )
    _CONVERTERS_READY = True


def to_onnx(estimator: Any, n_features: int) -> bytes:
    """Convert a fitted classifier to ONNX with one output: P(positive), float32, shape (n,)."""
    register_converters()
    proto = convert_sklearn(
        estimator,
        name="hubscore",
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=OPSET,
    )
    serialized: bytes = _positive_output(proto).SerializeToString()
    return serialized


def _positive_output(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Replace the label and [P(0), P(1)] outputs with the P(1) column alone."""
    graph = proto.graph
    probabilities = next(o.name for o in graph.output if o.type.tensor_type.elem_type == 1)
    index = helper.make_tensor("positive_index", onnx.TensorProto.INT64, [], [1])
    graph.initializer.append(index)
    graph.node.append(
        helper.make_node(
            "Gather", [probabilities, "positive_index"], [OUTPUT], axis=1, name="positive"
        )
    )
    out = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [None])
    del graph.output[:]
    graph.output.append(out)
    _prune(graph)
    graph.name = "hubscore"
    proto.doc_string = ""
    onnx.checker.check_model(proto)
    return proto


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers that no output depends on (the label branch)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    nodes = list(reversed(kept))
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def verify_export(
    run_dir: Path,
    frame: pl.DataFrame,
    native: np.ndarray,
    *,
    threshold: float,
    names: Sequence[str],
) -> dict[str, Any]:
    """Score `frame` with the scorer on `run_dir` and compare with native probabilities.

    Flips compare the native probability rounded to float32 (what a scorer reports) with the
    ONNX one at `threshold`.
    """
    from hubscore.score import load_scorer

    scorer = load_scorer(run_dir, threads=1)
    onnx_p = scorer.predict_proba(frame.select(names)).astype(np.float64)
    delta = np.abs(onnx_p - native)
    native32 = native.astype(np.float32).astype(np.float64)
    flips = int(((onnx_p >= threshold) != (native32 >= threshold)).sum())
    result = {
        "rows": int(frame.height),
        "max_abs_delta": float(delta.max()) if delta.size else 0.0,
        "mean_abs_delta": float(delta.mean()) if delta.size else 0.0,
        "label_flips": flips,
        "tolerance": MAX_DELTA,
        "threshold": threshold,
    }
    if result["max_abs_delta"] > MAX_DELTA or flips:
        raise ArtifactError(
            f"the exported model disagrees with the trained one on {frame.height} held-out rows: "
            f"max |Δp| {result['max_abs_delta']:.3g} (allowed {MAX_DELTA:g}), "
            f"{flips} label flips at threshold {threshold:.4g}; no model was written",
            hint="report it with the converter versions in this message: "
            + ", ".join(f"{n} {_version(n)}" for n in ("skl2onnx", "onnxmltools", "onnxruntime")),
        )
    return result


def save_native(estimator: Any, kind: str, run_dir: Path) -> str | None:
    """Save the native model in its own safe text format (never pickle); return its name."""
    if kind == "xgboost":
        estimator.get_booster().save_model(str(run_dir / "model.xgb.json"))
        return "model.xgb.json"
    if kind == "lightgbm":
        (run_dir / "model.lgb.txt").write_text(estimator.booster_.model_to_string())
        return "model.lgb.txt"
    return None


def library_versions() -> dict[str, str]:
    """Return the versions of hubscore, Python and every library a run depends on."""
    found = {name: _version(name) for name in LIBRARIES}
    return {"hubscore": __version__, "python": platform.python_version(), **found}


def _version(name: str) -> str:
    try:
        return version(name)
    except Exception:  # importlib raises PackageNotFoundError; any failure is "unknown"
        return "unknown"


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
    features: Path, config: Config, *, out_dir: Path, track: bool = False
) -> list[RunResult]:
    """Train the configured family (or all four), export each run, move `latest` to the best.

    Nothing is written unless every check passes; with `all`, `latest` moves only after all
    four runs were accepted, to the best by `training.leaderboard_metric`.
    """
    from hubscore import train  # stages meet here, lazily (ruff TID253)

    names = MODEL_NAMES if config.training.model == "all" else (config.training.model,)
    check_leaderboard_metric(config)
    for name in names:
        train.make_model(name, config)  # reject bad hyperparameters before any training
    ff = train.read_features(features)
    split = train.split_rows(ff, config)
    results = []
    with atomic.exclusive_lock(out_dir / "latest"):
        for name in names:
            prefix = config.experiment.name + (f"-{name}" if len(names) > 1 else "")
            results.append(_run_family(name, ff, split, config, out_dir=out_dir, prefix=prefix))
        best = leaderboard(results, config.training.leaderboard_metric)[0]
        update_latest(out_dir, best.run_dir.name)
    if track or config.tracking.uri:
        from hubscore import tracking

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
    ff: train.FeatureFile,
    split: train.Split,
    config: Config,
    *,
    out_dir: Path,
    prefix: str,
) -> RunResult:
    from hubscore import train

    log = RunLog()
    log.add(f"hubscore {__version__}: training {name} on {ff.path} ({ff.frame.height} rows)")
    log.add(f"split: {json.dumps(split.report, sort_keys=True)}")
    trained = train.train_family(name, ff, split, config)
    log.add(f"cross-validated ({config.training.cv_folds} folds) and fitted {name}")
    without, spec = train.fit_family(name, trained.train_frame, config, missing_flags=False)
    p_without = without.predict_proba(encoders.encode(trained.test, spec))
    log.add("fitted the ablation without missingness flags")
    metrics = evaluate_trained(trained, p_without, config, ff)
    target = out_dir / run_name(out_dir, prefix)
    return RunResult(name, target, _write_run(trained, metrics, config, ff, target, log))


def evaluate_trained(
    trained: train.Trained, p_without: np.ndarray, config: Config, ff: train.FeatureFile
) -> dict[str, Any]:
    """Return metrics.json: test, baseline, CV, thresholds, threshold table and ablation."""
    from hubscore import evaluate, train

    t = config.training
    y, p, weeks = trained.y_test, trained.p_test, train.week_codes(trained.test)
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
        "quality": json.loads(quality.read_text(encoding="utf-8")) if quality.is_file() else None,
    }


def _write_run(
    trained: train.Trained,
    metrics: dict[str, Any],
    config: Config,
    ff: train.FeatureFile,
    target: Path,
    log: RunLog,
) -> dict[str, Any]:
    """Stage the run folder, pass the verification gate, rename it into place; return metrics."""
    with atomic.atomic_dir(target) as stage:
        stage.chmod(0o755)  # mkdtemp makes it owner-only; scoring may run as another user
        onnx_bytes = to_onnx(trained.model.estimator, len(trained.spec.output_names))
        (stage / artifacts.MODEL_FILE).write_bytes(onnx_bytes)
        (stage / artifacts.ENCODERS_FILE).write_text(trained.spec.to_json(), encoding="utf-8")
        manifest = _manifest(trained, metrics, ff, target.name, file_hashes(stage))
        artifacts.write_manifest(stage, manifest)
        threshold = manifest.decision_threshold
        verification = verify_export(
            stage, trained.test, trained.p_test, threshold=threshold, names=RAW_FEATURES
        )
        log.add(f"verification: {json.dumps(verification, sort_keys=True)}")
        metrics = {**metrics, "run": target.name, "verification": verification}
        _write_outputs(stage, trained, metrics, config, log)
        final = replace(manifest, verification=verification, files=file_hashes(stage))
        artifacts.write_manifest(stage, final)
    return metrics


def _write_outputs(
    stage: Path, trained: train.Trained, metrics: dict[str, Any], config: Config, log: RunLog
) -> None:
    from hubscore import evaluate, train

    write_yaml(stage / "config.yaml", config.to_dict())
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False, default=str)
    (stage / "metrics.json").write_text(text + "\n", encoding="utf-8")
    importance = pl.DataFrame(
        {"feature": trained.spec.output_names, "importance": trained.model.feature_importance()}
    ).sort(["importance", "feature"], descending=[True, False])
    importance.write_csv(stage / "feature_importance.csv")
    save_native(trained.model.estimator, trained.name, stage)
    weeks = train.week_codes(trained.test)
    threshold = metrics["thresholds"]["decision"]
    plots = evaluate.write_plots(
        stage, trained.y_test, trained.p_test, weeks, threshold=threshold, importance=importance
    )
    evaluate.write_report(stage / "report.html", metrics, plots=plots)
    log.add("wrote metrics, plots and report")
    (stage / "training_log.txt").write_text(log.text(), encoding="utf-8")


def _manifest(
    trained: train.Trained,
    metrics: dict[str, Any],
    ff: train.FeatureFile,
    name: str,
    files: dict[str, str],
) -> artifacts.Manifest:
    from hubscore.drift import profile_features

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
            "train_rows": int(trained.split.train.size),
            "test_rows": int(trained.split.test.size),
            "metadata": dict(sorted(meta.items())),
        },
        library_versions=library_versions(),
    )
