"""Read the feature file, split it without leaking, and fit the four model families.

Splits (see `split_rows`, `cv_folds`): for `converted_within` the timeline is cut, with a gap
of one horizon between the last training cutoff and the first test cutoff, so no training
label looks into the test period; cross-validation is expanding-window over time. For
`is_customer` whole companies are split, stratified by label. Rows are ordered by a seeded
hash of (id, cutoff): never by id, which encodes the label in the files we know.

Every model is fitted on exactly the float32 matrix `encoders.encode` gives the scorer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq
from sklearn.model_selection import StratifiedKFold, train_test_split

from hubscore._version import __version__
from hubscore.core.config import Config
from hubscore.core.contract import (
    BUILD_HINT,
    KEY_COLUMNS,
    LABEL,
    METADATA_KEYS,
    RAW_FEATURES,
)
from hubscore.core.datasets import parquet_fingerprint, parquet_parts, read_kv_metadata
from hubscore.core.errors import ConfigError, LeakageError, SchemaError, ValidationError

ID, CUTOFF = KEY_COLUMNS
ORDER = "_order"
METADATA_HINT = (
    "to train on some weeks, keep the file and pass hubscore train --since DATE --until DATE; "
    "a rewritten file keeps hubscore's metadata with Polars' "
    "df.write_parquet(OUT, metadata=pl.read_parquet_metadata(SRC))"
)
Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FeatureFile:
    """A checked feature file: rows in hashed order, its metadata and a content fingerprint."""

    frame: pl.DataFrame
    metadata: dict[str, str]
    fingerprint: str
    path: Path
    since: date | None = None
    until: date | None = None
    sampling: dict[str, Any] | None = None
    """How the negatives were sampled to fit `training.max_rows` (None: every row read)."""


@dataclass(frozen=True)
class Split:
    """Row positions of the training and test sides, and what the split looked like."""

    train: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]
    report: dict[str, Any]


WEIGHT = "_weight"
"""A sampled frame's row weights: 1 for positives, m for the 1 in m negatives kept."""
READ_BATCH_ROWS = 262_144


def read_features(
    path: Path,
    *,
    since: date | None = None,
    until: date | None = None,
    max_rows: int | None = None,
) -> FeatureFile:
    """Read and check a features.parquet written by build-features (or a Spark folder of parts).

    Args:
        since, until: keep only the cutoffs in [since, until]: a slice of the timeline
            without rewriting the file (a rewrite loses the metadata training needs).
        max_rows: rows held in memory at most (about): beyond it every positive row is kept
            and 1 in m negatives, chosen by a label-blind hash of (id, cutoff), each weighing
            m in every fit and metric (`sampling` says how many).
    """
    # Every read below opens the same build's file, even if build-features publishes a new set
    # through the symlinks meanwhile (it keeps the previous set; messages name the given path).
    shown, path = path, path.resolve()
    metadata = _checked_metadata(path, shown=shown)
    parts = parquet_parts(path)
    columns = pl.scan_parquet(parts).collect_schema().names()
    missing = [c for c in (*KEY_COLUMNS, LABEL, *RAW_FEATURES) if c not in columns]
    if missing:
        raise SchemaError(f"{shown} lacks columns: {', '.join(missing)}", hint=BUILD_HINT)
    window = _in_slice(shown, parts, since=since, until=until)
    rows, positives = _counts(parts, window)
    every = _sampling_step(rows, positives, max_rows)
    frame = _read_kept(parts, window, every)
    sampling = None
    if every > 1:
        sampling = {"negatives_kept": f"1 in {every}", "rows": rows, "rows_read": frame.height}
        sampling |= {"positives": positives, "max_rows": max_rows}
    fingerprint = parquet_fingerprint(path)
    return FeatureFile(_ordered(frame), metadata, fingerprint, shown, since, until, sampling)


def _checked_metadata(path: Path, *, shown: Path) -> dict[str, str]:
    if not path.exists():
        raise SchemaError(f"feature file {shown} does not exist", hint=BUILD_HINT)
    try:  # a file, or a folder of part files from build-features --engine spark
        metadata = read_kv_metadata(path)
    except Exception:  # pyarrow raises several untyped errors for non-Parquet files
        raise SchemaError(f"{shown} is not a Parquet file", hint=BUILD_HINT) from None
    absent = [key for key in METADATA_KEYS if key not in metadata]
    if absent:
        raise SchemaError(
            f"{shown} is not a hubscore feature file: metadata lacks {', '.join(absent)}",
            hint=f"{BUILD_HINT}; {METADATA_HINT}",
        )
    if metadata["hubscore_version"] != __version__:
        raise SchemaError(
            f"{shown} was built by hubscore {metadata['hubscore_version']}, this is {__version__}",
            hint=f"rebuild it: {BUILD_HINT}",
        )
    return metadata


