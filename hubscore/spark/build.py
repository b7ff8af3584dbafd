"""`build-features --engine spark`: hubscore's own SQL blocks, run per hash-partition of id.

Spark reads the three inputs and numbers their rows as the single-machine build does, casts
each row's id exactly as validation casts it (DuckDB's `try_cast`), and hashes it into one of N
buckets. The two company files travel as one side of a cogroup (unioned, with their source
kept) and usage as the other; each bucket runs `hubscore.features.partition.build_partition`,
the single-machine build's own code path, in an in-process DuckDB.

Two things are global, so they are summed on the driver from per-partition partials: the usage
calendar (first week, last week, last close) the weekly cutoffs come from, and the reject
budget (a share of each whole file). Without --as-of a first, cheap pass over the cached
co-partitioned inputs returns only those; with --as-of the spine needs no calendar, and the
budget is checked before anything is renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import ByteType, IntegerType, LongType, ShortType, StructField, StructType

from hubscore.core.atomic import TEMP_MARKER, atomic_file, remove_stale_temps
from hubscore.core.datasets import write_folder_metadata
from hubscore.core.errors import ValidationError
from hubscore.features.build import (
    FEATURES_FILE,
    INPUT_KINDS,
    QUALITY_FILE,
    REJECTS_FILE,
    BuildPlan,
    BuildRequest,
    BuildResult,
    InputKind,
    assemble_quality,
    check_columns,
    check_csv_bytes,
    check_prepared,
    find_input,
    plan_build,
)
from hubscore.features.partials import dump_partial, load_partial, merge_partials
from hubscore.features.partition import ROW, PartitionOutput, build_partition, partition_keys
from hubscore.spark.session import job_errors, marked_errors, spark_session

KEY = "__key"
BUCKET = "__bucket"
SOURCE = "__source"
INDEX = "__index"
FILE = "__file"
KIND = "__kind"
PROFILE = "__profile"
REJECT_PREFIX = "__rejects_"
COMPANY_KINDS: tuple[InputKind, ...] = ("customers", "noncustomers")
INTEGERS = (LongType, IntegerType, ShortType, ByteType)
CALENDAR_SCHEMA = pa.schema([(KIND, pa.string()), (PROFILE, pa.string())])
Task = Callable[[pa.Table, pa.Table], pa.Table]
BatchMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class SparkInput:
    """One input as Spark holds it: numbered rows, the file's own columns, their Arrow types."""

    frame: DataFrame
    columns: list[str]
    schema: pa.Schema


def build_features_spark(
    request: BuildRequest, spark: SparkSession, *, partitions: int
) -> BuildResult:
    """Build features, rejects and quality.json with Spark; the outputs equal the DuckDB build's."""
    paths = {kind: find_spark_input(request.data_dir, kind) for kind in INPUT_KINDS}
    sources: dict[str, str] = {kind: str(path) for kind, path in paths.items()}
    with job_errors("reading the inputs"):
        inputs = {kind: read_input(spark, kind, path) for kind, path in paths.items()}
    cache = request.as_of is None  # two passes over the co-partitioned inputs
    companies, usage = co_partition(inputs, partitions, cache=cache)
    out = request.out_dir
    try:
        with job_errors("building features"):
            plan = _plan(request, sources, inputs, companies, usage)
            empty = _empty_partition(inputs, sources, request.as_of, plan)
            schema = _output_schema(empty)
            task = _partition_task(inputs, sources, request.as_of, plan, schema)
            result = _cogroup(companies, usage, task, schema).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                partials = [empty.partial, *_collect_partials(result)]
                if not cache:
                    check_prepared(request, sources, partials)
                quality = assemble_quality(plan, partials)
                _write_outputs(result, out, empty, quality, partitions=partitions)
            finally:
                result.unpersist()
    finally:
        if cache:
            companies.unpersist()
            usage.unpersist()
    return BuildResult(out / FEATURES_FILE, out / REJECTS_FILE, out / QUALITY_FILE, quality)


def find_spark_input(data_dir: Path, kind: InputKind) -> Path:
    """Return a `<kind>.parquet` or `<kind>/` folder of Parquet files, else the file."""
    folders = [p for p in (data_dir / f"{kind}.parquet", data_dir / kind) if p.is_dir()]
    return folders[0] if folders else find_input(data_dir, kind)


