"""Benchmark `hubscore build-features --as-of` against baselines measured in the same run.

    uv run python bench/bench_build.py                     # 1M companies, ~20M usage rows
    uv run python bench/bench_build.py --companies 100000  # a quick run

Three separate processes run over the same generated Parquet inputs, each timed by the kernel
(`os.wait4`: user+sys CPU seconds and peak RSS of that process alone):

- `hubscore build-features --as-of`: the nightly path (validation, dedupe, quality profile,
  features), as `python -m hubscore`;
- a bare DuckDB scan that reads every column of the usage Parquet: the floor for any reader;
- a pandas groupby implementation of the same features (the approach typical peers use). It
  does NOT validate, quarantine or deduplicate: it is strictly less work than hubscore.

Figures go to stdout and bench/out/build_results.json; see bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hubscore.core.contract import ALEXA_NO_RANK_SENTINEL

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
RESULTS = OUT / "build_results.json"
STAMP = ".bench-stamp.json"
SEED = 42
WEEKS = 78
LOOKBACK_DAYS = 91
RECENT_DAYS = 28
NO_RANK = ALEXA_NO_RANK_SENTINEL
OBJECTS = ("CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL")
ACTIONS = tuple(f"ACTIONS_{o}" for o in OBJECTS)
USERS = tuple(f"USERS_{o}" for o in OBJECTS)
USAGE_COLUMNS = ACTIONS + USERS
TARGET_ROWS_PER_CPU_S = 2_000_000
TARGET_PANDAS_RATIO = 4.0
TARGET_RSS_MB = 1500.0  # 1.5 GB, decimal: the stricter reading
MB = 1e6
PANDAS_NOTE = (
    "pandas reads the Parquet files as they are: no validation, quarantine, deduplication or "
    "quality profile (companies are only made unique by id), so it does strictly less work"
)


@dataclass(frozen=True)
class Run:
    """One child process as the kernel saw it."""

    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Contender:
    """The runs of one contender and their summary (median wall/CPU, largest RSS)."""

    name: str
    command: list[str]
    runs: list[Run]

    @property
    def wall_s(self) -> float:
        """Return the median wall seconds."""
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def cpu_s(self) -> float:
        """Return the median user+sys CPU seconds."""
        return statistics.median(r.cpu_s for r in self.runs)

    @property
    def peak_rss_mb(self) -> float:
        """Return the largest peak RSS over the runs, in MB (10^6 bytes)."""
        return max(r.peak_rss_mb for r in self.runs)


def main(argv: list[str] | None = None) -> None:
    """Generate (or reuse) the inputs, measure the three contenders, report and save."""
    args = parse_args(argv)
    if args.child:
        run_child(args.child, args.out, date.fromisoformat(args.as_of))
        return
    data = args.out
    usage_rows = ensure_data(data, companies=args.companies, activity=args.activity)
    as_of = last_sunday(data / "usage_actions.parquet")
    print(f"{usage_rows:,} usage rows in {data}; as-of {as_of}; {os.cpu_count()} CPUs", flush=True)
    contenders = [measure("hubscore build-features", build_command(data, as_of), data, args.repeat)]
    contenders.append(
        measure("bare DuckDB scan", child_command("scan", data, as_of), data, args.repeat)
    )
    if not args.skip_pandas:
        command = child_command("pandas", data, as_of)
        contenders.append(measure("pandas groupby", command, data, args.repeat))
    report = build_report(contenders, usage_rows=usage_rows, as_of=as_of, data=data)
    if not args.skip_pandas:
        report["pandas_vs_hubscore"] = compare_outputs(data)
    print_report(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`--child` is internal: the measured child processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=1_000_000, help="companies [1000000]")
    parser.add_argument("--activity", type=float, default=None, help="usage rows multiplier [6.0]")
    parser.add_argument("--out", type=Path, default=OUT / "build-1m", help="input/output folder")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (median) [1]")
    parser.add_argument("--skip-pandas", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--child", choices=("scan", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.activity is None and not args.child:
        from hubscore.dev.sample import BENCHMARK_ACTIVITY

        args.activity = BENCHMARK_ACTIVITY
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


# --- inputs -----------------------------------------------------------------------------------


def ensure_data(data: Path, *, companies: int, activity: float) -> int:
    """Write the sample Parquet files unless a matching stamp says they exist; return usage rows."""
    import pyarrow.parquet as pq

    stamp = {
        "companies": companies,
        "activity": activity,
        "seed": SEED,
        "weeks": WEEKS,
        "generator_sha256": hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted((ROOT / "hubscore/dev").glob("*.py")))
        ).hexdigest(),
    }
    stamp_path = data / STAMP
    usage = data / "usage_actions.parquet"
    if not (
        stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp and usage.is_file()
    ):
        from hubscore.dev.sample import generate_sample

        print(f"generating {companies:,} companies (activity {activity}) in {data} ...", flush=True)
        stamp_path.unlink(missing_ok=True)
        started = time.perf_counter()
        generate_sample(
            data, seed=SEED, companies=companies, weeks=WEEKS, fmt="parquet", activity=activity
        )
        print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
        stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    rows: int = pq.ParquetFile(usage).metadata.num_rows
    return rows


def last_sunday(usage: Path) -> date:
    """Return the end (Sunday) of the last usage week in the file, from the Parquet statistics."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(usage).metadata
    column = meta.schema.names.index("WHEN_TIMESTAMP")
    latest = max(
        meta.row_group(g).column(column).statistics.max for g in range(meta.num_row_groups)
    )
    end: date = latest.date() + timedelta(days=6 - latest.weekday())
    return end


