"""Benchmark `hubscore build-features` against baselines measured in the same run.

    uv run python bench/bench_build.py                           # --as-of: 1M companies
    uv run python bench/bench_build.py --target converted_within # the training spine
    uv run python bench/bench_build.py --companies 100000        # a quick run

Separate processes run over the same generated Parquet inputs (1M companies, 17.6M usage rows
by default), each timed by the kernel (`os.wait4`: user+sys CPU seconds and peak RSS of that
process alone):

- `hubscore build-features --as-of` (or, with `--target converted_within`, the training
  spine): validation, dedupe, quality profile, features, as `python -m hubscore`;
- a bare DuckDB scan that reads every column of the usage Parquet: the floor for any reader;
- with `--as-of`, a naive one-query DuckDB aggregation of the same features and a pandas
  groupby implementation (build_baselines.py). Neither validates, quarantines or
  deduplicates: both do strictly less work than hubscore.

Each target is reported PASS or MISS against its baseline measured in the same run. Figures
go to stdout and bench/out/build_results[_converted_within].json; see bench/README.md.
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

from build_baselines import compare_outputs, run_baseline

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
STAMP = ".bench-stamp.json"
SEED = 42
WEEKS = 78
TARGET_ROWS_PER_CPU_S = 2_500_000  # issue 21
TARGET_NAIVE_RATIO = 1.5  # issue 21: hubscore's CPU at most 1.5x the naive query's
TARGET_RSS_MB = 1500.0  # 1.5 GB, decimal: the stricter reading
TARGET_PANDAS_RATIO = 4.0  # issue 2
MB = 1e6
BUILD = "hubscore build-features"
BEFORE = "before: build-features"
SCAN = "bare DuckDB scan"
NAIVE = "naive DuckDB query"
PANDAS = "pandas groupby"
NOTES = {
    NAIVE: "the naive query reads the Parquet files as they are (no validation, quarantine, "
    "deduplication or quality profile) and uses stddev_pop, not exact sums",
    PANDAS: "pandas reads the Parquet files as they are: no validation, quarantine, "
    "deduplication or quality profile (companies are only made unique by id)",
}


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
    """Generate (or reuse) the inputs, measure the contenders, report and save."""
    args = parse_args(argv)
    if args.child:
        run_baseline(args.child, args.out, date.fromisoformat(args.as_of))
        return
    data = args.out
    usage_rows = ensure_data(data, companies=args.companies, activity=args.activity)
    as_of = last_sunday(data / "usage_actions.parquet")
    labelled = args.target == "converted_within"
    print(
        f"{usage_rows:,} usage rows in {data}; {args.target}"
        + ("" if labelled else f" {as_of}")
        + f"; {os.cpu_count()} CPUs",
        flush=True,
    )
    build = build_command(data, None if labelled else as_of, args.memory_limit)
    contenders = []
    if args.before:  # first, so the outputs compared below are this checkout's
        before = [build[0], "-P", *build[1:]]  # -P: not the working directory's hubscore
        contenders.append(measure(BEFORE, before, data, args.repeat, checkout=args.before))
    contenders.append(measure(BUILD, build, data, args.repeat))
    baselines = [SCAN] if labelled else [SCAN, NAIVE] + ([] if args.skip_pandas else [PANDAS])
    for name in baselines:
        kind = {SCAN: "scan", NAIVE: "naive", PANDAS: "pandas"}[name]
        contenders.append(measure(name, child_command(kind, data, as_of), data, args.repeat))
    quality = json.loads((data / "build" / "quality.json").read_text())
    report = build_report(contenders, usage_rows=usage_rows, target=args.target, data=data)
    report["data"] |= {"as_of": None if labelled else as_of.isoformat()}
    report["data"] |= {"spine_rows": quality["spine"]["rows"], "memory_limit": args.memory_limit}
    if not labelled:
        report["outputs_vs_hubscore"] = {
            name: compare_outputs(data, name.split()[0]) for name in baselines[1:]
        }
    print_report(report)
    results = OUT / f"build_results{'_converted_within' if labelled else ''}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {results.relative_to(ROOT)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`--child` is internal: the measured child processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=1_000_000, help="companies [1000000]")
    parser.add_argument("--activity", type=float, default=None, help="usage rows multiplier [6.0]")
    parser.add_argument("--out", type=Path, default=OUT / "build-1m", help="input/output folder")
    parser.add_argument(
        "--target",
        choices=("as_of", "converted_within"),
        default="as_of",
        help="build the --as-of scoring input or the converted_within training spine [as_of]",
    )
    parser.add_argument(
        "--memory-limit", default="auto", help="hubscore's --memory-limit [auto: 25%% of RAM]"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (median) [1]")
    parser.add_argument("--skip-pandas", action="store_true", help="skip the pandas baseline")
    parser.add_argument(
        "--before", type=Path, help="a checkout of an earlier hubscore to measure too"
    )
    parser.add_argument("--child", choices=("scan", "naive", "pandas"), help=argparse.SUPPRESS)
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


def build_command(data: Path, as_of: date | None, memory_limit: str) -> list[str]:
    """Return the build command (the training spine without `as_of`), run by this interpreter
    without `uv run` in between."""
    command = [sys.executable, "-m", "hubscore", "build-features", "--data-dir", str(data)]
    command += ["--out", str(data / "build")]
    if memory_limit != "auto":  # the default, left out: an older hubscore has no such flag
        command += ["--memory-limit", memory_limit]
    return command + (["--as-of", as_of.isoformat()] if as_of else [])


def child_command(kind: str, data: Path, as_of: date) -> list[str]:
    """Return the command that runs one baseline of this script in a fresh process."""
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--child", kind, "--out", str(data), "--as-of", str(as_of)]


def measure(
    name: str, command: list[str], data: Path, repeat: int, checkout: Path | None = None
) -> Contender:
    """Run `command` `repeat` times (with `checkout`'s hubscore first on the path); fail loudly
    if it fails."""
    runs = []
    log = data / f"{name.split()[0].lower().rstrip(':')}.log"
    for n in range(repeat):
        print(f"running {name} ({n + 1}/{repeat}) ...", end=" ", flush=True)
        run = run_measured(command, log, checkout)
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


def run_measured(command: list[str], log: Path, checkout: Path | None = None) -> Run:
    """Run one child and read its own CPU time and peak RSS from `wait4` (not its parent's)."""
    result = log.with_suffix(".rusage.json")
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())} if checkout else None
    with log.open("w") as sink:
        launcher = [sys.executable, "-S", "-c", LAUNCHER, str(result), *command]
        subprocess.run(
            launcher, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, check=True, env=env
        )
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


