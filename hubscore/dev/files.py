"""Write the sample's files as the real exports look: CSV quoting and nulls, or typed Parquet.

Every file is written atomically; usage streams batch by batch (one Parquet row group each).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from hubscore.core.atomic import atomic_file
from hubscore.core.contract import EMPLOYEE_RANGES
from hubscore.dev.companies import I64, Companies
from hubscore.dev.usage import USAGE_COLUMNS

CUSTOMER_COLUMNS = ("CLOSEDATE", "MRR", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id")
NONCUSTOMER_COLUMNS = ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id")
USAGE_SCHEMA = pa.schema(
    [("id", pa.int64()), ("WHEN_TIMESTAMP", pa.timestamp("ms"))]
    + [(name, pa.int64()) for name in USAGE_COLUMNS[2:]]
)
CUSTOMER_SCHEMA = pa.schema(
    zip(
        CUSTOMER_COLUMNS,
        [pa.date32(), pa.float64(), pa.int64(), pa.string(), pa.string(), pa.int64()],
        strict=True,
    )
)
NONCUSTOMER_SCHEMA = pa.schema([CUSTOMER_SCHEMA.field(name) for name in NONCUSTOMER_COLUMNS])


def _labels(values: tuple[str, ...], codes: I64) -> pl.Series:
    """Map codes to their text values; code -1 becomes null."""
    return pl.Series([*values, None], dtype=pl.String).gather(
        np.where(codes < 0, len(values), codes)
    )


def company_frame(
    c: Companies, vocab: tuple[str, ...], *, first_monday: date, customers: bool
) -> pl.DataFrame:
    """Return the customers or noncustomers table, columns in file order."""
    idx = np.flatnonzero(c.is_customer == customers)
    alexa = c.alexa[idx]
    frame = pl.DataFrame(
        {
            "CLOSEDATE": np.datetime64(first_monday, "D") + c.close_day[idx],
            "MRR": c.mrr[idx],
            "ALEXA_RANK": pl.Series(alexa, dtype=pl.Int64).set(pl.Series(alexa < 0), None),
            "EMPLOYEE_RANGE": _labels(EMPLOYEE_RANGES, c.employee[idx]),
            "INDUSTRY": _labels(vocab, c.industry[idx]),
            "id": (idx + 1).astype(np.int64),
        }
    )
    columns = CUSTOMER_COLUMNS if customers else NONCUSTOMER_COLUMNS
    return frame.select(columns)


def add_twins(rng: np.random.Generator, frame: pl.DataFrame, *, companies: int) -> pl.DataFrame:
    """Add a partly-null twin row (same id) for a handful of complete noncustomer rows."""
    complete = frame.select(
        pl.col("ALEXA_RANK").is_not_null() & pl.col("EMPLOYEE_RANGE").is_not_null()
    ).to_series()
    candidates = np.flatnonzero(complete.to_numpy())
    k = min(len(candidates), max(1, round(companies * 0.0014)))
    pick = np.sort(rng.choice(candidates, k, replace=False))
    drop_employee = pl.Series(rng.random(k) < 0.5)
    drop_industry = pl.Series(rng.random(k) < 0.5)
    before = rng.random(k) < 0.5  # the twin comes before the full row about half the time
    twins = frame[pick].with_columns(
        pl.lit(None, dtype=pl.Int64).alias("ALEXA_RANK"),
        pl.when(drop_employee)
        .then(None)
        .otherwise(pl.col("EMPLOYEE_RANGE"))
        .alias("EMPLOYEE_RANGE"),
        pl.when(drop_industry).then(None).otherwise(pl.col("INDUSTRY")).alias("INDUSTRY"),
    )
    keys = np.concatenate([2 * np.arange(frame.height) + 1, 2 * pick + np.where(before, 0, 2)])
    both = pl.concat([frame, twins]).with_columns(pl.Series("_key", keys))
    return both.sort("_key", maintain_order=True).drop("_key")


def _csv_cell(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Format one column as CSV text: text nulls `""`, numeric nulls empty, quote when needed."""
    if dtype == pl.String:
        quoted = pl.concat_str(
            [pl.lit('"'), col.str.replace_all('"', '""', literal=True), pl.lit('"')]
        )
        needs_quotes = col.str.contains(r'[",\r\n]') | (col == "")
        return (
            pl.when(col.is_null()).then(pl.lit('""')).when(needs_quotes).then(quoted).otherwise(col)
        )
    if isinstance(dtype, pl.Datetime):
        return col.dt.to_string("%Y-%m-%d %H:%M:%S%.3f")
    return col.cast(pl.String).fill_null("")


def _write_csv_lines(handle: BinaryIO, frame: pl.DataFrame) -> None:
    """Append `frame` to an open CSV file as LF-terminated lines (no header)."""
    cells = [_csv_cell(pl.col(name), dtype) for name, dtype in frame.schema.items()]
    lines = frame.select(pl.concat_str(cells, separator=",").alias("line"))
    lines.write_csv(handle, include_header=False, quote_style="never", line_terminator="\n")


def write_table(frame: pl.DataFrame, path: Path, *, schema: pa.Schema) -> None:
    """Write a whole table atomically as CSV or Parquet (by the suffix of `path`)."""
    with atomic_file(path) as temp:
        if path.suffix == ".parquet":
            pq.write_table(frame.to_arrow().cast(schema), temp)
            return
        with temp.open("wb") as handle:
            handle.write((",".join(frame.columns) + "\n").encode("ascii"))
            _write_csv_lines(handle, frame)


def batches(frames: Iterator[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """Concatenate consecutive frames into batches of at least `rows` rows (the last: fewer)."""
    pending: list[pl.DataFrame] = []
    size = 0
    for frame in frames:
        pending.append(frame)
        size += frame.height
        if size >= rows:
            yield pl.concat(pending)
            pending, size = [], 0
    if pending:
        yield pl.concat(pending)


def write_usage(batches: Iterator[pl.DataFrame], path: Path) -> int:
    """Stream usage batches to `path` atomically (one Parquet row group per batch); return rows."""
    rows = 0
    with atomic_file(path) as temp:
        if path.suffix == ".parquet":
            with pq.ParquetWriter(temp, USAGE_SCHEMA) as writer:
                for batch in batches:
                    writer.write_table(
                        batch.to_arrow().cast(USAGE_SCHEMA), row_group_size=batch.height
                    )
                    rows += batch.height
            return rows
        with temp.open("wb") as handle:
            handle.write((",".join(USAGE_COLUMNS) + "\n").encode("ascii"))
            for batch in batches:
                _write_csv_lines(handle, batch)
                rows += batch.height
    return rows