def read_input(spark: SparkSession, kind: InputKind, path: Path) -> SparkInput:
    """Read one CSV (all text, as DuckDB reads it) or Parquet input with `_row` and the id key."""
    offsets: dict[str, int] = {}
    if path.is_dir():  # a (partitioned) folder: rows numbered through its files in name order
        offsets = _file_offsets(path)
        raw = spark.read.parquet(str(path))
        index = F.col("_metadata.row_index")
    elif path.suffix == ".parquet":
        raw = spark.read.parquet(str(path))
        index = F.col("_metadata.row_index")
    else:
        check_csv_bytes(path)
        # multiLine keeps a whole file in one task, in file order: rows are numbered there.
        raw = spark.read.csv(str(path), header=True, multiLine=True, escape='"', encoding="UTF-8")
        index = F.lit(None).cast("long")
    check_columns(path, kind, raw.columns)
    columns = list(raw.columns)
    fields = [StructField(ROW, LongType()), *raw.schema.fields, StructField(KEY, LongType())]
    schema = to_arrow_schema(StructType(fields[:-1]))
    id_field = next(f for f in raw.schema.fields if f.name.strip().lower() == "id")
    if path.is_file() and path.suffix == ".parquet" and isinstance(id_field.dataType, INTEGERS):
        # An integer id casts the same in Spark as in DuckDB and Parquet numbers its rows:
        # no pass through Python before the shuffle.
        numbered = raw.select(
            (index + 1).alias(ROW),
            *[F.col(f"`{c}`") for c in columns],
            F.col(f"`{id_field.name}`").cast("long").alias(KEY),
        )
        return SparkInput(numbered, columns, schema)
    framed = raw.select(
        *[F.col(f"`{c}`") for c in columns],
        index.alias(INDEX),
        (F.col("_metadata.file_path") if offsets else F.lit(None).cast("string")).alias(FILE),
    )
    numbered = framed.mapInArrow(_row_numberer(offsets), StructType(fields))
    return SparkInput(numbered, columns, schema)


def _file_offsets(folder: Path) -> dict[str, int]:
    """Return each Parquet file's first row number minus one, files in path order."""
    files = sorted(
        p
        for p in folder.rglob("*.parquet")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
    )
    if not files:
        raise ValidationError(
            f"{folder} holds no Parquet files",
            hint="a folder input is Parquet part files; a CSV input must be one file",
        )
    offsets, done = {}, 0
    for file in files:
        offsets[str(file.resolve())] = done
        done += pq.ParquetFile(file).metadata.num_rows  # the footer only
    return offsets


def _row_numberer(
    offsets: Mapping[str, int],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Return the mapInArrow function that numbers rows (through a folder's files, if any)."""

    def number(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        done = 0
        for batch in batches:
            index = batch.column(INDEX)
            if index.null_count:  # CSV: the task reads the whole file in order
                rows = pa.array(np.arange(done + 1, done + batch.num_rows + 1, dtype=np.int64))
            else:  # Parquet: Spark knows each row's index in its file
                rows = pc.add(pc.add(index, 1), _offsets_of(batch.column(FILE), offsets))
            done += batch.num_rows
            data = batch.drop_columns([INDEX, FILE])
            arrays = [rows, *data.columns, partition_keys(data)]
            yield pa.RecordBatch.from_arrays(arrays, names=[ROW, *data.schema.names, KEY])

    return number


def _offsets_of(files: pa.Array, offsets: Mapping[str, int]) -> pa.Array:
    """Map each row's file URI to its file's row offset (0 for a single-file input)."""
    if not offsets:
        return pa.scalar(0, pa.int64())
    uris = pc.unique(files).to_pylist()
    local = [offsets[str(Path(unquote(urlparse(uri).path)).resolve())] for uri in uris]
    return pc.take(pa.array(local, pa.int64()), pc.index_in(files, value_set=pa.array(uris)))


def co_partition(
    inputs: Mapping[InputKind, SparkInput], partitions: int, *, cache: bool
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
        return placed.persist(StorageLevel.MEMORY_AND_DISK) if cache else placed

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
    out: Path,
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
        staged_folder(out / FEATURES_FILE) as features_dir,
        staged_folder(out / REJECTS_FILE) as rejects_dir,
        atomic_file(out / QUALITY_FILE) as quality_file,
    ):
        # The DuckDB build's row order (cutoff, id) across the part files, one per partition;
        # the quarantine is small, so it is one sorted file.
        ordered = features.repartitionByRange(partitions, "cutoff", "id")
        ordered = ordered.sortWithinPartitions("cutoff", "id")
        ordered.write.mode("overwrite").parquet(str(features_dir), compression="zstd")
        write_folder_metadata(features_dir, metadata)
        listed = rejects.coalesce(1).sortWithinPartitions("source_file", "row_number")
        listed.write.mode("overwrite").parquet(str(rejects_dir), compression="zstd")
        quality_file.write_text(json.dumps(quality, indent=2, default=str) + "\n")


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield a temp folder beside `target`; on success it replaces `target` (file or folder)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARKER}", dir=target.parent))
    try:
        yield temp
        old = temp.with_name(temp.name + "-old")
        if target.exists() or target.is_symlink():
            os.rename(target, old)
        os.rename(temp, target)
        _remove(old)
    finally:
        _remove(temp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def run_build_spark(
    request: BuildRequest, *, master: str, partitions: int | None, log_level: str = "ERROR"
) -> BuildResult:
    """Start (or join) a Spark session and build features on it (the CLI's entry point)."""
    with spark_session(master, log_level=log_level) as spark:
        parts = partitions or 4 * spark.sparkContext.defaultParallelism
        return build_features_spark(request, spark, partitions=parts)