# --- reporting --------------------------------------------------------------------------------


def build_report(
    contenders: list[Contender], *, usage_rows: int, target: str, data: Path
) -> dict[str, Any]:
    """Return the figures, ratios and target verdicts as one JSON-ready dict."""
    by_name = {c.name: c for c in contenders}
    build = by_name[BUILD]
    ratios = {"hubscore_cpu_over_bare_scan_cpu": build.cpu_s / by_name[SCAN].cpu_s}
    targets = []
    if target == "as_of":
        naive = by_name[NAIVE]
        ratios["hubscore_cpu_over_naive_cpu"] = build.cpu_s / naive.cpu_s
        ratios["hubscore_wall_over_naive_wall"] = build.wall_s / naive.wall_s
        targets = [
            goal(
                "usage rows per CPU-second", usage_rows / build.cpu_s, ">=", TARGET_ROWS_PER_CPU_S
            ),
            goal(
                "CPU / naive query's CPU",
                ratios["hubscore_cpu_over_naive_cpu"],
                "<=",
                TARGET_NAIVE_RATIO,
            ),
            goal("peak RSS MB", build.peak_rss_mb, "<=", TARGET_RSS_MB),
        ]
    if BEFORE in by_name:
        before = by_name[BEFORE]
        ratios["before_cpu_over_hubscore_cpu"] = before.cpu_s / build.cpu_s
        if target == "as_of":
            ratios["before_cpu_over_naive_cpu"] = before.cpu_s / by_name[NAIVE].cpu_s
    if PANDAS in by_name:
        pandas = by_name[PANDAS]
        ratios["pandas_cpu_over_hubscore_cpu"] = pandas.cpu_s / build.cpu_s
        ratios["pandas_wall_over_hubscore_wall"] = pandas.wall_s / build.wall_s
        ratio = ratios["pandas_cpu_over_hubscore_cpu"]
        targets.append(goal("pandas CPU / hubscore CPU", ratio, ">=", TARGET_PANDAS_RATIO))
    return {
        "hubscore_version": _hubscore_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "data": {"dir": str(data), "usage_rows": usage_rows, "target": target},
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
        "notes": [NOTES[c.name] for c in contenders if c.name in NOTES],
    }


def goal(name: str, value: float, op: str, bound: float) -> dict[str, Any]:
    """Return one target with its verdict."""
    met = value >= bound if op == ">=" else value <= bound
    return {"name": name, "value": value, "target": f"{op} {bound:,g}", "met": met}


def _hubscore_version() -> str:
    from hubscore import __version__

    return __version__


def print_report(report: dict[str, Any]) -> None:
    """Print the figures, the ratios and the targets with PASS/MISS."""
    data = report["data"]
    what = data["target"] + (f" {data['as_of']}" if data["as_of"] else "")
    print(
        f"\n{data['usage_rows']:,} usage rows, {what}: {data['spine_rows']:,} feature rows; "
        f"--memory-limit {data['memory_limit']}; {report['machine']['cpus']} CPUs"
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
    for name, check in report.get("outputs_vs_hubscore", {}).items():
        print(
            f"\n{name} vs hubscore output: {check['baseline_rows']:,} vs "
            f"{check['hubscore_rows']:,} rows, {check['joined_rows']:,} joined on id; differing "
            f"rows by feature: {check['rows_differing_by_feature'] or 'none'}"
        )
    for note in report["notes"]:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
