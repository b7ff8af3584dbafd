"""`build-features`: validate, deduplicate, profile and aggregate the raw inputs with DuckDB.

The SQL lives in `sql/*.sql`; this module registers the input files, runs the named blocks in
order with bound parameters, enforces the reject budget, and publishes the three outputs as
one set (core/output_sets.py): `features.parquet`, `rejects.parquet` and `quality.json`.
DuckDB works in a database file of the build's scratch folder beside the output, within the
memory budget (`features.memory_limit`), and spills there past it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from hubscore._version import __version__
from hubscore.core.atomic import exclusive_lock, scratch_dir
from hubscore.core.config import FeaturesConfig
from hubscore.core.contract import (
    ALEXA_NO_RANK_SENTINEL,
    DATA_ASSUMPTIONS,
    EMPLOYEE_RANGES,
    FEATURES_VERSION,
    USAGE_STAT_FEATURES,
)
from hubscore.core.errors import ValidationError
from hubscore.core.output_sets import staged_set
from hubscore.features import memory, sql
from hubscore.features.calendar import (
    KnownUntil,
    is_customer_cutoffs,
    labels_known_until,
    weekly_cutoffs,
)
from hubscore.features.chunks import write_labelled_features
from hubscore.features.inputs import INPUT_KINDS, find_input, register_input
from hubscore.features.partials import merge_partials

CHECK_BLOCKS = (
    "check_customers",
    "check_noncustomers",
    "type_usage",
    "check_usage",
    "assume_usage_valid",
    "valid_usage",
)
COMPANY_BLOCKS = (
    "valid_company_rows",
    "repeated_company_ids",
    "dedupe_customers",
    "dedupe_noncustomers",
    "build_companies",
)
DROPS_AFTER_REJECTS = ("drop_customers_checked", "drop_noncustomers_checked")
"""What nothing reads once the quarantine is collected (memory for the feature pass)."""
DROPS_AFTER_PROFILE = ("drop_company_rows", "drop_repeated_company_ids")
"""What nothing reads once the duplicates are counted."""
FEATURE_MACROS = ("no_usage_macro", "exact_std_macro", "usage_stats_macro", "feature_rows_macro")
FEATURES_FILE = "features.parquet"
REJECTS_FILE = "rejects.parquet"
QUALITY_FILE = "quality.json"
OUTPUTS = (FEATURES_FILE, REJECTS_FILE, QUALITY_FILE)
WORK_DATABASE = "build.duckdb"
PARTITION_MEMORY_BYTES = 10**9
"""The budget of each Spark partition's in-process DuckDB (partitions are small by design)."""
DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "memory_limit": memory.duckdb_memory_limit(PARTITION_MEMORY_BYTES)
}


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
    """Run validation, deduplication, the spine and the aggregates; publish the three outputs."""
    inputs = {kind: find_input(request.data_dir, kind) for kind in INPUT_KINDS}
    sources: dict[str, str] = {kind: str(path) for kind, path in inputs.items()}
    out = request.out_dir
    budget = memory.budget_bytes(request.features.memory_limit)
    # The lock and the scratch folder are beside `out`: a run that fails its checks creates
    # nothing in it, and a killed run's scratch (database, spill files) is litter the next
    # run removes.
    with exclusive_lock(out), scratch_dir(out) as scratch, _connect(scratch, budget) as con:
        for kind, path in inputs.items():
            register_input(con, kind, path)
        # The whole input is one partition: the Spark engine runs these same steps per
        # hash-partition of id and merges the partials (hubscore/spark/build.py).
        prepared = prepare_partition(con, sources, request.as_of)
        check_prepared(request, sources, [prepared])
        plan = plan_build(request, sources, merge_partials([prepared])["timeline"])
        # Nothing reaches `out` before every check has passed, and then all at once.
        with staged_set(out, OUTPUTS, stage=scratch / "outputs") as staged:
            partial = finish_partition(
                con,
                plan,
                features_out=staged[FEATURES_FILE],
                rejects_out=staged[REJECTS_FILE],
                memory_bytes=budget,
            )
            quality = assemble_quality(plan, [prepared | partial])
            staged[QUALITY_FILE].write_text(json.dumps(quality, indent=2, default=str) + "\n")
    return BuildResult(out / FEATURES_FILE, out / REJECTS_FILE, out / QUALITY_FILE, quality)


def _connect(scratch: Path, budget: int) -> duckdb.DuckDBPyConnection:
    """Open DuckDB on a database file in the scratch folder, spilling beside it past `budget`.

    The file holds the labelled spines' large tables compressed; temp tables stay in memory.
    """
    con = duckdb.connect(
        str(scratch / WORK_DATABASE),
        config={
            "memory_limit": memory.duckdb_memory_limit(budget),
            "temp_directory": str(scratch / "spill"),
        },
    )
    con.execute("set enable_progress_bar = false")  # cron mail stays clean
    con.execute("pragma disable_checkpoint_on_shutdown")  # the file is scratch
    return con


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
    known_until: KnownUntil
    """The last day the files know conversions for: no label looks past it."""
    as_of: date | None = None


def prepare_partition(
    con: duckdb.DuckDBPyConnection, sources: Mapping[str, str], as_of: date | None
) -> Partial:
    """Check, quarantine and deduplicate the registered inputs; return rows read and rejected."""
    for block in CHECK_BLOCKS:
        sql.run(con, block)
    for block in COMPANY_BLOCKS:
        sql.run(con, block)
    _summarise_valid_usage(con, as_of)
    files = {"customers_file": sources["customers"], "noncustomers_file": sources["noncustomers"]}
    sql.run(con, "collect_rejects", {**files, "usage_file": sources["usage_actions"]})
    for block in DROPS_AFTER_REJECTS:
        sql.run(con, block)
    return {
        "read": sql.fetch_dicts(con, "input_row_counts")[0],
        "rejects": sql.fetch_dicts(con, "reject_summary"),
        "timeline": sql.fetch_dicts(con, "usage_timeline")[0],
    }


