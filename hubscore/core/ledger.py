"""The ledger: every list `score` wrote, kept so `hubscore monitor` can tell whether it converted.

Layout, version 1 (`LEDGER_VERSION`), under the ledger folder (default `data/ledger/`):

    v1/<cutoff>__<model_version>__<sha12>.parquet   one file per scoring run and model

(a run over several cutoffs names its first and last: `<first>_to_<last>__...`). Each file is
plain Parquet that DuckDB, Polars or Spark read as it is, one row per scored company:

    id Int64, cutoff Date, rank Int64 (1 = most likely, per cutoff), conversion_probability
    Float32, priority String, listed Boolean (rank <= the run's --top-k; every row without
    one), hold Boolean (the control group: listed, not to be called), model_version String,
    model_sha256 String, role String (champion, or shadow for `score --shadow`), scored_at
    Datetime(us, UTC)

and the run's metadata as JSON under the footer key `hubscore_ledger` (`LedgerEntry`: run
folder, model hash, input, output, rows, top-k, cutoffs with their counts, the control group's
share and seed, the model's promise from its run folder's metrics.json).

Replace or keep: the file name is the key. Re-scoring a cutoff with the same model replaces its
file (one atomic rename); another model on the same cutoff (a shadow) is a file beside it.
Readers keep, for each (model, cutoff), only the most recently recorded run, so overlapping
multi-cutoff runs never count a list twice. Bump `LEDGER_VERSION` when a column or metadata key
changes meaning; a reader refuses versions it does not know.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from hubscore.core.atomic import TEMP_MARKER, atomic_file
from hubscore.core.errors import ArtifactError, ConfigError

LEDGER_VERSION = 1
LAYOUT_DIR = f"v{LEDGER_VERSION}"
METADATA_KEY = "hubscore_ledger"
CHAMPION, SHADOW = "champion", "shadow"
LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "cutoff": pl.Date(),
    "rank": pl.Int64(),
    "conversion_probability": pl.Float32(),
    "priority": pl.String(),
    "listed": pl.Boolean(),
    "hold": pl.Boolean(),
    "model_version": pl.String(),
    "model_sha256": pl.String(),
    "role": pl.String(),
    "scored_at": pl.Datetime("us", "UTC"),
}
PROMISE_METRICS = ("precision", "recall")


@dataclass(frozen=True)
class Holdout:
    """The control group: a reproducible share of each list marked `hold` (not to be called)."""

    share: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ConfigError(
                f"the control group's share is {self.share!r}, expected a share in (0, 1)",
                hint="pass --holdout-share 0.1 (or scoring.holdout_share), or leave it off",
            )


@dataclass(frozen=True)
class LedgerEntry:
    """One run's metadata, as stored in its ledger file's footer."""

    role: str
    model_version: str
    model_sha256: str
    model_kind: str
    horizon_days: int
    run_dir: str | None
    input: str
    output: str
    rows: int
    top_k: int | None
    cutoffs: list[dict[str, Any]]
    """Per cutoff: `cutoff` (ISO date), `rows` scored, `listed`, `held`."""
    scored_at: str
    recorded_at: str
    hubscore_version: str
    holdout: dict[str, Any] | None = None
    promise: dict[str, Any] | None = None
    """The run folder's own test-weeks figures (`promise_of`), None for an older run folder."""
    ledger_version: int = LEDGER_VERSION
    path: str = field(default="", compare=False)
    """Where it was read from (not stored)."""

    def to_json(self) -> str:
        """Return the metadata JSON (without the path it was read from)."""
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, sort_keys=True)


def ledger_path(folder: Path, cutoffs: Sequence[date], model_version: str, sha: str) -> Path:
    """Return the file of a run: its cutoffs and model make the name, so a re-score replaces."""
    first, last = min(cutoffs), max(cutoffs)
    span = first.isoformat() if first == last else f"{first.isoformat()}_to_{last.isoformat()}"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_version)
    return folder / LAYOUT_DIR / f"{span}__{safe}__{sha[:12]}.parquet"


