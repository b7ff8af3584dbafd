"""The lean scoring core: a run folder in, calibrated probabilities and list columns out.

The core is load (`load_scorer`), conform, predict (`run_model`: ONNX, then the calibration)
and label. Front ends share it at the level that suits them: `score_file` streams batches
through `prepare` and `run_model` and ranks once at the end; the HTTP API scores its
request frame with `score_frame`; the Spark engine runs `score_batch` (one Arrow batch in, one
out) on every executor batch. Rank needs every row, so it is a separate step (`rank_scores`).

This module imports onnxruntime, numpy, pyarrow, polars and hubscore's lean modules only:
the training stack never loads on a scoring host (tests/test_lean.py checks it).

    >>> predictor = Predictor.load(Path("models/latest"))
    >>> scores = predictor.score(companies)  # Polars/Arrow table or list of dicts
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
import pyarrow as pa

from hubscore.core.artifacts import (
    ENCODERS_FILE,
    EXPLAIN_FILE,
    MODEL_FILE,
    RESTORE_HINT,
    Manifest,
    RunFolder,
    read_run_folder,
)
from hubscore.core.contract import KEY_COLUMNS
from hubscore.core.errors import ArtifactError, SchemaError, ValidationError, first_line
from hubscore.engine import encoding, explain, reasons
from hubscore.engine.calibration import calibrate
from hubscore.engine.conform import check_unique_keys, conform, key_columns, parse_dtype

ID, CUTOFF = KEY_COLUMNS
PROBABILITY = "conversion_probability"
PREDICTION = "prediction"
CONFIDENCE = "confidence"
PRIORITY = "priority"
RANK = "rank"
MODEL_VERSION = "model_version"
SCORED_AT = "scored_at"
HOLD = "hold"
"""The control group's flag (`score --holdout-share`): listed, not to be called."""

# Probabilities stay float32, the model's own precision: float64 would only add digits the
# model never computed (and noise like 0.12345679104328156 in CSV output).
OUTPUT_DTYPES: dict[str, pl.DataType] = {
    PROBABILITY: pl.Float32(),
    PREDICTION: pl.Int8(),
    CONFIDENCE: pl.String(),
    PRIORITY: pl.String(),
    RANK: pl.Int64(),
    MODEL_VERSION: pl.String(),
    SCORED_AT: pl.Datetime("us", "UTC"),
}

CONFIDENCE_LEVELS = ("low", "medium", "high")
_BAND_NAMES = pl.Series(CONFIDENCE, CONFIDENCE_LEVELS, dtype=pl.String)
PRIORITY_LEVELS = ("very high", "high", "medium", "low")
PRIORITY_QUANTILES = (0.25, 0.5, 0.75)
"""Older run folders (no `priority_thresholds`): rank shares of each scored cutoff that end
the tiers, HubSpot's quartiles, as they were scored when trained."""
_PRIORITY_NAMES = pl.Series(PRIORITY, PRIORITY_LEVELS, dtype=pl.String)


