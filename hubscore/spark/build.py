"""`build-features --engine spark`: hubscore's own SQL blocks, run per hash-partition of id.

Spark reads the three inputs and numbers their rows as the single-machine build does, casts
each row's id exactly as validation casts it (DuckDB's `try_cast`), and hashes it into one of N
buckets. The two company files travel as one side of a cogroup (unioned, with their source
kept) and usage as the other; each bucket runs `hubscore.features.partition.build_partition`,
the single-machine build's own code path, in an in-process DuckDB.

Two things are global, so they are summed on the driver from per-partition partials: the usage
calendar (first week, last week, last close) the weekly cutoffs come from, and the reject
budget (a share of each whole file). A first, cheap pass over the cached co-partitioned
inputs returns only those (with --as-of too: the files' first week tells how many look-back
weeks they cover, `weeks_observed`), and the budget is checked before the features are built.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from hubscore.core.datasets import METADATA_FILE, sidecar_text
from hubscore.features.build import (
    FEATURES_FILE,
    QUALITY_FILE,
    REJECTS_FILE,
    BuildPlan,
    BuildRequest,
    assemble_quality,
    check_prepared,
    plan_build,
)
from hubscore.features.inputs import INPUT_KINDS, InputKind
from hubscore.features.partials import dump_partial, load_partial, merge_partials
from hubscore.features.partition import ROW, PartitionOutput, build_partition
from hubscore.spark.fs import Store, join, staged
from hubscore.spark.inputs import KEY, SparkInput, check_csv_parts, locate_input, read_input
from hubscore.spark.session import job_errors, marked_errors, spark_session

BUCKET = "__bucket"
SOURCE = "__source"
KIND = "__kind"
PROFILE = "__profile"
REJECT_PREFIX = "__rejects_"
COMPANY_KINDS: tuple[InputKind, ...] = ("customers", "noncustomers")
CALENDAR_SCHEMA = pa.schema([(KIND, pa.string()), (PROFILE, pa.string())])
Task = Callable[[pa.Table, pa.Table], pa.Table]


@dataclass(frozen=True)
class SparkBuildResult:
    """Where the outputs went (local paths or URIs) and what the quality profile found."""

    features_path: str
    rejects_path: str
    quality_path: str
    quality: dict[str, Any]


def build_features_spark(
    request: BuildRequest,
    spark: SparkSession,
    *,
    partitions: int,
    data_dir: str | None = None,
    out_dir: str | None = None,
) -> SparkBuildResult:
    """Build features, rejects and quality.json with Spark; the outputs equal the DuckDB build's.

    Args:
        data_dir, out_dir: local paths or URIs (`s3a://...`) in place of the request's paths.
    """
    store = Store(spark)
    data, out = data_dir or str(request.data_dir), out_dir or str(request.out_dir)
    found = {kind: locate_input(store, data, kind) for kind in INPUT_KINDS}
    sources: dict[str, str] = {kind: source.location for kind, source in found.items()}
    with job_errors("reading the inputs"):
        for source in found.values():
            check_csv_parts(spark, store, source)
        inputs = {kind: read_input(spark, store, kind, source) for kind, source in found.items()}
    companies, usage = co_partition(inputs, partitions)  # cached: two passes read them
    try:
        with job_errors("building features"):
            plan = _plan(request, sources, inputs, companies, usage)
            empty = _empty_partition(inputs, sources, request.as_of, plan)
            schema = _output_schema(empty)
            task = _partition_task(inputs, sources, request.as_of, plan, schema)
            result = _cogroup(companies, usage, task, schema).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                partials = [empty.partial, *_collect_partials(result)]
                quality = assemble_quality(plan, partials)
                _write_outputs(result, store, out, empty, quality, partitions=partitions)
            finally:
                result.unpersist()
    finally:
        companies.unpersist()
        usage.unpersist()
    features, rejects, profile = (join(out, n) for n in (FEATURES_FILE, REJECTS_FILE, QUALITY_FILE))
    return SparkBuildResult(features, rejects, profile, quality)


def co_partition(
    inputs: Mapping[InputKind, SparkInput], partitions: int
) -> tuple[DataFrame, DataFrame]:
    """Return the company rows (both files, source kept) and usage, hash-partitioned by id."""
    sides = [
        inputs[kind].frame.select(
            F.col(ROW),
            *[F.col(f"`{c}`").alias(f"{kind}__{i}") for i, c in enumerate(inputs[kind].columns)],
            F.col(KEY),
            F.lit(kind).alias(SOURCE),
        )
        for kind in COMPANY_KINDS
    ]
    companies = sides[0].unionByName(sides[1], allowMissingColumns=True)
    bucket = F.pmod(F.xxhash64(F.col(KEY)), F.lit(partitions)).cast("int")

    def place(frame: DataFrame) -> DataFrame:
        placed = frame.withColumn(BUCKET, bucket).repartition(partitions, BUCKET)
        return placed.persist(StorageLevel.MEMORY_AND_DISK)

    return place(companies), place(inputs["usage_actions"].frame)


def _plan(
    request: BuildRequest,
    sources: dict[str, str],
    inputs: Mapping[InputKind, SparkInput],
    companies: DataFrame,
    usage: DataFrame,
) -> BuildPlan:
    """Bind the spine to the calendar summed over partitions (with --as-of too: the files'
    first week tells how many look-back weeks they cover, weeks_observed)."""
    empty = _empty_partition(inputs, sources, None, None)
    task = _partition_task(inputs, sources, None, None, CALENDAR_SCHEMA)
    partials = [
        empty.partial,
        *_collect_partials(_cogroup(companies, usage, task, CALENDAR_SCHEMA)),
    ]
    check_prepared(request, sources, partials)
    return plan_build(request, sources, merge_partials(partials)["timeline"])


def _empty_partition(
    inputs: Mapping[InputKind, SparkInput],
    sources: Mapping[str, str],
    as_of: date | None,
    plan: BuildPlan | None,
) -> PartitionOutput:
    """Run the partition on no rows on the driver: its output types and a neutral partial."""
    tables = {kind: spark_input.schema.empty_table() for kind, spark_input in inputs.items()}
    return build_partition(tables, sources, as_of=as_of, plan=plan)


def _output_schema(empty: PartitionOutput) -> pa.Schema:
    """One schema for every row a partition returns: a kind, then features, rejects, profile."""
    assert empty.features is not None and empty.rejects is not None
    rejects = [f.with_name(REJECT_PREFIX + f.name) for f in empty.rejects.schema]
    fields = [*CALENDAR_SCHEMA, *empty.features.schema, *rejects]
    # Every row kind leaves the other kinds' columns NULL, so every column is nullable.
    return pa.schema([f.remove_metadata().with_nullable(True) for f in fields])


def _partition_task(
    inputs: Mapping[InputKind, SparkInput],
    sources: Mapping[str, str],
    as_of: date | None,
    plan: BuildPlan | None,
    schema: pa.Schema,
) -> Task:
    """Return the function a cogroup runs on each bucket (it closes over plain values only)."""
    columns = {kind: spark_input.columns for kind, spark_input in inputs.items()}
    bound_sources = dict(sources)

    def run(companies: pa.Table, usage: pa.Table) -> pa.Table:
        with marked_errors():
            tables = {kind: _company_rows(companies, kind, columns[kind]) for kind in COMPANY_KINDS}
            tables["usage_actions"] = usage.select([ROW, *columns["usage_actions"]])
            return _stack(build_partition(tables, bound_sources, as_of=as_of, plan=plan), schema)

    return run


def _company_rows(companies: pa.Table, kind: str, columns: list[str]) -> pa.Table:
    """Restore one company file's rows and its own column names from the unioned side."""
    mine = companies.filter(pc.equal(companies.column(SOURCE), kind))
    arrays = [mine.column(ROW), *[mine.column(f"{kind}__{i}") for i in range(len(columns))]]
    return pa.Table.from_arrays(arrays, names=[ROW, *columns])