def check_ledger_folder(folder: Path, *, source: str) -> None:
    """Refuse, before any scoring, a ledger folder that cannot be written.

    Args:
        source: what set it, for the message (`--ledger`, `scoring.ledger_dir`).
    """
    target = folder / LAYOUT_DIR
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target, prefix=f".probe{TEMP_MARKER}"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write the ledger folder {folder} ({source}): {exc.strerror or exc}",
            hint="pass --ledger DIR to a writable folder, or --no-ledger to keep no ledger",
        ) from None


def model_sha256(manifest_json: str) -> str:
    """Return the model's identity: the sha256 of its manifest (which hashes every file)."""
    return hashlib.sha256(manifest_json.encode("utf-8")).hexdigest()


def hold_flags(ids: Sequence[int], cutoffs: Sequence[date], holdout: Holdout) -> np.ndarray:
    """Return which listed rows are held out: per cutoff, round(share x listed) of them.

    The choice hashes (seed, cutoff, id), so it is reproducible, independent of rank and of the
    model (a shadow's list holds out the same companies where the lists overlap).
    """
    keys = np.array(
        [
            int.from_bytes(
                hashlib.blake2b(f"{holdout.seed}:{c}:{i}".encode(), digest_size=8).digest(), "big"
            )
            for i, c in zip(ids, cutoffs, strict=True)
        ],
        dtype=np.uint64,
    )
    frame = pl.DataFrame({"cutoff": list(cutoffs), "key": keys})
    n = pl.len().over("cutoff")
    held = (n * holdout.share + 0.5).floor()  # round half up: a 10-row list at 0.05 holds 1
    order = pl.col("key").rank("ordinal").over("cutoff")
    return frame.select(order <= held).to_series().to_numpy()


def promise_of(run_dir: Path | None) -> dict[str, Any] | None:
    """Return what the run folder's metrics.json promised on its test weeks, if it has them.

    Precision and recall at each k with the 90% company-resampling interval of precision, and
    the test weeks they rest on.
    """
    path = run_dir / "metrics.json" if run_dir else None
    if path is None or not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        test, intervals = metrics["test"], metrics.get("test_intervals", {})
    except (OSError, ValueError, KeyError, TypeError):
        return None
    at: dict[str, dict[str, Any]] = {}
    for key, value in test.items():
        name, _, k = key.rpartition("_at_")
        if name in PROMISE_METRICS and k.isdigit() and isinstance(value, int | float):
            low_high = intervals.get(key) or [None, None]
            at.setdefault(k, {})[name] = value
            if name == "precision":
                at[k] |= {"precision_low": low_high[0], "precision_high": low_high[1]}
    split = metrics.get("split", {}).get("test", {})
    return {
        "source": "metrics.json: the test weeks",
        "weeks": test.get("weeks"),
        "rows": test.get("rows"),
        "positives": test.get("positives"),
        "first_cutoff": split.get("first_cutoff"),
        "last_cutoff": split.get("last_cutoff"),
        "interval": 0.9,
        "at_k": dict(sorted(at.items(), key=lambda kv: int(kv[0]))),
    }


def write_entry(folder: Path, rows: pl.DataFrame, entry: LedgerEntry) -> Path:
    """Write one run's rows and metadata atomically; return the file.

    Args:
        rows: the `LEDGER_SCHEMA` columns (cast here), sorted by cutoff then rank.
    """
    return write_encoded_entry(folder, encode_entry(rows, entry), entry)


def encode_entry(rows: pl.DataFrame, entry: LedgerEntry) -> bytes:
    """Return the bytes of one run's ledger file (`write_entry`'s `rows`): Parquet, the entry
    in its footer. Encoding needs no folder, so `score` does it while its list is written."""
    frame = rows.select([pl.col(n).cast(t) for n, t in LEDGER_SCHEMA.items()])
    encoded = io.BytesIO()
    # Polars writes its string columns as they are; through Arrow, every row's model version
    # and hash became a large string first (2M rows: 0.55 -> 0.21 s wall, and the write's
    # peak memory +377 -> +45 MiB).
    metadata = {METADATA_KEY: entry.to_json()}  # the footer's key-value metadata
    frame.write_parquet(encoded, compression="zstd", metadata=metadata)
    return encoded.getvalue()


