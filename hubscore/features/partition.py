"""Run `build-features` on one hash-partition of company ids held as Arrow tables.

A distributed engine (hubscore/spark/) reads the inputs, numbers their rows, splits them by a
hash of the company id and calls `build_partition` on each part: the same SQL blocks as the
single-machine build, in an in-process DuckDB. Nothing here imports the engine.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

from hubscore.features import sql
from hubscore.features.build import (
    DUCKDB_CONFIG,
    BuildPlan,
    Partial,
    finish_partition,
    prepare_partition,
)
from hubscore.features.inputs import RAW_VIEWS, InputKind

ROW = "_row"
"""The 1-based data row number in the input file, as the single-machine build numbers it."""


@dataclass(frozen=True)
class PartitionOutput:
    """What one partition produced: its features and rejects (when finished) and profile."""

    partial: Partial
    features: pa.Table | None = None
    rejects: pa.Table | None = None


def build_partition(
    tables: Mapping[InputKind, pa.Table],
    sources: Mapping[str, str],
    *,
    as_of: date | None,
    plan: BuildPlan | None = None,
) -> PartitionOutput:
    """Validate and profile one partition; with a `plan`, also build its features and rejects.

    Args:
        tables: each input's rows of this partition: `_row` first, then the file's columns.
    """
    with duckdb.connect(config=DUCKDB_CONFIG) as con:
        con.execute("set enable_progress_bar = false")
        for kind, table in tables.items():
            con.from_arrow(table).create_view(RAW_VIEWS[kind])
        partial = prepare_partition(con, sources, as_of)
        if plan is None:
            return PartitionOutput(partial)
        # The partition writes with the single-machine build's own COPY blocks (the same
        # types and metadata) into scratch files, read back for the engine to write.
        with tempfile.TemporaryDirectory(prefix="hubscore-partition-") as scratch:
            features_out, rejects_out = Path(scratch, "f.parquet"), Path(scratch, "r.parquet")
            partial |= finish_partition(
                con, plan, features_out=features_out, rejects_out=rejects_out
            )
            return PartitionOutput(partial, pq.read_table(features_out), pq.read_table(rejects_out))


def partition_keys(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """Return each raw row's company id as validation casts it (NULL when it does not parse)."""
    with duckdb.connect() as con:
        con.from_arrow(batch).create_view("raw_batch")
        # A relation, not a DB-API cursor: its Arrow result needs no extra copy of the rows.
        keys: pa.Table = con.sql(sql.query("partition_keys").text).to_arrow_table()
    return keys.column(0).combine_chunks()
