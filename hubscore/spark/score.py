"""`score --engine spark` and `score_dataframe`: the lean scorer in `mapInArrow`, ranked globally.

The run folder is verified once on the driver (a private copy, hashed like `load_scorer` does)
and shipped once to every executor with `SparkContext.addFile`; each Python worker opens one
onnxruntime session per run folder and keeps it across tasks and batches. Every batch goes
through `Scorer.score_batch`, the same pure function the single-machine scorer and the API
call, so probabilities, labels and bands are the same numbers. Rank needs every row: it is a
window over probability (descending) then id, per cutoff, as `rank_scores` sorts.

    >>> ranked = score_dataframe(spark.read.parquet("features/"), Path("models/latest"))
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
from pyspark import SparkFiles
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from hubscore._version import __version__
from hubscore.core.artifacts import MODEL_FILE, Manifest, read_run_folder
from hubscore.core.atomic import exclusive_lock
from hubscore.core.datasets import METADATA_FILE, sidecar_text
from hubscore.core.errors import ArtifactError, ConfigError, ValidationError
from hubscore.core.locations import is_uri
from hubscore.engine.conform import check_windows
from hubscore.engine.drift import DriftCounter
from hubscore.engine.encoding import EncoderSpec
from hubscore.engine.scorer import (
    CUTOFF,
    ID,
    PRIORITY,
    PRIORITY_LEVELS,
    PRIORITY_QUANTILES,
    PROBABILITY,
    RANK,
    Scorer,
    empty_batch,
    load_scorer,
    output_columns,
    scored_at_for,
    scorer_from_folder,
    to_frame,
)
from hubscore.serving.batch import (
    ScoreSummary,
    _check_drift,
    check_allowances,
    rows_to_explain,
    summarise_scores,
)
from hubscore.spark.fs import Store, staged, suffix
from hubscore.spark.session import job_errors, marked_errors, spark_session

DRIFT = "__drift"
BatchTask = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
_SCORERS: dict[str, Scorer] = {}
"""Per Python worker: the scorer of each shipped run folder (one onnxruntime session each)."""
_SHIPPED: dict[tuple[int, str], Path] = {}
"""Per driver: run folders already shipped to a SparkContext (addFile refuses a second time)."""


@dataclass(frozen=True)
class ShippedModel:
    """A verified run folder as executors get it: manifest and encoders here, model by file."""

    name: str
    manifest: Manifest
    spec: EncoderSpec
    threads: int = 1

    def scorer(self) -> Scorer:
        """Return this worker's scorer, opening the onnxruntime session on first use only."""
        scorer = _SCORERS.get(self.name)
        if scorer is None:
            # The copy verified on the driver, read once here and checked against the same
            # manifest: the executors score with exactly the bytes the driver verified.
            folder = read_run_folder(Path(SparkFiles.get(self.name)))
            if folder.manifest != self.manifest:
                raise ArtifactError(
                    f"{folder.path} is not the run folder the driver verified",
                    hint="restart the Spark application",
                )
            scorer = scorer_from_folder(folder, threads=self.threads)
            _SCORERS[self.name] = scorer
        return scorer


def ship_model(
    spark: SparkSession, run_dir: Path, *, threads: int = 1
) -> tuple[Scorer, ShippedModel]:
    """Verify a run folder once on the driver and ship that verified copy to every executor."""
    scorer = load_scorer(run_dir, threads=threads)  # refuses a tampered or unknown folder
    name = f"hubscore-run-{scorer.manifest.files.get(MODEL_FILE, 'model')[:16]}"
    key = (id(spark.sparkContext), name)
    if key not in _SHIPPED:
        # A private copy, verified again after copying: what ships is what was checked.
        staging = Path(tempfile.mkdtemp(prefix="hubscore-spark-run-"))
        atexit.register(shutil.rmtree, staging, ignore_errors=True)
        copy = Path(shutil.copytree(run_dir, staging / name))
        scorer = load_scorer(copy, threads=threads)
        spark.sparkContext.addFile(str(copy), recursive=True)
        _SHIPPED[key] = copy
    return scorer, ShippedModel(name, scorer.manifest, scorer.spec, threads)


def score_dataframe(
    features: DataFrame,
    run_dir: Path,
    *,
    scored_at: datetime | None = None,
    threshold: float | None = None,
) -> DataFrame:
    """Score a Spark DataFrame of features: the single-machine scorer's columns, ranked.

    Args:
        features: `id` (and `cutoff`), then the model's feature columns; extras are ignored.
        scored_at: the `scored_at` value; default now (UTC, to the second).
    """
    scorer, model = ship_model(features.sparkSession, run_dir)
    at = scored_at or scored_at_for(None)
    scored = scored_frame(features, scorer, model, scored_at=at, threshold=threshold)
    return rank_frame(scores_only(scored))


