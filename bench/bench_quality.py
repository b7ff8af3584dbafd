"""Benchmark the weekly list's quality on the real history and generated seeds, beside plain
library scripts on the same rows.

    just bench-quality                                  # real history + 3 seeds, ~40 min
    uv run python bench/bench_quality.py --datasets real --families xgboost,logreg  # quicker
    uv run python bench/bench_quality.py --search off   # passed through to `hubscore train`

**The real history** (../shared/data/real-history, the files as they stood on 2020-01-28):
`hubscore build-features --target converted_within --horizon-days 30`, then the protocol's
rolling origin (`windows`: 3 time-ordered test windows of 8 weekly cutoffs, each train side
ending 35 days before its test side), per window `hubscore train` + `hubscore score` for each
family and the plain references on the same rows, all windows pooled by the protocol's `pool`
(90% intervals that resample companies: the real files hold 84-106 converting companies in
all, so one window cannot tell two good models apart).

**The generated seeds**, as before:
Per seed, end to end through the real CLI, in bench/out/quality/seed-<S>/:
`hubscore sample-data --seed S --companies N`, `hubscore build-features --target
converted_within --horizon-days 30`, the protocol's `split` (the last 26 labelled weekly
cutoffs are the test side; the train side ends 35 days before it, a horizon-long gap, as the
real protocol's 2019-12-29 / 2020-02-02), `hubscore train --features train.parquet --model M`
for each family with the default config, and `hubscore score` of the test rows. Beside them, on
the same rows: the plain references of quality_references.py (the libraries used directly, not
hubscore's encoders) and the trivial heuristic (actions in the last 4 weeks). Every score file
is judged by the independent protocol script's `metrics` (ROC-AUC, PR-AUC, weekly recall@100,
sum of p over converters), found at ../shared/tools/quality_protocol.py beside the clone.

Tables per seed and the mean go to stdout, every figure to bench/out/quality_results.json; the
issue's targets are flagged ok/MISS: each family within (0.01 ROC-AUC, 0.005 PR-AUC, 0.02
recall@100) of its plain reference; the best family at ROC-AUC >= 0.90, PR-AUC >= 0.060,
recall@100 >= 0.50; sum p / converters within [0.7, 1.4] for every family.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from quality_references import heuristic_scores, plain_scores

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROTOCOL = ROOT.parent / "shared" / "tools" / "quality_protocol.py"
OUT = BENCH / "out"
FAMILIES = ("xgboost", "lightgbm", "logreg", "random_forest")
REAL_HISTORY = ROOT.parent / "shared" / "data" / "real-history"
WINDOWS = {"count": "3", "test-weeks": "8", "gap-days": "35"}
METRICS = ("roc_auc", "pr_auc", "recall_at_100")
CALIBRATION = "sum_p_over_converters"
ALLOWANCE = {"roc_auc": 0.01, "pr_auc": 0.005, "recall_at_100": 0.02}
BEST_TARGET = {"roc_auc": 0.90, "pr_auc": 0.060, "recall_at_100": 0.50}
CALIBRATION_RANGE = (0.7, 1.4)
TEST_WEEKS = 26  # the real protocol's test side: 2020-02-02 .. 2020-07-26
GAP = timedelta(days=35)  # train side ends one horizon (and a week's step) before the test side
HEURISTIC = "heuristic"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    protocol = find_protocol(args.protocol)
    started = time.perf_counter()
    report: dict[str, Any] = {"search": args.search, "warmup_days": args.warmup_days}
    if "real" in args.datasets:
        real = run_real_history(args.out / "real", args=args, protocol=protocol)
        print_table("real history, 3 windows pooled", real["pooled"], families=args.families)
        print_intervals(real["pooled"], families=args.families)
        report["real_history"] = real
    if "seeds" in args.datasets:
        seeds = []
        for seed in args.seeds:
            folder = args.out / f"seed-{seed}"
            seeds.append(run_seed(seed, folder, args=args, protocol=protocol))
            print_table(f"seed {seed}", seeds[-1]["metrics"], families=args.families)
        mean = mean_metrics([s["metrics"] for s in seeds])
        print_table(f"mean of {len(seeds)} seeds", mean, families=args.families)
        print_targets(mean, families=args.families)
        report |= {"companies": args.companies, "seeds": seeds, "mean": mean}
        report["targets"] = targets(mean, families=args.families)
    minutes = (time.perf_counter() - started) / 60
    report["minutes"] = round(minutes, 1)
    results = args.out.parent / "quality_results.json"
    results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n{minutes:.1f} min; saved {results}")


def run_real_history(folder: Path, *, args: argparse.Namespace, protocol: Path) -> dict[str, Any]:
    """Rolling-origin windows on the real history: every family and its plain reference."""
    folder.mkdir(parents=True, exist_ok=True)
    warmup = ["--warmup-days", args.warmup_days] if args.warmup_days else []
    hubscore(folder, "build-features", "--data-dir", str(args.real_history), "--out", "build",
             "--target", "converted_within", "--horizon-days", "30", *warmup)  # fmt: skip
    options = [f"--{k}={v}" for k, v in WINDOWS.items()]
    run(folder, "windows", [sys.executable, str(protocol), "windows", "build/features.parquet",
                            "windows", *options])  # fmt: skip
    windows = sorted((folder / "windows").iterdir())
    pairs: dict[str, list[str]] = {}
    for window in windows:
        train = pl.read_parquet(window / "train.parquet")
        test = pl.read_parquet(window / "test.parquet")
        for family in args.families:
            sides = ("train.parquet", "test.parquet")
            scores = score_family(window, family, search=args.search, sides=sides)
            pairs.setdefault(family, []).append(f"{window}/test.parquet={scores}")
            plain = window / f"scores_plain_{family}.parquet"
            plain_scores(family, train, test).write_parquet(plain)
            pairs.setdefault(f"plain {family}", []).append(f"{window}/test.parquet={plain}")
        heuristic = window / "scores_heuristic.parquet"
        heuristic_scores(test).write_parquet(heuristic)
        pairs.setdefault(HEURISTIC, []).append(f"{window}/test.parquet={heuristic}")
    pooled = {name: pool(folder, protocol, found) for name, found in pairs.items()}
    pooled[HEURISTIC][CALIBRATION] = None  # recent actions are not probabilities
    return {"windows": [w.name for w in windows], "pooled": pooled}


def pool(folder: Path, protocol: Path, pairs: list[str]) -> dict[str, Any]:
    """The protocol's pooled metrics with company-resampling intervals, as a dict."""
    output = run(folder, "pool", [sys.executable, str(protocol), "pool", *pairs])
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def print_intervals(pooled: dict[str, dict[str, Any]], *, families: list[str]) -> None:
    """Print each model's 90% intervals (companies resampled) beside its pooled figures."""
    print(f"{'90% intervals':<22}{'ROC-AUC':>17}{'PR-AUC':>19}{'rec@100':>17}")
    for name in [*families, *(f"plain {f}" for f in families), HEURISTIC]:
        cells = "".join(f"{pooled[name][m + '_90']!s:>18}" for m in METRICS)
        print(f"{name:<22}{cells}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--datasets", type=lambda s: s.split(","), default=["real", "seeds"],
        help="real, seeds or both [real,seeds]",
    )  # fmt: skip
    parser.add_argument("--real-history", type=Path, default=REAL_HISTORY, help="its folder")
    parser.add_argument("--seeds", type=_ints, default=[1, 2, 3], help="comma list [1,2,3]")
    parser.add_argument("--companies", type=int, default=5200, help="per sample [5200]")
    parser.add_argument("--families", type=_families, default=list(FAMILIES))
    parser.add_argument("--search", help="passed to `hubscore train --search` when given")
    parser.add_argument("--warmup-days", help="passed to `hubscore build-features` when given")
    parser.add_argument("--protocol", type=Path, help=f"the protocol script [{PROTOCOL}]")
    parser.add_argument(
        "--out", type=lambda p: Path(p).resolve(), default=OUT / "quality", help="work folder"
    )
    return parser.parse_args(argv)


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _families(text: str) -> list[str]:
    names = text.split(",")
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown family {unknown}; known: {', '.join(FAMILIES)}")
    return names