def _in_slice(path: Path, parts: list[Path], *, since: date | None, until: date | None) -> pl.Expr:
    """Return the filter of the cutoffs in [since, until]; refuse an empty slice."""
    if since is not None and until is not None and since > until:
        raise ConfigError(f"--since {since} is after --until {until}", hint="swap the dates")
    cutoff = pl.col(CUTOFF)
    window = (cutoff >= since if since else pl.lit(True)) & (
        cutoff <= until if until else pl.lit(True)
    )
    if since is None and until is None:
        return window
    scan = pl.scan_parquet(parts).select(CUTOFF)
    if scan.filter(window).select(pl.len()).collect().item() == 0:
        first, last = (
            scan.select(cutoff.min().alias("first"), cutoff.max().alias("last")).collect().row(0)
        )
        raise ValidationError(
            f"no rows of {path} have a cutoff from {since or 'the start'} to {until or 'the end'}",
            hint=f"its cutoffs run from {first} to {last}",
        )
    return window


def _counts(parts: list[Path], window: pl.Expr) -> tuple[int, int]:
    """Rows and positive rows in the slice, from two columns only."""
    label = pl.col(LABEL).cast(pl.Int64)
    scan = pl.scan_parquet(parts).filter(window)
    rows, positives = scan.select(pl.len(), label.sum()).collect().row(0)
    return int(rows), int(positives or 0)


def _sampling_step(rows: int, positives: int, max_rows: int | None) -> int:
    """Return m: keep 1 in m negatives so that about `max_rows` rows are read (1: all)."""
    if max_rows is None or rows <= max_rows:
        return 1
    room = max(max_rows - positives, max_rows // 10)  # positives alone may fill the budget
    return max(1, math.ceil((rows - positives) / room))


def _read_kept(parts: list[Path], window: pl.Expr, every: int) -> pl.DataFrame:
    """Read the slice; with every > 1, batch by batch, keeping positives and 1 in m negatives
    (a weight column says m), so the whole file is never in memory."""
    if every == 1:
        return pl.read_parquet(parts).filter(window)
    kept = []
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=READ_BATCH_ROWS):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)  # a record batch gives a frame
            frame = frame.filter(window)
            keep = (frame.get_column(LABEL).to_numpy() == 1) | (_row_hash(frame) % every == 0)
            weight = np.where(frame.get_column(LABEL).to_numpy() == 1, 1, every)
            kept.append(frame.with_columns(pl.Series(WEIGHT, weight)).filter(keep))
    return pl.concat(kept, rechunk=True)


def weights_of(frame: pl.DataFrame) -> Vector | None:
    """Return a sampled frame's row weights, or None when every row was read."""
    if WEIGHT not in frame.columns:
        return None
    return frame.get_column(WEIGHT).cast(pl.Float64).to_numpy()


def _row_hash(frame: pl.DataFrame) -> npt.NDArray[np.int64]:
    """A splitmix64 hash of (id, cutoff): stable across runs, label-blind, never the id's order."""
    ids = frame.get_column(ID).cast(pl.Int64).to_numpy().astype(np.uint64)
    days = week_codes(frame)
    with np.errstate(over="ignore"):
        z = ids * np.uint64(0x9E3779B97F4A7C15) + (days.astype(np.uint64) << np.uint64(32))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    hashed: npt.NDArray[np.int64] = z.astype(np.int64) >> 1
    return hashed


def _ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """Sort by cutoff, then a splitmix64 hash of (id, cutoff): stable and label-blind.

    Consumes `frame`: columns are reordered one at a time, so the peak is the frame plus one
    column rather than two frames.
    """
    order = _row_hash(frame)
    positions = pl.Series(np.lexsort((order, week_codes(frame))))
    names = [name for name in frame.columns if name != ORDER]
    columns = [frame.drop_in_place(name).gather(positions) for name in names]
    return pl.DataFrame([*columns, pl.Series(ORDER, order).gather(positions)])


