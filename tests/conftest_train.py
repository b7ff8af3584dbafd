"""Seeded feature frames in code, and one trained run shared by the training tests."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from hubscore import __version__
from hubscore.core.config import Config, load_config
from hubscore.core.contract import (
    EMPLOYEE_RANGES,
    FEATURES_VERSION,
    NUMERIC_FEATURES,
    RAW_FEATURES,
)

INDUSTRIES = [
    "COMPUTER_SOFTWARE",
    "Computer Software",
    "computer-software",
    "REAL_ESTATE",
    "real estate",
    "Other",
    "Marketing Agency",
    "HIGHER_EDUCATION",
]
SMALL_MODELS = {
    "logreg": {"C": 0.5, "max_iter": 500},
    "random_forest": {"n_estimators": 15, "max_depth": 6, "min_samples_leaf": 5},
    "xgboost": {"n_estimators": 15, "max_depth": 3, "learning_rate": 0.2},
    "lightgbm": {"n_estimators": 15, "num_leaves": 7, "learning_rate": 0.2},
}
INT_FEATURES = {"days_active", "recency_days", "tenure_days", "weeks_active_recent"}


def make_features(
    n_companies: int = 120, n_weeks: int = 16, *, seed: int = 0, target: str = "converted_within"
) -> pl.DataFrame:
    """Return a feature frame with a learnable signal and the contract's mess (nulls, rare ones)."""
    rng = np.random.default_rng(seed)
    weeks = n_weeks if target == "converted_within" else 1
    n = n_companies * weeks
    cutoffs = [date(2024, 1, 7) + timedelta(days=7 * w) for w in range(weeks)]
    engagement = np.repeat(rng.gamma(1.0, 1.0, n_companies), weeks) * rng.gamma(2.0, 0.5, n)
    employee = rng.integers(0, len(EMPLOYEE_RANGES) + 1, n)
    logit = -4.0 + 1.2 * np.log1p(engagement) + 0.25 * employee
    ranks = rng.integers(1, 15_000_000, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    columns: dict[str, Any] = {
        "id": np.repeat(np.arange(1, n_companies + 1), weeks).astype(np.int64),
        "cutoff": [cutoffs[w] for _ in range(n_companies) for w in range(weeks)],
        "label": label,
        "EMPLOYEE_RANGE": [EMPLOYEE_RANGES[e] if e < 9 else None for e in employee],
        "INDUSTRY": [
            INDUSTRIES[i] if i < len(INDUSTRIES) else None for i in rng.integers(0, 12, n)
        ],
        "ALEXA_RANK": pl.Series(
            [int(r) if keep else None for r, keep in zip(ranks, rng.random(n) > 0.4, strict=True)],
            dtype=pl.Int64,
        ),
        "alexa_no_rank": rng.integers(0, 2, n).astype(np.int32),
    }
    for name in NUMERIC_FEATURES[2:]:
        values = engagement * rng.lognormal(3.0, 1.0, n)
        if name in INT_FEATURES:
            columns[name] = np.round(values % 400).astype(np.int64)
        else:
            columns[name] = np.where(rng.random(n) < 0.1, np.nan, values)
    frame = pl.DataFrame(columns)
    casts = {
        name: pl.col(name).fill_nan(None)
        for name in NUMERIC_FEATURES[2:]
        if name not in INT_FEATURES
    }
    frame = frame.with_columns(**casts)
    return frame.with_columns(pl.col("cutoff").cast(pl.Date)).select(
        "id", "cutoff", "label", *RAW_FEATURES
    )


def write_features(
    frame: pl.DataFrame, path: Path, *, target: str = "converted_within", **metadata: str
) -> Path:
    """Write `frame` as Parquet with build-features' key-value metadata."""
    meta = {
        "hubscore_version": __version__,
        "target": target,
        "horizon_days": "14",
        "lookback_days": "91",
        "recent_days": "28",
        "features_version": str(FEATURES_VERSION),
        **metadata,
    }
    table = frame.to_arrow()
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def small_config(model: str = "xgboost", **overrides: Any) -> Config:
    """Return a config with few trees and small lists, for tests on 2 cores."""
    flags: dict[str, Any] = {
        "training.model": model,
        "training.cv_folds": 2,
        "training.top_k": [5, 10],
        "training.weekly_capacity": 5,
        "training.leaderboard_metric": "precision_at_5",
        "encoding.industry_min_frequency": 3,
        "training.search": {"trials": 0},  # the config's parameters: tests that search say so
        **{f"models.{name}": params for name, params in SMALL_MODELS.items()},
        **overrides,
    }
    return load_config(None, overrides=flags, environ={})


@pytest.fixture(scope="session")
def features_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a features.parquet of 120 companies x 16 weekly cutoffs."""
    path = tmp_path_factory.mktemp("build") / "features.parquet"
    return write_features(make_features(), path)


@pytest.fixture(scope="session")
def trained_artifact(features_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Train and export one xgboost run once per session; return its RunResult."""
    from hubscore.training.runs import train_and_export

    out = tmp_path_factory.mktemp("models")
    (result,) = train_and_export(features_file, small_config("xgboost"), out_dir=out)
    return result
