"""`score_file`: stream a feature file through the scorer into a ranked, atomic output file.

Pass 1 streams record batches (bounded memory): conform, count drift, score, and append
(key, probability) to a scratch Parquet beside the output. Pass 2 reads only those narrow
columns back, refuses duplicate keys, ranks, and writes the labelled output in slices to a
temp file that is renamed over the target only when complete, under an flock on the target.

OUTPUT `-` writes CSV to stdout once the list is complete.

A CSV output holds what a caller reads (`CALLER_COLUMNS`: rank, id, week, probability, tier,
reasons, basis); Parquet holds every column, contributions included (`all_columns` puts them
in a CSV too: a JSON object per row swamps a spreadsheet).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hubscore._version import __version__
from hubscore.core.atomic import atomic_file, exclusive_lock
from hubscore.core.datasets import parquet_parts, read_kv_metadata
from hubscore.core.errors import ArtifactError, ConfigError, DriftError, ValidationError
from hubscore.engine.conform import check_input, check_unique_keys
from hubscore.engine.drift import worst_features
from hubscore.engine.reasons import BASIS, EXPLANATION_DTYPES, REASON_COLUMNS
from hubscore.engine.scorer import (
    CUTOFF,
    HOLD,
    ID,
    PREDICTION,
    PRIORITY,
    PRIORITY_LEVELS,
    PROBABILITY,
    RANK,
    SCORED_AT,
    Scorer,
    empty_batch,
    output_columns,
    rank_scores,
    scored_at_for,
    with_probabilities,
)
from hubscore.serving.ledger import LedgerRequest, mark_holdout, record_staged, stage_run
from hubscore.serving.pipeline import (
    Batch,
    Progress,
    Streamed,
    TopRows,
    stream_scores,
    thread_pool,
)
from hubscore.serving.summary import ProbabilitySummary, summarise_array

OUTPUT_ROW_GROUP = 65536
"""Rows per output row group (and CSV chunk): fixed, so --batch-size never changes the bytes."""
DECODED_ROWS = 262_144
"""Input rows decoded at once, at most. pyarrow writes row groups of 1,048,576 rows: decoded
whole, 2M rows peaked at 942 MiB to read, in parts of this size 233 MiB (+30% CPU). Polars
writes groups of this size and DuckDB smaller ones: those are decoded whole, as before."""
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
STDOUT = "-"
"""OUTPUT that means CSV on stdout."""
CALLER_COLUMNS = (RANK, HOLD, ID, CUTOFF, PROBABILITY, PRIORITY, PREDICTION, *REASON_COLUMNS, BASIS)
"""A CSV call list's columns, in this order (those the output has: `hold`, the control group
not to call, only with --holdout-share); without a `cutoff`, the week is `scored_at`, after
the id."""


@dataclass(frozen=True)
class ScoreSummary:
    """What a `score_file` run did, for the stderr summary and `--json`."""

    input: str
    output: str
    model_version: str
    rows_scored: int
    rows_written: int
    positives: int
    threshold: float
    scored_at: str
    duration_s: float
    probability: dict[str, float]
    confidence: dict[str, int]
    drift_worst: list[tuple[str, float]]
    warnings: list[str] = field(default_factory=list)
    rows_explained: int = 0
    ledger: dict[str, Any] | None = None
    """Where the run was recorded (`hubscore.serving.ledger`), None without a ledger."""
    priority: dict[str, int] = field(default_factory=dict)
    """Rows per priority tier."""

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON-ready data."""
        data = asdict(self)
        data["drift_worst"] = [{"feature": n, "psi": round(v, 6)} for n, v in self.drift_worst]
        return data


