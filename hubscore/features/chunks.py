"""The labelled spines' features, built chunk by chunk within the memory budget.

A training spine has a row per company and weekly cutoff: 60M rows at a million companies,
whose aggregation, joins and sort in one query outgrow any fixed budget. The spine is a table
in output order (cutoff, id); consecutive cutoffs are grouped into chunks of at most
`rows_per_chunk` rows, and a cutoff with more rows than that is split by ranges of company id.
Each chunk is one query (`feature_chunk`) whose rows stream into one Parquet file in order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from hubscore.features import sql

ID_MIN, ID_MAX = -(2**63), 2**63 - 1
ROW_GROUP_ROWS = 122_880
"""Rows per Parquet row group, as DuckDB's own writer groups them."""
NO_CUTOFFS = (date(1970, 1, 2), date(1970, 1, 1))
"""An empty cutoff range: an empty spine still gets a file with every column."""


@dataclass(frozen=True)
class Chunk:
    """A slice of the spine in output order: cutoffs in a range, company ids in a range."""

    cutoff_from: date
    cutoff_to: date
    id_from: int = ID_MIN
    id_to: int = ID_MAX

    def params(self) -> dict[str, Any]:
        """Return the bound parameters `feature_chunk` selects this chunk with."""
        return {
            "cutoff_from": self.cutoff_from,
            "cutoff_to": self.cutoff_to,
            "id_from": self.id_from,
            "id_to": self.id_to,
        }


def plan_chunks(
    cutoff_rows: Sequence[tuple[date, int]], id_starts: Sequence[int], rows_per_chunk: int
) -> list[Chunk]:
    """Group consecutive cutoffs into chunks of at most `rows_per_chunk` rows, in order.

    A cutoff holding more rows than that is a chunk per id range; `id_starts` are the first
    ids of the ranges after the first (company-id quantiles).
    """
    chunks: list[Chunk] = []
    group: list[date] = []
    rows = 0
    for cutoff, count in cutoff_rows:
        if group and rows + count > rows_per_chunk:
            chunks.append(Chunk(group[0], group[-1]))
            group, rows = [], 0
        if count > rows_per_chunk and id_starts:
            starts = [ID_MIN, *id_starts]
            ends = [start - 1 for start in id_starts] + [ID_MAX]
            chunks += [Chunk(cutoff, cutoff, a, b) for a, b in zip(starts, ends, strict=True)]
            continue
        group.append(cutoff)
        rows += count
    if group:
        chunks.append(Chunk(group[0], group[-1]))
    return chunks


def id_parts(cutoff_rows: Sequence[tuple[date, int]], rows_per_chunk: int) -> int:
    """Return how many id ranges the largest cutoff needs to fit a chunk."""
    largest = max((count for _, count in cutoff_rows), default=0)
    return max(1, math.ceil(largest / rows_per_chunk))


def write_labelled_features(
    con: duckdb.DuckDBPyConnection,
    params: Mapping[str, Any],
    out: Path,
    *,
    metadata: Mapping[str, str],
    rows_per_chunk: int,
) -> int:
    """Build the registered spine's features chunk by chunk into `out`; return the chunks.

    Args:
        params: the bound parameters of `usage_weeks` and `feature_chunk` but the chunk's own.
    """
    sql.run(con, "usage_weeks", {"window_end": params["window_end"]})
    sql.run(con, "activity_spans")
    cutoff_rows = [(r["cutoff"], r["rows"]) for r in sql.fetch_dicts(con, "spine_cutoff_rows")]
    parts = id_parts(cutoff_rows, rows_per_chunk)
    shares = [n / parts for n in range(1, parts)]
    starts = sql.fetch_dicts(con, "company_id_bounds", {"shares": shares})[0]["bounds"]
    chunks = plan_chunks(cutoff_rows, sorted(set(starts)), rows_per_chunk) or [Chunk(*NO_CUTOFFS)]
    import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]  # not for --as-of

    chunk_params = {k: v for k, v in params.items() if k != "window_end"}
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in chunks:
            schema, batches = sql.stream(
                con, "feature_chunk", chunk_params | chunk.params(), ROW_GROUP_ROWS
            )
            if writer is None:
                writer = pq.ParquetWriter(
                    out, schema.with_metadata(dict(metadata)), compression="zstd"
                )
            for batch in batches:
                writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
    finally:
        if writer is not None:
            writer.close()
    return len(chunks)
