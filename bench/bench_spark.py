"""Benchmark the Spark engine (local[N]) against the single-machine path, in the same run.

    uv run python bench/bench_spark.py                                    # 1M companies, 5M scores
    uv run python bench/bench_spark.py --companies 200000 --score-rows 1000000   # a quick run
    uv run python bench/bench_spark.py --before /tmp/main     # each contender with older code too

Every contender is a fresh `python -m hubscore ...` process over the same generated Parquet:

- `build-features --as-of` with DuckDB, then with `--engine spark`;
- `score` of the same feature rows with the single-machine scorer, then with `--engine spark`;
- Spark's start-up alone (start a session, stop it): the fixed cost every Spark run pays.

Spark runs a JVM and Python workers beside the launching process, so figures cover the whole
process tree, sampled every 0.2 s from /proc: wall seconds, CPU seconds (user + sys of every
process in the tree) and peak memory (the largest sum of the tree's resident sets). The same
sampler measures both engines. The target (issue 21): CPU per row on Spark at most 3x the
single machine's, build and score, the engine's fixed cost aside (the start-up's CPU is
subtracted from Spark's). `--before DIR` runs every contender a second time with the hubscore
of DIR first on PYTHONPATH (a checkout of an earlier commit), for before/after in one run. Each
target is printed as PASS or MISS; figures go to stdout and bench/out/spark_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, astuple, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from bench_build import SEED, ensure_data, last_sunday  # the build benchmark's own data
from targets import Target, report

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
GOLDEN = ROOT / "tests" / "golden" / "basic"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1e6
START_ONLY = (
    "from hubscore.spark.session import spark_session\n"
    "with spark_session(__import__('sys').argv[1]) as spark:\n"
    "    spark.range(1).count()\n"
)


@dataclass(frozen=True)
class Measured:
    """One contender's process tree, as sampled."""

    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def main(argv: list[str] | None = None) -> None:
    """Generate the inputs, run every contender once, and print the figures and ratios."""
    args = parse_args(argv)
    data = OUT / f"spark-{args.companies}"
    usage_rows = ensure_data(data, companies=args.companies, activity=args.activity)
    as_of = last_sunday(data / "usage_actions.parquet")
    scores_in = score_input(OUT / f"spark-score-{args.score_rows}.parquet", args.score_rows)
    spark = ["--engine", "spark", "--master", args.master]
    build = ["-m", "hubscore", "build-features", "--data-dir", str(data), "--as-of", str(as_of)]
    score = ["-m", "hubscore", "score", str(scores_in), "--model", str(GOLDEN / "run")]
    score += ["--as-of", "2026-11-29"]
    parts = ["--partitions", str(args.partitions)]
    contenders = [
        ("spark start-up", ["-c", START_ONLY, args.master]),
        ("build duckdb", [*build, "--out", str(data / "local")]),
        ("build spark", [*build, "--out", str(data / "spark"), *spark, *parts]),
        ("score local", [*score, "-o", str(OUT / "scores-local.parquet")]),
        ("score spark", [*score, "-o", str(OUT / "scores-spark.parquet"), *spark]),
    ]
    runs = [run(name, command) for name, command in contenders]
    results = build_report(args, usage_rows, runs, data)
    if args.before:
        older = [run(f"{name} (before)", command, args.before) for name, command in contenders]
        renamed = [Measured(m.name.removesuffix(" (before)"), *astuple(m)[1:]) for m in older]
        results["before"] = build_report(args, usage_rows, renamed, data)
    print(json.dumps(results, indent=2))
    before = verdicts(results["before"]) if args.before else None
    results["targets"] = report(TARGETS, verdicts(results), before)
    (OUT / "spark_results.json").write_text(json.dumps(results, indent=2) + "\n")


TARGETS = {
    "build_cpu_ratio": Target("build: Spark CPU (start-up aside) / DuckDB CPU", "<=", 3.0),
    "score_cpu_ratio": Target("score: Spark CPU (start-up aside) / local CPU", "<=", 3.0),
}