# --- measuring --------------------------------------------------------------------------------


def build_command(data: Path, as_of: date) -> list[str]:
    """Return the nightly build command, run by this interpreter without `uv run` in between."""
    return [
        sys.executable,
        "-m",
        "hubscore",
        "build-features",
        "--data-dir",
        str(data),
        "--out",
        str(data / "build"),
        "--as-of",
        as_of.isoformat(),
    ]


def child_command(kind: str, data: Path, as_of: date) -> list[str]:
    """Return the command that runs one baseline of this script in a fresh process."""
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--child", kind, "--out", str(data), "--as-of", str(as_of)]


def measure(name: str, command: list[str], data: Path, repeat: int) -> Contender:
    """Run `command` `repeat` times; fail loudly if it fails."""
    runs = []
    log = data / f"{name.split()[0].lower()}.log"
    for n in range(repeat):
        print(f"running {name} ({n + 1}/{repeat}) ...", end=" ", flush=True)
        run = run_measured(command, log)
        print(
            f"{run.wall_s:.1f} s wall, {run.cpu_s:.1f} CPU-s, {run.peak_rss_mb:,.0f} MB", flush=True
        )
        runs.append(run)
    return Contender(name, command, runs)


# Forks and execs the measured command, then reports the kernel's rusage for it alone. Why a
# launcher: on exec, Linux folds the old address space's high-water RSS into the new program's
# ru_maxrss, and `subprocess` forks (vfork) straight from this process, whose peak after
# generating the data would be charged to every child. This tiny `python -S` has a ~10 MB floor.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as sink:
    json.dump([os.waitstatus_to_exitcode(status), wall, usage.ru_utime, usage.ru_stime,
               usage.ru_maxrss], sink)
