"""Apply fitted feature encoders with `encode`; load and save their JSON spec.

`encode` is the one function that turns raw feature columns into the float32 matrix a model
reads; training and scoring both call it, so the scorer applies exactly what training used.
Lean: Polars, NumPy and the standard library only. Fitting lives in `hubscore.training.encoders`.

Rules, fitted on training rows only:
- EMPLOYEE_RANGE -> ordinal 1-9 after folding case, whitespace and commas; missing or unseen
  -> missing.
- INDUSTRY -> lower case, punctuation and whitespace folded to one space, then one of:
  `onehot` (values held by at least `industry_min_frequency` companies keep a column, rare
  and unseen ones go to `other`, missing to its own level), `frequency` (the share of
  training companies holding the value; unseen 0, missing missing), `missing_flag` (only
  whether it is given) or `drop`. Levels are matched with `replace_strict` over an explicit
  sorted vocabulary, never with `pl.Categorical` codes (those differ from frame to frame).
- Numbers: NaN and +-inf count as missing, like null. Heavy-tailed counts are compressed with
  a signed log1p and ALEXA_RANK with log(rank). Missing values then either stay NaN (`fill`
  null: tree families route them natively, and the ONNX trees carry the same missing
  directions) or are imputed; and, for linear models, scaled.
- Missingness flags: one 0/1 column per distinct missingness pattern of the training rows
  (`flag_groups`): the columns that are always missing together (all usage statistics of a
  company without usage in the window) share one flag instead of one each.
- Empty and whitespace-only strings are null.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from hubscore.core.artifacts import ENCODERS_FILE
from hubscore.core.contract import (
    ACTIVITY_FEATURES,
    HISTORY_FEATURES,
    MISSINGNESS_FLAGS,
    NUMERIC_FEATURES,
    OBJECT_RECENCY_FEATURES,
    USAGE_STAT_FEATURES,
)
from hubscore.core.decoding import decode
from hubscore.core.errors import ArtifactError, SchemaError

ENCODER_VERSION = 2
"""Version of the encoders.json layout; bump it when an old spec would encode differently.

