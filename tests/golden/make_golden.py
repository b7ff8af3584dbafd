"""Rebuild tests/golden/<family>: a tiny run folder per model family, its input and scores.

A dev tool (`just golden`), never imported by the package: it may use the training stack.
Review `git diff tests/golden` after running it; the scorer tests compare against these files.
Each family is trained through the same `models.make_model(...).fit` and `to_onnx` as
`hubscore train`. `tests/golden/basic` (xgboost) is the format-version-1 golden: frozen, it is
not rewritten here, and every later hubscore must still load it and reproduce its scores.

    uv run python tests/golden/make_golden.py
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from hubscore import __version__
from hubscore.core.artifacts import ENCODERS_FILE, MODEL_FILE, Manifest, sha256_file, write_manifest
from hubscore.core.config import MODEL_NAMES, EncodingConfig, ModelName, load_config
from hubscore.core.contract import (
    ACTIVITY_FEATURES,
    ALEXA_NO_RANK_SENTINEL,
    EMPLOYEE_RANGES,
    HISTORY_FEATURES,
    RAW_FEATURES,
    USAGE_STAT_FEATURES,
)
from hubscore.engine.calibration import calibrate
from hubscore.engine.drift import profile_features
from hubscore.engine.encoding import EncoderSpec, encode
from hubscore.engine.explain import EXPLAIN_FILE
from hubscore.engine.scorer import load_scorer, scored_at_for
from hubscore.training.calibration import fit_method
from hubscore.training.encoders import fit_encoders
from hubscore.training.explanations import write_explain_file
from hubscore.training.export import INPUT, OUTPUT, to_onnx
from hubscore.training.models import make_model, round_thresholds_down

HERE = Path(__file__).parent
SPACE = {"random_forest": "probability", "logreg": "log-odds", "xgboost": "log-odds"}
SPACE["lightgbm"] = "log-odds"
TARGET = {"target": "converted_within", "horizon_days": 30, "lookback_days": 91, "recent_days": 28}
INDUSTRIES = ["COMPUTER_SOFTWARE", "Technology - Software", "real estate", "REAL_ESTATE", "Other"]
INT_FEATURES = {"ALEXA_RANK", "days_active", "weeks_active_recent", "recency_days", "tenure_days"}
N_TRAIN, N_INPUT = 400, 60
# Small models: the folders stay a few hundred kB and still exercise every converter.
SIZES: dict[ModelName, dict[str, object]] = {
    "logreg": {},
    "random_forest": {"n_estimators": 20, "max_depth": 5, "min_samples_leaf": 5},
    "xgboost": {"n_estimators": 30, "max_depth": 3},
    "lightgbm": {"n_estimators": 30, "num_leaves": 7, "min_child_samples": 10},
}


def make_features(n: int, rng: np.random.Generator, *, first_id: int) -> pl.DataFrame:
    """Return `n` feature rows in the build-features schema, with nulls and heavy tails."""
    columns: dict[str, pl.Series] = {"id": pl.Series(range(first_id, first_id + n), dtype=pl.Int64)}
    columns["EMPLOYEE_RANGE"] = _strings(rng, [*EMPLOYEE_RANGES, None], n)
    columns["INDUSTRY"] = _strings(rng, [*INDUSTRIES, None, None, None], n)
    rank = rng.integers(1, 2_000_000, n)
    no_rank = rng.random(n) < 0.4
    rank[no_rank] = ALEXA_NO_RANK_SENTINEL
    columns["ALEXA_RANK"] = pl.Series(rank, dtype=pl.Int64)
    columns["alexa_no_rank"] = pl.Series(no_rank)
    for name in (*ACTIVITY_FEATURES, *USAGE_STAT_FEATURES, *HISTORY_FEATURES):
        values = np.round(rng.pareto(1.5, n) * 5, 3) * (rng.random(n) < 0.6)
        columns[name] = pl.Series(values.astype(np.int64) if name in INT_FEATURES else values)
    df = pl.DataFrame(columns).select("id", *RAW_FEATURES)
    return df.with_columns(pl.col(c).cast(pl.Int32) for c in INT_FEATURES - {"ALEXA_RANK"})


def with_edge_cases(df: pl.DataFrame) -> pl.DataFrame:
    """Put nulls, NaN, +-inf, unseen categories and extreme values into the first rows."""
    edits = {
        "EMPLOYEE_RANGE": ["10,001 OR more", "  ", "unknown bucket", None],
        "INDUSTRY": ["Brand new industry", "computer software", "", None],
        "total_actions": [float("nan"), float("inf"), -float("inf"), 1e300],
        "actions_recent": [None, 0.0, -5.0, 1e12],
    }
    rows = len(next(iter(edits.values())))
    edited = df.head(rows).with_columns(
        pl.Series(name, values, dtype=df.schema[name]) for name, values in edits.items()
    )
    return pl.concat([edited, df.slice(rows)])


def label(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw labels that depend on a few encoded columns, so the trees have signal."""
    x = np.nan_to_num(x)  # trees read NaN natively; the labels need numbers
    logit = 0.5 * x[:, 0] - 0.002 * x[:, -1] + 0.3 * x[:, 12] - 3.0
    return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def build(family: ModelName, out: Path, *, explained: bool = True) -> None:
    """Train a small model of `family`, export it as `train` does, write the golden files."""
    rng = np.random.default_rng(MODEL_NAMES.index(family))
    train = make_features(N_TRAIN, rng, first_id=1)
    config = load_config(overrides={f"models.{family}": SIZES[family]})
    encoding = EncodingConfig(industry_min_frequency=5)
    spec = fit_encoders(train, encoding, linear=family == "logreg")
    x = encode(train, spec)
    y = label(x, rng)
    model = make_model(family, config).fit(x, y)
    round_thresholds_down(model)
    # Platt-calibrated, so every golden folder exercises the scorer's calibration.
    spec = replace(spec, calibration=fit_method("platt", y, model.predict_proba(x)))
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / MODEL_FILE).write_bytes(to_onnx(model.estimator, x.shape[1]))
    (run_dir / ENCODERS_FILE).write_text(spec.to_json(), encoding="utf-8")
    if explained:
        write_explain_file(run_dir, model.estimator, family, x)
    write_manifest(run_dir, _manifest(family, train, spec, run_dir, explained=explained))
    scoring = with_edge_cases(make_features(N_INPUT, rng, first_id=100_000))
    _write_input(scoring, out / "input.parquet")
    native = calibrate(model.predict_proba(encode(scoring, spec)), spec.calibration)
    _write_expected(scoring, native, run_dir, out / "expected_scores.parquet")
    if explained:
        load_scorer(run_dir).explain(scoring).write_parquet(out / "expected_explanations.parquet")


