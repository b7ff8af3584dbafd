"""The Spark build's inputs: find, check and read each, its rows numbered as DuckDB numbers them.

An input is a CSV or Parquet file, or a folder of part files of one format (local or a URI).
Rows are numbered through the parts in name order: a Parquet part knows each row's index; a
CSV part is read whole by one task (multiLine makes it unsplittable), in order, so its rows
are counted there. Parts are read in parallel; each part's first row number comes from one
small aggregate (row counts per file) before the read that numbers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped,unused-ignore]
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import ByteType, IntegerType, LongType, ShortType, StructField, StructType

from hubscore.core.errors import ValidationError
from hubscore.core.locations import is_uri
from hubscore.features.folders import (
    PartFormat,
    check_csv_content,
    check_same_headers,
    folder_format,
    folder_names,
    is_hidden,
    local_parts,
    open_part_bytes,
    part_format,
)
from hubscore.features.inputs import (
    INPUT_KINDS,
    InputKind,
    check_columns,
    check_csv_bytes,
    find_input,
)
from hubscore.features.partition import ROW, partition_keys
from hubscore.spark.fs import Store, file_key, join
from hubscore.spark.session import marked_errors

KEY = "__key"
INDEX = "__index"
FILE = "__file"
INTEGERS = (LongType, IntegerType, ShortType, ByteType)
BatchMap = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class Source:
    """One input as found: its location, its format and its part files (itself if a file)."""

    location: str
    fmt: PartFormat
    parts: list[str]


@dataclass(frozen=True)
class SparkInput:
    """One input as Spark holds it: numbered rows, the file's own columns, their Arrow types."""

    frame: DataFrame
    columns: list[str]
    schema: pa.Schema


def locate_input(store: Store, data_dir: str, kind: InputKind) -> Source:
    """Find `<kind>.parquet`, `<kind>.csv` (a file or a folder) or a `<kind>/` folder."""
    if not is_uri(data_dir):  # the single-machine build's own lookup
        path = find_input(Path(data_dir), kind)
        if path.is_dir():
            fmt, parts = local_parts(path)
            return Source(str(path), fmt, [str(part) for part in parts])
        return Source(str(path), "parquet" if path.suffix == ".parquet" else "csv", [str(path)])
    if not store.is_dir(data_dir):
        raise ValidationError(
            f"the input folder {data_dir} does not exist or is not a folder",
            hint=f"pass --data-dir to the folder holding the {', '.join(INPUT_KINDS)} files",
        )
    for name in folder_names(kind):
        location = join(data_dir, name)
        if store.is_dir(location):
            names = [n for n in store.files(location) if not is_hidden(n)]
            fmt = folder_format(location, names)
            return Source(location, fmt, [join(location, n) for n in names])
        fmt_of_file = part_format(name)
        if fmt_of_file and store.exists(location):
            return Source(location, fmt_of_file, [location])
    raise ValidationError(
        f"no {kind}.csv or {kind}.parquet (file or folder of parts) in {data_dir}",
        hint=f"pass --data-dir with the folder holding {', '.join(INPUT_KINDS)} files",
    )


def check_csv_parts(spark: SparkSession, store: Store, source: Source) -> None:
    """Refuse empty or non-UTF-8 CSV parts and parts whose headers differ."""
    if source.fmt != "csv":
        return
    if is_uri(source.location):
        headers = _remote_headers(spark, store, source)
    else:  # on the driver, as the single-machine build checks them
        headers = {part: check_csv_bytes(Path(part)) for part in source.parts}
    check_same_headers(source.location, headers)


def _remote_headers(spark: SparkSession, store: Store, source: Source) -> dict[str, list[str]]:
    """Check each part's bytes in a task of its own (no Python client for the store here)."""
    names = {file_key(store.uri(part)): part for part in source.parts}

    def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with marked_errors():
            for batch in batches:
                found = []
                for path, length, content in zip(*batch.to_pydict().values(), strict=True):
                    name = names[file_key(path)]
                    with open_part_bytes(name, content) as lines:
                        found.append(json.dumps([name, check_csv_content(name, length, lines)]))
                yield pa.RecordBatch.from_arrays([pa.array(found, pa.string())], names=["part"])

    files = spark.read.format("binaryFile").load([store.uri(part) for part in source.parts])
    checked = files.select("path", "length", "content").mapInArrow(check, "part string")
    return dict(json.loads(row["part"]) for row in checked.collect())


