"""`build-features`: validate, deduplicate, profile and aggregate the raw inputs with DuckDB.

The SQL lives in `sql/*.sql`; this module registers the input files, runs the named blocks in
order with bound parameters, enforces the reject budget, and writes the three outputs
atomically: `features.parquet`, `rejects.parquet` and `quality.json`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb

from hubscore import __version__
from hubscore.core.atomic import atomic_file, scratch_dir
from hubscore.core.config import FeaturesConfig
from hubscore.core.contract import (
    ALEXA_NO_RANK_SENTINEL,
    DATA_ASSUMPTIONS,
    EMPLOYEE_RANGES,
    USAGE_COLUMNS,
    USAGE_STAT_FEATURES,
)
from hubscore.core.errors import SchemaError, ValidationError, first_line
from hubscore.features import sql

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
        quality = validate_and_dedupe(con, request, inputs)
        target = "as_of" if request.as_of else request.features.target
        quality["spine"] = spine = _build_spine(con, request, target)
        sql.run(con, "history_at_as_of" if request.as_of else "history_by_cutoff")
        sql.register_layout(con, "usage_stat_layout", USAGE_STAT_FEATURES)
        sql.run(con, "no_usage_macro")
        # Nothing is written before this point, so a failed check leaves `out` untouched.
        with _staged_outputs(out) as staged:
            sql.run(con, "write_rejects", {"out": staged[REJECTS_FILE]})
            params = _feature_params(request, target, spine, staged[FEATURES_FILE])
            sql.run(con, "write_features", params)
            staged[QUALITY_FILE].write_text(json.dumps(quality, indent=2, default=str) + "\n")
    return BuildResult(out / FEATURES_FILE, out / REJECTS_FILE, out / QUALITY_FILE, quality)


@contextlib.contextmanager
def _staged_outputs(out: Path) -> Iterator[dict[str, Path]]:
    """Stage every output as a temp file; rename them into `out` only if all succeed."""
    names = (FEATURES_FILE, REJECTS_FILE, QUALITY_FILE)
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(atomic_file(out / name)) for name in names}


def find_input(data_dir: Path, kind: InputKind) -> Path:
    """Return `<kind>.parquet` or `<kind>.csv` in `data_dir`."""
    if not data_dir.is_dir():
        raise ValidationError(
            f"the input folder {data_dir} does not exist"
            if not data_dir.exists()
            else f"the input folder {data_dir} is not a folder",
            hint=f"pass --data-dir (or set data.dir) to the folder holding the "
            f"{', '.join(INPUT_KINDS)} files",
        )
    for suffix in (".parquet", ".csv"):
        path = data_dir / f"{kind}{suffix}"
        if path.is_file():
            return path
    raise ValidationError(
        f"no {kind}.csv or {kind}.parquet in {data_dir}",
        hint=f"pass --data-dir with the folder holding {', '.join(INPUT_KINDS)} files",
    )


def register_input(con: duckdb.DuckDBPyConnection, kind: InputKind, path: Path) -> None:
    """Expose one input file as the view `raw_<kind>` with a 1-based `_row` column."""
    try:
        if path.suffix == ".parquet":
            relation = con.read_parquet(str(path), file_row_number=True)
            relation = relation.project("file_row_number + 1 as _row, * exclude (file_row_number)")
        else:
            _check_csv_bytes(path)
            relation = con.read_csv(
                str(path), header=True, all_varchar=True, delimiter=",", quotechar='"'
            )
            # Materialised: a CSV is parsed once, and row_number() follows file order.
            relation = relation.project("row_number() over () as _row, *")
        _check_columns(path, kind, relation.columns)
        if not relation.limit(1).fetchall():
            raise ValidationError(
                f"{path} has a header but no rows", hint="check the export that wrote it"
            )
    except duckdb.Error as exc:
        raise ValidationError(
            f"{path} could not be read: {first_line(exc)}",
            hint="check that it is a UTF-8 CSV with a header row, or a Parquet file",
        ) from None
    if path.suffix == ".parquet":
        relation.create_view(RAW_VIEWS[kind])
    else:
        relation.to_table(RAW_VIEWS[kind])


def _check_csv_bytes(path: Path) -> None:
    """Refuse empty and non-UTF-8 files before DuckDB guesses at them."""
    if path.stat().st_size == 0:
        raise ValidationError(f"{path} is empty (0 bytes)", hint="re-export the file")
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(
                    f"{path} is not UTF-8: line {number} has byte "
                    f"0x{line[exc.start]:02x} at column {exc.start + 1}",
                    hint="re-export the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                ) from None


def _check_columns(path: Path, kind: InputKind, columns: list[str]) -> None:
    present = {c.strip().lower() for c in columns}
    missing = [c for c in REQUIRED_COLUMNS[kind] if c.lower() not in present]
    if missing:
        raise SchemaError(
            f"{path} is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {', '.join(c for c in columns if c != '_row')})",
            hint=f"a {kind} file needs {', '.join(REQUIRED_COLUMNS[kind])}; names match "
            "case-insensitively, order does not matter",
        )


def validate_and_dedupe(
    con: duckdb.DuckDBPyConnection, request: BuildRequest, inputs: dict[InputKind, Path]
) -> dict[str, Any]:
    """Check, quarantine and deduplicate; return the quality profile so far."""
    for block in CHECK_BLOCKS:
        sql.run(con, block)
    for block in ("dedupe_customers", "dedupe_noncustomers", "build_companies"):
        sql.run(con, block)
    _summarise_valid_usage(con, request.as_of)
    files = {"customers_file": inputs["customers"], "noncustomers_file": inputs["noncustomers"]}
    sql.run(con, "collect_rejects", {**files, "usage_file": inputs["usage_actions"]})
    reject_rows = sql.fetch_dicts(con, "reject_summary")
    read = sql.fetch_dicts(con, "input_row_counts")[0]
    report = _file_report(inputs, read, reject_rows)
    _enforce_reject_budget(report, reject_rows, request.features.max_reject_rate)
    for block in ("collect_repeated_usage", "resolve_usage_duplicates", "dedupe_usage"):
        sql.run(con, block)
    duplicates = {row.pop("file"): row for row in sql.fetch_dicts(con, "company_duplicates")}
    duplicates["usage_actions"] = sql.fetch_dicts(con, "usage_duplicates")[0]
    sentinel = {"no_rank_sentinel": ALEXA_NO_RANK_SENTINEL}
    return {
        "hubscore_version": __version__,
        "files": report,
        "rejects": reject_rows,
        "duplicates": duplicates,
        "missing_by_label": sql.fetch_dicts(con, "missing_by_label", sentinel),
        "unseen_employee_ranges": sql.fetch_dicts(
            con, "unseen_employee_ranges", {"known_ranges": list(EMPLOYEE_RANGES)}
        ),
        "usage": sql.fetch_dicts(con, "usage_profile")[0],
        "customers": sql.fetch_dicts(con, "customer_profile")[0],
        "assumptions": list(DATA_ASSUMPTIONS),
    }


def _summarise_valid_usage(con: duckdb.DuckDBPyConnection, as_of: date | None) -> None:
    """Summarise usage per company in one pass, assuming every row is valid; if some are not,
    name their problems and summarise again without them."""
    sql.run(con, "summarise_usage", {"as_of": as_of})
    if sql.fetch_dicts(con, "count_bad_usage_rows")[0]["bad_rows"]:
        sql.run(con, "find_usage_rejects")
        sql.run(con, "summarise_usage", {"as_of": as_of})


def _file_report(
    inputs: dict[InputKind, Path], read: dict[str, int], reject_rows: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for kind, path in inputs.items():
        rejected = sum(r["rows"] for r in reject_rows if r["source_file"] == str(path))
        rows = read[kind]
        report[kind] = {
            "path": str(path),
            "rows": rows,
            "rejected": rejected,
            "reject_rate": rejected / rows if rows else 0.0,
        }
    return report


def _enforce_reject_budget(
    files: dict[str, dict[str, Any]], reject_rows: list[dict[str, Any]], max_rate: float
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


def _build_spine(
    con: duckdb.DuckDBPyConnection, request: BuildRequest, target: str
) -> dict[str, Any]:
    """Create the `spine` table for the target and return its summary."""
    timeline = sql.fetch_dicts(con, "usage_timeline")[0]
    if timeline["usage_end"] is None:
        raise ValidationError(
            "no valid usage rows: every usage row was rejected or the file is empty",
            hint="check usage_actions and rejects.parquet",
        )
    cfg = request.features
    params: dict[str, Any] = {"eligibility": cfg.eligibility}
    if target == "converted_within":
        params |= {"cutoffs": weekly_cutoffs(timeline, cfg), "horizon_days": cfg.horizon_days}
    else:
        params["as_of"] = request.as_of or timeline["usage_end"]
    sql.run(con, "first_usage_macro")
    sql.run(con, f"spine_{target}", params)
    summary = sql.fetch_dicts(con, "spine_summary")[0]
    if target != "as_of":
        summary |= sql.fetch_dicts(con, "spine_positives")[0]
    if not summary["rows"]:
        raise ValidationError(
            f"the {target} spine is empty: no company is eligible",
            hint="check --as-of against the files' dates and the eligibility setting",
        )
    return {"target": target, **timeline, **summary}


def weekly_cutoffs(timeline: dict[str, Any], cfg: FeaturesConfig) -> list[date]:
    """Return the Sunday cutoffs with a full look-back window and a fully observed horizon."""
    first_week: date = timeline["first_week"]
    usage_end: date = timeline["usage_end"]
    known_until = max(usage_end, timeline["last_close"] or usage_end)
    weeks_back = math.ceil(max(cfg.lookback_days - 7, 0) / 7)
    first = first_week + timedelta(days=6 + 7 * weeks_back)
    last = min(usage_end, known_until - timedelta(days=cfg.horizon_days))
    last -= timedelta(days=(last.isoweekday() % 7))  # back to a Sunday
    if first > last:
        raise ValidationError(
            f"usage from {first_week} to {usage_end} is too short for a {cfg.lookback_days}-day "
            f"look-back and a {cfg.horizon_days}-day horizon",
            hint="lower --lookback-days or --horizon-days, or use more history",
        )
    return [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]


def _feature_params(
    request: BuildRequest, target: str, spine: dict[str, Any], out: Path
) -> dict[str, Any]:
    cfg = request.features
    return {
        "out": str(out),
        "window_start": spine["first_cutoff"] - timedelta(days=cfg.lookback_days),
        "window_end": spine["last_cutoff"],
        "lookback_days": cfg.lookback_days,
        "recent_days": cfg.recent_days,
        "no_rank_sentinel": ALEXA_NO_RANK_SENTINEL,
        "hubscore_version": __version__,
        "target": target if target != "as_of" else cfg.target,
        "horizon_days_text": str(cfg.horizon_days),
        "lookback_days_text": str(cfg.lookback_days),
        "recent_days_text": str(cfg.recent_days),
        "as_of_text": request.as_of.isoformat() if request.as_of else "",
    }
