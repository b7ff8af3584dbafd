"""Fit the feature encoders on training rows; `hubscore.core.encoding` applies them.

Fitting is training's: only the spec and `encode` are lean. Rules: see `hubscore.core.encoding`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hubscore.core.config import EncodingConfig
from hubscore.core.contract import EMPLOYEE_RANGES, NUMERIC_FEATURES
from hubscore.core.encoding import (
    EMPLOYEE,
    INDUSTRY,
    MISSING,
    OTHER,
    EncoderSpec,
    NumericSpec,
    Scaling,
    Transform,
    check_columns,
    employee_ordinal,
    normalise_industry,
    required_inputs,
    transform_of,
    transform_values,
)


def fit_encoders(
    df: pl.DataFrame, config: EncodingConfig, *, scale: bool, missing_flags: bool = True
) -> EncoderSpec:
    """Learn vocabularies, fill values and scales from training rows.

    Args:
        scale: apply `config.scaling` (linear models); trees get "none".
        missing_flags: False drops every missingness signal (flags, `alexa_no_rank`, the
            missing INDUSTRY level) for the "lift without missingness flags" ablation.
    """
    inputs = [
        n for n in (EMPLOYEE, INDUSTRY, *NUMERIC_FEATURES) if n in required_inputs(missing_flags)
    ]
    check_columns(df, inputs)
    scaling: Scaling = config.scaling if scale else "none"
    ordinal = employee_ordinal(pl.col(EMPLOYEE), list(EMPLOYEE_RANGES))
    ordinals = df.select(ordinal.alias(EMPLOYEE)).to_series()
    employee = _fit_numeric(ordinals, "none", config, scaling=scaling, flag=missing_flags)
    # Always flagged: unseen spellings at scoring time become missing even if training had none.
    employee = replace(employee, flag=missing_flags)
    numeric = [
        _fit_numeric(df.get_column(n), transform_of(n), config, scaling=scaling, flag=missing_flags)
        for n in NUMERIC_FEATURES
        if n in inputs
    ]
    spec = EncoderSpec(
        input_names=inputs,
        employee_ranges=list(EMPLOYEE_RANGES),
        employee=employee,
        industry_levels=_fit_industry(df, config.industry_min_frequency, missing_flags),
        numeric=numeric,
        scaling=scaling,
        missing_flags=missing_flags,
    )
    return EncoderSpec(**{**_fields(spec), "output_names": _output_names(spec)})


def _fit_industry(df: pl.DataFrame, min_frequency: int, missing_flags: bool) -> list[str]:
    # A company is a row at every weekly cutoff, so frequency counts companies (ids) where the
    # frame has them: a value one company holds is rare however many snapshots repeat it.
    normal = normalise_industry(pl.col(INDUSTRY)).alias("v")
    who = pl.col("id").n_unique() if "id" in df.columns else pl.len()
    counts = df.select(normal, *(["id"] if "id" in df.columns else [])).drop_nulls("v")
    counts = counts.group_by("v").agg(who.alias("n"))
    kept = counts.filter((pl.col("n") >= min_frequency) & (pl.col("v") != OTHER))
    levels = sorted(kept.get_column("v").to_list())
    return [*levels, OTHER, MISSING] if missing_flags else [*levels, OTHER]


def _fit_numeric(
    column: pl.Series, transform: Transform, config: EncodingConfig, *, scaling: Scaling, flag: bool
) -> NumericSpec:
    """Learn the fill value, flag and scale of one column on training rows."""
    raw = column.cast(pl.Float64, strict=False).to_numpy().astype(np.float64, copy=False)
    values = transform_values(np.where(np.isfinite(raw), raw, np.nan), transform)
    seen = values[~np.isnan(values)]
    fill = _fill_value(seen, config)
    # A flag is useful only when training rows had both missing and present values.
    needs_flag = flag and 0 < seen.size < values.size
    filled = np.concatenate([seen, np.full(values.size - seen.size, fill)])
    center, scale = _scale(filled, scaling)
    return NumericSpec(column.name, transform, fill, needs_flag, center, scale)


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


def _output_names(spec: EncoderSpec) -> list[str]:
    names = [EMPLOYEE] + ([f"{EMPLOYEE}_missing"] if spec.employee.flag else [])
    names += [f"{INDUSTRY}={level}" for level in spec.industry_levels]
    for numeric in spec.numeric:
        names += [numeric.name] + ([f"{numeric.name}_missing"] if numeric.flag else [])
    return names


def _fields(spec: EncoderSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}