class Scorer:
    """A loaded run folder: validate inputs against its manifest and score them."""

    def __init__(
        self,
        manifest: Manifest,
        spec: encoding.EncoderSpec,
        session: ort.InferenceSession,
        run_dir: Path | None = None,
        *,
        files: Mapping[str, bytes] | None = None,
    ) -> None:
        """Args:
        run_dir: the (real) run folder, for messages.
        files: the verified bytes of `model.onnx` and `explain.npz`: explanations are built
            from them, never from a second read of a folder that may have changed since.
        """
        self.manifest = manifest
        self.spec = spec
        self.session = session
        self.feature_dtypes = {f["name"]: parse_dtype(f["dtype"]) for f in manifest.features}
        self.run_dir = run_dir
        self.files = dict(files or {})
        self._explainer: explain.Explainer | None = None
        self.quantiles = reasons.training_quantiles(manifest.feature_distributions)
        """The training rows' quantiles per feature: reasons compare a company with them."""

    def explainer(self) -> explain.Explainer:
        """Return the run folder's explainer, built on first use from the bytes read at load
        (parsing the ONNX graph needs protobuf: scoring alone never pays for it)."""
        if self._explainer is None:
            if self.run_dir is None or MODEL_FILE not in self.files:
                raise ArtifactError(
                    "this scorer was built without its run folder", hint=explain.RETRAIN_HINT
                )
            if EXPLAIN_FILE not in self.files:
                raise explain.missing_explain_file(self.run_dir / EXPLAIN_FILE)
            self._explainer = explain.explainer_from_bytes(
                self.files[MODEL_FILE],
                self.files[EXPLAIN_FILE],
                len(self.spec.output_names),
                source=self.run_dir,
            )
        return self._explainer

    def explain(self, data: pl.DataFrame | pa.Table | Sequence[Mapping[str, Any]]) -> pl.DataFrame:
        """Return keys, reasons, basis, base value and contributions (JSON) for every row."""
        frame = self.conform(data if isinstance(data, pl.DataFrame) else to_frame(data))
        keys, matrix = self.prepare(frame)
        return keys.hstack(self.explain_encoded(frame, matrix).get_columns())

    def explain_encoded(self, frame: pl.DataFrame, matrix: np.ndarray) -> pl.DataFrame:
        """Return the explanation columns of conformed `frame` and its encoded `matrix`."""
        contributions = self.explainer().contributions(matrix)
        windows = self.manifest.target
        return reasons.explain_rows(
            frame,
            contributions,
            self.spec.output_names,
            recent_days=int(windows.get("recent_days", 28)),
            lookback_days=int(windows.get("lookback_days", 91)),
            flag_groups={group.name: group.columns for group in self.spec.flag_groups},
            quantiles=self.quantiles,
        )

    @classmethod
    def load(cls, run_dir: Path, *, threads: int = 1) -> Scorer:
        """Load and verify a run folder (alias of `load_scorer`)."""
        return load_scorer(run_dir, threads=threads)

    def predict_proba(self, df: pl.DataFrame) -> np.ndarray:
        """Return the positive-class probability (float32, one per row) of conformed features."""
        return self.run_model(self.encode(df))

    def encode(
        self,
        df: pl.DataFrame,
        *,
        observe: encoding.Observer | None = None,
        text: encoding.TextCodes | None = None,
    ) -> np.ndarray:
        """Return the float32 model matrix of conformed feature columns.

        Args:
            observe: sees each block's numeric inputs as float64 (the drift counter).
            text: the rows' text codes, when the caller has folded them already.
        """
        if df.height == 0:
            return np.empty((0, len(self.spec.output_names)), dtype=np.float32)
        return encoding.encode(df, self.spec, observe=observe, text=text)

    def run_model(self, matrix: np.ndarray) -> np.ndarray:
        """Return calibrated probabilities of an encoded matrix (what every front end reports).

        onnxruntime releases the GIL: safe in a worker thread.
        """
        return calibrate(self.model_output(matrix), self.spec.calibration)

    def model_output(self, matrix: np.ndarray) -> np.ndarray:
        """Return the ONNX model's own probability, before calibration (explanations add up
        to it)."""
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float32)
        (raw,) = self.session.run([self.manifest.onnx_output], {self.manifest.onnx_input: matrix})
        probs = np.ascontiguousarray(np.asarray(raw, dtype=np.float32).reshape(-1))
        unscored = int(np.isnan(probs).sum())
        if unscored:  # not a probability: it would sort and label arbitrarily
            raise ValidationError(
                f"{unscored} rows have no probability: feature values beyond float32's range "
                "(about 3.4e38) overflowed the model",
                hint="fix those rows' numeric features; real counts are far smaller",
            )
        return probs

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Select the key and feature columns by name and cast them to the manifest's dtypes."""
        return conform(df, self.feature_dtypes)

    def prepare(
        self,
        batch: pa.RecordBatch | pa.Table | pl.DataFrame,
        *,
        on_features: Callable[[pl.DataFrame], None] | None = None,
        text: encoding.TextCodes | None = None,
    ) -> tuple[pl.DataFrame, np.ndarray]:
        """Validate one batch and return its key columns and encoded model matrix.

        Args:
            on_features: sees the conformed feature frame (the drift counter uses it).
            text: the batch's text codes, when the caller has folded them already.
        """
        df = self.conform(batch if isinstance(batch, pl.DataFrame) else to_frame(batch))
        check_unique_keys(df)
        if on_features is not None:
            on_features(df)
        # Eager column picks, not select/drop: each Polars query has a fixed cost that a
        # one-row API request feels. `encode` reads its inputs by name and ignores the keys.
        keys = pl.DataFrame([df.get_column(key) for key in key_columns(df)])
        return keys, self.encode(df, text=text)

    def probabilities(
        self,
        batch: pa.RecordBatch | pa.Table | pl.DataFrame,
        *,
        on_features: Callable[[pl.DataFrame], None] | None = None,
    ) -> tuple[pl.DataFrame, np.ndarray]:
        """Validate one batch and return its key columns and probabilities (the shared core)."""
        keys, matrix = self.prepare(batch, on_features=on_features)
        return keys, self.run_model(matrix)

    def score_batch(
        self, batch: pa.RecordBatch, *, scored_at: datetime, threshold: float | None = None
    ) -> pa.RecordBatch:
        """Score one record batch into keys, probability, prediction and confidence (no rank).

        Pure: the same batch, model, `scored_at` and `threshold` always give the same output.
        """
        out = self.score_frame(to_frame(batch), scored_at=scored_at, threshold=threshold)
        table = out.to_arrow()
        return table.combine_chunks().to_batches()[0] if out.height else empty_batch(table.schema)

    def score_frame(
        self, frame: pl.DataFrame, *, scored_at: datetime, threshold: float | None = None
    ) -> pl.DataFrame:
        """`score_batch` on a Polars frame (the API's requests already are one)."""
        scored = with_probabilities(*self.probabilities(frame))
        return self.label(scored, scored_at=scored_at, threshold=threshold)

    def label(
        self, scored: pl.DataFrame, *, scored_at: datetime, threshold: float | None = None
    ) -> pl.DataFrame:
        """Add prediction, confidence, model version and time to keys plus probability.

        Comparisons are in float32, the probability's own precision. Built in NumPy rather
        than as a Polars query: a one-row API request pays a query's fixed cost otherwise.
        """
        cut = self.manifest.decision_threshold if threshold is None else threshold
        bands = self.manifest.confidence_bands
        p = scored.get_column(PROBABILITY).to_numpy()
        n = scored.height
        tiers = self.manifest.priority_thresholds
        return scored.hstack(
            [
                pl.Series(PREDICTION, (p >= np.float32(cut)).astype(np.int8)),
                _BAND_NAMES.gather(confidence_levels(p, bands)).alias(CONFIDENCE),
                *(
                    [_PRIORITY_NAMES.gather(priority_levels(p, tiers))]
                    if tiers and PRIORITY not in scored.columns
                    else []
                ),
                _repeat(MODEL_VERSION, self.manifest.model_version, n),
                _repeat(SCORED_AT, scored_at, n),
            ]
        )

    def score(
        self,
        data: pl.DataFrame | pa.Table | Sequence[Mapping[str, Any]],
        *,
        threshold: float | None = None,
        scored_at: datetime | None = None,
    ) -> pl.DataFrame:
        """Score a whole table or list of dicts in memory, ranked (1 = most likely).

        A feature absent from every dict is missing (NaN to the model, "not given" in the
        reasons, never zero usage), as in the HTTP API; a table must hold every feature column
        (a missing one is a build bug).
        """
        if isinstance(data, pl.DataFrame | pa.Table):
            frame = data if isinstance(data, pl.DataFrame) else to_frame(data)
        else:
            frame = with_absent_features(to_frame(data), self.feature_dtypes)
        scored = with_probabilities(*self.probabilities(frame))
        ranked = self.with_rank_tiers(rank_scores(scored))
        out = self.label(ranked, scored_at=scored_at or now(), threshold=threshold)
        return out.select(output_columns(out.columns))

    def with_rank_tiers(self, ranked: pl.DataFrame) -> pl.DataFrame:
        """Add `priority` to ranked scores: by the manifest's tier thresholds, or by rank
        quartiles for a run folder without them (older folders, scored as they were)."""
        tiers = self.manifest.priority_thresholds
        if not tiers:
            return with_priority(ranked)
        p = ranked.get_column(PROBABILITY).to_numpy()
        return ranked.with_columns(_PRIORITY_NAMES.gather(priority_levels(p, tiers)))