def _stack(out: PartitionOutput, schema: pa.Schema) -> pa.Table:
    """Stack a partition's features, rejects and profile into rows of the one output schema."""
    parts = [_widen(pa.table({PROFILE: pa.array([dump_partial(out.partial)])}), "profile", schema)]
    if out.features is not None:
        parts.append(_widen(out.features, "features", schema))
    if out.rejects is not None:
        prefixed = out.rejects.rename_columns([REJECT_PREFIX + n for n in out.rejects.column_names])
        parts.append(_widen(prefixed, "rejects", schema))
    return pa.concat_tables(parts)


def _widen(table: pa.Table, kind: str, schema: pa.Schema) -> pa.Table:
    n = table.num_rows
    arrays = [
        pa.repeat(pa.scalar(kind), n)
        if field.name == KIND
        else table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(n, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _cogroup(companies: DataFrame, usage: DataFrame, task: Task, schema: pa.Schema) -> DataFrame:
    grouped = companies.groupBy(BUCKET).cogroup(usage.groupBy(BUCKET))
    return grouped.applyInArrow(task, from_arrow_schema(schema))


def _collect_partials(result: DataFrame) -> list[dict[str, object]]:
    rows = result.where(F.col(KIND) == "profile").select(PROFILE).collect()
    return [load_partial(row[PROFILE]) for row in rows]


def _write_outputs(
    result: DataFrame,
    store: Store,
    out: str,
    empty: PartitionOutput,
    quality: Mapping[str, object],
    *,
    partitions: int,
) -> None:
    """Write features and rejects as Parquet folders and quality.json; rename all at the end."""
    assert empty.features is not None and empty.rejects is not None
    raw_metadata = empty.features.schema.metadata or {}
    metadata = {k.decode(): v.decode() for k, v in raw_metadata.items() if b"ARROW:" not in k}
    feature_columns = [F.col(f"`{name}`") for name in empty.features.column_names]
    reject_columns = [F.col(REJECT_PREFIX + n).alias(n) for n in empty.rejects.column_names]
    features = result.where(F.col(KIND) == "features").select(*feature_columns)
    rejects = result.where(F.col(KIND) == "rejects").select(*reject_columns)
    with (
        staged(store, join(out, FEATURES_FILE)) as features_dir,
        staged(store, join(out, REJECTS_FILE)) as rejects_dir,
        staged(store, join(out, QUALITY_FILE)) as quality_file,
    ):
        # The DuckDB build's row order (cutoff, id) across the part files, one per partition;
        # the quarantine is small, so it is one sorted file.
        ordered = features.repartitionByRange(partitions, "cutoff", "id")
        ordered = ordered.sortWithinPartitions("cutoff", "id")
        ordered.write.mode("overwrite").parquet(store.uri(features_dir), compression="zstd")
        store.write_text(join(features_dir, METADATA_FILE), sidecar_text(metadata))
        listed = rejects.coalesce(1).sortWithinPartitions("source_file", "row_number")
        listed.write.mode("overwrite").parquet(store.uri(rejects_dir), compression="zstd")
        store.write_text(quality_file, json.dumps(quality, indent=2, default=str) + "\n")


def run_build_spark(
    request: BuildRequest,
    *,
    master: str,
    partitions: int | None,
    log_level: str = "ERROR",
    data_dir: str | None = None,
    out_dir: str | None = None,
) -> SparkBuildResult:
    """Start (or join) a Spark session and build features on it (the CLI's entry point)."""
    with spark_session(master, log_level=log_level) as spark:
        parts = partitions or 4 * spark.sparkContext.defaultParallelism
        return build_features_spark(
            request, spark, partitions=parts, data_dir=data_dir, out_dir=out_dir
        )