def write_encoded_entry(folder: Path, encoded: bytes, entry: LedgerEntry) -> Path:
    """Write an `encode_entry` file of `entry` atomically into the ledger; return the file."""
    cutoffs = [date.fromisoformat(c["cutoff"]) for c in entry.cutoffs]
    target = ledger_path(folder, cutoffs, entry.model_version, entry.model_sha256)
    with _writers_lock(folder), atomic_file(target) as temp:
        temp.write_bytes(encoded)
    return target


@contextlib.contextmanager
def _writers_lock(folder: Path) -> Iterator[None]:
    """Hold the ledger's writer lock, waiting for it: concurrent runs take turns (a write is a
    rename), so two `score` runs into one ledger never fail on each other."""
    (folder / LAYOUT_DIR).mkdir(parents=True, exist_ok=True)
    with (folder / LAYOUT_DIR / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel even after SIGKILL
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def now_iso() -> str:
    """Return the current UTC time in ISO format, to the microsecond (orders re-scores)."""
    return datetime.now(UTC).isoformat()


def read_entries(folder: Path) -> list[LedgerEntry]:
    """Return every run in the ledger (footers only), oldest recorded first."""
    layout = folder / LAYOUT_DIR
    if not layout.is_dir():
        return []
    paths = sorted(p for p in layout.glob("*.parquet") if not p.name.startswith("."))
    entries = [_read_entry(path) for path in paths]
    return sorted(entries, key=lambda e: (e.recorded_at, e.path))


def _read_entry(path: Path) -> LedgerEntry:
    try:
        raw = (pq.read_metadata(path).metadata or {}).get(METADATA_KEY.encode())
        data = json.loads(raw) if raw else None
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"ledger file {path} cannot be read: {exc}",
            hint="move the damaged file out of the ledger folder; the other lists stay readable",
        ) from None
    if not isinstance(data, dict):
        raise ArtifactError(
            f"ledger file {path} has no {METADATA_KEY} metadata: not written by hubscore score",
            hint="keep only files hubscore score wrote in the ledger folder",
        )
    version = data.get("ledger_version")
    if version != LEDGER_VERSION:
        raise ArtifactError(
            f"ledger file {path} has ledger_version {version!r}; this hubscore reads "
            f"{LEDGER_VERSION}",
            hint="read it with the hubscore version that wrote it",
        )
    known = set(LedgerEntry.__dataclass_fields__) - {"path"}
    return LedgerEntry(**{k: v for k, v in data.items() if k in known}, path=str(path))


def current_lists(entries: Sequence[LedgerEntry]) -> list[tuple[LedgerEntry, date]]:
    """Return each (model, cutoff) list once: from the most recently recorded run holding it."""
    newest: dict[tuple[str, date], LedgerEntry] = {}
    for entry in entries:  # oldest first: a later run replaces
        for item in entry.cutoffs:
            newest[(entry.model_sha256, date.fromisoformat(item["cutoff"]))] = entry
    return sorted(((e, c) for (_, c), e in newest.items()), key=lambda ec: (ec[1], ec[0].path))


def scan_list(entry: LedgerEntry, cutoff: date) -> pl.LazyFrame:
    """Return the rows of one list of a run, lazily (a ledger file can hold millions)."""
    return pl.scan_parquet(entry.path).filter(pl.col("cutoff") == cutoff)


def cutoff_counts(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Return per cutoff the rows scored, listed and held (the entry's `cutoffs`)."""
    counts = (
        frame.group_by("cutoff")
        .agg(
            pl.len().alias("rows"),
            pl.col("listed").sum().alias("listed"),
            pl.col("hold").sum().alias("held"),
        )
        .sort("cutoff")
    )
    names = ("rows", "listed", "held")
    return [
        {"cutoff": row["cutoff"].isoformat(), **{k: int(row[k]) for k in names}}
        for row in counts.iter_rows(named=True)
    ]
