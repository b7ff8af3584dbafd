"""Fit the feature encoders on training rows; `hubscore.engine.encoding` applies them.

Fitting is training's: only the spec and `encode` are lean. The rules are in
`hubscore.engine.encoding`; this module decides them per family from `EncodingConfig`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import polars as pl

from hubscore.core.config import EncodingConfig
from hubscore.core.contract import EMPLOYEE_RANGES, NUMERIC_FEATURES
from hubscore.engine.encoding import (
    EMPLOYEE,
    INDUSTRY,
    MISSING,
    OTHER,
    EncoderSpec,
    FlagGroup,
    IndustryMode,
    NumericSpec,
    Scaling,
    Transform,
    check_columns,
    employee_ordinal,
    industry_columns,
    normalise_industry,
    required_inputs,
    transform_of,
    transform_values,
)


@dataclass(frozen=True)
class EncodingChoice:
    """How one family's inputs are encoded, resolved from `EncodingConfig`'s `auto`s."""

    scaling: Scaling
    native_missing: bool
    industry: IndustryMode
    flags: bool
    per_pattern: bool


def choose_encoding(
    config: EncodingConfig, *, linear: bool, missing_flags: bool = True
) -> EncodingChoice:
    """Resolve the encoding of a linear (logreg) or tree family.

    Trees read missing values natively, one INDUSTRY indicator and one flag per missingness
    pattern; a linear model needs imputed, scaled numbers, one-hot levels and a flag per
    column. `missing_flags=False` is the ablation
    without any missingness signal (so nothing is left NaN either).
    """
    native = config.missing_values == "native" or (config.missing_values == "auto" and not linear)
    industry = config.industry
    if industry == "auto":
        industry = "onehot" if linear else "missing_flag"
    if not missing_flags and industry == "missing_flag":
        industry = "drop"
    flags = config.missing_flags
    if flags == "auto":  # measured: per column served logistic regression better (README)
        flags = "column" if linear else "pattern"
    return EncodingChoice(
        scaling=config.scaling if linear else "none",
        native_missing=native and missing_flags,
        industry=industry,
        flags=missing_flags and flags != "none",
        per_pattern=flags == "pattern",
    )


def fit_encoders(
    df: pl.DataFrame, config: EncodingConfig, *, linear: bool, missing_flags: bool = True
) -> EncoderSpec:
    """Learn vocabularies, fill values, scales and missingness groups from training rows.

    Args:
        linear: encode for logistic regression (imputed, scaled, one-hot) instead of trees.
        missing_flags: False drops every missingness signal (flags, `alexa_no_rank`, the
            missing INDUSTRY level) for the "lift without missingness flags" ablation.
    """
    choice = choose_encoding(config, linear=linear, missing_flags=missing_flags)
    wanted = required_inputs(missing_flags)
    inputs = [n for n in (EMPLOYEE, INDUSTRY, *NUMERIC_FEATURES) if n in wanted]
    check_columns(df, inputs)
    ordinals = df.select(employee_ordinal(pl.col(EMPLOYEE), list(EMPLOYEE_RANGES)).alias(EMPLOYEE))
    columns = [ordinals.to_series(), *(df.get_column(n) for n in NUMERIC_FEATURES if n in inputs)]
    transforms: list[Transform] = ["none", *(transform_of(c.name) for c in columns[1:])]
    values = [_transformed(c, t) for c, t in zip(columns, transforms, strict=True)]
    numeric = [
        _fit_numeric(c.name, v, t, config, choice)
        for c, v, t in zip(columns, values, transforms, strict=True)
    ]
    levels, shares = _fit_industry(df, config.industry_min_frequency, choice, missing_flags)
    missing = {c.name: np.isnan(v) for c, v in zip(columns, values, strict=True)}
    if choice.industry not in ("onehot", "missing_flag"):  # else INDUSTRY encodes its own
        missing[INDUSTRY] = (
            df.select(normalise_industry(pl.col(INDUSTRY)).is_null()).to_series().to_numpy()
        )
    spec = EncoderSpec(
        input_names=inputs,
        employee_ranges=list(EMPLOYEE_RANGES),
        employee=numeric[0],
        industry_levels=levels,
        numeric=numeric[1:],
        scaling=choice.scaling,
        industry=choice.industry,
        industry_frequency=shares,
        flag_groups=_flag_groups(missing, choice) if choice.flags else [],
    )
    return replace(spec, output_names=_output_names(spec))


def _transformed(column: pl.Series, transform: Transform) -> npt.NDArray[np.float64]:
    raw = column.cast(pl.Float64, strict=False).to_numpy().astype(np.float64, copy=False)
    return transform_values(np.where(np.isfinite(raw), raw, np.nan), transform)


def _fit_numeric(
    name: str,
    values: npt.NDArray[np.float64],
    transform: Transform,
    config: EncodingConfig,
    choice: EncodingChoice,
) -> NumericSpec:
    """Learn the fill value (none when missing stays NaN) and scale of one column."""
    seen = values[~np.isnan(values)]
    fill = _fill_value(seen, config)
    filled = np.concatenate([seen, np.full(values.size - seen.size, fill)])
    center, scale = _scale(filled, choice.scaling)
    return NumericSpec(name, transform, None if choice.native_missing else fill, center, scale)


def _flag_groups(
    missing: dict[str, npt.NDArray[np.bool_]], choice: EncodingChoice
) -> list[FlagGroup]:
    """One flag per distinct missingness pattern of the training rows (or per column).

    A flag is useful only where training rows had both missing and present values; EMPLOYEE
    is always flagged, since unseen spellings at scoring time become missing.
    """
    groups: dict[bytes, list[str]] = {}
    for name, mask in missing.items():
        some = bool(mask.any()) and not bool(mask.all())
        if not some and name != EMPLOYEE:
            continue
        key = hashlib.sha256(np.packbits(mask).tobytes()).digest() if choice.per_pattern else b""
        groups.setdefault(key + name.encode() * (not choice.per_pattern), []).append(name)
    return [FlagGroup(f"{columns[0]}_missing", columns) for columns in groups.values()]


def _fill_value(seen: npt.NDArray[np.float64], config: EncodingConfig) -> float:
    strategy = config.missing_strategy
    if strategy == "constant":
        return float(config.missing_constant)
    if seen.size == 0 or strategy == "zero":
        return 0.0
    if strategy == "auto":
        # Two-valued columns (0/1 indicators) are filled with the mode, others with the median.
        low, high = float(seen.min()), float(seen.max())
        if np.all((seen == low) | (seen == high)):  # O(n): np.unique sorts every column
            return low if 2 * int((seen == low).sum()) >= seen.size else high  # ties: smallest
        return float(np.median(seen))
    if strategy == "mean":
        return float(np.mean(seen))
    if strategy == "mode":
        uniques, counts = np.unique(seen, return_counts=True)
        return float(uniques[np.argmax(counts)])  # ties: the smallest value
    return float(np.median(seen))


def _scale(values: npt.NDArray[np.float64], scaling: Scaling) -> tuple[float, float]:
    """Return (center, scale); a zero spread becomes 1 so constant columns stay finite."""
    if scaling == "none" or values.size == 0:
        return 0.0, 1.0
    if scaling == "standard":
        center, spread = float(np.mean(values)), float(np.std(values))
    elif scaling == "minmax":
        center, spread = float(np.min(values)), float(np.max(values) - np.min(values))
    else:
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        center, spread = float(median), float(q3 - q1)
    return center, spread if spread > 0 else 1.0


def _fit_industry(
    df: pl.DataFrame, min_frequency: int, choice: EncodingChoice, missing_flags: bool
) -> tuple[list[str], dict[str, float]]:
    """Return the INDUSTRY levels and, for `frequency`, each level's share of companies.

    A company is a row at every weekly cutoff, so frequency counts companies (ids) where the
    frame has them: a value one company holds is rare however many snapshots repeat it.
    """
    tail = [OTHER, MISSING] if missing_flags else [OTHER]
    if choice.industry in ("missing_flag", "drop"):
        return tail, {}
    normal = normalise_industry(pl.col(INDUSTRY)).alias("v")
    who = pl.col("id").n_unique() if "id" in df.columns else pl.len()
    counts = df.select(normal, *(["id"] if "id" in df.columns else [])).drop_nulls("v")
    counts = counts.group_by("v").agg(who.alias("n"))
    total = max(int(counts.get_column("n").sum()), 1)
    counts = counts.filter(pl.col("v") != OTHER)  # "other" is the level of the unseen
    if choice.industry == "onehot":
        kept = counts.filter(pl.col("n") >= min_frequency)
        return [*sorted(kept.get_column("v").to_list()), *tail], {}
    shares = {v: n / total for v, n in counts.sort("v").iter_rows()}
    if not choice.native_missing:
        shares[MISSING] = 0.0
    return [*sorted(counts.get_column("v").to_list()), *tail], shares


def _output_names(spec: EncoderSpec) -> list[str]:
    names = [EMPLOYEE, *industry_columns(spec), *(n.name for n in spec.numeric)]
    return names + [group.name for group in spec.flag_groups]
