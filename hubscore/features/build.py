"""`build-features`: validate, deduplicate, profile and aggregate the raw inputs with DuckDB.

The SQL lives in `sql/*.sql`; this module registers the input files, runs the named blocks in
order with bound parameters, enforces the reject budget, and writes the three outputs
atomically: `features.parquet`, `rejects.parquet` and `quality.json`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb

from hubscore._version import __version__
from hubscore.core.atomic import atomic_file, scratch_dir
from hubscore.core.config import FeaturesConfig
from hubscore.core.contract import (
    ALEXA_NO_RANK_SENTINEL,
    DATA_ASSUMPTIONS,
    EMPLOYEE_RANGES,
    FEATURES_VERSION,
    USAGE_COLUMNS,
    USAGE_STAT_FEATURES,
)
from hubscore.core.errors import SchemaError, ValidationError, first_line
from hubscore.features import sql
from hubscore.features.folders import (
    PartFormat,
    check_csv_content,
    check_same_headers,
    folder_names,
    local_parts,
    open_part,
)
from hubscore.features.partials import merge_partials

InputKind = Literal["customers", "noncustomers", "usage_actions"]
INPUT_KINDS: tuple[InputKind, ...] = ("customers", "noncustomers", "usage_actions")
REQUIRED_COLUMNS: dict[InputKind, tuple[str, ...]] = {
    "customers": ("CLOSEDATE", "MRR", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id"),
    "noncustomers": ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id"),
    "usage_actions": ("id", "WHEN_TIMESTAMP", *USAGE_COLUMNS),
}
RAW_VIEWS: dict[InputKind, str] = {
    "customers": "raw_customers",
    "noncustomers": "raw_noncustomers",
    "usage_actions": "raw_usage",
}
CHECK_BLOCKS = (
    "check_customers",
    "check_noncustomers",
    "type_usage",
    "check_usage",
    "assume_usage_valid",
    "valid_usage",
)
FEATURES_FILE = "features.parquet"
REJECTS_FILE = "rejects.parquet"
QUALITY_FILE = "quality.json"
# DuckDB spills to disk past the memory limit, which keeps the nightly build's peak memory
# bounded.
DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {"memory_limit": "1GB"}


@dataclass(frozen=True)
class BuildRequest:
    """What to build: inputs, outputs, spine and windows."""

    data_dir: Path
    out_dir: Path
    features: FeaturesConfig
    as_of: date | None = None


@dataclass(frozen=True)
class BuildResult:
    """Where the outputs went and what the quality profile found."""

    features_path: Path
    rejects_path: Path
    quality_path: Path
    quality: dict[str, Any]


def build_features(request: BuildRequest) -> BuildResult:
    """Run validation, deduplication, the spine and the aggregates; write the three outputs."""
    inputs = {kind: find_input(request.data_dir, kind) for kind in INPUT_KINDS}
    sources: dict[str, str] = {kind: str(path) for kind, path in inputs.items()}
    out = request.out_dir
    # DuckDB spills into a scratch folder of ours beside `out` (by default `.tmp/` in the
    # working directory), so a killed run's spill files are litter the next run removes, and
    # a run that fails its checks still creates nothing in `out`.
    with (
        scratch_dir(out) as spill,
        duckdb.connect(config={**DUCKDB_CONFIG, "temp_directory": str(spill)}) as con,
    ):
        con.execute("set enable_progress_bar = false")  # cron mail stays clean
        for kind, path in inputs.items():
            register_input(con, kind, path)
        # The whole input is one partition: the Spark engine runs these same steps per
        # hash-partition of id and merges the partials (hubscore/spark/build.py).
        prepared = prepare_partition(con, sources, request.as_of)
        check_prepared(request, sources, [prepared])
        plan = plan_build(request, sources, merge_partials([prepared])["timeline"])
        # Nothing is renamed into `out` before every check has passed.
        with _staged_outputs(out) as staged:
            partial = finish_partition(
                con, plan, features_out=staged[FEATURES_FILE], rejects_out=staged[REJECTS_FILE]
            )
            quality = assemble_quality(plan, [prepared | partial])
            staged[QUALITY_FILE].write_text(json.dumps(quality, indent=2, default=str) + "\n")
    return BuildResult(out / FEATURES_FILE, out / REJECTS_FILE, out / QUALITY_FILE, quality)


@contextlib.contextmanager
def _staged_outputs(out: Path) -> Iterator[dict[str, Path]]:
    """Stage every output as a temp file; rename them into `out` only if all succeed."""
    names = (FEATURES_FILE, REJECTS_FILE, QUALITY_FILE)
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(atomic_file(out / name)) for name in names}


def find_input(data_dir: Path, kind: InputKind) -> Path:
    """Return `<kind>.parquet` or `<kind>.csv` in `data_dir`, a file or a folder of parts."""
    if not data_dir.is_dir():
        raise ValidationError(
            f"the input folder {data_dir} does not exist"
            if not data_dir.exists()
            else f"the input folder {data_dir} is not a folder",
            hint=f"pass --data-dir (or set data.dir) to the folder holding the "
            f"{', '.join(INPUT_KINDS)} files",
        )
    for name in folder_names(kind):
        path = data_dir / name
        if path.is_dir() or (path.is_file() and name != kind):
            return path
    raise ValidationError(
        f"no {kind}.csv or {kind}.parquet (file or folder of parts) in {data_dir}",
        hint=f"pass --data-dir with the folder holding {', '.join(INPUT_KINDS)} files",
    )


def register_input(con: duckdb.DuckDBPyConnection, kind: InputKind, path: Path) -> None:
    """Expose one input file as the view `raw_<kind>` with a 1-based `_row` column."""
    fmt, parts = local_parts(path) if path.is_dir() else (None, [path])
    try:
        if path.is_file() and path.suffix == ".parquet":
            relation = con.read_parquet(str(path), file_row_number=True)
            relation = relation.project("file_row_number + 1 as _row, * exclude (file_row_number)")
        else:
            relation = _read_parts(con, str(path), parts, fmt or "csv")
            # Materialised: parsed once, and row_number() follows file order (parts in order).
            relation = relation.project("row_number() over () as _row, *")
        check_columns(path, kind, relation.columns)
        if not relation.limit(1).fetchall():
            raise ValidationError(
                f"{path} has a header but no rows", hint="check the export that wrote it"
            )
    except duckdb.Error as exc:
        raise ValidationError(
            f"{path} could not be read: {first_line(exc)}",
            hint="check that it is a UTF-8 CSV with a header row, or a Parquet file",
        ) from None
    if path.is_file() and path.suffix == ".parquet":
        relation.create_view(RAW_VIEWS[kind])
    else:
        relation.to_table(RAW_VIEWS[kind])


def _read_parts(
    con: duckdb.DuckDBPyConnection, name: str, parts: list[Path], fmt: PartFormat
) -> duckdb.DuckDBPyRelation:
    """Read a CSV file, or a folder's parts as one input (CSV headers checked alike)."""
    files = [str(part) for part in parts]
    if fmt == "parquet":
        return con.read_parquet(files)
    headers = {str(part): check_csv_bytes(part) for part in parts}
    check_same_headers(name, headers)
    return con.read_csv(files, header=True, all_varchar=True, delimiter=",", quotechar='"')