def dedupe_usage(con: duckdb.DuckDBPyConnection) -> None:
    """Resolve usage rows sharing (id, week): the `usage` view keeps the most actions."""
    sql.run(con, "collect_repeated_usage")
    if not sql.fetch_dicts(con, "repeated_usage_rows")[0]["rows"]:
        sql.run(con, "usage_without_repeats")  # most nights: valid rows pass straight through
        return
    for block in ("resolve_usage_duplicates", "dedupe_usage"):
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
    known = labels_known_until(timeline, cfg)
    params: dict[str, Any] = {"eligibility": cfg.eligibility}
    if target == "converted_within":
        params |= {"cutoffs": weekly_cutoffs(timeline, cfg), "horizon_days": cfg.horizon_days}
    elif target == "is_customer":
        as_of: date = timeline["usage_end"]
        first, last = is_customer_cutoffs(timeline, cfg, as_of)
        params |= {"as_of": as_of, "known_until": known.day}
        params |= {"first_cutoff": first, "last_cutoff": last}
    else:
        params["as_of"] = request.as_of
    first_week_end = timeline["first_week"] + timedelta(days=6)
    return BuildPlan(target, params, dict(sources), cfg, first_week_end, known, request.as_of)


def finish_partition(
    con: duckdb.DuckDBPyConnection,
    plan: BuildPlan,
    *,
    features_out: Path,
    rejects_out: Path,
    memory_bytes: int = PARTITION_MEMORY_BYTES,
) -> Partial:
    """Resolve repeated weeks, profile, build the spine and write this partition's outputs.

    Args:
        memory_bytes: the connection's memory budget, which sizes the labelled build's chunks.
    """
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
        "labels": sql.fetch_dicts(
            con, "closes_after_known_until", {"known_until": plan.known_until.day}
        )[0],
    }
    for block in DROPS_AFTER_PROFILE:
        sql.run(con, block)
    partial["spine"] = _build_spine(con, plan)
    sql.run(con, "write_rejects", {"out": rejects_out})
    _write_features(con, plan, partial["spine"], features_out, memory_bytes)
    return partial


def _build_spine(con: duckdb.DuckDBPyConnection, plan: BuildPlan) -> dict[str, Any]:
    """Create the `spine` table of the plan's target; return its summary for the profile."""
    sql.run(con, "first_usage_macro")
    sql.run(con, f"spine_{plan.target}", plan.spine_params)
    spine = sql.fetch_dicts(con, "spine_summary")[0] | sql.fetch_dicts(con, "spine_cutoff_list")[0]
    if plan.target != "as_of":
        spine |= sql.fetch_dicts(con, "spine_positives")[0]
    if plan.target == "is_customer":
        keys = ("as_of", "known_until", "first_cutoff", "last_cutoff")
        window = {k: plan.spine_params[k] for k in keys}
        spine |= sql.fetch_dicts(con, "is_customer_exclusions", window)[0]
    return spine


def _write_features(
    con: duckdb.DuckDBPyConnection,
    plan: BuildPlan,
    spine: Mapping[str, Any],
    out: Path,
    memory_bytes: int,
) -> None:
    """Write the spine's features: one pass for an --as-of spine, in chunks for a labelled one."""
    sql.register_layout(con, "usage_stat_layout", USAGE_STAT_FEATURES)
    for block in FEATURE_MACROS:
        sql.run(con, block)
    windows = {
        "lookback_days": plan.features.lookback_days,
        "recent_days": plan.features.recent_days,
        "first_week_end": plan.first_week_end,
        "no_rank_sentinel": ALEXA_NO_RANK_SENTINEL,
    }
    metadata = _feature_metadata(plan)
    if plan.as_of is not None:
        sql.run(con, "history_at_as_of")
        texts = {f"{key}_text": value for key, value in metadata.items() if key.endswith("_days")}
        sql.run(
            con,
            "write_features",
            windows
            | texts
            | {"out": out, "as_of": plan.as_of, "as_of_text": metadata["as_of"]}
            | {"features_version_text": metadata["features_version"]}
            | {"hubscore_version": __version__, "target": metadata["target"]},
        )
        return
    params = windows | {"window_end": spine["last_cutoff"]}
    rows = memory.rows_per_chunk(memory_bytes)
    write_labelled_features(con, params, out, metadata=metadata, rows_per_chunk=rows)


def _feature_metadata(plan: BuildPlan) -> dict[str, str]:
    """Return the feature file's key-value metadata: version, target and windows."""
    cfg = plan.features
    return {
        "hubscore_version": __version__,
        "target": plan.target if plan.target != "as_of" else cfg.target,
        "horizon_days": str(cfg.horizon_days),
        "lookback_days": str(cfg.lookback_days),
        "recent_days": str(cfg.recent_days),
        "as_of": plan.as_of.isoformat() if plan.as_of else "",
        "features_version": str(FEATURES_VERSION),
    }


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
    excluded = (
        "customers_before_full_lookback",
        "customers_after_usage_end",
        "customers_closed_after_known_until",
    )
    summary |= {key: spine[key] for key in excluded if key in spine}
    timeline = {k: v for k, v in merged["timeline"].items() if k != "close_dates"}
    labels = {"known_until": plan.known_until.day, "known_until_source": plan.known_until.source}
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
        "labels": labels | merged["labels"],
        "spine": {"target": plan.target, **timeline, **summary},
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