2: native missing values, flag groups, INDUSTRY modes, calibration. 1 (per-column flags,
imputation, one-hot INDUSTRY) is still read: it is the special case of 2 it always was.
"""
READABLE_VERSIONS = (1, 2)

EMPLOYEE = "EMPLOYEE_RANGE"
INDUSTRY = "INDUSTRY"
OTHER = "other"
MISSING = "(missing)"  # cannot collide: normalised values hold only [a-z0-9 ]
Transform = Literal["none", "log1p", "log"]
Scaling = Literal["standard", "minmax", "robust", "none"]
IndustryMode = Literal["onehot", "frequency", "missing_flag", "drop"]

# Counts and count-derived statistics are heavy-tailed, and so are the day counts of recency
# and tenure (their effect fades with age: on 3 samples log1p lifted logreg's weekly recall@100
# 0.426 -> 0.440); shares and bounded week counts are not. Only the linear model sees this.
_LOG1P = {
    *USAGE_STAT_FEATURES,
    *(f for f in ACTIVITY_FEATURES if f not in ("days_active", "activity_frequency")),
    *(f for f in HISTORY_FEATURES if f.startswith(("actions_", "trend_"))),
    "recency_days",
    "tenure_days",
    *OBJECT_RECENCY_FEATURES,
    "peak_users_recent",
    "peak_users_prior",
    "trend_users",
}
_LOG = {"ALEXA_RANK"}
_MEMO_MAX_ROWS = 4096  # measured: a memo beats a join below ~10k rows when values repeat
_MEMO_MAX_VALUES = 10_000
ENCODE_BLOCK_ROWS = 16384
"""Rows encoded at a time: bounds encoding's temporaries to one block's worth (a quarter of a
65,536-row scoring batch: the scorer's peak memory ~140 MB lower than with whole batches, at
the same speed, measured)."""


@dataclass(frozen=True)
class NumericSpec:
    """How one numeric input becomes one column."""

    name: str
    transform: Transform
    fill: float | None
    """The imputed value; None keeps missing values as NaN for the model to route."""
    center: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class FlagGroup:
    """One missingness flag: 1 when any of `columns` is missing in the row."""

    name: str
    columns: list[str]


@dataclass(frozen=True)
class EncoderSpec:
    """Everything `encode` needs, learned from training rows; saved as encoders.json."""

    input_names: list[str]
    employee_ranges: list[str]
    employee: NumericSpec
    industry_levels: list[str]
    numeric: list[NumericSpec]
    scaling: Scaling
    industry: IndustryMode = "onehot"
    industry_frequency: dict[str, float] = field(default_factory=dict)
    flag_groups: list[FlagGroup] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=lambda: {"method": "none"})
    """How the scorer maps the model's probability to a calibrated one (`calibrate`)."""
    output_names: list[str] = field(default_factory=list)
    version: int = ENCODER_VERSION

    def to_json(self) -> str:
        """Serialise as sorted, indented JSON (identical specs give identical bytes)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = ENCODERS_FILE) -> EncoderSpec:
        """Parse a spec written by `to_json` (any readable version); raise ArtifactError else."""
        hint = "restore the run folder, or retrain"
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{source} is not valid JSON: {exc}", hint=hint) from None
        if not isinstance(raw, dict):
            raise ArtifactError(
                f"{source} is not a hubscore encoder spec: a {type(raw).__name__}, not an object",
                hint=hint,
            )
        version = raw.get("version")
        if version not in READABLE_VERSIONS:
            raise ArtifactError(
                f"{source} has version {version!r}, "
                f"this hubscore reads {', '.join(map(str, READABLE_VERSIONS))}",
                hint="score with the hubscore version that trained the model, or retrain",
            )
        if version == 1:
            raw = _upgrade_v1(raw, source=source, hint=hint)
        return decode(raw, cls, source=source, error=ArtifactError, hint=hint)


def _upgrade_v1(raw: dict[str, Any], *, source: str, hint: str) -> dict[str, Any]:
    """Express a version-1 spec in version 2's terms: per-column flags become groups of one."""
    try:
        numeric = [raw["employee"], *raw["numeric"]]
        flagged = [n["name"] for n in numeric if n["flag"]]
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"{source} is not a version-1 encoder spec: {exc}", hint=hint) from None
    groups = [{"name": f"{name}_missing", "columns": [name]} for name in flagged]
    for n in numeric:
        del n["flag"]
    raw.pop("missing_flags", None)
    return {**raw, "flag_groups": groups, "industry": "onehot", "version": 1}


def read_encoders(path: Path) -> EncoderSpec:
    """Load an encoder spec from a JSON file."""
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", hint="restore the whole run folder")
    return EncoderSpec.from_json(path.read_text(encoding="utf-8"), str(path))


Observer = Callable[[list[str], npt.NDArray[np.float64]], None]
"""Sees each block's numeric inputs as float64 (null as NaN, infinities kept), before any
transform: the scorer's drift counter reads them there rather than casting them again."""


def encode(
    df: pl.DataFrame,
    spec: EncoderSpec,
    *,
    observe: Observer | None = None,
    text: TextCodes | None = None,
) -> npt.NDArray[np.float32]:
    """Return the model matrix: float32, C-contiguous, one column per `spec.output_names`.

    Args:
        observe: sees each block's numeric inputs (the scorer's drift counter).
        text: `text_codes(df, spec)` when the caller has them already (the API reports
            imputation from them): folded once, not twice.
    """
    check_columns(df, spec.input_names)
    # Row blocks bound the temporaries to one block, whatever the frame's size: the matrix is
    # the only allocation that grows with the rows (encoding a 6M-row training side at once
    # peaked at three matrices' worth).
    out = np.empty((df.height, len(spec.output_names)), dtype=np.float32)
    for start in range(0, df.height, ENCODE_BLOCK_ROWS):
        block = df.slice(start, ENCODE_BLOCK_ROWS)
        rows = slice(start, start + block.height)
        codes = text_codes(block, spec) if text is None else text.rows(rows)
        _encode_block(block, spec, codes, out[rows], observe)
    return out