def check_csv_bytes(path: Path) -> list[str]:
    """Refuse empty and non-UTF-8 files before DuckDB guesses at them; return the header."""
    with open_part(path) as handle:
        return check_csv_content(str(path), path.stat().st_size, handle)


def check_columns(path: Path | str, kind: InputKind, columns: list[str]) -> None:
    """Refuse an input without the columns its kind needs (names match case-insensitively)."""
    present = {c.strip().lower() for c in columns}
    missing = [c for c in REQUIRED_COLUMNS[kind] if c.lower() not in present]
    if missing:
        raise SchemaError(
            f"{path} is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {', '.join(c for c in columns if c != '_row')})",
            hint=f"a {kind} file needs {', '.join(REQUIRED_COLUMNS[kind])}; names match "
            "case-insensitively, order does not matter",
        )


Partial = dict[str, Any]
"""One partition's profile: the results of the profile blocks, summed by `merge_partials`."""


@dataclass(frozen=True)
class BuildPlan:
    """The global values every partition binds: its sources, the spine and the windows."""

    target: str
    spine_params: dict[str, Any]
    sources: dict[str, str]
    features: FeaturesConfig
    first_week_end: date
    """The end of the files' first usage week: look-back windows before it are unobserved."""
    as_of: date | None = None


def prepare_partition(
    con: duckdb.DuckDBPyConnection, sources: Mapping[str, str], as_of: date | None
) -> Partial:
    """Check, quarantine and deduplicate the registered inputs; return rows read and rejected."""
    for block in CHECK_BLOCKS:
        sql.run(con, block)
    for block in ("dedupe_customers", "dedupe_noncustomers", "build_companies"):
        sql.run(con, block)
    _summarise_valid_usage(con, as_of)
    files = {"customers_file": sources["customers"], "noncustomers_file": sources["noncustomers"]}
    sql.run(con, "collect_rejects", {**files, "usage_file": sources["usage_actions"]})
    return {
        "read": sql.fetch_dicts(con, "input_row_counts")[0],
        "rejects": sql.fetch_dicts(con, "reject_summary"),
        "timeline": sql.fetch_dicts(con, "usage_timeline")[0],
    }


