"""Run orchestration: per family, choose parameters (`search`), evaluate the train-side fit on
the held-out weeks (`assess`), refit on every labelled row, calibrate, export and verify.

Every family's run folder is staged beside its final name; all are renamed into place together,
after every verification gate (`export.verify_export`, the explanations' gate) has passed and
each report carries the leaderboard. `models/latest` moves only after that, under the lock.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from hubscore._version import __version__
from hubscore.core import artifacts, atomic, promotions
from hubscore.core.config import MODEL_NAMES, Config, ModelName
from hubscore.core.contract import FEATURES_VERSION_KEY, RAW_FEATURES
from hubscore.core.errors import ConfigError
from hubscore.engine import encoding
from hubscore.engine.calibration import calibrate
from hubscore.engine.drift import profile_features
from hubscore.engine.explain import EXPLAIN_FILE
from hubscore.training import (
    assess,
    calibration,
    choices,
    dataset,
    evaluate,
    explanations,
    models,
    plots,
    report,
    search,
)
from hubscore.training.export import (
    INPUT,
    OUTPUT,
    library_versions,
    save_native,
    to_onnx,
    verify_export,
)
from hubscore.training.progress import SILENT, Progress


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
    """Point `out_dir/latest` at run `name` atomically, logged in promotions.jsonl."""
    promotions.record_train_move(out_dir, name)


def file_hashes(run_dir: Path) -> dict[str, str]:
    """Return the sha256 of every file in the run folder except the manifest itself."""
    return {
        p.name: artifacts.sha256_file(p)
        for p in sorted(run_dir.iterdir())
        if p.is_file() and p.name != artifacts.MANIFEST
    }


@dataclass(frozen=True)
class RunResult:
    """One accepted run: its family, folder and metrics.json content, with typed views of
    what front ends read (the test and baseline metrics, the gate's largest delta)."""

    model: str
    run_dir: Path
    metrics: dict[str, Any]

    @property
    def test(self) -> Mapping[str, float | None]:
        """The evaluated fit's metrics on the held-out test weeks (numbers only)."""
        return _numbers(self.metrics["test"])

    @property
    def baseline(self) -> Mapping[str, float | None]:
        """The same metrics of the baseline (rank by recent activity)."""
        return _numbers(self.metrics["baseline"])

    @property
    def max_abs_delta(self) -> float:
        """The verification gate's largest |Δp| between ONNX and the native model."""
        return float(self.metrics["verification"]["max_abs_delta"])


def _numbers(values: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        k: None if v is None else float(v)
        for k, v in values.items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    }


def train_and_export(
    features: Path,
    config: Config,
    *,
    out_dir: Path,
    track: bool = False,
    since: date | None = None,
    until: date | None = None,
    progress: Progress = SILENT,
) -> list[RunResult]:
    """Train the configured family (or all four), export each run, move `latest` to the best.

    Nothing is written unless every check passes: all run folders are staged, verified and
    renamed into place together, then `latest` moves to the best by
    `training.leaderboard_metric` (ties broken by the next metrics). An interrupt (SIGINT, or
    SIGTERM made one by the caller) before that removes the staged folders; during it, it
    waits for the renames and `latest` (`atomic.signals_deferred`).

    Args:
        progress: told each family, step, trial and fold as training reaches it.
    """
    names = MODEL_NAMES if config.training.model == "all" else (config.training.model,)
    check_leaderboard_metric(config)
    for name in names:
        models.make_model(name, config)  # reject bad hyperparameters before any training
    ff = dataset.read_features(  # cutoffs in [since, until], negatives sampled past max_rows
        features, since=since, until=until, max_rows=config.training.max_rows
    )
    split = dataset.split_rows(ff, config)
    with atomic.exclusive_lock(out_dir / "latest"):
        atomic.remove_all_temps(out_dir)  # a killed run's staged folder has another name
        with contextlib.ExitStack() as staging:  # every folder renamed into place, or none
            drafts = []
            for index, name in enumerate(names, start=1):
                progress.family(name, index, len(names))
                prefix = config.experiment.name + (f"-{name}" if len(names) > 1 else "")
                target = out_dir / run_name(out_dir, prefix)
                stage = staging.enter_context(atomic.atomic_dir(target))
                drafts.append(
                    _stage_family(
                        name, ff, split, config, stage=stage, target=target, progress=progress
                    )
                )
            progress.step("write the reports")
            board = leaderboard_table([d.result for d in drafts], config)
            results = [_finish(draft, board, config) for draft in drafts]
            commit = staging.pop_all()  # the renames: run below, never cut by an interrupt
        with atomic.signals_deferred():
            commit.close()
            best = leaderboard(results, config.training.leaderboard_metric)[0]
            update_latest(out_dir, best.run_dir.name)
    if track or config.tracking.uri:
        from hubscore.training import tracking

        uri = config.tracking.uri or f"sqlite:///{(out_dir / 'mlflow.db').resolve()}"
        for result in results:
            tracking.log_run(result.run_dir, uri=uri, experiment=config.experiment.name)
        experiment = config.experiment.name
        tracking.set_alias(best.run_dir.name, "champion", uri=uri, experiment=experiment)
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


LEADERBOARD_ORDER = ("pr_auc", "roc_auc", "recall_at_100", "log_loss")
"""The metrics that break leaderboard ties, after `training.leaderboard_metric`."""


def leaderboard(results: Sequence[RunResult], metric: str) -> list[RunResult]:
    """Sort runs best first by a test metric, ties broken by `LEADERBOARD_ORDER`."""
    keys = [metric, *(m for m in LEADERBOARD_ORDER if m != metric)]

    def key(result: RunResult) -> tuple[Any, ...]:
        test = result.test
        values = []
        for name in keys:
            value = test.get(name)
            sign = 1.0 if name in evaluate.LOWER_IS_BETTER else -1.0
            values.append(sign * value if value is not None else float("inf"))
        return (*values, result.model)

    return sorted(results, key=key)


def leaderboard_table(results: Sequence[RunResult], config: Config) -> list[dict[str, Any]]:
    """Rows of the leaderboard, best first; `overlaps_winner` where the 90% intervals do."""
    metric = config.training.leaderboard_metric
    ranked = leaderboard(results, metric)
    winner = ranked[0].metrics.get("test_intervals", {}).get(metric)
    rows = []
    for place, result in enumerate(ranked, start=1):
        interval = result.metrics.get("test_intervals", {}).get(metric)
        overlaps = None
        if winner and interval and place > 1:
            overlaps = interval[1] >= winner[0] and winner[1] >= interval[0]
        test = result.test
        rows.append(
            {
                "place": place,
                "model": result.model,
                "run": result.run_dir.name,
                metric: test.get(metric),
                "interval": interval,
                "overlaps_winner": overlaps,
                **{m: test.get(m) for m in LEADERBOARD_ORDER if m != metric},
            }
        )
    return rows


@dataclass
class _Draft:
    """A staged, verified run folder waiting for the leaderboard and its report."""

    result: RunResult
    stage: Path
    manifest: artifacts.Manifest
    plots: list[Path]
    log: RunLog


def _stage_family(
    name: ModelName,
    ff: dataset.FeatureFile,
    split: dataset.Split,
    config: Config,
    *,
    stage: Path,
    target: Path,
    progress: Progress = SILENT,
) -> _Draft:
    """Search, evaluate, calibrate, refit and verify one family into its staged folder."""
    log = RunLog()
    log.add(f"hubscore {__version__}: training {name} on {ff.path} ({ff.frame.height} rows)")
    log.add(f"split: {json.dumps(split.report, sort_keys=True)}")
    folds = dataset.cv_folds(ff, split, config)
    for dropped in folds.dropped:
        log.add(f"cross-validation: left out {dropped}")
    progress.step("choose the parameters on the time folds")
    searched = search.choose_params(name, ff, config, folds, progress=progress)
    log.add(f"parameters ({searched.summary['chosen_by']}): {searched.best['params']}")
    progress.step("fit the training side and evaluate it on the test weeks")
    trained = models.train_family(
        name, ff, split, config, choice=searched.choice, folds=searched.folds
    )
    without, spec = models.fit_family(
        name, trained.train_frame, searched.choice.config(name, config), missing_flags=False
    )
    p_without = without.predict_proba(encoding.encode(trained.test, spec))
    log.add("fitted the training side and the ablation without missingness flags")
    held_out = calibration.fit_calibration(*assess.out_of_fold(trained.folds))
    metrics = assess.evaluate_trained(trained, held_out, p_without, config, ff)
    metrics["search"] = {**searched.summary, "chosen": searched.best, "history": searched.trials}
    progress.step("refit on every labelled row" if config.training.refit == "all" else "ship")
    shipped = _ship(name, ff, trained, config, log)
    metrics["shipped"] = shipped.fitted_on
    metrics["choices"] = choices.describe_choices(
        name,
        config,
        folds=folds,
        searched=searched,
        held_out=held_out,
        shipped=shipped.fitted_on["calibration"],
    )
    # Thresholds and tiers in the shipped model's own space (its model and calibrator).
    assess.shipped_thresholds(shipped.native_test, trained.test, metrics)
    stage.chmod(0o755)  # mkdtemp makes it owner-only; scoring may run as another user
    progress.step("export to ONNX and verify")
    manifest = _export(stage, shipped, metrics, ff, trained.test, name=target.name, log=log)
    metrics = {**metrics, "run": target.name, "verification": manifest.verification}
    p_test = calibrate(trained.p_test, held_out).astype(np.float64)
    figures = _write_outputs(stage, trained, shipped, metrics, config, p_test=p_test)
    log.add("wrote the run folder's files and plots")
    return _Draft(RunResult(name, target, metrics), stage, manifest, figures, log)


@dataclass(frozen=True)
class _Shipped:
    """The model that goes into the run folder, with its encoders and calibration."""

    model: models.Model
    spec: encoding.EncoderSpec
    fitted_on: dict[str, Any]
    fit_frame: pl.DataFrame
    """The rows it was fitted on (logistic regression explains against their means)."""
    x_test: np.ndarray
    """The held-out rows encoded by its spec (the gates score and explain them)."""
    native_test: np.ndarray
    """Its calibrated probabilities on the held-out rows (thresholds and tiers are cut on them)."""
    raw_test: np.ndarray
    """Its own probabilities on the held-out rows, before calibration (what the gate compares)."""


def _ship(
    name: ModelName,
    ff: dataset.FeatureFile,
    trained: models.Trained,
    config: Config,
    log: RunLog,
) -> _Shipped:
    """Refit on every labelled row (`training.refit: all`) and calibrate it for the weeks ahead.

    The refitted model will score weeks after all its training rows, as the train-side fit
    scored the test side a horizon after its own: so its calibration is fitted on that fit's
    test-side predictions, the newest and closest analogue (out-of-fold predictions come from
    models trained on less history, which under-predict a rising rate more). With
    `train_side`, the shipped model is the evaluated one, calibrated on out-of-fold weeks.
    """
    if config.training.refit == "all":
        model, spec = models.refit_all(name, ff, config, choice=trained.choice)
        weeks = dataset.week_codes(trained.test)
        w_test = dataset.weights_of(trained.test)
        fitted = calibration.fit_calibration(trained.y_test, trained.p_test, weeks, w_test)
        fit_frame, x_test = ff.frame, encoding.encode(trained.test, spec)
        log.add(f"refitted {name} on all {ff.frame.height} labelled rows")
    else:
        model, spec = trained.model, trained.spec
        fitted = calibration.fit_calibration(*assess.out_of_fold(trained.folds))
        fit_frame, x_test = trained.train_frame, trained.x_test
    described = assess.fitted_on(fit_frame, refit=config.training.refit)
    spec = replace(spec, calibration=fitted)
    raw = model.predict_proba(x_test)
    native = calibrate(raw, fitted).astype(np.float64)
    described["calibration"] = {k: v for k, v in fitted.items() if k not in ("x", "y")}
    return _Shipped(model, spec, described, fit_frame, x_test, native, raw)


def _export(
    stage: Path,
    shipped: _Shipped,
    metrics: dict[str, Any],
    ff: dataset.FeatureFile,
    held_out: pl.DataFrame,
    *,
    name: str,
    log: RunLog,
) -> artifacts.Manifest:
    """Write model.onnx, encoders.json and the manifest; pass the verification gate on the
    held-out rows (parity of the shipped model's ONNX export with the native fit)."""
    estimator, kind = shipped.model.estimator, shipped.model.name
    onnx_bytes = to_onnx(estimator, len(shipped.spec.output_names))
    (stage / artifacts.MODEL_FILE).write_bytes(onnx_bytes)
    (stage / artifacts.ENCODERS_FILE).write_text(shipped.spec.to_json(), encoding="utf-8")
    # Only logreg needs its training matrix's column means; trees read their covers.
    means = None
    if kind == "logreg":
        weights = dataset.weights_of(shipped.fit_frame)
        means = explanations.column_means(shipped.fit_frame, shipped.spec, weights)
    explanations.write_explain_file(stage, estimator, kind, means=means)
    manifest = _manifest(shipped, metrics, ff, name, file_hashes(stage))
    artifacts.write_manifest(stage, manifest)
    verification = verify_export(
        stage,
        held_out,
        shipped.raw_test,
        threshold=manifest.decision_threshold,
        names=RAW_FEATURES,
    )
    log.add(f"verification: {json.dumps(verification, sort_keys=True)}")
    explained = explanations.verify_explanations(stage, estimator, kind, shipped.x_test)
    log.add(f"explanations: {json.dumps(explained, sort_keys=True)}")
    gate = {"file": EXPLAIN_FILE, "space": explained["space"], "gate": explained}
    return replace(manifest, verification=verification, explanations=gate)


def _write_outputs(
    stage: Path,
    trained: models.Trained,
    shipped: _Shipped,
    metrics: dict[str, Any],
    config: Config,
    *,
    p_test: np.ndarray,
) -> list[Path]:
    """Write config, importance, the native model and the plots; return the plots.

    Args:
        p_test: the evaluated model's calibrated test-side probabilities.
    """
    write_yaml(
        stage / "config.yaml", shipped_config(trained.name, config, trained.choice).to_dict()
    )
    importance = pl.DataFrame(
        {"feature": shipped.spec.output_names, "importance": shipped.model.feature_importance()}
    ).sort(["importance", "feature"], descending=[True, False])
    importance.write_csv(stage / "feature_importance.csv")
    save_native(shipped.model.estimator, trained.name, stage)
    return plots.write_plots(
        stage,
        trained.y_test,
        p_test,
        dataset.week_codes(trained.test),
        threshold=metrics["thresholds"]["evaluated"]["decision"],
        importance=importance,
        importance_kind=IMPORTANCE_KIND[trained.name],
        calibration=metrics["calibration"],
    )


def shipped_config(name: ModelName, config: Config, choice: models.Choice) -> Config:
    """Return the config the shipped model was fitted with: this family, the chosen
    parameters and encodings. `train --config RUN/config.yaml --search off` on the same
    feature file refits the same model, byte for byte."""
    chosen = choice.config(name, config)
    return replace(chosen, training=replace(chosen.training, model=name))


IMPORTANCE_KIND = {
    "logreg": "|coefficient| on the scaled inputs",
    "random_forest": "mean decrease in Gini impurity (sums to 1)",
    "xgboost": "gain: mean loss reduction per split (sums to 1)",
    "lightgbm": "gain: total loss reduction over its splits",
}
"""What each family's `feature_importance` measures: the importance chart's axis label."""


def _finish(draft: _Draft, board: list[dict[str, Any]], config: Config) -> RunResult:
    """Write metrics.json, the report and the final manifest into the staged folder."""
    metrics = {**draft.result.metrics, "leaderboard": board if len(board) > 1 else []}
    text = json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False, default=str)
    (draft.stage / "metrics.json").write_text(text + "\n", encoding="utf-8")
    report.write_report(draft.stage / "report.html", metrics, plots=draft.plots)
    draft.log.add("wrote metrics and report")
    (draft.stage / "training_log.txt").write_text(draft.log.text(), encoding="utf-8")
    final = replace(draft.manifest, files=file_hashes(draft.stage))
    artifacts.write_manifest(draft.stage, final)
    return RunResult(draft.result.model, draft.result.run_dir, metrics)