Predictor = Scorer
"""The documented Python API: `Predictor.load(run_dir)` once, then `.score(table)`."""


def load_scorer(run_dir: Path, *, threads: int = 1) -> Scorer:
    """Read a run folder as one, verify every file's sha256, and open its ONNX model.

    `run_dir` is resolved once (`models/latest` may move during a `train`) and each file is
    read once: what is hashed is what is parsed, so a scorer never mixes two runs' files.

    Args:
        threads: onnxruntime intra-op threads; 0 lets onnxruntime pick.
    """
    return scorer_from_folder(read_run_folder(run_dir), threads=threads)


def scorer_from_folder(folder: RunFolder, *, threads: int = 1) -> Scorer:
    """Build a scorer from a run folder already read and verified (`read_run_folder`)."""
    manifest, path = folder.manifest, folder.path
    spec = encoding.EncoderSpec.from_json(
        _text(folder.read(ENCODERS_FILE), path / ENCODERS_FILE), str(path / ENCODERS_FILE)
    )
    session = open_session(folder.read(MODEL_FILE), threads=threads, source=path / MODEL_FILE)
    for role, wanted, nodes in (
        ("input", manifest.onnx_input, session.get_inputs()),
        ("output", manifest.onnx_output, session.get_outputs()),
    ):
        names = sorted(node.name for node in nodes)
        if wanted not in names:
            raise ArtifactError(
                f"{path / MODEL_FILE} has no {role} {wanted!r}; it has {names}",
                hint="the manifest and model disagree; retrain",
            )
    return Scorer(manifest, spec, session, path, files=folder.contents)


