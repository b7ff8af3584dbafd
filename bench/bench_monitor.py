"""Benchmark the ledger and `hubscore monitor` against baselines measured in the same run.

    uv run python bench/bench_monitor.py                       # 1M companies, 8 weekly lists
    uv run python bench/bench_monitor.py --rows 200000 --weeks 4   # a quick run

1. What the ledger costs `score`: `hubscore score --top-k 100` of the same input with
   `--ledger` vs `--no-ledger` (separate processes; wall, CPU and peak RSS from the kernel).
2. What `monitor` costs: `hubscore monitor` over `--weeks` lists of `--rows` companies each vs
   a bare Polars pass over the same ledger files (the top rows of every list and the scored
   companies that converted: what any monitor must read).

Figures go to stdout and bench/out/bench_monitor.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from bench_build import run_measured  # bench/ is on the path: this script's own folder

from hubscore.core.ledger import LAYOUT_DIR, METADATA_KEY

ROOT = Path(__file__).parent.parent
OUT = Path(__file__).parent / "out"
GOLDEN = ROOT / "tests" / "golden" / "xgboost"
FIRST = date(2024, 1, 7)
BARE = """
import sys, polars as pl
from pathlib import Path
closes = pl.read_csv(sys.argv[2], schema={"id": pl.Int64, "CLOSEDATE": pl.Date})
for path in sorted(Path(sys.argv[1]).glob("*.parquet")):
    scan = pl.scan_parquet(path)
    scan.filter(pl.col("rank") <= 100).collect()
    scan.select("id", "cutoff").join(closes.lazy(), on="id").collect()
"""


def run(argv: list[str]) -> dict[str, float]:
    """Run one process; its own wall, CPU and peak RSS (bench_build's launcher, see there)."""
    measured = run_measured(argv, OUT / "monitor" / "child.log")
    return {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s, "peak_rss_mb": measured.peak_rss_mb}


def median(argv: list[str], repeat: int) -> dict[str, float]:
    runs = [run(argv) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def write_input(path: Path, rows: int) -> None:
    """Repeat the golden input with fresh ids up to `rows`, keeping its build metadata."""
    table = pq.read_table(GOLDEN / "input.parquet")
    base = pl.from_arrow(table)
    assert isinstance(base, pl.DataFrame)
    copies = -(-rows // base.height)
    frame = pl.concat([base.with_columns(pl.col("id") + i * 1_000) for i in range(copies)])
    frame = frame.head(rows).with_columns(pl.int_range(1, rows + 1, dtype=pl.Int64).alias("id"))
    pq.write_table(frame.to_arrow().replace_schema_metadata(table.schema.metadata), path)


def hubscore(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "hubscore", *map(str, args)]


def copy_weeks(ledger: Path, weeks: int) -> None:
    """Turn the one scored list into `weeks` weekly lists (same rows, another cutoff each)."""
    (source,) = (ledger / LAYOUT_DIR).glob("*.parquet")
    table = pq.read_table(source)
    meta = json.loads(pq.read_metadata(source).metadata[METADATA_KEY.encode()])
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    for week in range(1, weeks):
        cutoff = FIRST + timedelta(weeks=week)
        meta["cutoffs"][0]["cutoff"] = cutoff.isoformat()
        shifted = frame.with_columns(pl.lit(cutoff).alias("cutoff")).to_arrow()
        shifted = shifted.replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
        pq.write_table(shifted, source.with_name(f"{cutoff}__{source.name.split('__', 1)[1]}"))


def write_customers(path: Path, rows: int, weeks: int) -> int:
    """About 2% of the companies convert at random days over the lists' horizons."""
    rng = np.random.default_rng(7)
    ids = np.flatnonzero(rng.random(rows) < 0.02) + 1
    days = rng.integers(1, 7 * weeks + 30, ids.size)
    closes = [FIRST + timedelta(days=int(d)) for d in days]
    pl.DataFrame({"id": ids, "CLOSEDATE": closes}).write_csv(path)
    return int(ids.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="companies per list")
    parser.add_argument("--weeks", type=int, default=8, help="weekly lists in the ledger")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    args = parser.parse_args()
    work = OUT / "monitor"
    work.mkdir(parents=True, exist_ok=True)
    features, ledger, data = work / "features.parquet", work / "ledger", work / "data"
    shutil.rmtree(ledger, ignore_errors=True)  # an earlier run's weeks
    write_input(features, args.rows)
    score = hubscore("score", features, "-o", work / "list.parquet", "--model", GOLDEN / "run")
    score += ["--top-k", "100", "--no-explain", "--as-of", FIRST.isoformat(), "-q"]
    results: dict[str, Any] = {"rows": args.rows, "weeks": args.weeks}
    results["score_no_ledger"] = median([*score, "--no-ledger"], args.repeat)
    results["score_ledger"] = median(
        [*score, "--ledger", str(work / "scratch-ledger")], args.repeat
    )
    run([*score, "--ledger", str(ledger)])
    copy_weeks(ledger, args.weeks)
    data.mkdir(exist_ok=True)
    results["converters"] = write_customers(data / "customers.csv", args.rows, args.weeks)
    known = (FIRST + timedelta(weeks=args.weeks, days=30)).isoformat()
    monitor = hubscore("monitor", "--ledger", ledger, "--data-dir", data, "--known-until", known)
    results["monitor"] = median([*monitor, "-q", "--fail-on", "none"], args.repeat)
    bare = [sys.executable, "-c", BARE, str(ledger / LAYOUT_DIR), str(data / "customers.csv")]
    results["bare_read"] = median(bare, args.repeat)
    report(results)
    (OUT / "bench_monitor.json").write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, Any]) -> None:
    print(f"{results['rows']:,} companies per list, {results['weeks']} lists")
    for name in ("score_no_ledger", "score_ledger", "monitor", "bare_read"):
        r = results[name]
        print(f"{name:16} wall {r['wall_s']:7.2f} s  CPU {r['cpu_s']:7.2f} s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB")  # fmt: skip
    ledger, plain = results["score_ledger"], results["score_no_ledger"]
    print(f"the ledger costs score {ledger['cpu_s'] / plain['cpu_s']:.2f}x CPU, "
          f"{ledger['peak_rss_mb'] / plain['peak_rss_mb']:.2f}x peak RSS")  # fmt: skip
    mon, bare = results["monitor"], results["bare_read"]
    print(f"monitor / bare read: {mon['cpu_s'] / bare['cpu_s']:.2f}x CPU, "
          f"{mon['peak_rss_mb'] / bare['peak_rss_mb']:.2f}x peak RSS")  # fmt: skip


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