def _strings(rng: np.random.Generator, choices: list[str | None], n: int) -> pl.Series:
    picks = rng.integers(0, len(choices), n)
    return pl.Series([choices[i] for i in picks], dtype=pl.String)


def _manifest(
    family: str, train: pl.DataFrame, spec: EncoderSpec, run_dir: Path, *, explained: bool
) -> Manifest:
    names = spec.input_names
    files = (MODEL_FILE, ENCODERS_FILE, *([EXPLAIN_FILE] if explained else []))
    return Manifest(
        model_version=f"golden-{family}-2",
        model_kind=family,
        created_at="2024-01-07T00:00:00+00:00",
        hubscore_version=__version__,
        features=[{"name": n, "dtype": str(train.schema[n])} for n in names],
        onnx_input=INPUT,
        onnx_output=OUTPUT,
        files={f: sha256_file(run_dir / f) for f in files},
        target=TARGET,
        decision_threshold=0.5,
        confidence_bands={"high": 0.7, "medium": 0.4},
        feature_distributions=profile_features(train, names),
        explanations={"file": EXPLAIN_FILE, "space": SPACE[family]} if explained else {},
    )


def _write_input(df: pl.DataFrame, path: Path) -> None:
    table = df.to_arrow()
    metadata = {"hubscore_version": __version__, **{k: str(v) for k, v in TARGET.items()}}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _write_expected(df: pl.DataFrame, native: np.ndarray, run_dir: Path, path: Path) -> None:
    # The lean scorer's own output at generation time guards against regressions (1e-6);
    # the native model's probabilities check ONNX conversion exactness (1e-5).
    scores = load_scorer(run_dir).score(df, scored_at=scored_at_for(date(2024, 1, 7)))
    native_scores = df.select("id").with_columns(native_probability=pl.Series(native))
    scores.join(native_scores, on="id", maintain_order="left").write_parquet(path)


if __name__ == "__main__":
    for name in MODEL_NAMES:
        build(name, HERE / name)
        print(f"wrote {HERE / name}")
    print("review with: git diff --stat tests/golden")
