"""The raw inputs of `build-features`: find each one, check its bytes and columns, register it.

Each input is `<kind>.csv` or `<kind>.parquet` in the data folder, or a folder of part files
(see folders.py). It becomes the view or table `raw_<kind>` with `_row`, its 1-based row
number, which the validation SQL reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import duckdb

from hubscore.core.contract import USAGE_COLUMNS
from hubscore.core.errors import SchemaError, ValidationError, first_line
from hubscore.features.folders import (
    PartFormat,
    check_csv_content,
    check_same_headers,
    folder_names,
    local_parts,
    open_part,
)

InputKind = Literal["customers", "noncustomers", "usage_actions"]
INPUT_KINDS: tuple[InputKind, ...] = ("customers", "noncustomers", "usage_actions")
REQUIRED_COLUMNS: dict[InputKind, tuple[str, ...]] = {
    "customers": ("CLOSEDATE", "MRR", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id"),
    "noncustomers": ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id"),
    "usage_actions": ("id", "WHEN_TIMESTAMP", *USAGE_COLUMNS),
}
RAW_VIEWS: dict[InputKind, str] = {
    "customers": "raw_customers",
    "noncustomers": "raw_noncustomers",
    "usage_actions": "raw_usage",
}


def find_input(data_dir: Path, kind: InputKind) -> Path:
    """Return `<kind>.parquet` or `<kind>.csv` in `data_dir`, a file or a folder of parts."""
    if not data_dir.is_dir():
        raise ValidationError(
            f"the input folder {data_dir} does not exist"
            if not data_dir.exists()
            else f"the input folder {data_dir} is not a folder",
            hint=f"pass --data-dir (or set data.dir) to the folder holding the "
            f"{', '.join(INPUT_KINDS)} files",
        )
    for name in folder_names(kind):
        path = data_dir / name
        if path.is_dir() or (path.is_file() and name != kind):
            return path
    raise ValidationError(
        f"no {kind}.csv or {kind}.parquet (file or folder of parts) in {data_dir}",
        hint=f"pass --data-dir with the folder holding {', '.join(INPUT_KINDS)} files",
    )


def register_input(con: duckdb.DuckDBPyConnection, kind: InputKind, path: Path) -> None:
    """Expose one input file as the view `raw_<kind>` with a 1-based `_row` column."""
    fmt, parts = local_parts(path) if path.is_dir() else (None, [path])
    try:
        if path.is_file() and path.suffix == ".parquet":
            relation = con.read_parquet(str(path), file_row_number=True)
            relation = relation.project("file_row_number + 1 as _row, * exclude (file_row_number)")
        else:
            relation = _read_parts(con, str(path), parts, fmt or "csv")
            # Materialised: parsed once, and row_number() follows file order (parts in order).
            relation = relation.project("row_number() over () as _row, *")
        check_columns(path, kind, relation.columns)
        if not relation.limit(1).fetchall():
            raise ValidationError(
                f"{path} has a header but no rows", hint="check the export that wrote it"
            )
    except duckdb.Error as exc:
        raise ValidationError(
            f"{path} could not be read: {first_line(exc)}",
            hint="check that it is a UTF-8 CSV with a header row, or a Parquet file",
        ) from None
    if path.is_file() and path.suffix == ".parquet":
        relation.create_view(RAW_VIEWS[kind])
    else:
        relation.to_table(RAW_VIEWS[kind])


def _read_parts(
    con: duckdb.DuckDBPyConnection, name: str, parts: list[Path], fmt: PartFormat
) -> duckdb.DuckDBPyRelation:
    """Read a CSV file, or a folder's parts as one input (CSV headers checked alike)."""
    files = [str(part) for part in parts]
    if fmt == "parquet":
        return con.read_parquet(files)
    headers = {str(part): check_csv_bytes(part) for part in parts}
    check_same_headers(name, headers)
    return con.read_csv(files, header=True, all_varchar=True, delimiter=",", quotechar='"')


def check_csv_bytes(path: Path) -> list[str]:
    """Refuse empty and non-UTF-8 files before DuckDB guesses at them; return the header."""
    with open_part(path) as handle:
        return check_csv_content(str(path), path.stat().st_size, handle)


def check_columns(path: Path | str, kind: InputKind, columns: list[str]) -> None:
    """Refuse an input without the columns its kind needs (names match case-insensitively)."""
    present = {c.strip().lower() for c in columns}
    missing = [c for c in REQUIRED_COLUMNS[kind] if c.lower() not in present]
    if missing:
        raise SchemaError(
            f"{path} is missing required column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (found: {', '.join(c for c in columns if c != '_row')})",
            hint=f"a {kind} file needs {', '.join(REQUIRED_COLUMNS[kind])}; names match "
            "case-insensitively, order does not matter",
        )