def score_file(
    input_path: Path,
    output_path: Path,
    *,
    scorer: Scorer,
    threshold: float | None = None,
    top_k: int | None = None,
    as_of: date | None = None,
    batch_size: int = 65536,
    fail_on_drift: float | None = None,
    drift_allowances: Mapping[str, float] | None = None,
    on_progress: Progress | None = None,
    explain: int | None = None,
    ledger: LedgerRequest | None = None,
    all_columns: bool = False,
) -> ScoreSummary:
    """Score INPUT (Parquet or CSV) into OUTPUT (format from its extension), atomically.

    Args:
        all_columns: a CSV output gets every column (confidence, model version, scoring
            time, base value and contributions), not only the caller's.
        ledger: record every scored row there once the list is written (and mark its
            control group); None keeps no record.
        fail_on_drift: refuse (DriftError, exit 7) when a feature's PSI exceeds it.
        drift_allowances: per-feature PSI limits that replace `fail_on_drift` for them.
        explain: explain the top N rows (per cutoff); None explains the `top_k` list when
            the run folder can (older folders cannot: a warning), 0 explains nothing.
    """
    allowances = dict(drift_allowances or {})
    check_allowances(allowances, scorer)
    started = time.perf_counter()
    out_format = "csv" if str(output_path) == STDOUT else file_format(output_path, role="output")
    reader = open_input(input_path, scorer, batch_size=batch_size)
    scored_at = scored_at_for(as_of)
    cut = scorer.manifest.decision_threshold if threshold is None else threshold
    warnings = check_input(reader.metadata, scorer.manifest)
    explained = rows_to_explain(scorer, explain, top_k, warnings)
    bands = scorer.manifest.confidence_bands
    paths = (str(input_path), str(output_path))
    # The probabilities' summary and the ledger's file are made beside the list's write, on
    # the other core: they read the final rows, and only the list's write is left to wait for.
    with _destination(output_path) as temp, thread_pool(1, "beside") as beside:
        streamed = stream_scores(
            reader.batches,
            scorer,
            total_rows=reader.total_rows,
            # Only listed rows get reasons: explaining more would be thrown away.
            explain=min(explained, top_k or explained),
            on_progress=on_progress,
        )
        stats = beside.submit(summarise_array, streamed.probabilities, threshold=cut, bands=bands)
        ranked = rank_streamed(streamed, scorer)
        psi = streamed.drift.psi()
        _check_drift(psi, fail_on_drift, allowances)
        # `ranked` is final here: every row's probability, rank and priority tier.
        stage = functools.partial(stage_run, scorer=scorer, top_k=top_k, scored_at=scored_at)
        staged = beside.submit(stage, ledger, ranked, paths=paths) if ledger else None
        listed = ranked.filter(pl.col(RANK) <= top_k) if top_k else ranked
        listed = mark_holdout(listed, ledger, scored_at=scored_at)
        if explained:
            listed = _with_explanations(listed, scorer, streamed.top)
        columns = None if out_format == "parquet" or all_columns else CALLER_COLUMNS
        _write_output(
            listed, temp, out_format, scorer, scored_at=scored_at, threshold=cut, columns=columns
        )
        staged_run = None if staged is None else staged.result()  # its errors: no list
        summary = summarise_scores(
            paths,
            scorer,
            stats.result(),
            rows_written=listed.height,
            threshold=cut,
            scored_at=scored_at,
            started=started,
            psi=psi,
            warnings=warnings,
            rows_explained=int(ranked.filter(pl.col(RANK) <= explained).height) if explained else 0,
            priority=priority_counts(ranked),
        )
    # The list is in place: now its record (a ledger never names a list that is not there).
    return summary if staged_run is None else record_staged(staged_run, summary)


