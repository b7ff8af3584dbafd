"""Benchmark `hubscore score` against baselines measured in the same run.

    uv run python bench/bench_score.py               # 10M companies (several minutes)
    uv run python bench/bench_score.py --rows 2000000 --models xgboost,logreg
    uv run python bench/bench_score.py --before /tmp/main   # also time an older checkout

For XGBoost and LightGBM (200 trees) and logistic regression it reports, at 1 and 2 threads:
end-to-end `hubscore score` (read Parquet, encode, score, rank, write Parquet; a separate
process, peak RSS from the kernel) vs the bare `InferenceSession.run` over the same rows
already in memory as float32 (timed just before and just after, averaged), and vs the native
model's `predict_proba`. Then cold start (a one-row file, whole process) vs `python -c "import
sklearn, xgboost, lightgbm"`. `--before DIR` runs every end-to-end command a second time with
the hubscore package of DIR (a checkout of an earlier commit) first on PYTHONPATH: before and
after in the same run. Each target is printed as PASS or MISS; figures go to stdout and
bench/out/bench_score.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from lightgbm import LGBMClassifier
from sklearn.linear_model import LogisticRegression
from targets import Target, report
from xgboost import XGBClassifier

from hubscore import __version__
from hubscore.core.artifacts import ENCODERS_FILE, MODEL_FILE, Manifest, sha256_file, write_manifest
from hubscore.core.config import EncodingConfig
from hubscore.core.contract import (
    ALEXA_NO_RANK_SENTINEL,
    EMPLOYEE_RANGES,
    NUMERIC_FEATURES,
    RAW_FEATURES,
)
from hubscore.engine.drift import profile_features
from hubscore.engine.encoding import EncoderSpec, encode
from hubscore.engine.scorer import open_session
from hubscore.training.encoders import fit_encoders
from hubscore.training.export import INPUT, OUTPUT, to_onnx

OUT = Path(__file__).parent / "out"
TARGET = {"target": "converted_within", "horizon_days": 30, "lookback_days": 91, "recent_days": 28}
INDUSTRIES = ["COMPUTER_SOFTWARE", "Technology - Software", "real estate", "HIGHER_EDUCATION"]
CHUNK = 1_000_000
BATCH = 65536
TRAIN_ROWS = 50_000


def features(n: int, rng: np.random.Generator, first_id: int) -> pl.DataFrame:
    """Return `n` synthetic build-features rows: heavy-tailed counts, nulls, sentinels."""
    cols: dict[str, Any] = {"id": np.arange(first_id, first_id + n, dtype=np.int64)}
    employee = np.array([*EMPLOYEE_RANGES, ""], dtype=object)[rng.integers(0, 10, n)]
    industry = np.array([*INDUSTRIES, "", "", ""], dtype=object)[rng.integers(0, 7, n)]
    cols["EMPLOYEE_RANGE"] = pl.Series(employee, dtype=pl.String).replace("", None)
    cols["INDUSTRY"] = pl.Series(industry, dtype=pl.String).replace("", None)
    rank = rng.integers(1, 2_000_000, n)
    no_rank = rng.random(n) < 0.6
    cols["ALEXA_RANK"] = np.where(no_rank, ALEXA_NO_RANK_SENTINEL, rank)
    cols["alexa_no_rank"] = no_rank.astype(np.int32)
    for name in NUMERIC_FEATURES[2:]:
        cols[name] = (rng.pareto(1.5, n) * 5 * (rng.random(n) < 0.6)).astype(np.float64)
    return pl.DataFrame(cols).select("id", *RAW_FEATURES)


def write_input(path: Path, rows: int) -> None:
    """Write `rows` feature rows in chunks, with the build-features metadata."""
    rng = np.random.default_rng(1)
    metadata = {"hubscore_version": __version__, **{k: str(v) for k, v in TARGET.items()}}
    writer: pq.ParquetWriter | None = None
    for start in range(0, rows, CHUNK):
        table = features(min(CHUNK, rows - start), rng, start + 1).to_arrow()
        table = table.replace_schema_metadata(metadata)
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=BATCH * 4)
    assert writer is not None
    writer.close()


def train_models(run_root: Path) -> dict[str, tuple[Any, EncoderSpec, Path]]:
    """Fit the three families on synthetic rows and export each as a run folder."""
    rng = np.random.default_rng(0)
    train = features(TRAIN_ROWS, rng, 1)
    models: dict[str, tuple[Any, EncoderSpec, Path]] = {}
    estimators = {
        "xgboost": (XGBClassifier(n_estimators=200, max_depth=4, n_jobs=1, random_state=0), False),
        "lightgbm": (
            LGBMClassifier(n_estimators=200, num_leaves=15, n_jobs=1, verbose=-1, random_state=0),
            False,
        ),
        "logreg": (LogisticRegression(C=0.5, max_iter=2000), True),
    }
    for kind, (estimator, scale) in estimators.items():
        spec = fit_encoders(train, EncodingConfig(), linear=scale)
        x = encode(train, spec)
        logit = 0.3 * np.nan_to_num(x[:, 0]) + 0.2 * x[:, -1] - 0.1 * x[:, -3] - 3
        y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(np.int64)
        estimator.fit(x, y)
        run_dir = run_root / kind
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MODEL_FILE).write_bytes(to_onnx(estimator, x.shape[1]))
        (run_dir / ENCODERS_FILE).write_text(spec.to_json(), encoding="utf-8")
        write_manifest(run_dir, manifest(kind, train, spec, run_dir))
        models[kind] = (estimator, spec, run_dir)
    return models


def manifest(kind: str, train: pl.DataFrame, spec: EncoderSpec, run_dir: Path) -> Manifest:
    """Return a manifest like export writes, for a bench run folder."""
    return Manifest(
        model_version=f"bench-{kind}",
        model_kind=kind,
        created_at="2024-01-07T00:00:00+00:00",
        hubscore_version=__version__,
        features=[{"name": n, "dtype": str(train.schema[n])} for n in spec.input_names],
        onnx_input=INPUT,
        onnx_output=OUTPUT,
        files={f: sha256_file(run_dir / f) for f in (MODEL_FILE, ENCODERS_FILE)},
        target=TARGET,
        decision_threshold=0.5,
        confidence_bands={"high": 0.5, "medium": 0.2},
        feature_distributions=profile_features(train, spec.input_names),
    )


def timed(fn: Callable[[], object]) -> float:
    """Return the wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def run_cli(
    args: list[str], code: Path | None = None, *, write_bytecode: bool = False
) -> tuple[float, float]:
    """Run a command; return (wall seconds, its peak RSS in MiB).

    A small launcher process starts it: a child forked from this (large) process would
    report this process's memory as its own peak. `code`: a checkout whose hubscore is
    imported instead of this one. `write_bytecode`: let Python cache the checkout's compiled
    modules even where PYTHONDONTWRITEBYTECODE is set, as an installed wheel has them.
    """
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = str(code)
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if code:  # -P: not the working directory's hubscore (python -m puts it first on sys.path)
        args = [args[0], "-P", *args[1:]]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    code, maxrss = done.stdout.split()[-2:]
    if int(code) != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{done.stderr}")
    return wall, int(maxrss) / 1024