def take(frame: pl.DataFrame, rows: npt.NDArray[np.int64]) -> pl.DataFrame:
    """Return the rows at ascending positions `rows`; a zero-copy slice when they are one run.

    Time splits and folds are runs (rows are sorted by cutoff), so training at scale does not
    copy the frame once per fold.
    """
    if rows.size and np.all(np.diff(rows) == 1):
        return frame.slice(int(rows[0]), rows.size)
    return frame[rows]


def labels(frame: pl.DataFrame) -> npt.NDArray[np.int64]:
    """Return the label column as int64; refuse nulls and a single class."""
    column = frame.get_column(LABEL)
    if column.null_count():
        raise ValidationError(f"{column.null_count()} rows have no label", hint=BUILD_HINT)
    y = column.cast(pl.Int64).to_numpy()
    if np.unique(y).size < 2:
        raise ValidationError(
            f"the label has a single class ({int(y[0]) if y.size else 'no rows'}) in "
            f"{y.size} rows; a classifier needs positives and negatives",
            hint="build features over a longer period, or with a longer horizon",
        )
    return y


def split_rows(ff: FeatureFile, config: Config) -> Split:
    """Split into training and test rows by time (converted_within) or by company."""
    frame = ff.frame
    y = labels(frame)
    if ff.metadata["target"] == "is_customer":
        train, test = _company_split(frame, y, config)
    else:
        train, test = _time_split(frame, config.training.test_size, ff.metadata)
    for side, rows in (("training", train), ("test", test)):
        if not y[rows].any():
            raise ValidationError(
                f"the {side} side has no positive rows", hint="lower training.test_size"
            )
    return Split(train, test, _split_report(frame, y, train, test, ff.metadata))


def check_unseen(
    fitted: npt.NDArray[np.int64], scored: npt.NDArray[np.int64], *, what: str
) -> None:
    """Refuse to score rows a fit has seen: every metric, calibration and threshold comes
    from rows the model never trained on (and no fit ever stops early on them)."""
    seen = np.intersect1d(fitted, scored)
    if seen.size:
        raise LeakageError(
            f"{what}: {seen.size:,} of the {scored.size:,} rows it scores were among the "
            f"{fitted.size:,} it was fitted on",
            hint="this is a bug in hubscore: please report it with the training log",
        )


def week_codes(frame: pl.DataFrame) -> npt.NDArray[np.int64]:
    return frame.get_column(CUTOFF).cast(pl.Date).cast(pl.Int64).to_numpy()