@contextlib.contextmanager
def _destination(output_path: Path) -> Iterator[Path]:
    """Yield the temp file to write: renamed over OUTPUT under its lock, or copied to stdout."""
    if str(output_path) != STDOUT:
        with exclusive_lock(output_path), atomic_file(output_path) as temp:
            yield temp
        return
    with tempfile.TemporaryDirectory(prefix="hubscore-score-") as folder:
        temp = Path(folder) / "output.csv"
        yield temp
        with temp.open("rb") as handle:
            shutil.copyfileobj(handle, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def rank_streamed(streamed: Streamed, scorer: Scorer) -> pl.DataFrame:
    """Refuse repeated keys across the whole input, then rank and tier every row."""
    scores = with_probabilities(streamed.keys, streamed.probabilities)
    # Keys are checked once, over every row: a key repeated within or across batches.
    check_unique_keys(scores)
    return scorer.with_rank_tiers(rank_scores(scores))


def summarise_scores(
    paths: tuple[Path | str, Path | str],
    scorer: Scorer,
    stats: ProbabilitySummary,
    *,
    rows_written: int,
    threshold: float,
    scored_at: datetime,
    started: float,
    psi: Mapping[str, float],
    warnings: list[str],
    rows_explained: int = 0,
    priority: Mapping[str, int] | None = None,
) -> ScoreSummary:
    """Return the run summary of every scored probability (the Spark engine's too).

    Args:
        priority: rows per priority tier (`priority_counts` of the ranked rows).
    """
    if not scorer.manifest.feature_distributions:
        warnings.append("the model stores no training distributions; drift not checked")
    return ScoreSummary(
        input=str(paths[0]),
        output=str(paths[1]),
        model_version=scorer.manifest.model_version,
        rows_scored=stats.rows,
        rows_written=rows_written,
        positives=stats.positives,
        threshold=threshold,
        scored_at=scored_at.isoformat(),
        duration_s=round(time.perf_counter() - started, 3),
        probability=stats.distribution,
        confidence=stats.confidence,
        drift_worst=worst_features(psi),
        warnings=warnings,
        rows_explained=rows_explained,
        priority=dict(priority or {}),
    )


def priority_counts(ranked: pl.DataFrame) -> dict[str, int]:
    """Rows per priority tier, every tier named (zero where none)."""
    counts = dict(ranked.get_column(PRIORITY).value_counts().iter_rows())
    return {level: int(counts.get(level, 0)) for level in PRIORITY_LEVELS}


def rows_to_explain(
    scorer: Scorer, explain: int | None, top_k: int | None, warnings: list[str]
) -> int:
    """Return how many top rows to explain; load the explainer now, before any scoring."""
    wanted = (top_k or 0) if explain is None else explain
    if not wanted:
        return 0
    try:
        scorer.explainer()
    except ArtifactError:
        if explain is not None:
            raise  # asked for by name: a clear error (exit 5) naming the missing file
        warnings.append("the run folder has no explanations (trained before them); none written")
        return 0
    return wanted


def _with_explanations(listed: pl.DataFrame, scorer: Scorer, top: TopRows | None) -> pl.DataFrame:
    """Join the reasons of the rows kept while streaming (the best of each cutoff) to `listed`."""
    keys = [ID, CUTOFF] if CUTOFF in listed.columns else [ID]
    rows = top.features() if top is not None else None
    if rows is None or rows.height == 0:
        schema = {**{key: listed.schema[key] for key in keys}, **EXPLANATION_DTYPES}
        found = pl.DataFrame(schema=schema)
    else:
        found = scorer.explain(rows)
    return listed.join(found, on=keys, how="left", maintain_order="left")


def file_format(path: Path, *, role: str) -> str:
    """Return "parquet" or "csv" from a file's extension."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"{role} {path} has extension {path.suffix or '(none)'!r}; expected one of "
            + ", ".join(FORMATS),
            hint=f"name the {role} file .parquet or .csv",
        ) from None


@dataclass
class InputReader:
    """An input file opened for streaming: its metadata, row count and batches."""

    batches: Iterator[Batch]
    metadata: dict[str, str]
    total_rows: int | None


def open_input(path: Path, scorer: Scorer, *, batch_size: int) -> InputReader:
    """Open a Parquet or CSV input, checking its columns against the model before any row."""
    fmt = file_format(path, role="input")
    if not (path.is_file() or (fmt == "parquet" and path.is_dir())):
        raise ValidationError(f"input {path} does not exist", hint="check the INPUT path")
    try:
        if fmt == "parquet":
            reader = _open_parquet(path, scorer, batch_size=batch_size)
        else:
            reader = _open_csv(path, scorer)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}", hint="check the file") from None
    return reader


def _open_parquet(path: Path, scorer: Scorer, *, batch_size: int) -> InputReader:
    # A folder of part files (build-features --engine spark) reads as one file, in part order.
    parts = parquet_parts(path)
    handles = [pq.ParquetFile(part) for part in parts]  # the footers only
    schema = handles[0].schema_arrow
    wanted = {name.lower() for name in (ID, CUTOFF, *scorer.feature_dtypes)}
    columns = [name for name in schema.names if name.lower() in wanted]
    batches = itertools.chain.from_iterable(
        _row_groups(part, columns, _group_rows(handle), batch_size)
        for part, handle in zip(parts, handles, strict=True)
    )
    return InputReader(
        batches=_with_schema(batches, schema),
        metadata=read_kv_metadata(path),
        total_rows=sum(handle.metadata.num_rows for handle in handles),
    )


def _group_rows(handle: pq.ParquetFile) -> list[int]:
    return [handle.metadata.row_group(i).num_rows for i in range(handle.metadata.num_row_groups)]


def _row_groups(
    path: Path,
    columns: list[str],
    groups: list[int],
    batch_size: int,
    *,
    decoded_rows: int = DECODED_ROWS,
) -> Iterator[pl.DataFrame]:
    """Yield batches, decoding one row group (or one part of a big one) at a time.

    Polars decodes about 3x faster than pyarrow's iter_batches here; its collect_batches
    reads ahead without bound when scoring is the slower side, so each group is a slice.
    `decoded_rows` bounds a slice, rounded down to whole batches: the batches are those of
    each group decoded whole, so the scores are too.
    """
    # Columns in parallel: the default decoded a group with ~3 groups' worth of scratch.
    scan = pl.scan_parquet(path, parallel="columns").select(columns)
    most = max(batch_size, decoded_rows // batch_size * batch_size)
    offset = 0
    for rows in groups:
        for start in range(offset, offset + rows, most):
            part = scan.slice(start, min(most, offset + rows - start)).collect()
            yield from (batch for batch in part.iter_slices(batch_size) if batch.height)
            del part  # before the next part is decoded, not after
        offset += rows


def _open_csv(path: Path, scorer: Scorer) -> InputReader:
    header = _csv_header(path)
    schema = pl.DataFrame(schema={ID: pl.Int64, **scorer.feature_dtypes}).to_arrow().schema
    # Declared types: inference from the first block alone breaks on later blocks.
    types = {f.name: f.type for f in schema}
    by_lower = {name.lower(): name for name in header}
    column_types = {by_lower[n.lower()]: t for n, t in types.items() if n.lower() in by_lower}
    stream = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=8 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types, null_values=[""], strings_can_be_null=True
        ),
    )
    return InputReader(
        batches=_with_schema(stream, stream.schema),
        metadata={},  # CSV has none: check_input says the windows went unchecked, once
        total_rows=None,
    )


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def _with_schema(batches: Iterator[Batch], schema: pa.Schema) -> Iterator[Batch]:
    """Yield an empty batch first so a zero-row file is still checked against the model."""
    yield empty_batch(schema)
    try:
        yield from batches
    except (pa.ArrowInvalid, pl.exceptions.PolarsError) as exc:
        raise ValidationError(f"cannot read the input: {exc}", hint="check the file") from None


def check_allowances(allowances: Mapping[str, float], scorer: Scorer) -> None:
    """Refuse drift allowances for features the model does not have (a typo allows nothing)."""
    unknown = sorted(set(allowances) - set(scorer.manifest.feature_names))
    if unknown:
        raise ConfigError(
            f"config key scoring.drift_allowances names {len(unknown)} features the model "
            f"does not have: {', '.join(unknown)}",
            hint="use feature names from the run folder's manifest.json",
        )


def _check_drift(
    psi: Mapping[str, float], limit: float | None, allowances: Mapping[str, float]
) -> None:
    over = []
    for name, value in worst_features(psi, limit=len(psi)):
        allowed = allowances.get(name, limit)
        if allowed is not None and value > allowed:
            over.append(f"{name} {value:.3f} (allowed {allowed:g})")
    if over:
        raise DriftError(
            f"{len(over)} features drifted past their allowed PSI: {', '.join(over[:5])}",
            hint="check the input build before sending this list; raise --fail-on-drift or "
            "scoring.drift_allowances.<feature> to accept",
        )


def _write_output(
    ranked: pl.DataFrame,
    temp: Path,
    fmt: str,
    scorer: Scorer,
    *,
    scored_at: datetime,
    threshold: float,
    columns: Sequence[str] | None = None,
) -> None:
    """Write the labelled output; `columns` picks (and orders) a CSV's columns."""
    size = OUTPUT_ROW_GROUP
    labelled = (
        scorer.label(ranked.slice(start, size), scored_at=scored_at, threshold=threshold)
        for start in range(0, max(ranked.height, 1), size)
    )
    if fmt == "csv":
        with temp.open("wb") as handle:
            for i, part in enumerate(labelled):
                order = output_columns(part.columns) if columns is None else columns
                if columns is not None and CUTOFF not in part.columns:
                    order = [SCORED_AT if c == CUTOFF else c for c in order]
                part.select(c for c in order if c in part.columns).write_csv(
                    handle, include_header=i == 0, datetime_format="%Y-%m-%dT%H:%M:%SZ"
                )
        return
    metadata = {"hubscore_version": __version__, "model_version": scorer.manifest.model_version}
    writer: pq.ParquetWriter | None = None
    try:
        for part in labelled:
            table = part.select(output_columns(part.columns)).to_arrow()
            table = table.replace_schema_metadata(metadata)
            writer = writer or pq.ParquetWriter(temp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=size)
    finally:
        if writer:
            writer.close()