def dedupe_usage(con: duckdb.DuckDBPyConnection) -> None:
    """Resolve usage rows sharing (id, week): the `usage` view keeps the most actions."""
    for block in ("collect_repeated_usage", "resolve_usage_duplicates", "dedupe_usage"):
        sql.run(con, block)


def check_prepared(
    request: BuildRequest, sources: Mapping[str, str], partials: Sequence[Partial]
) -> None:
    """Fail on a file without rows, too many bad rows or no valid usage (the global checks)."""
    merged = merge_partials(partials)
    for kind in INPUT_KINDS:
        if not merged["read"][kind]:
            raise ValidationError(
                f"{sources[kind]} has a header but no rows", hint="check the export that wrote it"
            )
    report = file_report(sources, merged["read"], merged["rejects"])
    _enforce_reject_budget(report, merged["rejects"], request.features.max_reject_rate)
    if merged["timeline"]["usage_end"] is None:
        raise ValidationError(
            "no valid usage rows: every usage row was rejected or the file is empty",
            hint="check usage_actions and rejects.parquet",
        )


def plan_build(
    request: BuildRequest, sources: Mapping[str, str], timeline: Mapping[str, Any]
) -> BuildPlan:
    """Bind the spine and the windows to the global usage calendar."""
    target = "as_of" if request.as_of else request.features.target
    cfg = request.features
    params: dict[str, Any] = {"eligibility": cfg.eligibility}
    if target == "converted_within":
        params |= {"cutoffs": weekly_cutoffs(timeline, cfg), "horizon_days": cfg.horizon_days}
    else:
        params["as_of"] = request.as_of or timeline["usage_end"]
    first_week_end = timeline["first_week"] + timedelta(days=6)
    return BuildPlan(target, params, dict(sources), cfg, first_week_end, request.as_of)


def finish_partition(
    con: duckdb.DuckDBPyConnection, plan: BuildPlan, *, features_out: Path, rejects_out: Path
) -> Partial:
    """Resolve repeated weeks, profile, build the spine and write this partition's outputs."""
    dedupe_usage(con)
    sentinel = {"no_rank_sentinel": ALEXA_NO_RANK_SENTINEL}
    partial: Partial = {
        "company_duplicates": sql.fetch_dicts(con, "company_duplicates"),
        "usage_duplicates": sql.fetch_dicts(con, "usage_duplicates")[0],
        "missing_by_label": sql.fetch_dicts(con, "missing_by_label", sentinel),
        "unseen_employee_ranges": sql.fetch_dicts(
            con, "unseen_employee_ranges", {"known_ranges": list(EMPLOYEE_RANGES)}
        ),
        "usage": sql.fetch_dicts(con, "usage_profile")[0],
        "customers": sql.fetch_dicts(con, "customer_profile")[0],
    }
    sql.run(con, "first_usage_macro")
    sql.run(con, f"spine_{plan.target}", plan.spine_params)
    spine = sql.fetch_dicts(con, "spine_summary")[0] | sql.fetch_dicts(con, "spine_cutoff_list")[0]
    if plan.target != "as_of":
        spine |= sql.fetch_dicts(con, "spine_positives")[0]
    partial["spine"] = spine
    sql.run(con, "history_at_as_of" if plan.as_of else "history_by_cutoff")
    sql.run(con, "write_rejects", {"out": rejects_out})
    sql.register_layout(con, "usage_stat_layout", USAGE_STAT_FEATURES)
    sql.run(con, "no_usage_macro")
    sql.run(con, "exact_std_macro")
    sql.run(con, "write_features", _feature_params(plan, spine, features_out))
    return partial


def assemble_quality(plan: BuildPlan, partials: Sequence[Partial]) -> dict[str, Any]:
    """Sum the partitions' profiles into the quality report; refuse an empty spine."""
    merged = merge_partials(partials)
    spine = merged["spine"]
    if not spine["rows"]:
        raise ValidationError(
            f"the {plan.target} spine is empty: no company is eligible",
            hint="check --as-of against the files' dates and the eligibility setting",
        )
    duplicates = {row.pop("file"): row for row in merged["company_duplicates"]}
    duplicates["usage_actions"] = merged["usage_duplicates"]
    summary = {key: spine[key] for key in ("rows", "companies")}
    summary["cutoffs"] = len(spine["cutoff_list"])
    summary |= {key: spine[key] for key in ("first_cutoff", "last_cutoff")}
    if plan.target != "as_of":
        summary["positives"] = spine["positives"]
    return {
        "hubscore_version": __version__,
        "files": file_report(plan.sources, merged["read"], merged["rejects"]),
        "rejects": merged["rejects"],
        "duplicates": duplicates,
        "missing_by_label": merged["missing_by_label"],
        "unseen_employee_ranges": merged["unseen_employee_ranges"],
        "usage": merged["usage"],
        "customers": merged["customers"],
        "assumptions": list(DATA_ASSUMPTIONS),
        "spine": {"target": plan.target, **merged["timeline"], **summary},
    }