def scored_frame(
    features: DataFrame,
    scorer: Scorer,
    model: ShippedModel,
    *,
    scored_at: datetime,
    threshold: float | None = None,
) -> DataFrame:
    """Score every batch (no rank yet); each partition adds one row of drift counts."""
    empty = empty_batch(to_arrow_schema(features.schema))
    # Scoring no rows on the driver refuses missing or mistyped columns before any task,
    # and gives the exact output types.
    sample = scorer.score_batch(empty, scored_at=scored_at, threshold=threshold)
    fields = [*sample.schema, pa.field(DRIFT, pa.string())]
    schema = pa.schema([f.remove_metadata().with_nullable(True) for f in fields])
    task = _score_task(model, schema, scored_at=scored_at, threshold=threshold)
    return features.mapInArrow(task, from_arrow_schema(schema))


def _score_task(
    model: ShippedModel, schema: pa.Schema, *, scored_at: datetime, threshold: float | None
) -> BatchTask:
    profile = model.manifest.feature_distributions

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with marked_errors():
            scorer = model.scorer()
            drift = DriftCounter(profile)
            for batch in batches:
                drift.update(scorer.conform(to_frame(batch)))
                scored = scorer.score_batch(batch, scored_at=scored_at, threshold=threshold)
                yield _widen(pa.Table.from_batches([scored]), schema)
            # Only the columns the input had: an absent column gets no PSI (as locally).
            yield _widen(pa.table({DRIFT: pa.array([json.dumps(drift.partial())])}), schema)

    return run