def _encode_block(
    df: pl.DataFrame,
    spec: EncoderSpec,
    text: TextCodes,
    out: npt.NDArray[np.float32],
    observe: Observer | None,
) -> None:
    # A handful of calls per block, whatever its size: text is folded once per distinct
    # value, every number is transformed in one 2-D NumPy pass, and each result is written
    # straight into its columns of `out` (no transposed copy: measured slower, and noisier).
    # The API encodes one row per request, so per-call overhead is latency there.
    numbers = [n.name for n in spec.numeric]
    # Column-major, so each column's transforms run over contiguous memory.
    raw = np.empty((df.height, len(numbers) + 1), dtype=np.float64, order="F")
    raw[:, 0] = text.ordinal
    raw[:, 1:] = df.select(pl.col(numbers).cast(pl.Float64, strict=False)).to_numpy()
    if observe is not None:
        observe(numbers, raw[:, 1:])
    layout = _layout(spec)
    missing = _write_numeric(out, raw, [spec.employee, *spec.numeric], layout.numeric)
    _write_industry(out, text, spec, layout.industry)
    is_missing = {name: missing[:, i] for i, name in enumerate([EMPLOYEE, *numbers])}
    is_missing[INDUSTRY] = text.industry_missing
    for column, group in zip(layout.flags, spec.flag_groups, strict=True):
        out[:, column] = np.logical_or.reduce([is_missing[c] for c in group.columns])


@dataclass(frozen=True)
class _Layout:
    """Output column positions, looked up by name in `output_names` (the one statement)."""

    numeric: list[int]
    """Employee first, then `spec.numeric`."""
    industry: int
    """The first INDUSTRY column; -1 when dropped."""
    flags: list[int]


def _layout(spec: EncoderSpec) -> _Layout:
    position = {name: i for i, name in enumerate(spec.output_names)}
    numeric = [position[n.name] for n in (spec.employee, *spec.numeric)]
    industry = next(
        (i for name, i in position.items() if name.startswith(INDUSTRY) and name != INDUSTRY),
        -1,
    )
    return _Layout(numeric, industry, [position[g.name] for g in spec.flag_groups])


def industry_columns(spec: EncoderSpec) -> list[str]:
    """Return the output columns INDUSTRY becomes under the spec's mode."""
    if spec.industry == "onehot":
        return [f"{INDUSTRY}={level}" for level in spec.industry_levels]
    if spec.industry == "frequency":
        return [f"{INDUSTRY}_frequency"]
    if spec.industry == "missing_flag":
        return [f"{INDUSTRY}_missing"]
    return []


def _write_industry(
    out: npt.NDArray[np.float32], text: TextCodes, spec: EncoderSpec, first: int
) -> None:
    if spec.industry == "onehot":
        out[:, first : first + len(spec.industry_levels)] = 0.0
        out[np.arange(len(text.industry)), first + text.industry] = 1.0
    elif spec.industry == "frequency":
        # Unseen values hold no share; a missing one has its own value (NaN: left to the trees).
        default = {MISSING: np.nan}
        shares = [spec.industry_frequency.get(v, default.get(v, 0.0)) for v in spec.industry_levels]
        out[:, first] = np.array(shares, dtype=np.float32)[text.industry]
    elif spec.industry == "missing_flag":
        out[:, first] = text.industry_missing


@dataclass(frozen=True)
class TextCodes:
    """EMPLOYEE_RANGE and INDUSTRY as `encode` reads them, one entry per row."""

    ordinal: npt.NDArray[np.float64]
    """1-9; NaN when missing or an unseen spelling (imputed alike)."""
    employee_unseen: npt.NDArray[np.bool_]
    """Given (not blank) but no known bucket."""
    industry: npt.NDArray[np.int32]
    """Index into `industry_levels`."""
    industry_missing: npt.NDArray[np.bool_]
    """Null, or nothing left after normalising."""

    def rows(self, rows: slice) -> TextCodes:
        """Return the codes of a range of rows (views, not copies)."""
        return TextCodes(
            self.ordinal[rows],
            self.employee_unseen[rows],
            self.industry[rows],
            self.industry_missing[rows],
        )


def text_codes(df: pl.DataFrame, spec: EncoderSpec) -> TextCodes:
    """Fold the text columns by the spec's rules (the API reports imputation from these)."""
    ordinal, unseen = _employee_fold(tuple(spec.employee_ranges))(df.get_column(EMPLOYEE))
    industry, missing = _industry_fold(tuple(spec.industry_levels))(df.get_column(INDUSTRY))
    return TextCodes(ordinal, unseen, industry, missing)


