"""Write test inputs: tiny raw files by hand, in the exact shape of the real exports, and
feature files repeated from the golden one."""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from hubscore.core import contract as features

CUSTOMER_COLUMNS = ("CLOSEDATE", "MRR", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id")
NONCUSTOMER_COLUMNS = ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id")
USAGE_COLUMNS = ("id", "WHEN_TIMESTAMP", *features.USAGE_COLUMNS)
FIRST_MONDAY = date(2025, 1, 6)
TEXT_COLUMNS = {"EMPLOYEE_RANGE", "INDUSTRY"}
GOLDEN_INPUT = Path(__file__).parent / "golden" / "basic" / "input.parquet"
REAL_HISTORY = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-history"
"""The real files as they stood on 2020-01-28, beside the clone (as in CI)."""

Row = Mapping[str, object]


def csv_line(columns: Sequence[str], row: Row) -> str:
    """Format one row as the exports do: text nulls as "", numeric nulls as an empty field."""
    cells = []
    for column in columns:
        value = row.get(column)
        if column in TEXT_COLUMNS:
            cells.append('""' if value is None else f'"{value}"')
        else:
            cells.append("" if value is None else str(value))
    return ",".join(cells)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[Row]) -> Path:
    """Write a CSV with a header row and LF line endings."""
    lines = [",".join(columns), *(csv_line(columns, row) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def week(monday: date, company: int, actions: int = 10, users: int = 1) -> dict[str, object]:
    """One usage row for the week starting `monday`, `actions` on contacts by `users` users."""
    return {
        "id": company,
        "WHEN_TIMESTAMP": f"{monday.isoformat()} 00:00:00.000",
        "ACTIONS_CRM_CONTACTS": actions,
        "ACTIONS_CRM_COMPANIES": 0,
        "ACTIONS_CRM_DEALS": 0,
        "ACTIONS_EMAIL": 0,
        "USERS_CRM_CONTACTS": users if actions else 0,
        "USERS_CRM_COMPANIES": 0,
        "USERS_CRM_DEALS": 0,
        "USERS_EMAIL": 0,
    }


def weekly(company: int, weeks: int, *, actions: int = 10, start: date = FIRST_MONDAY) -> list[Row]:
    """`weeks` consecutive weekly rows for one company."""
    return [week(start + timedelta(weeks=n), company, actions) for n in range(weeks)]


def write_inputs(
    folder: Path,
    *,
    customers: Sequence[Row] = (),
    noncustomers: Sequence[Row] = (),
    usage: Sequence[Row] = (),
) -> Path:
    """Write customers.csv, noncustomers.csv and usage_actions.csv into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "customers.csv", CUSTOMER_COLUMNS, customers)
    write_csv(folder / "noncustomers.csv", NONCUSTOMER_COLUMNS, noncustomers)
    write_csv(folder / "usage_actions.csv", USAGE_COLUMNS, usage)
    return folder


def split_csv(path: Path, bounds: list[int], *, gzip_last: bool = False) -> Path:
    """Replace a CSV by a folder of part files, each with the header, cut before `bounds`."""
    header, *rows = path.read_text().splitlines(keepends=True)
    folder = path.with_suffix("")
    folder.mkdir()
    cuts = [0, *bounds, len(rows)]
    for n, (start, end) in enumerate(itertools.pairwise(cuts)):
        text = (header + "".join(rows[start:end])).encode()
        last = n == len(cuts) - 2
        name = f"part-{n:05d}.csv" + (".gz" if gzip_last and last else "")
        (folder / name).write_bytes(gzip.compress(text) if gzip_last and last else text)
    (folder / "_SUCCESS").write_text("")  # what Spark's writers leave: not data
    path.unlink()
    return folder


def golden_copies(folder: Path, copies: int) -> Path:
    """Write the golden input repeated `copies` times with fresh ids, its build metadata kept."""
    table = pq.read_table(GOLDEN_INPUT)
    base = pl.from_arrow(table)
    assert isinstance(base, pl.DataFrame)
    rows = pl.concat(
        [base.with_columns(pl.col("id") + i * 1_000_000) for i in range(copies)], rechunk=True
    )
    path = folder / "golden-copies.parquet"
    pq.write_table(rows.to_arrow().replace_schema_metadata(table.schema.metadata), path)
    return path
