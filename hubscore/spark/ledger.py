"""The ledger on the Spark engine: the same files as the single-machine scorer writes.

Every scored row's narrow ledger columns (id, cutoff, probability, rank, priority: about 30
bytes a row) come to the driver as Arrow and are written by `hubscore.serving.ledger`, so the
ledger stays one local Parquet file per run that `hubscore monitor` reads without Spark. The
control group is marked on the driver too: a list is at most --top-k rows per cutoff.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DateType, LongType, StructField, StructType

from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.ledger import SHADOW
from hubscore.engine.scorer import CUTOFF, HOLD, ID, PRIORITY, PROBABILITY, RANK, output_columns
from hubscore.serving.ledger import LedgerRequest, mark_holdout
from hubscore.spark.fs import Store, join, split
from hubscore.spark.session import spark_session


def ledger_frame(ranked: DataFrame, ledger: LedgerRequest | None) -> pl.DataFrame | None:
    """Collect every ranked row's ledger columns to the driver (None without a ledger)."""
    if ledger is None:
        return None
    wanted = [c for c in (ID, CUTOFF, PROBABILITY, RANK, PRIORITY) if c in ranked.columns]
    frame = pl.from_arrow(ranked.select(*wanted).toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def mark_holdout_spark(
    listed: DataFrame, ledger: LedgerRequest | None, *, scored_at: datetime
) -> DataFrame:
    """Add `hold` to the list as `mark_holdout` does on one machine (the same companies)."""
    if ledger is None or ledger.holdout is None:
        return listed
    keys = [c for c in (ID, CUTOFF) if c in listed.columns]
    found = pl.from_arrow(listed.select(*keys).toArrow())
    assert isinstance(found, pl.DataFrame)
    flagged = mark_holdout(found, ledger, scored_at=scored_at)
    types = {ID: LongType(), CUTOFF: DateType(), HOLD: BooleanType()}
    schema = StructType([StructField(k, types[k]) for k in (*keys, HOLD)])
    rows = list(flagged.select(*keys, HOLD).iter_rows())
    held = listed.sparkSession.createDataFrame(rows, schema)
    marked = listed.join(F.broadcast(held), on=keys, how="left")
    marked = marked.withColumn(HOLD, F.coalesce(F.col(HOLD), F.lit(False)))
    return marked.select(*output_columns(marked.columns))


def score_shadows_spark(
    input_path: str,
    output_path: str,
    shadows: Sequence[Path],
    ledger: LedgerRequest,
    *,
    master: str,
    log_level: str,
    top_k: int | None,
    as_of: date | None,
    batch_size: int,
    threads: int,
) -> list[dict[str, Any]]:
    """Score the input with each challenger run folder into the ledger only, on Spark.

    Each shadow's list goes to a temp folder beside the output (on the output's store, which
    every executor can write) and is deleted; the ledger file is the only thing kept.
    """
    from hubscore.spark.score import score_path_spark  # score imports this module

    done = []
    parent, name = split(output_path)
    with spark_session(master, log_level=log_level) as spark:  # one session for every shadow
        store = Store(spark)
        for run_dir in shadows:
            temp_name = f".{name}{TEMP_MARKER}shadow-{uuid.uuid4().hex[:8]}.parquet"
            temp = join(parent, temp_name)
            try:
                summary = score_path_spark(
                    input_path,
                    temp,
                    run_dir=run_dir,
                    master=master,
                    log_level=log_level,
                    top_k=top_k,
                    as_of=as_of,
                    batch_size=batch_size,
                    threads=threads,
                    explain=0,
                    ledger=LedgerRequest(ledger.folder, role=SHADOW),
                )
            finally:
                store.delete(temp)
                store.delete(join(parent, f".{temp_name}.lock"))  # a local output's flock file
            done.append({"model_version": summary.model_version, **(summary.ledger or {})})
    return done