class _TextFold:
    """Polars expressions over one text column "v", run once per distinct value.

    Values already folded come from a memo: a Polars query costs ~0.4 ms however few rows it
    has, a fifth of a one-company request. Frames of up to `_MEMO_MAX_ROWS` rows (API
    requests) look every row up in it; a larger frame is dictionary-encoded (one hash pass in
    Arrow), its distinct values folded through the memo while few, and gathered back by
    index: a 16,384-row block 0.42 ms against 1.9 ms by a join of its rows to the folded
    values (measured).
    """

    def __init__(self, expressions: list[pl.Expr], dtypes: list[type[np.generic]]) -> None:
        self.expressions = expressions
        self.names = [e.meta.output_name() for e in expressions]
        self.dtypes = dtypes
        self.memo: dict[str | None, tuple[Any, ...]] = {}

    def __call__(self, column: pl.Series) -> list[npt.NDArray[Any]]:
        text = column.cast(pl.String, strict=False)
        if text.len() <= _MEMO_MAX_ROWS:
            return self._remembered(text.to_list())
        encoded = text.to_arrow().dictionary_encode(null_encoding="encode")  # null: a value
        distinct = pl.Series("v", encoded.dictionary, dtype=pl.String)
        if distinct.len() <= _MEMO_MAX_ROWS:
            folded = self._remembered(distinct.to_list())
        else:  # free text, nearly a value per row: one query, and nothing to remember
            table = distinct.to_frame().select(self.expressions)
            folded = [
                table.get_column(n).to_numpy().astype(d, copy=False)
                for n, d in zip(self.names, self.dtypes, strict=True)
            ]
        # Through Polars: pyarrow's own `to_numpy` imports pandas (0.3 s in a run's first
        # batch, where pandas is installed).
        positions = pl.Series(encoded.indices).to_numpy()
        return [values[positions] for values in folded]

    def _remembered(self, values: list[str | None]) -> list[npt.NDArray[Any]]:
        misses = [v for v in dict.fromkeys(values) if v not in self.memo]
        new: dict[str | None, tuple[Any, ...]] = {}
        if misses:
            folded = pl.DataFrame({"v": misses}, schema={"v": pl.String}).select(self.expressions)
            new = dict(zip(misses, folded.rows(), strict=True))
            if len(self.memo) < _MEMO_MAX_VALUES:  # values come from clients: bounded
                self.memo.update(new)  # only ever added to: safe to read from other threads
        rows = [new[v] if v in new else self.memo[v] for v in values]
        return [np.array([r[i] for r in rows], dtype=d) for i, d in enumerate(self.dtypes)]


@functools.lru_cache(maxsize=16)
def _employee_fold(ranges: tuple[str, ...]) -> _TextFold:
    ordinal = employee_ordinal(pl.col("v"), list(ranges))
    given = pl.col("v").str.strip_chars().str.len_chars() > 0
    unseen = (given & ordinal.is_null()).fill_null(False)
    expressions = [ordinal.fill_null(float("nan")).alias("ordinal"), unseen.alias("unseen")]
    return _TextFold(expressions, [np.float64, np.bool_])


@functools.lru_cache(maxsize=16)
def _industry_fold(levels: tuple[str, ...]) -> _TextFold:
    code = _industry_level(pl.col("v"), list(levels)).alias("code")
    missing = normalise_industry(pl.col("v")).is_null().alias("missing")
    return _TextFold([code, missing], [np.int32, np.bool_])


def _write_numeric(
    out: npt.NDArray[np.float32],
    raw: npt.NDArray[np.float64],
    specs: list[NumericSpec],
    columns: list[int],
) -> npt.NDArray[np.bool_]:
    """Transform, impute and scale numeric columns (one per spec) into `out`; return missing.

    Works in place on `raw` (a block's worth of column-major float64 scratch), column by
    column over contiguous memory, so a block costs one copy; steps that change nothing (no
    imputation or scaling: the tree families) are skipped. A spec without a fill leaves its
    missing values NaN.
    """
    np.copyto(raw, np.nan, where=np.isinf(raw))  # NaN stays NaN: only infinities change
    scratch = np.empty(len(raw), dtype=np.float64)
    for i, spec in enumerate(specs):
        if spec.transform != "none":
            transform_values(raw[:, i], spec.transform, out=raw[:, i], scratch=scratch)
    missing = np.isnan(raw)
    if any(s.fill is not None for s in specs):
        fills = np.array([np.nan if s.fill is None else s.fill for s in specs])
        np.copyto(raw, fills, where=missing)
    if any(s.center != 0.0 for s in specs):
        raw -= np.array([s.center for s in specs])
    if any(s.scale != 1.0 for s in specs):
        raw /= np.array([s.scale for s in specs])
    # Slices, not an index array: a fancy-indexed write of a column-major block into the
    # row-major matrix cost 5x as much as the same values written run by run (measured).
    for source, target, width in _runs(columns):
        out[:, target : target + width] = raw[:, source : source + width]
    return missing