def bare_kernel(run_dir: Path, matrix: np.ndarray, threads: int) -> float:
    """Time InferenceSession.run over the in-memory float32 matrix, batch by batch."""
    session = open_session(run_dir / MODEL_FILE, threads=threads)

    def go() -> None:
        for start in range(0, len(matrix), BATCH):
            session.run([OUTPUT], {INPUT: matrix[start : start + BATCH]})

    return timed(go)


# This script's `train_models` run with an older hubscore first on the path. Before the
# `hubscore.engine` package (902cc0a and earlier) its modules lived in `hubscore.core`.
BEFORE_EXPORT = """
import importlib, pathlib, sys
try:
    import hubscore.engine
except ImportError:
    for name in ("encoding", "drift", "scorer"):
        sys.modules[f"hubscore.engine.{name}"] = importlib.import_module(f"hubscore.core.{name}")
import bench_score
bench_score.train_models(pathlib.Path(sys.argv[1]))
"""


def export_before_runs(before: Path, run_root: Path) -> Path:
    """Export the same families with `before`'s hubscore (an older scorer reads only its own
    run folders); return the folder holding them."""
    env = {**os.environ, "PYTHONPATH": f"{before.resolve()}:{Path(__file__).resolve().parent}"}
    command = [sys.executable, "-P", "-c", BEFORE_EXPORT, str(run_root)]
    subprocess.run(command, env=env, check=True)
    return run_root