def find_protocol(given: Path | None) -> Path:
    """Return the protocol script, or exit 2 saying where it was looked for."""
    path = given or PROTOCOL
    if not path.is_file():
        print(
            f"error: the quality protocol script is missing: {path}\n"
            "hint: CI checks it out beside the clone (../shared/tools/quality_protocol.py "
            "relative to the repository root); elsewhere pass --protocol PATH",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


def run_seed(
    seed: int, folder: Path, *, args: argparse.Namespace, protocol: Path
) -> dict[str, Any]:
    """Run the whole protocol on one generated sample; return its split and every metric."""
    folder.mkdir(parents=True, exist_ok=True)
    hubscore(folder, "sample-data", "--out", "data", "--seed", str(seed),
             "--companies", str(args.companies))  # fmt: skip
    warmup = ["--warmup-days", args.warmup_days] if args.warmup_days else []
    hubscore(folder, "build-features", "--data-dir", "data", "--out", "build",
             "--target", "converted_within", "--horizon-days", "30", *warmup)  # fmt: skip
    train_until, test_from = split_dates(folder / "build" / "features.parquet")
    run(folder, "split", [sys.executable, str(protocol), "split", "build/features.parquet",
                          "build", "--train-until", str(train_until), "--test-from",
                          str(test_from)])  # fmt: skip
    metrics: dict[str, dict[str, Any]] = {}
    for family in args.families:
        scores = score_family(folder, family, search=args.search)
        metrics[family] = judge(folder, scores, protocol)
    train = pl.read_parquet(folder / "build" / "train.parquet")
    test = pl.read_parquet(folder / "build" / "test.parquet")
    for family in args.families:
        metrics[f"plain {family}"] = judge_frame(folder, plain_scores(family, train, test),
                                                 f"plain_{family}", protocol)  # fmt: skip
    metrics[HEURISTIC] = judge_frame(folder, heuristic_scores(test), HEURISTIC, protocol)
    metrics[HEURISTIC][CALIBRATION] = None  # recent actions are not probabilities
    split = {"train_until": train_until, "test_from": test_from, **side_sizes(train, test)}
    return {"seed": seed, "split": split, "metrics": metrics}


def split_dates(features: Path) -> tuple[date, date]:
    """Return (train until, test from): the last TEST_WEEKS cutoffs, a GAP before them."""
    last: date = pl.scan_parquet(features).select(pl.col("cutoff").max()).collect().item()
    test_from = last - timedelta(weeks=TEST_WEEKS - 1)
    return test_from - GAP, test_from


def side_sizes(train: pl.DataFrame, test: pl.DataFrame) -> dict[str, int]:
    """Return rows and positives of both sides."""
    return {
        "train_rows": train.height,
        "train_positives": int(train["label"].sum()),
        "test_rows": test.height,
        "test_positives": int(test["label"].sum()),
    }


def score_family(
    folder: Path,
    family: str,
    *,
    search: str | None,
    sides: tuple[str, str] = ("build/train.parquet", "build/test.parquet"),
) -> Path:
    """Train one family on the train side with the default config and score the test side."""
    options = ["--search", search] if search else []
    train = hubscore(folder, "train", "--features", sides[0], "--model", family,
                     "--models-dir", f"models/{family}", *options,
                     step=f"train-{family}")  # fmt: skip
    run_dir = train.strip().splitlines()[-1]
    scores = f"scores_{family}.parquet"
    hubscore(folder, "score", sides[1], "-o", scores, "--model", run_dir, "--quiet",
             step=f"score-{family}")  # fmt: skip
    return folder / scores


def judge_frame(folder: Path, scores: pl.DataFrame, name: str, protocol: Path) -> dict[str, Any]:
    """Write a reference's scores and judge them like hubscore's."""
    path = folder / f"scores_{name.replace(' ', '_')}.parquet"
    scores.write_parquet(path)
    return judge(folder, path, protocol)


def judge(folder: Path, scores: Path, protocol: Path) -> dict[str, Any]:
    """Return the protocol script's metrics of a score file on the test side."""
    command = [sys.executable, str(protocol), "metrics", "build/test.parquet", str(scores)]
    result: dict[str, Any] = json.loads(run(folder, "metrics", command).strip().splitlines()[-1])
    return result


def hubscore(folder: Path, command: str, *args: str, step: str | None = None) -> str:
    """Run one hubscore command in `folder`; return its stdout."""
    return run(folder, step or command, [sys.executable, "-m", "hubscore", command, *args])


def run(folder: Path, step: str, command: list[str]) -> str:
    """Run a step in `folder`, logging to <step>.log; on failure show the log's tail and exit."""
    print(f"  [{folder.name}] {step}", flush=True)
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    log = folder / f"{step}.log"
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}\n")
    if result.returncode:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        sys.exit(f"error: {step} failed (exit {result.returncode}); log: {log}\n{tail}")
    return result.stdout