def _widen(table: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    n = table.num_rows
    arrays = [
        table.column(f.name).cast(f.type).combine_chunks()
        if f.name in table.column_names
        else pa.nulls(n, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def explained_frame(
    features: DataFrame, listed: DataFrame, model: ShippedModel, scorer: Scorer, n: int
) -> DataFrame:
    """Explain the top `n` rows of `listed` (per cutoff) on the executors, as `score` does."""
    keys = [ID, CUTOFF] if CUTOFF in listed.columns else [ID]
    wanted = listed.where(F.col(RANK) <= n).select(*keys)
    rows = features.join(wanted, on=keys, how="left_semi")
    empty = scorer.conform(to_frame(empty_batch(to_arrow_schema(features.schema))))
    sample = scorer.explain(empty).to_arrow()
    schema = pa.schema([f.remove_metadata().with_nullable(True) for f in sample.schema])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with marked_errors():
            scorer = model.scorer()
            for batch in batches:
                if batch.num_rows:
                    yield _widen(scorer.explain(to_frame(batch)).to_arrow(), schema)

    explained = rows.mapInArrow(run, from_arrow_schema(schema))
    return listed.join(explained, on=keys, how="left")


def scores_only(scored: DataFrame) -> DataFrame:
    """Drop the drift-count rows of a scored frame."""
    return scored.where(F.col(DRIFT).isNull()).drop(DRIFT)


def rank_frame(scores: DataFrame, quantiles: Sequence[float] = PRIORITY_QUANTILES) -> DataFrame:
    """Number rows 1..n per cutoff by probability (descending), ties to the smaller id, and
    tier them by rank share into `priority` exactly as `with_priority` does."""
    by = [CUTOFF] if CUTOFF in scores.columns else []
    order = Window.partitionBy(*by).orderBy(F.col(PROBABILITY).desc(), F.col(ID).asc())
    ranked = scores.withColumn(RANK, F.row_number().over(order).cast("long"))
    share = (F.col(RANK) - 1) / F.count(F.lit(1)).over(Window.partitionBy(*by))
    tier = F.lit(PRIORITY_LEVELS[-1])
    for bound, name in reversed(list(zip(quantiles, PRIORITY_LEVELS, strict=False))):
        tier = F.when(share < float(bound), name).otherwise(tier)
    ranked = ranked.withColumn(PRIORITY, tier)
    return ranked.select(*output_columns(ranked.columns))


def score_path_spark(
    input_path: str | Path,
    output_path: str | Path,
    *,
    run_dir: Path,
    master: str,
    log_level: str = "ERROR",
    threshold: float | None = None,
    top_k: int | None = None,
    as_of: date | None = None,
    batch_size: int = 65536,
    threads: int = 1,
    fail_on_drift: float | None = None,
    drift_allowances: Mapping[str, float] | None = None,
    priority_quantiles: Sequence[float] = PRIORITY_QUANTILES,
    explain: int | None = None,
) -> ScoreSummary:
    """Score a Parquet file or folder into a Parquet folder with Spark, atomically.

    Args:
        input_path, output_path: local paths or URIs (`s3a://...`, `hdfs://...`).
        explain: explain the top N rows (per cutoff), as `score_file` does; None explains
            the `top_k` list when the run folder can, 0 explains nothing.
    """
    started = time.perf_counter()
    source, target = str(input_path), str(output_path)
    check_parquet_names(source, target)
    scored_at = scored_at_for(as_of)
    with spark_session(master, log_level=log_level) as spark, _output_lock(target):
        store = Store(spark)
        if not store.exists(source):
            raise ValidationError(f"input {source} does not exist", hint="check the INPUT path")
        # Batches as large as the single-machine scorer's: the model runs once per batch.
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
        scorer, model = ship_model(spark, run_dir, threads=threads)
        check_allowances(dict(drift_allowances or {}), scorer)
        warnings = check_windows(input_metadata(store, source), scorer.manifest)
        explained = rows_to_explain(scorer, explain, top_k, warnings)
        cut = scorer.manifest.decision_threshold if threshold is None else threshold
        with job_errors("scoring"):
            features = spark.read.parquet(store.uri(source))
            scored = scored_frame(features, scorer, model, scored_at=scored_at, threshold=cut)
            scored = scored.persist()
            try:
                psi = _psi(scored, scorer.manifest.feature_distributions)
                _check_drift(psi, fail_on_drift, dict(drift_allowances or {}))
                scores = scores_only(scored)
                refuse_repeated_keys(scores)
                ranked = rank_frame(scores, priority_quantiles)
                listed = ranked.where(F.col(RANK) <= top_k) if top_k else ranked
                if explained:
                    listed = explained_frame(features, listed, model, scorer, explained)
                    listed = listed.select(*output_columns(listed.columns))
                metadata = {
                    "hubscore_version": __version__,
                    "model_version": scorer.manifest.model_version,
                }
                with staged(store, target) as temp:
                    by = [CUTOFF] if CUTOFF in listed.columns else []
                    # The single-machine file's row order: by cutoff, then rank.
                    listed.orderBy(*by, RANK).write.mode("overwrite").parquet(
                        store.uri(temp), compression="zstd"
                    )
                    store.write_text(f"{temp}/{METADATA_FILE}", sidecar_text(metadata))
                probs = pl.from_arrow(scores.select(PROBABILITY).toArrow())
                assert isinstance(probs, pl.DataFrame)
                written = listed.count() if top_k else probs.height
                rows_explained = ranked.where(F.col(RANK) <= explained).count() if explained else 0
            finally:
                scored.unpersist()
    return summarise_scores(
        (source, target),
        scorer,
        probs.get_column(PROBABILITY),
        rows_written=written,
        threshold=cut,
        scored_at=scored_at,
        started=started,
        psi=psi,
        warnings=warnings,
        rows_explained=rows_explained,
    )


def check_parquet_names(source: str, target: str) -> None:
    """Refuse an input or output not named .parquet: the Spark engine reads and writes Parquet."""
    for location, role in ((source, "input"), (target, "output")):
        if suffix(location).lower() not in (".parquet", ".pq"):
            raise ConfigError(
                f"--engine spark reads and writes Parquet; {role} {location} is not .parquet",
                hint=f"name the {role} .parquet (the output is a folder of part files)",
            )


def _output_lock(target: str) -> contextlib.AbstractContextManager[None]:
    """Lock a local output against a concurrent run; a store's scheduler serialises URIs."""
    return contextlib.nullcontext() if is_uri(target) else exclusive_lock(Path(target))


def input_metadata(store: Store, location: str) -> dict[str, str]:
    """Return the hubscore metadata of a Parquet file (footer) or folder (sidecar), if any."""
    if not store.is_dir(location):
        return store.parquet_metadata(location)
    sidecar = f"{location.rstrip('/')}/{METADATA_FILE}"
    loaded: dict[str, str] = json.loads(store.read_text(sidecar)) if store.exists(sidecar) else {}
    return loaded


def _psi(scored: DataFrame, profile: Mapping[str, Any]) -> dict[str, float]:
    """Sum the partitions' drift counts and return the PSI per feature."""
    counter = DriftCounter(profile)
    for row in scored.where(F.col(DRIFT).isNotNull()).select(DRIFT).collect():
        counter.merge(json.loads(row[DRIFT]))
    return counter.psi()


def refuse_repeated_keys(scores: DataFrame) -> None:
    """Refuse input where two rows share a key, as the single-machine scorer does."""
    keys = [ID, CUTOFF] if CUTOFF in scores.columns else [ID]
    repeated = scores.groupBy(*keys).count().where(F.col("count") > 1)
    first = repeated.orderBy(*keys).limit(5).collect()
    if first:
        shown = ", ".join(str(r[0] if len(keys) == 1 else tuple(r[k] for k in keys)) for r in first)
        raise ValidationError(
            f"input rows share their {'/'.join(keys)} key with another row; first: {shown}",
            hint="each company must appear once (once per cutoff); deduplicate the input",
        )