def _runs(columns: list[int]) -> list[tuple[int, int, int]]:
    """Split output positions into runs of consecutive ones: (source, target, width)."""
    runs: list[tuple[int, int, int]] = []
    for source, target in enumerate(columns):
        if runs and runs[-1][1] + runs[-1][2] == target:
            start, first, width = runs[-1]
            runs[-1] = (start, first, width + 1)
        else:
            runs.append((source, target, 1))
    return runs


def transform_values(
    value: npt.NDArray[np.float64],
    transform: Transform,
    *,
    out: npt.NDArray[np.float64] | None = None,
    scratch: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Apply a numeric feature's compression (into `out` when given: it may be `value`)."""
    if transform == "log1p":
        # Signed, so a negative trend keeps its sign; counts are >= 0 and unaffected.
        magnitude = np.abs(value, out=scratch)
        np.log1p(magnitude, out=magnitude)
        return np.copysign(magnitude, value, out=magnitude if out is None else out)
    if transform == "log":
        clipped = np.clip(value, 1.0, None, out=out)
        return np.log(clipped, out=clipped)
    if out is not None:
        out[...] = value
        return out
    return value


def normalise_industry(column: pl.Expr) -> pl.Expr:
    """Fold case, punctuation and whitespace so near-duplicates meet; blank -> null."""
    folded = column.cast(pl.String).str.to_lowercase().str.replace_all(r"[^a-z0-9]+", " ")
    folded = folded.str.strip_chars()
    return pl.when(folded.str.len_chars() > 0).then(folded)


def required_inputs(missing_flags: bool) -> set[str]:
    """Return the raw features the encoders read (without the missingness signals for the
    ablation)."""
    dropped = set() if missing_flags else set(MISSINGNESS_FLAGS)
    return {EMPLOYEE, INDUSTRY, *NUMERIC_FEATURES} - dropped


def check_columns(df: pl.DataFrame, names: list[str]) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise SchemaError(
            f"the encoders need {len(names)} feature columns, the input lacks {len(missing)}: "
            + ", ".join(missing),
            hint="build the input with hubscore build-features from the same hubscore version",
        )


def transform_of(name: str) -> Transform:
    """Return the compression a numeric feature gets before imputation and scaling."""
    if name in _LOG:
        return "log"
    return "log1p" if name in _LOG1P else "none"


def _fold_employee(column: pl.Expr) -> pl.Expr:
    # "10,001 or more" and "10001  OR more" are the same bucket; commas are only grouping.
    text = column.cast(pl.String).str.to_lowercase().str.replace_all(",", "")
    return text.str.replace_all(r"\s+", " ").str.strip_chars()


def employee_ordinal(column: pl.Expr, ranges: list[str]) -> pl.Expr:
    """Return 1..9 for known buckets, null for missing or unseen spellings."""
    keys = [str(_fold_text(r)) for r in ranges]
    mapping = {k: float(i) for i, k in enumerate(keys, start=1)}
    return _fold_employee(column).replace_strict(mapping, default=None, return_dtype=pl.Float64)


def _fold_text(value: str) -> str:
    return " ".join(value.lower().replace(",", "").split())


def _industry_level(column: pl.Expr, levels: list[str]) -> pl.Expr:
    """Return each row's index into `industry_levels`; unseen -> other, null -> missing."""
    mapping = {v: i for i, v in enumerate(levels)}
    null_level = mapping.get(MISSING, mapping[OTHER])
    normal = normalise_industry(column).fill_null(pl.lit(MISSING))
    coded = normal.replace_strict(mapping, default=mapping[OTHER], return_dtype=pl.Int32)
    return pl.when(normal == MISSING).then(pl.lit(null_level, dtype=pl.Int32)).otherwise(coded)