def _time_split(
    frame: pl.DataFrame, test_size: float, metadata: Mapping[str, str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    days = week_codes(frame)
    weeks = np.unique(days)
    n_test = max(1, round(test_size * weeks.size))
    horizon = int(metadata["horizon_days"])
    first_test = weeks[-n_test] if n_test < weeks.size else weeks[0]
    train_weeks = weeks[weeks + horizon <= first_test]
    if train_weeks.size == 0:
        raise ValidationError(
            f"{weeks.size} cutoffs leave no training cutoff a horizon ({horizon} days) "
            f"before the test period",
            hint="build features over more cutoffs, or lower training.test_size",
        )
    return np.flatnonzero(days <= train_weeks[-1]), np.flatnonzero(days >= first_test)


def _company_labels(frame: pl.DataFrame, y: npt.NDArray[np.int64]) -> pl.DataFrame:
    keyed = frame.select(ID, ORDER).with_columns(pl.Series(LABEL, y))
    companies = keyed.group_by(ID).agg(pl.col(LABEL).max(), pl.col(ORDER).min())
    return companies.sort(ORDER)  # hashed order: the id never orders anything


def _company_split(
    frame: pl.DataFrame, y: npt.NDArray[np.int64], config: Config
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    companies = _company_labels(frame, y)
    ids, company_y = companies.get_column(ID).to_numpy(), companies.get_column(LABEL).to_numpy()
    if min(int(company_y.sum()), int((company_y == 0).sum())) < 2:
        raise ValidationError(
            "a stratified split needs at least 2 companies of each class", hint=BUILD_HINT
        )
    train_ids, _ = train_test_split(
        ids,
        test_size=config.training.test_size,
        stratify=company_y,
        random_state=config.training.random_seed,
    )
    in_train = frame.get_column(ID).is_in(pl.Series(train_ids)).to_numpy()
    return np.flatnonzero(in_train), np.flatnonzero(~in_train)


def _split_report(
    frame: pl.DataFrame,
    y: npt.NDArray[np.int64],
    train: npt.NDArray[np.int64],
    test: npt.NDArray[np.int64],
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    cutoffs = frame.get_column(CUTOFF).cast(pl.Date)

    def side(rows: npt.NDArray[np.int64]) -> dict[str, Any]:
        dates = cutoffs.gather(rows)
        return {
            "rows": int(rows.size),
            "positives": int(y[rows].sum()),
            "companies": int(frame.get_column(ID).gather(rows).n_unique()),
            "first_cutoff": str(dates.min()),
            "last_cutoff": str(dates.max()),
            "cutoffs": int(dates.n_unique()),
        }

    kind = "company" if metadata["target"] == "is_customer" else "time"
    gap = 0 if kind == "company" else int(metadata["horizon_days"])
    return {"kind": kind, "gap_days": gap, "train": side(train), "test": side(test)}


VALIDATION_SHARE = 0.5
"""The later share of the training side's weeks that the time folds validate on, in
`training.cv_folds` blocks: the first fold still fits on the earlier half (less a horizon)."""

FoldRows = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]


@dataclass(frozen=True)
class Folds:
    """Cross-validation folds inside the training side, and those that could not be used."""

    rows: list[FoldRows]
    """(fit rows, validation rows) of each usable fold, in time order."""
    dropped: list[str]
    """Why a fold was left out (no positive rows on one side), in words."""


def cv_folds(ff: FeatureFile, split: Split, config: Config) -> Folds:
    """Return the folds inside the training side that have positives on both sides.

    A fold without a positive on either side cannot score a ranking: it is left out and said
    why, rather than failing the run (a short history may have only one or two usable).
    """
    k = config.training.cv_folds
    y = labels(ff.frame)
    if ff.metadata["target"] == "is_customer":
        candidates = _company_folds(ff.frame, y, split.train, config)
    else:
        horizon = int(ff.metadata["horizon_days"])
        candidates = _time_folds(week_codes(ff.frame), split.train, k, horizon)
    usable, dropped = [], []
    for number, (fit_rows, val_rows) in enumerate(candidates, start=1):
        if y[fit_rows].any() and y[val_rows].any():
            usable.append((fit_rows, val_rows))
            continue
        side = "fitting" if not y[fit_rows].any() else "validation"
        dropped.append(
            f"fold {number} of {k}: no positive rows on its {side} side "
            f"({fit_rows.size:,} fitting rows, {val_rows.size:,} validation rows)"
        )
    if not usable:
        raise ValidationError(
            f"no cross-validation fold of the training side has positive rows on both sides "
            f"({'; '.join(dropped)})",
            hint="build features over more cutoffs, or lower training.cv_folds",
        )
    return Folds(usable, dropped)


def _time_folds(
    days: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], k: int, horizon: int
) -> list[FoldRows]:
    """Expanding-window folds: the later half of the weeks in k blocks, each fitted on the
    weeks a horizon before it (the same gap as the final split)."""
    weeks = np.unique(days[rows])
    if k > weeks.size // 2:
        raise ValidationError(
            f"{weeks.size} training cutoffs cannot make {k} time folds (each fold validates on "
            "at least one week of the later half)",
            hint=(
                f"lower training.cv_folds to at most {weeks.size // 2}"
                if weeks.size >= 4
                else "build more weekly cutoffs (2 folds need at least 4 training cutoffs)"
            ),
        )
    first = weeks.size - max(k, round(weeks.size * VALIDATION_SHARE))
    blocks = np.array_split(weeks[first:], k)
    folds = []
    for block in blocks:
        fit_rows = rows[days[rows] + horizon <= block[0]]
        val_rows = rows[np.isin(days[rows], block)]
        folds.append((fit_rows, val_rows))
    return folds


def _company_folds(
    frame: pl.DataFrame, y: npt.NDArray[np.int64], rows: npt.NDArray[np.int64], config: Config
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    companies = _company_labels(frame[rows], y[rows])
    ids, company_y = companies.get_column(ID).to_numpy(), companies.get_column(LABEL).to_numpy()
    seed = config.training.random_seed
    splitter = StratifiedKFold(n_splits=config.training.cv_folds, shuffle=True, random_state=seed)
    row_ids = frame.get_column(ID).gather(rows)
    folds = []
    for _fit_idx, val_idx in splitter.split(ids, company_y):
        in_val = row_ids.is_in(pl.Series(ids[val_idx])).to_numpy()
        folds.append((rows[~in_val], rows[in_val]))
    return folds