def mean_metrics(per_seed: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Return each model's mean metric over the seeds (None stays None)."""
    mean: dict[str, dict[str, Any]] = {}
    for name in per_seed[0]:
        mean[name] = {}
        for key in (*METRICS, CALIBRATION):
            values = [seed[name][key] for seed in per_seed if seed[name][key] is not None]
            mean[name][key] = round(statistics.fmean(values), 4) if values else None
    return mean


def targets(metrics: dict[str, dict[str, Any]], *, families: list[str]) -> dict[str, Any]:
    """Return which of the issue's targets hold on these metrics."""
    vs_plain = {
        family: all(
            metrics[family][m] >= metrics[f"plain {family}"][m] - ALLOWANCE[m] for m in METRICS
        )
        for family in families
    }
    best = max(families, key=lambda f: (_absolute_passes(metrics[f]), metrics[f]["recall_at_100"]))
    calibrated = {f: _within(metrics[f][CALIBRATION], CALIBRATION_RANGE) for f in families}
    return {
        "each_family_vs_plain": vs_plain,
        "best_family": best,
        "best_family_meets_absolute": _absolute_passes(metrics[best]) == len(METRICS),
        "calibrated": calibrated,
    }


def _absolute_passes(row: dict[str, Any]) -> int:
    return sum(row[m] >= BEST_TARGET[m] for m in METRICS)


def _within(value: float | None, bounds: tuple[float, float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def print_table(title: str, metrics: dict[str, dict[str, Any]], *, families: list[str]) -> None:
    """Print one table: hubscore families with deltas to their plain reference, then the rest."""
    print(f"\n{title}")
    head = f"{'model':<22}{'ROC-AUC':>9}{'PR-AUC':>9}{'rec@100':>9}{'sum p/c':>9}"
    print(f"{head}   {'dROC':>7}{'dPR':>8}{'PR x':>6}{'drec':>8}   targets")
    for family in families:
        row, plain = metrics[family], metrics[f"plain {family}"]
        deltas = [row[m] - plain[m] for m in METRICS]
        ratio = row["pr_auc"] / plain["pr_auc"] if plain["pr_auc"] else float("nan")
        flags = _flags(row, plain)
        print(
            f"{_cells(family, row)}   {deltas[0]:>+7.3f}{deltas[1]:>+8.4f}{ratio:>6.2f}"
            f"{deltas[2]:>+8.3f}   {flags}"
        )
    for name in [f"plain {f}" for f in families] + [HEURISTIC]:
        print(_cells(name, metrics[name]))


def _cells(name: str, row: dict[str, Any]) -> str:
    calibration = row[CALIBRATION]
    cal = f"{calibration:>9.2f}" if calibration is not None else f"{'':>9}"
    return f"{name:<22}{row['roc_auc']:>9.3f}{row['pr_auc']:>9.4f}{row['recall_at_100']:>9.3f}{cal}"


def _flags(row: dict[str, Any], plain: dict[str, Any]) -> str:
    near = "ok" if all(row[m] >= plain[m] - ALLOWANCE[m] for m in METRICS) else "MISS"
    calibrated = "ok" if _within(row[CALIBRATION], CALIBRATION_RANGE) else "MISS"
    absolute = "".join("+" if row[m] >= BEST_TARGET[m] else "-" for m in METRICS)
    return f"vs plain {near:<4} calib {calibrated:<4} abs {absolute}"


def print_targets(metrics: dict[str, dict[str, Any]], *, families: list[str]) -> None:
    """Print the issue's targets on the mean metrics, one line each."""
    t = targets(metrics, families=families)
    near = [f for f, ok in t["each_family_vs_plain"].items() if not ok]
    off = [f for f, ok in t["calibrated"].items() if not ok]
    best, row = t["best_family"], metrics[t["best_family"]]
    figures = " / ".join(f"{row[m]:.3f}" for m in METRICS)
    print("\ntargets on the mean (ok / MISS):")
    print(f"  each family >= its plain script - (0.01, 0.005, 0.02): {_verdict(near)}")
    absolute = "ok" if t["best_family_meets_absolute"] else "MISS"
    wanted = " / ".join(f"{BEST_TARGET[m]:g}" for m in METRICS)
    print(f"  best family >= {wanted}: {absolute} ({best}: {figures})")
    print(f"  sum p / converters in [0.7, 1.4] for every family: {_verdict(off)}")


def _verdict(failing: list[str]) -> str:
    return "ok" if not failing else f"MISS ({', '.join(failing)})"


if __name__ == "__main__":
    main()