def _summarise_valid_usage(con: duckdb.DuckDBPyConnection, as_of: date | None) -> None:
    """Summarise usage per company in one pass, assuming every row is valid; if some are not,
    name their problems and summarise again without them."""
    sql.run(con, "summarise_usage", {"as_of": as_of})
    if sql.fetch_dicts(con, "count_bad_usage_rows")[0]["bad_rows"]:
        sql.run(con, "find_usage_rejects")
        sql.run(con, "summarise_usage", {"as_of": as_of})


def file_report(
    sources: Mapping[str, str], read: Mapping[str, int], reject_rows: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Return rows read, rejected and the reject rate of each input file."""
    report: dict[str, dict[str, Any]] = {}
    for kind, path in sources.items():
        rejected = sum(r["rows"] for r in reject_rows if r["source_file"] == path)
        rows = read[kind]
        report[kind] = {
            "path": path,
            "rows": rows,
            "rejected": rejected,
            "reject_rate": rejected / rows if rows else 0.0,
        }
    return report


def _enforce_reject_budget(
    files: dict[str, dict[str, Any]], reject_rows: Sequence[Mapping[str, Any]], max_rate: float
) -> None:
    """Fail the run when any file has more bad rows than the budget allows."""
    for report in files.values():
        if report["reject_rate"] <= max_rate:
            continue
        reasons = [r for r in reject_rows if r["source_file"] == report["path"]][:3]
        detail = "; ".join(
            f"{r['column']}: {r['reason']} ({r['rows']} rows, e.g. rows "
            f"{', '.join(map(str, r['first_rows']))})"
            for r in reasons
        )
        raise ValidationError(
            f"{report['path']}: {report['rejected']} of {report['rows']} rows are bad "
            f"({report['reject_rate']:.1%} > max_reject_rate {max_rate:.1%}): {detail}",
            hint="fix the export, or raise --max-reject-rate to quarantine them and go on",
        )


def weekly_cutoffs(timeline: Mapping[str, Any], cfg: FeaturesConfig) -> list[date]:
    """Return the Sunday cutoffs after the warm-up with a fully observed horizon.

    The first cutoff has `warmup_days` of history (the whole look-back when the warm-up is as
    long); earlier windows are partly before the files start, which weeks_observed tells.
    """
    first_week: date = timeline["first_week"]
    usage_end: date = timeline["usage_end"]
    known_until = max(usage_end, timeline["last_close"] or usage_end)
    warmup_days = min(cfg.warmup_days, cfg.lookback_days)
    weeks_back = math.ceil(max(warmup_days - 7, 0) / 7)
    first = first_week + timedelta(days=6 + 7 * weeks_back)
    last = min(usage_end, known_until - timedelta(days=cfg.horizon_days))
    last -= timedelta(days=(last.isoweekday() % 7))  # back to a Sunday
    if first > last:
        raise ValidationError(
            f"usage from {first_week} to {usage_end} is too short for a {warmup_days}-day "
            f"warm-up and a {cfg.horizon_days}-day horizon",
            hint="lower --warmup-days or --horizon-days, or use more history",
        )
    return [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


def _feature_params(plan: BuildPlan, spine: Mapping[str, Any], out: Path) -> dict[str, Any]:
    cfg = plan.features
    first, last = spine["first_cutoff"], spine["last_cutoff"]  # NULL in a partition without rows
    return {
        "out": str(out),
        "window_start": first - timedelta(days=cfg.lookback_days) if first else None,
        "window_end": last,
        "lookback_days": cfg.lookback_days,
        "recent_days": cfg.recent_days,
        "first_week_end": plan.first_week_end,
        "no_rank_sentinel": ALEXA_NO_RANK_SENTINEL,
        "hubscore_version": __version__,
        "target": plan.target if plan.target != "as_of" else cfg.target,
        "horizon_days_text": str(cfg.horizon_days),
        "features_version_text": str(FEATURES_VERSION),
        "lookback_days_text": str(cfg.lookback_days),
        "recent_days_text": str(cfg.recent_days),
        "as_of_text": plan.as_of.isoformat() if plan.as_of else "",
    }
