"""An input as a folder of part files: one format, read in name order as one file would be.

Both engines accept `<kind>/` (or `<kind>.csv/`, `<kind>.parquet/`) holding `*.csv`,
`*.csv.gz` or `*.parquet` parts, each CSV part with its own header. Rows are numbered through
the parts in name order, so a reject's row number is the one the concatenated file would show.
Names starting with `_` or `.` are not data (Spark's rule: `_SUCCESS`, `.crc` files).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

from hubscore.core.errors import ValidationError

PartFormat = Literal["csv", "parquet"]
PART_SUFFIXES: dict[str, PartFormat] = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet"}


def folder_names(kind: str) -> tuple[str, ...]:
    """Return the names an input folder of `kind` may have, in the order they are looked for."""
    return (f"{kind}.parquet", f"{kind}.csv", kind)


def is_hidden(relative: str) -> bool:
    """Tell whether a part's path inside its folder has a `_` or `.` name on the way."""
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def part_format(name: str) -> PartFormat | None:
    """Return a part file's format from its name, or None for a file that is no part."""
    lower = name.lower()
    return next((fmt for suffix, fmt in PART_SUFFIXES.items() if lower.endswith(suffix)), None)


def folder_format(folder: str, relative_names: Sequence[str]) -> PartFormat:
    """Return the one format of a folder's visible files; refuse none, mixed or foreign files."""
    formats = {name: part_format(name) for name in relative_names}
    foreign = sorted(name for name, fmt in formats.items() if fmt is None)
    found = sorted({fmt for fmt in formats.values() if fmt is not None})
    hint = "an input folder holds part files of one format: *.csv (or *.csv.gz) or *.parquet"
    if foreign:
        shown = ", ".join(foreign[:3])
        raise ValidationError(f"{folder} holds files that are no part files: {shown}", hint=hint)
    if not found:
        raise ValidationError(f"{folder} holds no .csv or .parquet part files", hint=hint)
    if len(found) > 1:
        counts = ", ".join(f"{sum(f == fmt for f in formats.values())} {fmt}" for fmt in found)
        raise ValidationError(f"{folder} mixes CSV and Parquet part files ({counts})", hint=hint)
    return found[0]


def local_parts(folder: Path) -> tuple[PartFormat, list[Path]]:
    """Return a local folder's format and its part files (any depth) in name order."""
    relative = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not is_hidden(p.relative_to(folder).as_posix())
    )
    return folder_format(str(folder), relative), [folder / name for name in relative]


def open_part(path: Path) -> BinaryIO:
    """Open a CSV part for reading its bytes, decompressing a `.gz` one."""
    if path.name.lower().endswith(".gz"):
        return gzip.GzipFile(path)  # type: ignore[return-value]  # a BinaryIO in all but name
    return path.open("rb")


def open_part_bytes(name: str, data: bytes) -> BinaryIO:
    """Open a CSV part's bytes already in memory, as `open_part` opens a file."""
    raw = io.BytesIO(data)
    if name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def check_csv_content(name: str, size: int, lines: Iterable[bytes]) -> list[str]:
    """Refuse an empty or non-UTF-8 CSV before a reader guesses at it; return its header."""
    if size == 0:
        raise ValidationError(f"{name} is empty (0 bytes)", hint="re-export the file")
    header: list[str] = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{name} is not UTF-8: line {number} has byte "
                f"0x{line[exc.start]:02x} at column {exc.start + 1}",
                hint="re-export the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            ) from None
        if number == 1:
            header = next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), [])
    return header


def check_same_headers(folder: str, headers: Mapping[str, Sequence[str]]) -> None:
    """Refuse CSV parts whose headers differ: the readers line up later parts by position.

    Exactly, case included: each engine names the columns after one part's header, and the
    quarantine's `original` JSON carries those names.
    """
    names = sorted(headers)
    for name in names[1:]:
        if list(headers[name]) != list(headers[names[0]]):
            raise ValidationError(
                f"{folder}: {name} has the columns {', '.join(headers[name])}, but "
                f"{names[0]} has {', '.join(headers[names[0]])}",
                hint="write every part file with the same header, in the same column order",
            )