def _manifest(
    shipped: _Shipped,
    metrics: dict[str, Any],
    ff: dataset.FeatureFile,
    name: str,
    files: dict[str, str],
) -> artifacts.Manifest:
    schema = ff.frame.schema
    test = metrics["test"]
    summary = {k: v for k, v in test.items() if not isinstance(v, dict) and k != "threshold"}
    summary |= {f"cv_{k}_mean": v["mean"] for k, v in metrics["cv"].items()}
    meta = ff.metadata
    return artifacts.Manifest(
        model_version=name,
        model_kind=shipped.model.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        hubscore_version=__version__,
        features=[{"name": n, "dtype": str(schema[n])} for n in RAW_FEATURES],
        onnx_input=INPUT,
        onnx_output=OUTPUT,
        files=files,
        target={
            "target": meta["target"],
            **{k: int(meta[k]) for k in ("horizon_days", "lookback_days", "recent_days")},
            # What the features meant at training: score refuses inputs that mean otherwise.
            **({FEATURES_VERSION_KEY: int(v)} if (v := meta.get(FEATURES_VERSION_KEY)) else {}),
        },
        decision_threshold=float(metrics["thresholds"]["shipped"]["decision"]),
        confidence_bands=metrics["confidence_bands"],
        priority_thresholds=metrics["thresholds"]["shipped"]["priority"],
        feature_distributions=profile_features(ff.frame, RAW_FEATURES),
        metrics=summary,
        metrics_describe=METRICS_DESCRIBE[shipped.fitted_on["refit"]],
        fitted_on=shipped.fitted_on,
        training_data={
            "path": str(ff.path),
            "sha256": ff.fingerprint,
            "rows": ff.frame.height,
            "since": ff.since and ff.since.isoformat(),
            "until": ff.until and ff.until.isoformat(),
            "train_rows": int(metrics["split"]["train"]["rows"]),
            "test_rows": int(metrics["split"]["test"]["rows"]),
            "metadata": dict(sorted(meta.items())),
        },
        library_versions=library_versions(),
    )


METRICS_DESCRIBE = {
    "all": "the fit on the training side, scored on the held-out test weeks a horizon later; "
    "the shipped model (fitted_on) is the same parameters refitted on every labelled row",
    "train_side": "the shipped model itself (fitted on the training side), scored on the "
    "held-out test weeks a horizon later",
}