def verdicts(results: dict[str, Any]) -> dict[str, float]:
    """Return each target's measured value."""
    return {
        "build_cpu_ratio": results["build_spark_vs_duckdb"]["cpu_ratio_without_start_up"],
        "score_cpu_ratio": results["score_spark_vs_local"]["cpu_ratio_without_start_up"],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=1_000_000)
    parser.add_argument("--activity", type=float, default=4.0, help="~20 usage rows a company")
    parser.add_argument("--score-rows", type=int, default=5_000_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--before", type=Path, help="a checkout of an earlier hubscore to time too")
    return parser.parse_args(argv)


def score_input(path: Path, rows: int) -> Path:
    """Tile the golden feature rows to `rows` companies with fresh ids, keeping the metadata."""
    if path.exists():
        return path
    table = pq.read_table(GOLDEN / "input.parquet")
    base = pl.from_arrow(table)
    assert isinstance(base, pl.DataFrame)
    copies = -(-rows // base.height)
    tiled = pl.concat([base] * copies).head(rows)
    tiled = tiled.with_columns(pl.int_range(1, rows + 1, dtype=pl.Int64).alias("id"))
    out = tiled.to_arrow().replace_schema_metadata(table.schema.metadata)
    pq.write_table(out, path, row_group_size=1 << 20)
    return path


def run(name: str, args: list[str], code: Path | None = None) -> Measured:
    """Run one contender in a fresh process and sample its whole process tree.

    `code`: a checkout whose hubscore is imported instead of this one.
    """
    print(f"running {name} ...", end=" ", flush=True)
    log = OUT / f"{name.replace(' ', '-').replace('(', '').replace(')', '')}.log"
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    started = time.perf_counter()
    with log.open("w") as sink:
        # -P: the checkout's hubscore, not the working directory's (`-m` puts it first)
        python = [sys.executable, "-P"] if code else [sys.executable]
        # In DIR: Spark's Python workers (`python -m pyspark.daemon`) import from their cwd too.
        child = subprocess.Popen(
            [*python, *args], stdout=sink, stderr=sink, cwd=code or ROOT, env=env
        )
        cpu: dict[int, float] = {}
        peak = 0
        while child.poll() is None:
            rss = 0
            for pid in tree(child.pid):
                sample = proc_sample(pid)
                if sample:
                    cpu[pid] = max(cpu.get(pid, 0.0), sample[0])
                    rss += sample[1]
            peak = max(peak, rss)
            time.sleep(0.2)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{name} exited {child.returncode}; see {log}")
    measured = Measured(name, round(wall, 2), round(sum(cpu.values()), 2), round(peak / MB))
    print(f"{measured.wall_s:.1f} s wall, {measured.cpu_s:.1f} CPU-s, {measured.peak_rss_mb} MB")
    return measured


def tree(root: int) -> list[int]:
    """Return `root` and every descendant process id (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def proc_stat(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name (None once it exited)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def proc_sample(pid: int) -> tuple[float, int] | None:
    """Return (CPU seconds incl. reaped children, resident bytes) of one process."""
    stat = proc_stat(pid)
    if not stat:
        return None
    utime, stime, cutime, cstime = (int(v) for v in stat[11:15])
    return (utime + stime + cutime + cstime) / TICK, int(stat[21]) * PAGE


def build_report(
    args: argparse.Namespace, usage_rows: int, runs: list[Measured], data: Path
) -> dict[str, Any]:
    """Put the runs side by side with ratios against the single-machine baselines."""
    by = {m.name: m for m in runs}
    start = by["spark start-up"]

    def versus(spark: Measured, local: Measured) -> dict[str, float]:
        return {
            "wall_ratio": round(spark.wall_s / local.wall_s, 2),
            "cpu_ratio": round(spark.cpu_s / local.cpu_s, 2),
            "cpu_ratio_without_start_up": round((spark.cpu_s - start.cpu_s) / local.cpu_s, 2),
            "peak_memory_ratio": round(spark.peak_rss_mb / local.peak_rss_mb, 2),
            "wall_ratio_without_start_up": round((spark.wall_s - start.wall_s) / local.wall_s, 2),
        }

    features = pl.scan_parquet(data / "local" / "features.parquet").select(pl.len()).collect()
    return {
        "machine": {"cpus": os.cpu_count(), "master": args.master, "partitions": args.partitions},
        "data": {
            "companies": args.companies,
            "usage_rows": usage_rows,
            "feature_rows": features.item(),
            "score_rows": args.score_rows,
            "seed": SEED,
            "as_of": str(date.today()),
        },
        "runs": [asdict(m) for m in runs],
        "build_spark_vs_duckdb": versus(by["build spark"], by["build duckdb"]),
        "score_spark_vs_local": versus(by["score spark"], by["score local"]),
    }


if __name__ == "__main__":
    main()
