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
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from hubscore import __version__
from hubscore.core.artifacts import ENCODERS_FILE, MODEL_FILE, Manifest, sha256_file, write_manifest
from hubscore.core.config import MODEL_NAMES, EncodingConfig, ModelName, load_config
from hubscore.core.contract import ALEXA_NO_RANK_SENTINEL, EMPLOYEE_RANGES, RAW_FEATURES
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
from hubscore.training.thresholds import PRIORITY_TIERS, weekly_cut

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


WEEKS, RECENT = 13, 4
"""The look-back and recent windows in weeks (TARGET's 91 and 28 days)."""
OBJECT_SHARES = (1.0, 0.6, 0.25, 0.4)
"""How much of a company's use goes to contacts, companies, deals and email, on average."""


def make_features(n: int, rng: np.random.Generator, *, first_id: int) -> pl.DataFrame:
    """Return `n` feature rows in the build-features schema, each one consistent, as
    sql/features.sql computes them from 13 simulated weeks of usage: a quarter of the
    companies never used the product, some started lately, some are growing or fading."""
    columns: dict[str, Any] = {"id": pl.Series(range(first_id, first_id + n), dtype=pl.Int64)}
    columns["EMPLOYEE_RANGE"] = _strings(rng, [*EMPLOYEE_RANGES, None], n)
    columns["INDUSTRY"] = _strings(rng, [*INDUSTRIES, None, None, None], n)
    rank = np.exp(rng.uniform(np.log(500), np.log(15_000_000), n)).astype(np.int64)
    no_rank = rng.random(n) < 0.4
    rank[no_rank] = ALEXA_NO_RANK_SENTINEL
    columns["ALEXA_RANK"] = pl.Series(rank, dtype=pl.Int64)
    columns["alexa_no_rank"] = pl.Series(no_rank)
    actions, users = _weekly_usage(n, rng)
    columns |= _usage_features(actions, users)
    df = pl.DataFrame(columns).select("id", *RAW_FEATURES)
    return df.with_columns(pl.col(c).cast(pl.Int32) for c in INT_FEATURES - {"ALEXA_RANK"})


