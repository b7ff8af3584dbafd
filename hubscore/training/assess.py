"""Assess one trained family honestly: held-out metrics, calibration, and what was shipped.

Every number here comes from rows the evaluated model never trained on: the test side (a
horizon after the training side) for the metrics, out-of-fold predictions for thresholds and
for the calibration that the test side is then judged with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import polars as pl

from hubscore.core.config import Config
from hubscore.engine.calibration import calibrate
from hubscore.training import calibration, dataset, evaluate, models, thresholds
from hubscore.training.evaluate import Ints, Vector


def out_of_fold(folds: Sequence[models.Fold]) -> models.Fold:
    """Concatenate the folds' validation labels, predictions, weeks and weights."""
    return models.Fold(
        np.concatenate([f.y for f in folds]),
        np.concatenate([f.p for f in folds]),
        np.concatenate([f.weeks for f in folds]),
        evaluate.joined_weights(folds),
    )


def calibrated_folds(folds: Sequence[models.Fold], fitted: dict[str, Any]) -> list[models.Fold]:
    """Return the folds with calibrated predictions (thresholds are chosen on these)."""
    return [f._replace(p=calibrate(f.p, fitted).astype(np.float64)) for f in folds]


def list_sizes(config: Config) -> list[int]:
    """Return the list sizes reported: `top_k` and the weekly capacity."""
    return sorted({*config.training.top_k, config.training.weekly_capacity})


def cut_groups(weeks: Ints, target: str) -> Ints:
    """Return the groups a threshold rule cuts: the weekly cutoffs, or, for `is_customer`
    (one row per company, each at its own date), all rows as one."""
    return weeks if target == "converted_within" else np.zeros_like(weeks)


def threshold_rules(
    folds: Sequence[models.Fold], config: Config, target: str
) -> thresholds.ThresholdRules:
    """Return what each threshold promises; the F-beta one by its share on calibrated
    out-of-fold predictions (labels are needed to choose it, and only the folds may give them)."""
    t = config.training
    y, p, weeks, weights = out_of_fold(folds)
    f_beta = thresholds.choose_f_beta(
        y, p, cut_groups(weeks, target), beta=t.f_beta, weights=weights
    )
    return thresholds.ThresholdRules(
        capacity=t.weekly_capacity,
        f_beta_share=f_beta["weekly_share"],
        decision=t.decision_threshold,
        tier_shares=t.priority_shares,
    )