def _text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path} is not UTF-8 text: {exc}", hint=RESTORE_HINT) from None


def open_session(
    model: Path | bytes, *, threads: int, source: Path | None = None
) -> ort.InferenceSession:
    """Open an ONNX model (a file, or bytes already verified) on the CPU with deliberate
    threading (see bench/bench_score.py)."""
    path = model if isinstance(model, Path) else source
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning worker threads burn the cores they wait on; on a shared small host that made
    # scoring 2x slower, and batches are large enough that waking threads costs nothing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        loaded = str(model) if isinstance(model, Path) else model
        return ort.InferenceSession(loaded, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
        raise ArtifactError(
            f"{path} is not a loadable ONNX model: {first_line(exc)}",
            hint="restore the run folder or retrain",
        ) from None


def rank_scores(scores: pl.DataFrame) -> pl.DataFrame:
    """Sort by probability and number rows 1..n (per cutoff); ties go to the smaller id."""
    by = [CUTOFF] if CUTOFF in scores.columns else []
    order = None if by else _packed_rank_order(scores)
    if order is None:
        ordered = scores.sort([*by, PROBABILITY, ID], descending=[False] * len(by) + [True, False])
    else:
        ordered = scores.select(pl.all().gather(order))
    rank = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
    return ordered.with_columns((rank.over(by) if by else rank).alias(RANK))


def _packed_rank_order(scores: pl.DataFrame) -> pl.Series | None:
    """Return the rows' rank order from one sort of a 64-bit key, or None where it cannot.

    The key is the probability's bits, inverted (probability descending), above the id's
    offset from the smallest id (ties to the smaller id): the order `rank_scores` defines,
    in a sort of one integer column, 2-3x faster than sorting two (2M rows: 0.12-0.19 s vs
    0.24-0.39 s). It needs what nearly every list has: 64-bit integer ids (narrower ones could
    overflow while offset) within 2**32 of each other, and probabilities that are neither NaN
    nor negative (a non-negative float32's bits order as its value; -0.0 is made 0.0, as the
    sort treats them alike).
    """
    ids = scores.get_column(ID)
    if ids.dtype not in (pl.Int64, pl.UInt64) or ids.null_count() or scores.height < 2:
        return None
    low, high = ids.min(), ids.max()
    assert isinstance(low, int) and isinstance(high, int)  # an integer column without nulls
    p = scores.get_column(PROBABILITY).to_numpy()
    if p.dtype != np.float32 or high - low >= 2**32 or not p.min() >= 0:  # NaN: not >= 0
        return None
    inverted = np.uint32(0xFFFFFFFF) - (p + np.float32(0)).view(np.uint32)
    offset = (ids.to_numpy() - low).astype(np.uint64)  # low is a Python int: exact
    key = (inverted.astype(np.uint64) << np.uint64(32)) | offset
    return pl.Series(key).arg_sort()


def output_columns(columns: Sequence[str]) -> list[str]:
    """Return the output column order for a frame with or without `cutoff`."""
    keys = [ID, CUTOFF] if CUTOFF in columns else [ID]
    tiers = [PRIORITY] if PRIORITY in columns else []
    held = [HOLD] if HOLD in columns else []
    labels = [PROBABILITY, PREDICTION, CONFIDENCE, *tiers, RANK, *held, MODEL_VERSION, SCORED_AT]
    return [*keys, *labels, *(c for c in reasons.EXPLANATION_COLUMNS if c in columns)]


def with_priority(
    ranked: pl.DataFrame, quantiles: Sequence[float] = PRIORITY_QUANTILES
) -> pl.DataFrame:
    """Add `priority`: the tier of each row's rank among the scored rows (of its cutoff)."""
    by = [CUTOFF] if CUTOFF in ranked.columns else []
    size = pl.len().over(by) if by else pl.len()
    share = ((pl.col(RANK) - 1) / size).alias("_share")
    shares = ranked.select(share).to_series().to_numpy()
    tiers = np.searchsorted(np.asarray(quantiles, dtype=np.float64), shares, side="right")
    return ranked.with_columns(_PRIORITY_NAMES.gather(tiers).alias(PRIORITY))


def scored_at_for(as_of: date | None) -> datetime:
    """Return the scoring time: midnight UTC of `as_of` (reproducible runs), else now."""
    return datetime.combine(as_of, time(), tzinfo=UTC) if as_of else now()


def now() -> datetime:
    """Return the current UTC time to the second (sub-second digits only add noise)."""
    return datetime.now(UTC).replace(microsecond=0)


def priority_levels(p: np.ndarray, bounds: Mapping[str, float]) -> np.ndarray:
    """Return each probability's index into `PRIORITY_LEVELS`, compared in float32."""
    level = np.full(p.shape, len(PRIORITY_LEVELS) - 1, dtype=np.int64)
    for index in reversed(range(len(PRIORITY_LEVELS) - 1)):  # "medium" up to "very high"
        level[p >= np.float32(bounds[PRIORITY_LEVELS[index]])] = index
    return level


def confidence_levels(p: np.ndarray, bands: Mapping[str, float]) -> np.ndarray:
    """Return each probability's index into `CONFIDENCE_LEVELS`, compared in float32."""
    level = (p >= np.float32(bands["medium"])).astype(np.int8)
    level += p >= np.float32(bands["high"])  # bands: high >= medium
    return level


def _repeat(name: str, value: Hashable, n: int) -> pl.Series:
    """Return an output column holding `value` n times (eager: no query for a constant)."""
    one = _one_value(name, value)
    return one.new_from_index(0, n) if n else one.clear()


@functools.lru_cache(maxsize=8)
def _one_value(name: str, value: Hashable) -> pl.Series:
    # Typed construction runs a cast query (~0.2 ms); requests repeat the same few values.
    return pl.Series(name, [value], dtype=OUTPUT_DTYPES[name])


def with_probabilities(keys: pl.DataFrame, probs: np.ndarray) -> pl.DataFrame:
    """Append the probability column to a batch's key columns."""
    return keys.hstack([pl.Series(PROBABILITY, probs, dtype=pl.Float32)])


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """Return a zero-row record batch (pa.array and from_pylist import pandas: slow start)."""
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def with_absent_features(frame: pl.DataFrame, features: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Add every feature the frame lacks (names matched in any case) as nulls: missing."""
    present = {column.lower() for column in frame.columns}
    absent = [
        pl.lit(None, dtype).alias(n) for n, dtype in features.items() if n.lower() not in present
    ]
    return frame.with_columns(absent) if absent else frame


def to_frame(data: pa.RecordBatch | pa.Table | Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Convert a record batch, Arrow table or list of dicts to a Polars frame."""
    if isinstance(data, pa.RecordBatch | pa.Table):
        frame = pl.from_arrow(data)
        assert isinstance(frame, pl.DataFrame)  # a batch or table always gives a DataFrame
        return frame
    if not data:
        raise SchemaError(
            "an empty list of dicts has no columns to check",
            hint="pass a Polars/Arrow table with the feature columns to score zero rows",
        )
    return pl.DataFrame(list(data), infer_schema_length=None)