def _weekly_usage(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (companies, weeks, objects) action and user counts, oldest week first."""
    uses = rng.random(n) < 0.75
    level = rng.lognormal(1.5, 1.2, n) * uses
    start = np.where(rng.random(n) < 0.2, rng.integers(1, WEEKS, n), 0)  # new users
    growth = rng.normal(0.0, 0.12, n)  # per week, in log terms: growing or fading
    shares = rng.dirichlet(np.array(OBJECT_SHARES) * 2, n) * (rng.random((n, 4)) < 0.8)
    week = np.arange(WEEKS)
    on = (week[None, :] >= start[:, None]) & (rng.random((n, WEEKS)) < 0.3 + 0.6 * uses[:, None])
    rate = level[:, None] * np.exp(growth[:, None] * (week[None, :] - WEEKS))
    actions = rng.poisson(rate[:, :, None] * shares[:, None, :] * 4) * on[:, :, None]
    users = np.minimum(actions, rng.poisson(0.3 + level / 4)[:, None, None] + 1) * (actions > 0)
    return actions, users


def _usage_features(actions: np.ndarray, users: np.ndarray) -> dict[str, Any]:
    """The features sql/features.sql computes from a company's look-back weeks."""
    total = actions.sum(axis=2)
    active = total > 0
    ever = active.any(axis=1)
    out: dict[str, Any] = {
        "total_actions": total.sum(axis=1).astype(float),
        "total_users": users.sum(axis=(1, 2)).astype(float),
        "days_active": 7 * active.sum(axis=1),
        "activity_frequency": active.sum(axis=1) / WEEKS,
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        out["actions_per_user"] = np.where(
            out["total_users"] > 0, out["total_actions"] / out["total_users"], np.nan
        )
    for kind, counts in (("ACTIONS", actions), ("USERS", users)):
        for i, obj in enumerate(("CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL")):
            c = counts[:, :, i].astype(float)
            out[f"{kind}_{obj}_sum"] = c.sum(axis=1)
            out[f"{kind}_{obj}_max"] = c.max(axis=1)
            out[f"{kind}_{obj}_mean"] = np.where(ever, c.mean(axis=1), np.nan)
            out[f"{kind}_{obj}_std"] = np.where(ever, c.std(axis=1), np.nan)
    last = np.where(ever, WEEKS - 1 - np.argmax(active[:, ::-1], axis=1), -1)
    first = np.argmax(active, axis=1)
    out["recency_days"] = pl.Series(np.where(ever, 7 * (WEEKS - 1 - last), 0)).set(
        pl.Series(~ever), None
    )
    out["tenure_days"] = pl.Series(np.minimum(7 * (WEEKS - first), 7 * WEEKS)).set(
        pl.Series(~ever), None
    )
    recent = total[:, -RECENT:].sum(axis=1).astype(float)
    prior = total[:, -2 * RECENT : -RECENT].sum(axis=1).astype(float)
    out |= {
        "actions_recent": recent,
        "actions_prior": prior,
        "trend_actions": np.log((recent + 1) / (prior + 1)),
        "weeks_active_recent": active[:, -RECENT:].sum(axis=1),
        "weeks_observed": np.full(len(total), WEEKS),
    }
    return {k: v if isinstance(v, pl.Series) else pl.Series(v) for k, v in out.items()}


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


def label(df: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Draw labels from what converts a free company: recent and growing use, deals, size."""
    employees = df.get_column("EMPLOYEE_RANGE").replace_strict(
        {r: i for i, r in enumerate(EMPLOYEE_RANGES)}, default=None, return_dtype=pl.Float64
    )
    logit = (
        -5.0
        + 0.5 * np.log1p(df.get_column("actions_recent").to_numpy())
        + 0.4 * np.log1p(df.get_column("ACTIONS_CRM_DEALS_sum").to_numpy())
        + 0.6 * df.get_column("trend_actions").to_numpy()
        + 0.15 * employees.fill_null(2.0).to_numpy()
    )
    return (rng.random(len(logit)) < 1 / (1 + np.exp(-logit))).astype(np.int64)


def build(family: ModelName, out: Path, *, explained: bool = True) -> None:
    """Train a small model of `family`, export it as `train` does, write the golden files."""
    rng = np.random.default_rng(MODEL_NAMES.index(family))
    train = make_features(N_TRAIN, rng, first_id=1)
    config = load_config(overrides={f"models.{family}": SIZES[family]})
    encoding = EncodingConfig(industry_min_frequency=5)
    spec = fit_encoders(train, encoding, linear=family == "logreg")
    x = encode(train, spec)
    y = label(train, rng)
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
    # Tier bounds cut the training rows' calibrated scores as `train` cuts the test weeks'.
    p_train = calibrate(model.predict_proba(x), spec.calibration).astype(np.float64)
    one_week = np.zeros(len(p_train), dtype=np.int64)
    tiers = {
        name: weekly_cut(p_train, one_week, share=share)
        for name, share in zip(PRIORITY_TIERS, config.training.priority_shares, strict=False)
    }
    manifest = _manifest(family, train, spec, run_dir, explained=explained)
    write_manifest(run_dir, replace(manifest, priority_thresholds=tiers))
    scoring = with_edge_cases(make_features(N_INPUT, rng, first_id=100_000))
    _write_input(scoring, out / "input.parquet")
    native = calibrate(model.predict_proba(encode(scoring, spec)), spec.calibration)
    _write_expected(scoring, native, run_dir, out / "expected_scores.parquet")
    if explained:
        load_scorer(run_dir).explain(scoring).write_parquet(out / "expected_explanations.parquet")
        (out / "expected_reasons.txt").write_text(reasons_text(out), encoding="utf-8")


def reasons_text(case: Path) -> str:
    """Return a golden case's call list as plain text, best first: rank, id, tier, basis and
    the reasons a caller reads (+ for, - against). Reviewed by eye in `git diff`."""
    scorer = load_scorer(case / "run")
    frame = pl.read_parquet(case / "input.parquet")
    scored = scorer.score(frame, scored_at=scored_at_for(date(2024, 1, 7)))
    explained = scorer.explain(frame).join(scored.select("id", "rank", "priority"), on="id")
    blocks = []
    for row in explained.sort("rank").iter_rows(named=True):
        lines = [f"#{row['rank']} id {row['id']}: {row['priority']}, {row['basis']}"]
        lines += [f"  + {row[name]}" for name in ("reason_1", "reason_2", "reason_3") if row[name]]
        lines += [f"  - {row['reason_against']}"] if row["reason_against"] else []
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n"


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
