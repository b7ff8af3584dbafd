"""`score --engine spark` and `score_dataframe`: the lean scorer in mapInArrow, ranked in parallel.

The run folder is verified once on the driver (a private copy, hashed like `load_scorer` does)
and shipped once to every executor with `SparkContext.addFile`; each Python worker opens one
onnxruntime session per run folder and keeps it across tasks and batches. Every batch goes
through the single-machine pipeline's own `prepare` and `Scorer.run_model`, so the
probabilities are the same numbers. What crosses from Python back to the JVM is narrow: each
task returns `id` (`cutoff`) and the probability per row, then one row of partial counts (drift
and the summary) and the reasons of its own best rows (a superset of the listed ones: no
second read of the input). Rank, priority and the labels are computed in parallel over a range
sort (rank.py); the summary is summed from the tasks' partial counts, never collected row by
row.

    >>> ranked = score_dataframe(spark.read.parquet("features/"), Path("models/latest"))
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]
from pyspark import SparkFiles
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from hubscore._version import __version__
from hubscore.core.artifacts import MODEL_FILE, Manifest, read_run_folder
from hubscore.core.atomic import exclusive_lock
from hubscore.core.datasets import METADATA_FILE, sidecar_text
from hubscore.core.errors import ArtifactError, ConfigError, ValidationError
from hubscore.core.locations import is_uri
from hubscore.engine.conform import check_input, key_columns
from hubscore.engine.drift import DriftCounter
from hubscore.engine.encoding import EncoderSpec
from hubscore.engine.reasons import EXPLANATION_COLUMNS, EXPLANATION_DTYPES
from hubscore.engine.scorer import (
    CUTOFF,
    ID,
    PRIORITY,
    PRIORITY_LEVELS,
    PROBABILITY,
    RANK,
    Scorer,
    empty_batch,
    load_scorer,
    output_columns,
    scored_at_for,
    scorer_from_folder,
    to_frame,
    with_probabilities,
)
from hubscore.serving.batch import (
    ScoreSummary,
    _check_drift,
    check_allowances,
    rows_to_explain,
    summarise_scores,
)
from hubscore.serving.ledger import LedgerRequest, record_run
from hubscore.serving.pipeline import TopRows, prepare
from hubscore.serving.summary import Partial, summarise
from hubscore.spark.fs import Store, staged, suffix
from hubscore.spark.ledger import ledger_frame, mark_holdout_spark
from hubscore.spark.rank import Ranked, bucket_values, rank_frame
from hubscore.spark.session import job_errors, marked_errors, spark_session

KIND = "__kind"
"""What a row of the scoring tasks' output is: a score, a task's partial counts, reasons."""
SCORE, PARTIAL, REASONS = 0, 1, 2
PARTIAL_JSON = "__partial"
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
    scored = scored_frame(features, scorer, model, threshold=threshold)
    ranked = rank_frame(scores_only(scored), model, scored_at=at, threshold=threshold)
    return ranked.frame


@dataclass(frozen=True)
class _Task:
    """The scoring task: score every batch of a partition, then report its partial counts and
    the reasons of its best rows."""

    model: ShippedModel
    schema: pa.Schema
    threshold: float
    explain: int

    def run(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with marked_errors():
            scorer = self.model.scorer()
            drift = DriftCounter(self.model.manifest.feature_distributions)
            summary = Partial()
            top = TopRows(self.explain) if self.explain else None
            bands = self.model.manifest.confidence_bands
            for batch in batches:
                prepared = prepare(scorer, drift, batch, keep=top is not None)
                probs = scorer.run_model(prepared.matrix)
                drift.add(prepared.counts, prepared.keys.height)
                summary.merge(Partial.of(probs, threshold=self.threshold, bands=bands))
                if top is not None and prepared.frame is not None:
                    top.offer(prepared.frame, probs)
                yield self.widen(with_probabilities(prepared.keys, probs).to_arrow(), SCORE)
            counts = {"drift": drift.partial(), "summary": summary.to_json()}
            yield self.widen(pa.table({PARTIAL_JSON: [json.dumps(counts)]}), PARTIAL)
            rows = top.features() if top is not None else None
            if rows is not None and rows.height:
                yield self.widen(scorer.explain(rows).to_arrow(), REASONS)

    def widen(self, table: pa.Table, kind: int) -> pa.RecordBatch:
        """Return `table`'s columns in the task's schema, the others null."""
        n = table.num_rows
        arrays = [
            table.column(f.name).cast(f.type).combine_chunks()
            if f.name in table.column_names
            else pa.array([kind] * n, pa.int8())
            if f.name == KIND
            else pa.nulls(n, f.type)
            for f in self.schema
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def scored_frame(
    features: DataFrame,
    scorer: Scorer,
    model: ShippedModel,
    *,
    threshold: float | None = None,
    explain: int = 0,
) -> DataFrame:
    """Score every row: keys and probability, plus per task one row of partial counts and
    (with `explain`) the reasons of its `explain` best rows per cutoff."""
    needed = _needed_columns(features, scorer)
    # Scoring no rows on the driver refuses missing or mistyped columns before any task.
    empty = scorer.conform(to_frame(empty_batch(to_arrow_schema(needed.schema))))
    keys = empty.select(key_columns(empty))
    fields = [*with_probabilities(keys, scorer.run_model(scorer.encode(empty))).to_arrow().schema]
    fields += [pa.field(KIND, pa.int8()), pa.field(PARTIAL_JSON, pa.string())]
    if explain:
        fields += list(pl.DataFrame(schema=EXPLANATION_DTYPES).to_arrow().schema)
    schema = pa.schema([f.remove_metadata().with_nullable(True) for f in fields])
    cut = scorer.manifest.decision_threshold if threshold is None else threshold
    task = _Task(model, schema, cut, explain)
    return needed.mapInArrow(task.run, from_arrow_schema(schema))


def _needed_columns(features: DataFrame, scorer: Scorer) -> DataFrame:
    """Keep the key and feature columns (names matched in any case, as `conform` does): the
    rest would cross from the JVM to Python for nothing."""
    wanted = {name.lower() for name in (ID, CUTOFF, *scorer.feature_dtypes)}
    return features.select(*[c for c in features.columns if c.lower() in wanted])


def scores_only(scored: DataFrame) -> DataFrame:
    """Return the score rows (keys and probability) of a scored frame."""
    keep = [c for c in scored.columns if c in (ID, CUTOFF, PROBABILITY)]
    return scored.where(F.col(KIND) == SCORE).select(*keep)


def _reasons(scored: DataFrame) -> DataFrame:
    """Return the reason rows: keys and the explanation columns."""
    keys = [c for c in scored.columns if c in (ID, CUTOFF)]
    return scored.where(F.col(KIND) == REASONS).select(*keys, *EXPLANATION_COLUMNS)


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
    explain: int | None = None,
    ledger: LedgerRequest | None = None,
) -> ScoreSummary:
    """Score a Parquet file or folder into a Parquet folder with Spark, atomically.

    Args:
        input_path, output_path: local paths or URIs (`s3a://...`, `hdfs://...`).
        explain: explain the top N rows (per cutoff), as `score_file` does; None explains
            the `top_k` list when the run folder can, 0 explains nothing.
        ledger: record every scored row there (on the driver) once the list is written.
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
        warnings = check_input(input_metadata(store, source), scorer.manifest)
        explained = rows_to_explain(scorer, explain, top_k, warnings)
        cut = scorer.manifest.decision_threshold if threshold is None else threshold
        with job_errors("scoring"):
            features = spark.read.parquet(store.uri(source))
            wanted = min(explained, top_k or explained)  # only listed rows get reasons
            scored = scored_frame(features, scorer, model, threshold=cut, explain=wanted)
            scored = scored.persist()
            ranked: Ranked | None = None
            labelled: DataFrame | None = None
            try:
                drift, partial = _sum_partials(scored, scorer)
                scores = scores_only(scored)
                refuse_repeated_keys(scores)
                psi = drift.psi()
                _check_drift(psi, fail_on_drift, dict(drift_allowances or {}))
                # As many sorted partitions as the file read has: planning a plain read
                # runs nothing (a plan with a shuffle would run it to count its partitions).
                parts = features.rdd.getNumPartitions()
                ranked = rank_frame(
                    scores, model, scored_at=scored_at, threshold=cut, partitions=parts
                )
                # Final here: every row's probability, rank and priority. Kept: it is written,
                # counted per tier and recorded, and each would label every row again.
                labelled = ranked.frame.persist()
                listed = labelled.where(F.col(RANK) <= top_k) if top_k else labelled
                listed = mark_holdout_spark(listed, ledger, scored_at=scored_at)
                if wanted:
                    listed = _with_reasons(listed, _reasons(scored), wanted)
                _write(store, target, listed, scorer)
                stats = summarise(partial, lambda bucket: bucket_values(scores, bucket))
                tiers: dict[str, int] = dict(labelled.groupBy(PRIORITY).count().collect())
                recorded = ledger_frame(labelled, ledger)
            finally:
                scored.unpersist()
                if labelled is not None:
                    labelled.unpersist()
                if ranked is not None:
                    ranked.ordered.unpersist()
    summary = summarise_scores(
        (source, target),
        scorer,
        stats,
        rows_written=ranked.written(top_k),
        threshold=cut,
        scored_at=scored_at,
        started=started,
        psi=psi,
        warnings=warnings,
        rows_explained=ranked.written(explained) if explained else 0,
        priority={level: int(tiers.get(level, 0)) for level in PRIORITY_LEVELS},
    )
    return record_run(ledger, summary, recorded, scorer=scorer, top_k=top_k, scored_at=scored_at)