def read_input(spark: SparkSession, store: Store, kind: InputKind, source: Source) -> SparkInput:
    """Read one input (CSV as all text, as DuckDB reads it) with `_row` and the id key."""
    uris = [store.uri(part) for part in source.parts]
    index: Column
    if source.fmt == "parquet":
        raw = spark.read.parquet(*uris)
        index = F.col("_metadata.row_index")
    else:
        raw = spark.read.csv(uris, header=True, multiLine=True, escape='"', encoding="UTF-8")
        index = F.lit(None).cast("long")
    check_columns(source.location, kind, raw.columns)
    columns = list(raw.columns)
    fields = [StructField(ROW, LongType()), *raw.schema.fields, StructField(KEY, LongType())]
    schema = to_arrow_schema(StructType(fields[:-1]))
    id_field = next(f for f in raw.schema.fields if f.name.strip().lower() == "id")
    if len(uris) == 1 and source.fmt == "parquet" and isinstance(id_field.dataType, INTEGERS):
        # An integer id casts the same in Spark as in DuckDB and Parquet numbers its rows:
        # no pass through Python before the shuffle.
        numbered = raw.select(
            (index + 1).alias(ROW),
            *[F.col(f"`{c}`") for c in columns],
            F.col(f"`{id_field.name}`").cast("long").alias(KEY),
        )
        return SparkInput(numbered, columns, schema)
    offsets = _row_offsets(raw, store, source) if len(uris) > 1 else {}
    framed = raw.select(
        *[F.col(f"`{c}`") for c in columns],
        index.alias(INDEX),
        F.col("_metadata.file_path").alias(FILE),
    )
    numbered = framed.mapInArrow(_row_numberer(offsets), StructType(fields))
    return SparkInput(numbered, columns, schema)


def _row_offsets(raw: DataFrame, store: Store, source: Source) -> dict[str, int]:
    """Return each part's first row number minus one, parts in name order (one aggregate)."""
    per_file = raw.select(F.col("_metadata.file_path").alias(FILE)).groupBy(FILE).count()
    counts = {file_key(row[FILE]): int(row["count"]) for row in per_file.collect()}
    offsets, done = {}, 0
    for part in source.parts:
        key = file_key(store.uri(part))
        offsets[key] = done
        done += counts.get(key, 0)  # a header-only part has no rows
    return offsets


def _row_numberer(offsets: Mapping[str, int]) -> BatchMap:
    """Return the mapInArrow function that numbers rows through the parts, adding the key."""

    def number(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        done: dict[str, int] = {}  # CSV rows counted so far in each part this task reads
        for batch in batches:
            index, files = batch.column(INDEX), batch.column(FILE)
            in_file = _count_rows(files, done) if index.null_count else pc.add(index, 1)
            rows = pc.add(in_file, _offsets_of(files, offsets))
            data = batch.drop_columns([INDEX, FILE])
            arrays = [rows, *data.columns, partition_keys(data)]
            yield pa.RecordBatch.from_arrays(arrays, names=[ROW, *data.schema.names, KEY])

    return number


def _count_rows(files: pa.Array, done: dict[str, int]) -> pa.Array:
    """Number CSV rows within their part: a task reads each part whole and in order."""
    names = np.asarray(files.to_pylist(), dtype=object)
    if not len(names):
        return pa.array(names, pa.int64())
    starts = [0, *(np.flatnonzero(names[1:] != names[:-1]) + 1).tolist()]
    rows = np.empty(len(names), dtype=np.int64)
    for start, end in zip(starts, [*starts[1:], len(names)], strict=True):
        before = done.get(names[start], 0)
        rows[start:end] = np.arange(before + 1, before + 1 + end - start)
        done[names[start]] = before + end - start
    return pa.array(rows)


def _offsets_of(files: pa.Array, offsets: Mapping[str, int]) -> pa.Array | pa.Scalar:
    """Map each row's part to that part's row offset (0 for a single-file input)."""
    if not offsets:
        return pa.scalar(0, pa.int64())
    uris = pc.unique(files).to_pylist()
    first = [offsets[file_key(uri)] for uri in uris]
    return pc.take(pa.array(first, pa.int64()), pc.index_in(files, value_set=pa.array(uris)))
