"""Say why a run made each choice it made, from the numbers it computed.

Every choice the training makes from data (the folds, the parameters, the tree count, the
encoding, the calibration) is listed with its value and the evidence behind it, for
metrics.json (`choices`) and the report's "Why each choice" table. Nothing here is a claim
the run did not compute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hubscore.core.config import Config, ModelName
from hubscore.training import dataset, encoders, search

TREE_FAMILIES = ("random_forest", "xgboost", "lightgbm")


def describe_choices(
    name: ModelName,
    config: Config,
    *,
    folds: dataset.Folds,
    searched: search.Searched,
    held_out: Mapping[str, Any],
    shipped: Mapping[str, Any],
) -> list[dict[str, str]]:
    """Return one row per choice: what was chosen and why."""
    chosen = searched.choice.config(name, config)
    rows = [
        _folds(config, folds, searched.summary.get("power", {})),
        {
            "choice": "hyperparameters",
            "value": _params(searched.choice.model),
            "why": str(searched.summary["chosen_by"]),
        },
    ]
    if name in TREE_FAMILIES:
        rows.append(_trees(name, chosen))
    rows.append(_encoding(name, chosen, searched))
    rows.append(_calibration("calibration of the evaluated fit", held_out, "out-of-fold"))
    # _ship calibrates a refit on the test side, the evaluated fit on its out-of-fold weeks.
    shipped_rows = "test-side" if config.training.refit == "all" else "out-of-fold"
    rows.append(_calibration("calibration of the shipped model", shipped, shipped_rows))
    return rows


def _folds(config: Config, folds: dataset.Folds, power: Mapping[str, Any]) -> dict[str, str]:
    per_fold = power.get("positive_companies", [])
    why = (
        f"their validation weeks hold {power.get('positive_companies_in_all', 0)} converting "
        f"companies ({', '.join(map(str, per_fold))} per fold)"
    )
    if folds.dropped:
        why += "; left out: " + "; ".join(folds.dropped)
    value = f"{len(folds.rows)} of {config.training.cv_folds}"
    return {"choice": "cross-validation folds", "value": value, "why": why}


def _trees(name: ModelName, config: Config) -> dict[str, str]:
    params = config.models.get(name, {})
    count = params.get("n_estimators", "the library's default")
    rate = f" at learning rate {params['learning_rate']}" if "learning_rate" in params else ""
    return {
        "choice": "tree count",
        "value": f"{count}{rate}",
        "why": f"the parameters' fixed budget (models.{name}.n_estimators), fitted in full on "
        "every fold and on the shipped rows: no fit stops early on rows it is then scored on",
    }


def _encoding(name: ModelName, config: Config, searched: search.Searched) -> dict[str, str]:
    resolved = encoders.choose_encoding(config.encoding, linear=name == "logreg")
    flags = "one per pattern" if resolved.per_pattern else "one per column"
    value = (
        f"INDUSTRY {resolved.industry}; missing values "
        f"{'read natively' if resolved.native_missing else 'imputed'}; missingness flags "
        f"{flags if resolved.flags else 'none'}"
    )
    searched_keys = sorted(searched.choice.encoding)
    why = (
        f"chosen by the search: {', '.join(searched_keys)}"
        if searched_keys
        else "the config's encoding section"
        + (" (auto, resolved for this family)" if "auto" in vars(config.encoding).values() else "")
    )
    return {"choice": "encoding", "value": value, "why": why}


def _calibration(label: str, fitted: Mapping[str, Any], rows: str) -> dict[str, str]:
    why = str(fitted.get("chosen_by", "")) or "the default"
    counted = fitted.get("fitted_on_rows")
    if counted is not None:
        why += (
            f"; fitted on {counted:,} {rows} rows ({fitted.get('fitted_on_positives', 0):,} "
            "positive)"
        )
    return {"choice": label, "value": str(fitted.get("method")), "why": why}


def _params(params: Mapping[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, Mapping) and "per_positive" in value:
            return f"{float(value['per_positive']):.3g} per positive row"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    return ", ".join(f"{key} {show(value)}" for key, value in sorted(params.items()))
