"""What happened after a list: who converted when, from the newest customers and noncustomers.

The monitor runs on the scoring host, so it reads the files with Polars (no DuckDB, no build):
customers for each company's CLOSEDATE, noncustomers for the companies still free, and
usage_actions only for its newest week (how far the files reach). Each may be `<kind>.csv`,
`<kind>.parquet` or a folder of part files, as `build-features` reads them; column names match
in any case. A company with several readable CLOSEDATEs converted at the earliest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from hubscore.core.errors import SchemaError, ValidationError

CUSTOMERS, NONCUSTOMERS, USAGE = "customers", "noncustomers", "usage_actions"
REQUIRED = {CUSTOMERS: ("id", "CLOSEDATE"), NONCUSTOMERS: ("id",), USAGE: ("WHEN_TIMESTAMP",)}
PART_SUFFIXES = (".csv", ".csv.gz", ".parquet")


@dataclass(frozen=True)
class SourceFile:
    """One input the monitor read: its rows, and those it could not use (no id or date)."""

    kind: str
    path: str
    rows: int
    unreadable: int


@dataclass(frozen=True)
class Outcomes:
    """Conversions as the newest files know them."""

    closes: pl.DataFrame
    """`id` Int64, `closed` Date: each customer's earliest readable CLOSEDATE."""
    known: pl.DataFrame | None
    """`id` of every company in customers or noncustomers; None without a noncustomers file."""
    newest_close: date | None
    newest_usage_end: date | None
    """The last day of the newest usage week (a Monday's row covers Monday..Sunday)."""
    files: list[SourceFile]


def read_outcomes(data_dir: Path) -> Outcomes:
    """Read the customers file (required), noncustomers and usage_actions (optional)."""
    if not data_dir.is_dir():
        raise ValidationError(
            f"the data folder {data_dir} does not exist",
            hint="pass --data-dir (or set data.dir) to the folder with the newest customers file",
        )
    customers_path = find_file(data_dir, CUSTOMERS)
    if customers_path is None:
        raise ValidationError(
            f"no customers.csv or customers.parquet (file or folder of parts) in {data_dir}: "
            "the monitor learns who converted from it",
            hint="pass --data-dir with the newest export of the customers file",
        )
    customers = _read(customers_path, CUSTOMERS)
    ids = _ids(customers)
    closed = _dates(customers.get_column("closedate"))
    closes = (
        pl.DataFrame({"id": ids, "closed": closed})
        .drop_nulls()
        .group_by("id")
        .agg(pl.col("closed").min())
        .sort("id")
    )
    files = [_source(CUSTOMERS, customers_path, customers.height, ids.null_count(), closed)]
    known = _known(data_dir, ids, files)
    return Outcomes(
        closes=closes,
        known=known,
        newest_close=closes.get_column("closed").max() if closes.height else None,  # type: ignore[arg-type]
        newest_usage_end=_newest_usage(data_dir, files),
        files=files,
    )


def _source(kind: str, path: Path, rows: int, no_id: int, closed: pl.Series | None) -> SourceFile:
    no_date = closed.null_count() if closed is not None else 0
    return SourceFile(kind, str(path), rows, max(no_id, no_date))


def _known(data_dir: Path, customer_ids: pl.Series, files: list[SourceFile]) -> pl.DataFrame | None:
    path = find_file(data_dir, NONCUSTOMERS)
    if path is None:
        return None
    free = _read(path, NONCUSTOMERS)
    ids = _ids(free)
    files.append(_source(NONCUSTOMERS, path, free.height, ids.null_count(), None))
    return pl.DataFrame({"id": pl.concat([customer_ids, ids])}).drop_nulls().unique()


def _newest_usage(data_dir: Path, files: list[SourceFile]) -> date | None:
    path = find_file(data_dir, USAGE)
    if path is None:
        return None
    weeks = _read(path, USAGE, columns=("when_timestamp",)).get_column("when_timestamp")
    mondays = _dates(weeks)
    files.append(SourceFile(USAGE, str(path), weeks.len(), mondays.null_count()))
    newest = mondays.max()
    return newest + timedelta(days=6) if isinstance(newest, date) else None


def find_file(data_dir: Path, kind: str) -> Path | None:
    """Return `<kind>.parquet`, `<kind>.csv` (file or folder of parts) or a `<kind>/` folder."""
    for name in (f"{kind}.parquet", f"{kind}.csv", kind):
        path = data_dir / name
        if path.is_dir() or (path.is_file() and name != kind):
            return path
    return None


def _parts(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    parts = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(PART_SUFFIXES)
        and not any(s.startswith(("_", ".")) for s in p.relative_to(path).parts)
    )
    if not parts:
        raise ValidationError(
            f"{path} holds no .csv or .parquet part files", hint="check the export's folder"
        )
    return parts


def _read(path: Path, kind: str, *, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Read every part as text columns named in lower case; refuse missing columns."""
    wanted = columns or tuple(c.lower() for c in REQUIRED[kind])
    frames = []
    for part in _parts(path):
        try:
            scan = _scan(part)
            names = {c.strip().lstrip("\ufeff").lower(): c for c in scan.collect_schema().names()}
            missing = [c for c in REQUIRED[kind] if c.lower() not in names]
            if missing:
                raise SchemaError(
                    f"{part} is missing required column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)}",
                    hint=f"the monitor reads {', '.join(REQUIRED[kind])} from the {kind} file",
                )
            # Only the columns the monitor needs: a usage file can hold tens of millions of rows.
            frames.append(
                scan.select([pl.col(names[c]).cast(pl.String).alias(c) for c in wanted]).collect()
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise ValidationError(
                f"{part} could not be read: {exc}",
                hint="check that it is a UTF-8 CSV with a header row, or a Parquet file",
            ) from None
    return pl.concat(frames)


def _scan(part: Path) -> pl.LazyFrame:
    name = part.name.lower()
    if name.endswith(".parquet"):
        return pl.scan_parquet(part)
    if name.endswith(".gz"):  # scan_csv reads no compressed files; read_csv decompresses
        return pl.read_csv(part, infer_schema=False, null_values=[""]).lazy()
    return pl.scan_csv(part, infer_schema=False, null_values=[""])


def _ids(frame: pl.DataFrame) -> pl.Series:
    return frame.get_column("id").str.strip_chars().cast(pl.Int64, strict=False)


def _dates(values: pl.Series) -> pl.Series:
    """Parse `YYYY-MM-DD` (a timestamp's date part too); anything else is null."""
    return values.str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)


def known_until(outcomes: Outcomes, given: date | None) -> tuple[date, str]:
    """Return the day conversions are known until, and where that date comes from."""
    if given is not None:
        return given, "--known-until"
    found = {
        "the newest CLOSEDATE in the customers file": outcomes.newest_close,
        "the end of the newest usage week": outcomes.newest_usage_end,
    }
    dated = {source: day for source, day in found.items() if day is not None}
    if not dated:
        raise ValidationError(
            "the customers file has no readable CLOSEDATE and there is no usage file: the "
            "monitor cannot tell how far conversions are known",
            hint="pass --known-until YYYY-MM-DD",
        )
    source, day = max(dated.items(), key=lambda item: item[1])
    return day, source