"""


def run_measured(command: list[str], log: Path) -> Run:
    """Run one child and read its own CPU time and peak RSS from `wait4` (not its parent's)."""
    result = log.with_suffix(".rusage.json")
    with log.open("w") as sink:
        launcher = [sys.executable, "-S", "-c", LAUNCHER, str(result), *command]
        subprocess.run(launcher, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, check=True)
    code, wall, user, system, max_rss_kib = json.loads(result.read_text())
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise SystemExit(f"{' '.join(command)} exited {code}; see {log}:\n{tail}")
    return Run(  # Linux reports ru_maxrss in KiB
        wall_s=wall,
        cpu_s=user + system,
        user_s=user,
        sys_s=system,
        peak_rss_mb=max_rss_kib * 1024 / MB,
    )


# --- the measured baselines (run as `--child`) -----------------------------------------------


def run_child(kind: str, data: Path, as_of: date) -> None:
    """Run one baseline in this (measured) process."""
    if kind == "scan":
        print(bare_scan(data / "usage_actions.parquet"))
    else:
        pandas_features(data, as_of, data / "pandas" / "features.parquet")


def bare_scan(usage: Path) -> tuple[Any, ...] | None:
    """Read every column of the usage file once and fold it into a handful of sums."""
    import duckdb

    query = """
        select
            count(*), sum(id), sum(epoch_ms(WHEN_TIMESTAMP)),
            sum(ACTIONS_CRM_CONTACTS), sum(ACTIONS_CRM_COMPANIES),
            sum(ACTIONS_CRM_DEALS), sum(ACTIONS_EMAIL),
            sum(USERS_CRM_CONTACTS), sum(USERS_CRM_COMPANIES),
            sum(USERS_CRM_DEALS), sum(USERS_EMAIL)
        from read_parquet($src)
    """
    with duckdb.connect() as con:
        return con.execute(query, {"src": str(usage)}).fetchone()


def pandas_features(data: Path, as_of: date, out: Path) -> None:
    """Compute the `--as-of` features with idiomatic pandas and write them as Parquet."""
    import numpy as np
    import pandas as pd

    cutoff = pd.Timestamp(as_of)
    usage = pd.read_parquet(data / "usage_actions.parquet")
    usage["week_end"] = usage["WHEN_TIMESTAMP"] + pd.Timedelta(days=6)
    usage = usage[usage["week_end"] <= cutoff]  # only weeks complete at the cutoff are known
    usage = usage.assign(
        days_back=(cutoff - usage["week_end"]).dt.days,
        actions=usage[list(ACTIONS)].sum(axis=1),
        users=usage[list(USERS)].sum(axis=1),
    )
    history = usage.groupby("id").agg(first_week_start=("WHEN_TIMESTAMP", "min"))
    history["last_active_week_end"] = (
        usage.loc[usage["actions"] > 0].groupby("id")["week_end"].max()
    )
    window = usage[usage["days_back"] < LOOKBACK_DAYS]
    recent = window["days_back"] < RECENT_DAYS
    prior = ~recent & (window["days_back"] < 2 * RECENT_DAYS)
    window = window.assign(
        active=(window["actions"] > 0).astype("int64"),
        actions_recent=window["actions"].where(recent, 0),
        actions_prior=window["actions"].where(prior, 0),
        active_recent=((window["actions"] > 0) & recent).astype("int64"),
    )
    grouped = window.groupby("id")
    stats = {f"{c}_{s}": (c, s) for c in USAGE_COLUMNS for s in ("sum", "mean", "max")}
    aggregated = grouped.agg(
        total_actions=("actions", "sum"),
        total_users=("users", "sum"),
        weeks_active=("active", "sum"),
        actions_recent=("actions_recent", "sum"),
        actions_prior=("actions_prior", "sum"),
        weeks_active_recent=("active_recent", "sum"),
        **stats,
    ).join(grouped[list(USAGE_COLUMNS)].std(ddof=0).add_suffix("_std"))
    features = companies_at(data, as_of).join(aggregated, on="id").join(history, on="id")
    write_pandas_features(finish_features(features, cutoff, np, pd), out)


def companies_at(data: Path, as_of: date) -> Any:
    """Return the companies not yet converted at `as_of`, one row per id (no other dedupe)."""
    import pandas as pd

    firmographics = ["id", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY"]
    customers = pd.read_parquet(data / "customers.parquet", columns=[*firmographics, "CLOSEDATE"])
    customers = customers.dropna(subset=["id"]).drop_duplicates("id")
    free = pd.read_parquet(data / "noncustomers.parquet", columns=firmographics)
    free = free.dropna(subset=["id"]).drop_duplicates("id")
    free = free[~free["id"].isin(customers["id"])]
    closedate = pd.to_datetime(customers["CLOSEDATE"])
    open_customers = customers[closedate.isna() | (closedate > pd.Timestamp(as_of))]
    return pd.concat([open_customers[firmographics], free], ignore_index=True)


def finish_features(features: Any, cutoff: Any, np: Any, pd: Any) -> Any:
    """Fill companies without usage, derive the ratios and history features, order the columns."""
    counts = [
        "total_actions", "total_users", "weeks_active", "actions_recent", "actions_prior",
        "weeks_active_recent", *(f"{c}_{s}" for c in USAGE_COLUMNS for s in ("sum", "max")),
    ]  # fmt: skip
    features[counts] = features[counts].fillna(0).astype("int64")
    rank = features["ALEXA_RANK"]
    features["alexa_no_rank"] = (rank == NO_RANK).astype("int8")
    features["ALEXA_RANK"] = rank.mask(rank == NO_RANK)
    features["cutoff"] = cutoff
    features["actions_per_user"] = features["total_actions"] / features["total_users"].replace(
        0, np.nan
    )
    features["days_active"] = 7 * features["weeks_active"]
    features["activity_frequency"] = features["weeks_active"] / (LOOKBACK_DAYS / 7)
    features["recency_days"] = (cutoff - features["last_active_week_end"]).dt.days
    features["tenure_days"] = (cutoff - features["first_week_start"]).dt.days
    features["trend_actions"] = np.log(
        (features["actions_recent"] + 1) / (features["actions_prior"] + 1)
    )
    stats = [f"{c}_{s}" for c in USAGE_COLUMNS for s in ("sum", "mean", "max", "std")]
    columns = [
        "id", "cutoff", "EMPLOYEE_RANGE", "INDUSTRY", "ALEXA_RANK", "alexa_no_rank",
        "total_actions", "total_users", "actions_per_user", "days_active", "activity_frequency",
        *stats, "recency_days", "tenure_days", "actions_recent", "actions_prior",
        "trend_actions", "weeks_active_recent",
    ]  # fmt: skip
    return features[columns].sort_values("id", kind="stable")


def write_pandas_features(features: Any, out: Path) -> None:
    """Write the pandas features like hubscore does (zstd Parquet, no index)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out, index=False, compression="zstd")


# --- reporting --------------------------------------------------------------------------------


def build_report(
    contenders: list[Contender], *, usage_rows: int, as_of: date, data: Path
) -> dict[str, Any]:
    """Return the figures, ratios and target verdicts as one JSON-ready dict."""
    by_name = {c.name: c for c in contenders}
    build = by_name["hubscore build-features"]
    scan = by_name["bare DuckDB scan"]
    pandas = by_name.get("pandas groupby")
    rows_per_cpu = usage_rows / build.cpu_s
    targets = [
        target("usage rows per CPU-second", rows_per_cpu, ">=", TARGET_ROWS_PER_CPU_S),
        target("peak RSS MB", build.peak_rss_mb, "<", TARGET_RSS_MB),
    ]
    ratios = {"hubscore_cpu_over_bare_scan_cpu": build.cpu_s / scan.cpu_s}
    if pandas:
        ratios["pandas_cpu_over_hubscore_cpu"] = pandas.cpu_s / build.cpu_s
        ratios["pandas_wall_over_hubscore_wall"] = pandas.wall_s / build.wall_s
        targets.insert(
            1,
            target(
                "pandas CPU / hubscore CPU",
                ratios["pandas_cpu_over_hubscore_cpu"],
                ">=",
                TARGET_PANDAS_RATIO,
            ),
        )
    return {
        "hubscore_version": _hubscore_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "data": {"dir": str(data), "usage_rows": usage_rows, "as_of": as_of.isoformat()},
        "contenders": [
            {
                "name": c.name,
                "command": c.command,
                "wall_s": c.wall_s,
                "cpu_s": c.cpu_s,
                "peak_rss_mb": c.peak_rss_mb,
                "usage_rows_per_cpu_s": usage_rows / c.cpu_s,
                "runs": [asdict(r) for r in c.runs],
            }
            for c in contenders
        ],
        "ratios": ratios,
        "targets": targets,
        "notes": [PANDAS_NOTE] if pandas else [],
    }


def target(name: str, value: float, op: str, goal: float) -> dict[str, Any]:
    """Return one target with its verdict."""
    met = value >= goal if op == ">=" else value < goal
    return {"name": name, "value": value, "target": f"{op} {goal:,g}", "met": met}


def _hubscore_version() -> str:
    from hubscore import __version__

    return __version__


def compare_outputs(data: Path) -> dict[str, Any]:
    """Count, per feature, the companies whose pandas value differs from hubscore's."""
    import numpy as np
    import pandas as pd

    hub = pd.read_parquet(data / "build" / "features.parquet")
    theirs = pd.read_parquet(data / "pandas" / "features.parquet")
    joined = hub.merge(theirs, on="id", suffixes=("", "_pd"))
    differing: dict[str, int] = {}
    for column in hub.columns.drop(["id", "cutoff"]):
        a, b = joined[column], joined[f"{column}_pd"]
        if pd.api.types.is_numeric_dtype(a):
            x, y = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
            same = np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        differing[column] = int((~same).sum())
    return {
        "hubscore_rows": len(hub),
        "pandas_rows": len(theirs),
        "joined_rows": len(joined),
        "rows_differing_by_feature": {k: v for k, v in differing.items() if v},
        "note": "differences come from what pandas skips: rejected, repeated or twin rows",
    }


def print_report(report: dict[str, Any]) -> None:
    """Print the figures, the ratios and the targets with PASS/MISS."""
    rows = report["data"]["usage_rows"]
    print(
        f"\n{rows:,} usage rows, as-of {report['data']['as_of']}, {report['machine']['cpus']} CPUs"
    )
    header = f"{'':26} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'rows/CPU-s':>12}"
    print(header)
    print("-" * len(header))
    for c in report["contenders"]:
        print(
            f"{c['name']:26} {c['wall_s']:8.1f} {c['cpu_s']:8.1f} {c['peak_rss_mb']:12,.0f} "
            f"{c['usage_rows_per_cpu_s'] / 1e6:11.2f}M"
        )
    print()
    for name, value in report["ratios"].items():
        print(f"{name.replace('_', ' '):40} {value:6.2f}x")
    print()
    for t in report["targets"]:
        verdict = "PASS" if t["met"] else "MISS"
        print(f"{t['name']:30} {t['value']:>14,.2f}   target {t['target']:>12}   {verdict}")
    if "pandas_vs_hubscore" in report:
        check = report["pandas_vs_hubscore"]
        print(
            f"\npandas vs hubscore output: {check['pandas_rows']:,} vs {check['hubscore_rows']:,} "
            f"rows, {check['joined_rows']:,} joined on id; differing rows by feature: "
            f"{check['rows_differing_by_feature'] or 'none'}"
        )
    for note in report["notes"]:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