def _sum_partials(scored: DataFrame, scorer: Scorer) -> tuple[DriftCounter, Partial]:
    """Sum the tasks' drift counts and summary partials (one small row per task)."""
    drift = DriftCounter(scorer.manifest.feature_distributions)
    partial = Partial()
    for row in scored.where(F.col(KIND) == PARTIAL).select(PARTIAL_JSON).collect():
        counts = json.loads(row[PARTIAL_JSON])
        drift.merge(counts["drift"])
        partial.merge(Partial.from_json(counts["summary"]))
    return drift, partial


def _with_reasons(listed: DataFrame, reasons: DataFrame, n: int) -> DataFrame:
    """Join the reasons of the rows ranked 1..n (per cutoff) to the listed rows, in order.

    The tasks explained their own best rows: a superset of the n best overall. The reasons
    are few, so they are broadcast and the listed rows keep their partitions and order.
    """
    keys = [c for c in (ID, CUTOFF) if c in listed.columns]
    joined = listed.join(F.broadcast(reasons), on=keys, how="left")
    kept = [
        F.when(F.col(RANK) <= n, F.col(c)).alias(c) if c in EXPLANATION_COLUMNS else F.col(c)
        for c in joined.columns
    ]
    by = [CUTOFF] if CUTOFF in listed.columns else []
    return joined.select(*kept).sortWithinPartitions(*by, RANK)


def _write(store: Store, target: str, listed: DataFrame, scorer: Scorer) -> None:
    """Write the listed rows as a Parquet folder in their order (by cutoff, then rank)."""
    metadata = {"hubscore_version": __version__, "model_version": scorer.manifest.model_version}
    with staged(store, target) as temp:
        # Range-sorted already: partition order is rank order, no second global sort.
        listed.select(*output_columns(listed.columns)).write.mode("overwrite").parquet(
            store.uri(temp), compression="zstd"
        )
        store.write_text(f"{temp}/{METADATA_FILE}", sidecar_text(metadata))


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