def bench_model(
    kind: str,
    estimator: Any,
    spec: EncoderSpec,
    run_dir: Path,
    src: Path,
    before: tuple[Path, Path] | None,
) -> dict[str, Any]:
    """Measure one model family: end to end, bare kernel, native, at 1 and 2 threads.

    `before`: an older checkout and its own export of this family, timed end to end too.
    """
    matrix = encode(pl.read_parquet(src), spec)
    rows = len(matrix)
    result: dict[str, Any] = {"rows": rows}
    for threads in (1, 2):
        out = OUT / f"scores-{kind}.parquet"
        cmd = [sys.executable, "-m", "hubscore", "score", str(src), "-o", str(out)]
        cmd += ["--threads", str(threads), "-q", "--as-of", "2024-01-07"]
        first = bare_kernel(run_dir, matrix, threads)
        wall, rss = run_cli([*cmd, "--model", str(run_dir)])
        if before:
            checkout, runs = before
            old = run_cli([*cmd, "--model", str(runs / kind)], checkout)
        kernel = (first + bare_kernel(run_dir, matrix, threads)) / 2
        figures = {
            "kernel_s": round(kernel, 3),
            "end_to_end_s": round(wall, 3),
            "ratio_vs_kernel": round(wall / kernel, 3),
            "companies_per_s": round(rows / wall),
            "peak_rss_mib": round(rss),
        }
        if before:
            figures["before"] = {
                "end_to_end_s": round(old[0], 3),
                "ratio_vs_kernel": round(old[0] / kernel, 3),
                "companies_per_s": round(rows / old[0]),
                "peak_rss_mib": round(old[1]),
            }
        result[f"threads_{threads}"] = figures
    estimator.set_params(n_jobs=1)
    native = timed(lambda: estimator.predict_proba(matrix))
    e2e = result["threads_1"]["end_to_end_s"]
    result["native_predict_proba_s"] = round(native, 3)
    result["end_to_end_vs_native"] = round(e2e / native, 3)
    result["kernel_vs_native"] = round(result["threads_1"]["kernel_s"] / native, 3)
    return result


def pyarrow_row_groups(
    run_dir: Path, src: Path, before: tuple[Path, Path] | None
) -> dict[str, Any]:
    """Time logreg end to end (1 thread) on the same rows as pyarrow writes them: row groups
    of 1,048,576 rows, four times Polars', so the memory target holds whoever wrote the file."""
    big = OUT / f"{src.stem}-pyarrow-groups.parquet"
    if not big.exists():
        pq.write_table(pq.read_table(src), big, compression="zstd")  # metadata kept
    out = OUT / "scores-pyarrow-groups.parquet"
    cmd = [sys.executable, "-m", "hubscore", "score", str(big), "-o", str(out)]
    cmd += ["--threads", "1", "-q", "--as-of", "2024-01-07"]
    wall, rss = run_cli([*cmd, "--model", str(run_dir)])
    figures: dict[str, Any] = {"end_to_end_s": round(wall, 3), "peak_rss_mib": round(rss)}
    if before:
        checkout, runs = before
        old = run_cli([*cmd, "--model", str(runs / run_dir.name)], checkout)
        figures["before"] = {"end_to_end_s": round(old[0], 3), "peak_rss_mib": round(old[1])}
    return figures


