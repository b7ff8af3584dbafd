"""Benchmark `hubscore train` per model family against one bare fit measured in the same run.

    uv run python bench/bench_train.py                           # 100k companies, four families
    uv run python bench/bench_train.py --companies 20000 --models xgboost,logreg   # quicker

The input is the project's own generator (`hubscore sample-data --parquet`) and
`hubscore build-features` (weekly snapshots, `converted_within`), made once per size into
bench/out/train-<N>/ and reused. Then, per family, two separate processes timed by the kernel
(`os.wait4`: wall, user+sys CPU and peak RSS of that process alone):

- `hubscore train --model NAME`: the whole run (3-fold time CV, final fit, the ablation
  without missingness flags, evaluation and plots, ONNX export, the verification gate);
- the baseline: read the same feature file, take the same training side, encode it once and
  fit the same model once, natively: the floor for any training run of that family.

Ratios are the train run over the baseline (CPU and peak RSS); the verification gate's max
|delta p| and label flips come from the run's manifest. Figures go to stdout and
bench/out/train_results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import pyarrow.parquet as pq
from bench_build import Run, run_measured

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
RESULTS = OUT / "train_results.json"
FAMILIES = ("logreg", "random_forest", "xgboost", "lightgbm")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    root = args.out or OUT / f"train-{args.companies}"
    features = ensure_features(root, args.companies, seed=args.seed)
    frame_mb = in_memory_mb(features)
    print(f"feature file: {features} ({frame_mb:,.0f} MB as a frame in memory)", flush=True)
    results = []
    for name in args.models:
        models = root / "models" / name
        train = run_measured(
            [
                sys.executable,
                "-m",
                "hubscore",
                "train",
                "--model",
                name,
                "--features",
                str(features),
                "--models-dir",
                str(models),
            ],
            root / f"train-{name}.log",
        )
        bare = run_measured(
            [sys.executable, __file__, "--bare-fit", name, "--features", str(features)],
            root / f"bare-{name}.log",
        )
        results.append(summarise(name, train, bare, models / "latest", frame_mb=frame_mb))
        print_row(results[-1])
    report = {"companies": args.companies, "features": str(features), "frame_mb": frame_mb}
    report |= {"families": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {RESULTS}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=3, help="the generator's seed [3]")
    parser.add_argument("--models", type=lambda s: s.split(","), default=list(FAMILIES))
    parser.add_argument("--out", type=Path, help="data and runs folder [bench/out/train-N]")
    parser.add_argument("--bare-fit", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--features", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_fit:
        bare_fit(args.bare_fit, args.features)
        raise SystemExit(0)
    unknown = sorted(set(args.models) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown model {unknown[0]}; known: {', '.join(FAMILIES)}")
    return args


def ensure_features(root: Path, companies: int, *, seed: int) -> Path:
    """Generate and build the input once per size; later runs reuse it."""
    features = root / "build" / "features.parquet"
    if features.is_file():
        return features
    hubscore = [sys.executable, "-m", "hubscore"]
    data = root / "data"
    steps = [
        [
            *hubscore,
            "sample-data",
            "--out",
            str(data),
            "--companies",
            str(companies),
            "--seed",
            str(seed),
            "--parquet",
        ],
        [*hubscore, "build-features", "--data-dir", str(data), "--out", str(root / "build")],
    ]
    root.mkdir(parents=True, exist_ok=True)
    with (root / "prepare.log").open("w") as log:
        for step in steps:
            print("$ hubscore", " ".join(step[3:]), flush=True)
            subprocess.run(step, check=True, stdout=log, stderr=subprocess.STDOUT)
    return features


def bare_fit(name: str, features: Path) -> None:
    """The baseline, run in the measured child: read, split, encode once, fit once."""
    from hubscore.core.config import ModelName, load_config
    from hubscore.training import dataset, models

    config = load_config(overrides={"training.model": name})
    ff = dataset.read_features(features, max_rows=config.training.max_rows)  # as train reads
    split = dataset.split_rows(ff, config)
    family = cast("ModelName", name)  # checked against FAMILIES by parse_args
    models.fit_family(family, dataset.take(ff.frame, split.train), config)


def in_memory_mb(features: Path) -> float:
    """The feature file's uncompressed size (about its size as a frame), from the footer."""
    meta = pq.ParquetFile(features).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)) / 2**20


def summarise(
    name: str, train: Run, bare: Run, run_dir: Path, *, frame_mb: float
) -> dict[str, Any]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    gate = manifest["verification"]
    return {
        "model": name,
        "train": asdict(train),
        "bare_fit": asdict(bare),
        "cpu_ratio": train.cpu_s / bare.cpu_s,
        "rss_ratio": train.peak_rss_mb / bare.peak_rss_mb,
        "rss_over_frame": train.peak_rss_mb / frame_mb,
        "gate_rows": gate["rows"],
        "gate_max_abs_delta": gate["max_abs_delta"],
        "gate_label_flips": gate["label_flips"],
        "training_rows": manifest["training_data"]["train_rows"],
    }


def print_row(r: dict[str, Any]) -> None:
    t, b = r["train"], r["bare_fit"]
    print(
        f"{r['model']:<14} train {t['wall_s']:7.1f} s wall {t['cpu_s']:7.1f} CPU-s "
        f"{t['peak_rss_mb']:7.0f} MB | bare fit {b['wall_s']:6.1f} s {b['cpu_s']:6.1f} CPU-s "
        f"{b['peak_rss_mb']:6.0f} MB | x{r['cpu_ratio']:.1f} CPU x{r['rss_ratio']:.2f} RSS "
        f"x{r['rss_over_frame']:.2f} the frame | "
        f"gate max|dp| {r['gate_max_abs_delta']:.1e} on {r['gate_rows']:,} rows, "
        f"{r['gate_label_flips']} flips",
        flush=True,
    )


if __name__ == "__main__":
    main()
