"""Rank scores on Spark without a single-task sort, and read quantiles without collecting.

A window over all rows (or over one cutoff: the nightly input has one) sorts every row in one
task. Instead the scores are range-partitioned by (cutoff, probability descending, id), the
order `rank_scores` sorts by, so partition i holds only rows ranked before partition i+1's;
one small aggregate counts the rows of each (partition, cutoff), and each task numbers its
rows from its offset: the sum of the counts of the partitions before it. Ties go to the
smaller id, as on the single machine, and `priority` and the labels come from the same
functions with the same numbers, so the columns are equal to `score_file`'s.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
from pyspark import TaskContext
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from hubscore.engine.scorer import (
    CUTOFF,
    ID,
    PRIORITY,
    PRIORITY_LEVELS,
    PRIORITY_QUANTILES,
    PROBABILITY,
    RANK,
    Scorer,
    output_columns,
    to_frame,
)
from hubscore.serving.summary import BUCKET_BITS
from hubscore.spark.session import marked_errors

Cutoff = date | None


@dataclass(frozen=True)
class Ranked:
    """Every row ranked and labelled (in rank order, partition by partition), with the number
    of rows of each cutoff."""

    frame: DataFrame
    rows: dict[Cutoff, int]
    ordered: DataFrame
    """The sorted scores the ranks were counted on; `unpersist` it when done."""

    def written(self, top_k: int | None) -> int:
        """Return how many rows `rank <= top_k` keeps (every row without `top_k`)."""
        return sum(min(n, top_k) if top_k else n for n in self.rows.values())


def rank_frame(
    scores: DataFrame,
    model: Any,
    *,
    scored_at: datetime,
    threshold: float | None,
    partitions: int = 0,
) -> Ranked:
    """Rank and label `id` (`cutoff`) and probability rows as `score_file` does, in parallel.

    Args:
        model: the shipped run folder (`ShippedModel`); its scorer labels the rows.
        partitions: range partitions to sort the rows into, at least one per core (the
            default). Not `spark.sql.shuffle.partitions`, which `orderBy` would take: its
            200 made every later stage (labels, the list's write, the tier counts, the
            ledger) 200 tasks, each a round trip to a Python worker and a part file.
    """
    by = [CUTOFF] if CUTOFF in scores.columns else []
    order = [*[F.col(c).asc() for c in by], F.col(PROBABILITY).desc(), F.col(ID).asc()]
    cores = scores.sparkSession.sparkContext.defaultParallelism
    ordered = (
        scores.repartitionByRange(max(partitions, cores, 1), *order)
        .sortWithinPartitions(*order)
        .persist()
    )
    counts = ordered.groupBy(F.spark_partition_id().alias("_part"), *by).count().collect()
    offsets: dict[tuple[int, Cutoff], int] = {}
    rows: dict[Cutoff, int] = {}
    for row in sorted(counts, key=lambda r: r["_part"]):
        cutoff = row[CUTOFF] if by else None
        offsets[(row["_part"], cutoff)] = rows.get(cutoff, 0)
        rows[cutoff] = rows.get(cutoff, 0) + row["count"]
    labels = _Labels(model, scored_at, threshold, offsets, rows, by)
    schema = labels.schema(model.scorer(), scores)
    return Ranked(ordered.mapInArrow(labels.run, from_arrow_schema(schema)), rows, ordered)


@dataclass(frozen=True)
class _Labels:
    """The rank task: number each partition's rows from its offsets, tier and label them."""

    model: Any
    scored_at: datetime
    threshold: float | None
    offsets: Mapping[tuple[int, Cutoff], int]
    rows: Mapping[Cutoff, int]
    by: list[str]

    def run(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with marked_errors():
            part = TaskContext.get().partitionId()  # type: ignore[union-attr]
            scorer = self.model.scorer()
            seen: dict[Cutoff, int] = {}
            for batch in batches:
                if batch.num_rows:
                    frame = self.label(scorer, to_frame(batch), part, seen)
                    yield frame.to_arrow().combine_chunks().to_batches()[0]

    def label(
        self, scorer: Scorer, frame: pl.DataFrame, part: int, seen: dict[Cutoff, int]
    ) -> pl.DataFrame:
        """Add rank, priority and the labels to one batch of partition `part`'s sorted rows."""
        # Rows arrive in rank order, cutoff by cutoff: a row's rank is its partition's offset
        # for the cutoff, plus the rows of the cutoff before it in this partition.
        if self.by:
            first, size = self._per_cutoff(frame, part, seen)
            within = frame.select(pl.int_range(pl.len(), dtype=pl.Int64).over(CUTOFF))
            rank = first + within.to_series().to_numpy() + 1
        else:
            start = self.offsets.get((part, None), 0) + seen.get(None, 0)
            seen[None] = seen.get(None, 0) + frame.height
            rank = np.arange(start + 1, start + frame.height + 1, dtype=np.int64)
            size = np.full(frame.height, self.rows.get(None, 0), dtype=np.int64)
        ranked = frame.hstack([pl.Series(RANK, rank, dtype=pl.Int64)])
        if not scorer.manifest.priority_thresholds:  # older folders: rank quartiles
            shares = (rank - 1) / size  # float64, as `with_priority` divides
            quartiles = np.asarray(PRIORITY_QUANTILES, dtype=np.float64)
            tiers = np.searchsorted(quartiles, shares, side="right")
            names = pl.Series(PRIORITY, PRIORITY_LEVELS, dtype=pl.String)
            ranked = ranked.hstack([names.gather(tiers)])
        labelled = scorer.label(ranked, scored_at=self.scored_at, threshold=self.threshold)
        return labelled.select(output_columns(labelled.columns))

    def _per_cutoff(
        self, frame: pl.DataFrame, part: int, seen: dict[Cutoff, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return each row's cutoff's rows before this batch and size; count this batch."""
        counts = frame.get_column(CUTOFF).value_counts(sort=False).rows()
        table = pl.DataFrame(
            {
                CUTOFF: [c for c, _ in counts],
                "_first": [self.offsets.get((part, c), 0) + seen.get(c, 0) for c, _ in counts],
                "_size": [self.rows.get(c, 0) for c, _ in counts],
            },
            schema={CUTOFF: frame.schema[CUTOFF], "_first": pl.Int64, "_size": pl.Int64},
        )
        for c, n in counts:
            seen[c] = seen.get(c, 0) + n
        joined = frame.select(CUTOFF).join(
            table, on=CUTOFF, how="left", nulls_equal=True, maintain_order="left"
        )
        return joined.get_column("_first").to_numpy(), joined.get_column("_size").to_numpy()

    def schema(self, scorer: Scorer, scores: DataFrame) -> pa.Schema:
        """Return the output schema: the labels of no rows, built on the driver."""
        empty = pl.DataFrame(schema={ID: pl.Int64, **_cutoff(self.by), PROBABILITY: pl.Float32})
        sample = self.label(scorer, empty, 0, {}).to_arrow()
        return pa.schema([f.remove_metadata().with_nullable(True) for f in sample.schema])


def _cutoff(by: list[str]) -> dict[str, pl.DataType]:
    return {CUTOFF: pl.Date()} if by else {}


def bucket_values(scores: DataFrame, bucket: int) -> dict[float, int]:
    """Return each distinct probability of a summary bucket with its count: one small
    aggregate in the JVM over the rows between the bucket's float32 bounds."""
    low, high = _float32(bucket << (32 - BUCKET_BITS)), _float32((bucket + 1) << (32 - BUCKET_BITS))
    inside = scores.where((F.col(PROBABILITY) >= low) & (F.col(PROBABILITY) < high))
    return {row[0]: row[1] for row in inside.groupBy(PROBABILITY).count().collect()}


def _float32(bits: int) -> float:
    return float(struct.unpack("<f", struct.pack("<I", bits))[0])
