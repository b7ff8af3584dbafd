"""Feature data as one Parquet file or as a folder of part files (what the Spark engine writes).

A folder holds `part-*.parquet` files in row order and `_hubscore_metadata.json`, the key-value
metadata a single file keeps in its footer (Spark cannot write custom footer metadata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
import pyarrow.parquet as pq

from hubscore.core.artifacts import sha256_file
from hubscore.core.contract import feature_file_metadata
from hubscore.core.errors import SchemaError

METADATA_FILE = "_hubscore_metadata.json"
"""The sidecar of a Parquet folder; names starting with `_` or `.` are not data (Spark's rule)."""


def parquet_parts(path: Path) -> list[Path]:
    """Return `[path]` for a file, else the folder's Parquet part files in name order."""
    if not path.is_dir():
        return [path]
    parts = sorted(
        p for p in path.iterdir() if p.suffix == ".parquet" and not p.name.startswith(("_", "."))
    )
    if not parts:
        raise SchemaError(
            f"{path} is a folder without Parquet part files",
            hint="pass a Parquet file, or a folder written by build-features --engine spark",
        )
    return parts


def read_kv_metadata(path: Path) -> dict[str, str]:
    """Return the hubscore key-value metadata of a Parquet file (footer) or folder (sidecar)."""
    if path.is_dir():
        sidecar = path / METADATA_FILE
        if not sidecar.is_file():
            return {}
        loaded: dict[str, str] = json.loads(sidecar.read_text(encoding="utf-8"))
        return loaded
    return feature_file_metadata(pq.read_schema(path).metadata)


def recorded_as_of(path: Path) -> date | None:
    """Return the date a scoring input was built at (`build-features --as-of`), if it says.

    None for a CSV, a training file, or a file that cannot be read here (score reports that).
    """
    if not (path.is_dir() or path.suffix == ".parquet") or not path.exists():
        return None
    try:
        text = read_kv_metadata(path).get("as_of", "")
    except (OSError, ValueError, pa.ArrowException):
        return None
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def write_folder_metadata(folder: Path, metadata: Mapping[str, str]) -> None:
    """Write a Parquet folder's key-value metadata sidecar."""
    (folder / METADATA_FILE).write_text(sidecar_text(metadata))


def sidecar_text(metadata: Mapping[str, str]) -> str:
    """Return the text of a Parquet folder's metadata sidecar."""
    return json.dumps(dict(metadata), indent=2) + "\n"


def parquet_fingerprint(path: Path) -> str:
    """Return the sha256 of a file, or of a folder's part hashes in order."""
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for part in [*parquet_parts(path), path / METADATA_FILE]:
        if part.is_file():
            digest.update(f"{part.name}:{sha256_file(part)}\n".encode())
    return digest.hexdigest()