def cold_start(
    run_dir: Path, src: Path, before: tuple[Path, Path] | None, repeats: int = 5
) -> dict[str, float]:
    """Median wall time: score a one-row file (whole process) vs importing the training stack."""
    one = OUT / "one.parquet"
    table = pq.read_table(src).slice(0, 1)
    pq.write_table(table, one)
    score = [
        sys.executable,
        "-m",
        "hubscore",
        "score",
        str(one),
        "-o",
        str(OUT / "one-out.parquet"),
    ]
    score += ["-q"]
    stack = [sys.executable, "-c", "import sklearn, xgboost, lightgbm"]
    contenders: list[tuple[str, list[str], Path | None]]
    contenders = [("hubscore_score_one_row_s", [*score, "--model", str(run_dir)], None)]
    if before:
        checkout, runs = before
        old = [*score, "--model", str(runs / run_dir.name)]
        contenders.append(("before_score_one_row_s", old, checkout))
    contenders += [("import_training_stack_s", stack, None)]
    medians = {}
    for name, cmd, code in contenders:
        # Warm the page cache and the bytecode cache like a second cron night. The training
        # stack's modules were compiled at install (uv sync --compile-bytecode), as pip
        # compiles a wheel's; the checkout's hubscore is compiled here, once.
        run_cli(cmd, code, write_bytecode=True)
        times = [run_cli(cmd, code, write_bytecode=True)[0] for _ in range(repeats)]
        medians[name] = round(statistics.median(times), 3)
    for name in ("hubscore_score_one_row_s", "before_score_one_row_s"):
        if name in medians:
            ratio = medians[name] / medians["import_training_stack_s"]
            medians[name.replace("score_one_row_s", "ratio")] = round(ratio, 3)
    return medians


TARGETS = {
    "xgboost_ratio_vs_kernel": Target("xgboost end to end / bare kernel, 1 thread", "<=", 1.10),
    "logreg_companies_per_s": Target("logreg end to end companies/s, 1 thread", ">=", 1e6),
    "peak_rss_mib": Target("peak RSS of every end-to-end run, MiB", "<", 1024),
    "cold_start_ratio": Target("cold start / training-stack import", "<", 0.4),
}


def verdicts(figures: dict[str, Any], key: str = "") -> dict[str, float]:
    """Return each target's measured value (of the `before` runs when key is "before")."""
    models = figures["models"]

    def pick(entry: dict[str, Any]) -> dict[str, Any]:
        return entry[key] if key else entry

    values: dict[str, float] = {}
    if "xgboost" in models:
        values["xgboost_ratio_vs_kernel"] = pick(models["xgboost"]["threads_1"])["ratio_vs_kernel"]
    if "logreg" in models:
        values["logreg_companies_per_s"] = pick(models["logreg"]["threads_1"])["companies_per_s"]
    runs = [m[f"threads_{t}"] for m in models.values() for t in (1, 2)]
    runs += [figures["pyarrow_row_groups"]]
    values["peak_rss_mib"] = max(pick(run)["peak_rss_mib"] for run in runs)
    cold = figures["cold_start"]
    values["cold_start_ratio"] = cold["before_ratio" if key else "hubscore_ratio"]
    return values


def main() -> None:
    """Generate the input, train the models, measure, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="companies to score")
    parser.add_argument("--models", default="xgboost,lightgbm,logreg")
    parser.add_argument("--before", type=Path, help="a checkout of an earlier hubscore to time too")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"companies-{args.rows}.parquet"
    if not src.exists():
        print(f"generating {args.rows} rows -> {src}", file=sys.stderr)
        write_input(src, args.rows)
    models = train_models(OUT / "runs")
    before = (
        (args.before, export_before_runs(args.before, OUT / "runs-before")) if args.before else None
    )
    figures: dict[str, Any] = {"rows": args.rows, "cpus": os.cpu_count(), "models": {}}
    figures["load_average_at_start"] = os.getloadavg()[0]
    for kind in args.models.split(","):
        print(f"benchmarking {kind}", file=sys.stderr)
        figures["models"][kind] = bench_model(kind, *models[kind], src, before)
    figures["pyarrow_row_groups"] = pyarrow_row_groups(models["logreg"][2], src, before)
    figures["cold_start"] = cold_start(models["logreg"][2], src, before)
    figures["bench_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))
    verdicts_before = verdicts(figures, "before") if args.before else None
    figures["targets"] = report(TARGETS, verdicts(figures), verdicts_before)
    (OUT / "bench_score.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
