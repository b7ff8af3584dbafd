"""Benchmark the lean scorer's explanations against the native libraries' own, same rows.

    uv run python bench/bench_explain.py             # 1,000 rows, the issue's target
    uv run python bench/bench_explain.py --rows 200

Per family, on one core: rows/s of `Scorer.explainer().contributions` (TreeSHAP over
model.onnx's arrays, or the linear attribution) on an encoded float32 matrix with missing
values, against the native contributions on the same rows: XGBoost `pred_contribs` (200 trees,
depth 4: the target is <= 1 s and <= 3x native), LightGBM `pred_contrib` (200 trees, 7
leaves), `shap.TreeExplainer` for the random forest (100 trees, depth 8), and NumPy's own
coefficient x (x - mean) for logistic regression. Each figure is the best of --repeat runs
after one warm-up; the build (reading model.onnx, tabulating paths) is reported apart.
Figures go to stdout and bench/out/bench_explain.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, native side included

import argparse
import importlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from hubscore.core.artifacts import MODEL_FILE
from hubscore.engine import explain
from hubscore.training import explanations, export, models

OUT = Path(__file__).parent / "out"
COLUMNS = 60
TRAIN_ROWS = 20_000


def matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    """Return heavy-tailed float32 rows with a fifth missing, like encoded features."""
    x = np.log1p(rng.pareto(1.5, size=(n, COLUMNS))).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    return x


def labels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    signal = np.nansum(x[:, :5], axis=1) - np.isnan(x[:, 5]) + rng.normal(size=len(x))
    return (signal > np.quantile(signal, 0.9)).astype(np.int64)


def best(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def shap_module() -> Any:
    with warnings.catch_warnings():  # shap 0.51 uses a matplotlib API that warns at import
        warnings.simplefilter("ignore")
        return importlib.import_module("shap")


def families(rng: np.random.Generator) -> dict[str, tuple[Any, np.ndarray]]:
    x = matrix(TRAIN_ROWS, rng)
    y = labels(x, rng)
    filled = np.nan_to_num(x, nan=0.0)  # RF and logreg see imputed columns
    xgboost = xgb.XGBClassifier(n_estimators=200, max_depth=4, n_jobs=1, random_state=0)
    lightgbm = LGBMClassifier(n_estimators=200, num_leaves=7, verbose=-1, n_jobs=1)
    forest = RandomForestClassifier(
        n_estimators=100, max_depth=8, min_samples_leaf=50, max_samples=0.2, random_state=0
    )
    return {
        "xgboost": (xgboost.fit(x, y), x),
        "lightgbm": (lightgbm.fit(x, y), x),
        "random_forest": (forest.fit(filled, y), filled),
        "logreg": (LogisticRegression(max_iter=500).fit(filled, y), filled),
    }


def run_folder(estimator: Any, kind: str, x_train: np.ndarray, out: Path) -> Path:
    """Write the model.onnx + explain.npz a run folder would hold."""
    if kind in ("lightgbm", "random_forest"):
        models.round_thresholds_down(models.Model(kind, estimator))
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(export.to_onnx(estimator, COLUMNS))
    explanations.write_explain_file(out, estimator, kind, x_train)
    return out


def native(estimator: Any, kind: str, rows: np.ndarray) -> Callable[[], Any]:
    if kind == "xgboost":
        booster = estimator.get_booster()
        booster.set_param({"nthread": 1})
        return lambda: booster.predict(xgb.DMatrix(rows, nthread=1), pred_contribs=True)
    if kind == "lightgbm":
        return lambda: estimator.booster_.predict(rows, pred_contrib=True, num_threads=1)
    if kind == "random_forest":
        reference = shap_module().TreeExplainer(estimator)
        return lambda: reference.shap_values(rows, check_additivity=False)
    coef, mean = estimator.coef_[0], rows.mean(axis=0)
    return lambda: (rows - mean) * coef


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for kind, (estimator, x_train) in families(rng).items():
        folder = run_folder(estimator, kind, x_train, OUT / "explain_runs" / kind)
        rows = np.ascontiguousarray(x_train[: args.rows])
        start = time.perf_counter()
        explainer = explain.load_explainer(folder, model_file=MODEL_FILE, n_columns=COLUMNS)
        built = time.perf_counter() - start
        ours = best(lambda e=explainer, r=rows: e.contributions(r), args.repeat)
        theirs = best(native(estimator, kind, rows), args.repeat)
        results[kind] = {
            "rows": args.rows,
            "build_s": round(built, 4),
            "explain_s": round(ours, 4),
            "rows_per_s": round(args.rows / ours),
            "native_s": round(theirs, 4),
            "ratio_to_native": round(ours / theirs, 2),
        }
        figures = results[kind]
        print(
            f"{kind:14s} {figures['rows_per_s']:>9,} rows/s  {ours:7.3f} s explained  "
            f"native {theirs:7.3f} s  ratio {figures['ratio_to_native']:5.2f}x  "
            f"(build {built:.3f} s)",
            flush=True,
        )
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_explain.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