def evaluate_trained(
    trained: models.Trained,
    fitted: dict[str, Any],
    p_without: Vector,
    config: Config,
    ff: dataset.FeatureFile,
) -> dict[str, Any]:
    """Return metrics.json's honest part: test, baseline, CV, thresholds, calibration, ablation.

    Thresholds are rules (a week's capacity, a share of its companies) cut on each model's own
    scores, label-free: on the evaluated fit's test-side scores here, on the shipped model's
    in `shipped_thresholds`; the F-beta rule's share is chosen on out-of-fold predictions.

    Args:
        fitted: the calibration fitted on the out-of-fold predictions only.
    """
    t = config.training
    ks = list_sizes(config)
    y, raw, weeks = trained.y_test, trained.p_test, dataset.week_codes(trained.test)
    w = dataset.weights_of(trained.test)
    companies = trained.test.get_column("id").to_numpy()
    p = calibrate(raw, fitted).astype(np.float64)
    folds = calibrated_folds(trained.folds, fitted)
    oof = out_of_fold(folds)
    target = ff.metadata["target"]
    rules = threshold_rules(folds, config, target)
    groups = cut_groups(weeks, target)
    evaluated = thresholds.thresholds_for(p, groups, rules, w)
    recent = trained.test.get_column(evaluate.BASELINE_FEATURE).cast(pl.Float64)
    baseline_p = recent.fill_nan(None).fill_null(0.0).to_numpy()
    decision = evaluated["decision"]
    test = evaluate.evaluate_predictions(y, p, weeks, top_k=ks, threshold=decision, weights=w)
    grid = evaluate.table_thresholds(p, [evaluated["decision"], evaluated["capacity"]])
    without = evaluate.ranking_metrics(y, p_without, weeks, ks, w)
    quality = ff.path.parent / "quality.json"
    return {
        "model": trained.name,
        "target": ff.metadata["target"],
        "horizon_days": int(ff.metadata["horizon_days"]),
        "weekly_capacity": t.weekly_capacity,
        "leaderboard_metric": t.leaderboard_metric,
        "split": trained.split.report,
        "sampling": ff.sampling,
        "test": test,
        "test_intervals": evaluate.company_intervals(
            companies, y, p, weeks, top_k=ks, seed=t.random_seed, weights=w
        ),
        "test_weekly": evaluate.weekly_precision(y, p, weeks, ks, w),
        "baseline": evaluate.ranking_metrics(y, baseline_p, weeks, ks, w),
        "baseline_weekly": evaluate.weekly_precision(y, baseline_p, weeks, ks, w),
        "cv": evaluate.summarise_folds([evaluate.fold_metrics(f, ks) for f in folds]),
        "thresholds": {
            "rules": asdict(rules),
            "f_beta_on_folds": thresholds.fbeta_threshold(oof.y, oof.p, t.f_beta, oof.weights),
            "evaluated": evaluated,
        },
        "threshold_table": evaluate.threshold_table(y, p, weeks, grid, w),
        "calibration": calibration_report(y, raw, p, fitted, w),
        "ablation": evaluate.ablation_summary(test, without, ks),
        "priority_tiers": thresholds.outcome_by_tier(
            companies, y, p, groups, t.priority_shares, seed=t.random_seed, weights=w
        ),
        "quality": json.loads(quality.read_text(encoding="utf-8")) if quality.is_file() else None,
    }


def shipped_thresholds(p_shipped: Vector, test: pl.DataFrame, metrics: dict[str, Any]) -> None:
    """Cut the shipped model's own calibrated scores of the test weeks by the same rules, and
    record them (with its confidence bands) in `metrics`: what the manifest ships.

    Label-free, so the shipped model may have trained on those rows (`training.refit: all`):
    the thresholds then admit what they promise through the model and calibrator that ship.
    """
    rules = thresholds.ThresholdRules(**metrics["thresholds"]["rules"])
    groups = cut_groups(dataset.week_codes(test), metrics["target"])
    shipped = thresholds.thresholds_for(p_shipped, groups, rules, dataset.weights_of(test))
    metrics["thresholds"]["shipped"] = shipped
    metrics["confidence_bands"] = thresholds.confidence_bands(shipped)


def calibration_report(
    y: Ints, raw: Vector, p: Vector, fitted: dict[str, Any], weights: Vector | None = None
) -> dict[str, Any]:
    """Brier, ECE and Σp / converters before and after calibration, on the test side."""
    w = np.ones(y.size) if weights is None else weights
    converters = max(float((w * y).sum()), 1.0)

    def describe(q: Vector) -> dict[str, Any]:
        return {
            "brier": float(np.average((q - y) ** 2, weights=w)),
            "ece": calibration.calibration_error(y, q, weights=weights),
            "expected_over_observed": float((w * q).sum()) / converters,
            "reliability": calibration.reliability_table(y, q, weights=weights),
        }

    return {
        "method": fitted["method"],
        "chosen_by": fitted.get("chosen_by"),
        "evidence": fitted.get("evidence", {}),
        "fitted_on_rows": fitted.get("fitted_on_rows"),
        "before": describe(raw),
        "after": describe(p),
    }


def fitted_on(frame: pl.DataFrame, *, refit: str) -> dict[str, Any]:
    """Describe the rows a shipped model was fitted on (all labelled rows, or the train side)."""
    cutoffs = frame.get_column("cutoff").cast(pl.Date)
    return {
        "refit": refit,
        "rows": frame.height,
        "positives": int(frame.get_column("label").sum()),
        "companies": int(frame.get_column("id").n_unique()),
        "first_cutoff": str(cutoffs.min()),
        "last_cutoff": str(cutoffs.max()),
        "cutoffs": int(cutoffs.n_unique()),
    }
