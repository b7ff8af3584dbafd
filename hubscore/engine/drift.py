"""Training feature distributions and the population stability index (PSI) against them.

`profile_features` runs at export time and its result is stored in
`manifest.feature_distributions`; the scorer feeds every input batch to a `DriftCounter`
and reads the PSI per feature at the end, so the check streams with the scoring pass.

Profile layout, per feature (plain JSON):
  numeric:     {"kind": "numeric", "edges": [...], "fractions": [...], "null_fraction": f,
                "quantiles": {level: value}}
               `edges` are the unique inner quantile edges; bin i holds edges[i-1] < x <= edges[i]
               (first and last bins are open); NaN counts as null. `quantiles` (of the values
               present, at `QUANTILE_LEVELS`) let reasons compare a company with the training
               rows ("more deal activity than 95% of free companies"); drift ignores them.
  categorical: {"kind": "categorical", "values": {value: fraction}, "other": f,
                "null_fraction": f}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

N_BINS = 10
QUANTILE_LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
TOP_VALUES = 20
EPSILON = 1e-4
"""Added to every bin's share so an empty bin gives a finite PSI (standard smoothing)."""


def profile_features(df: pl.DataFrame, names: Sequence[str]) -> dict[str, Any]:
    """Describe each feature's training distribution as JSON-able bins and shares."""
    return {name: _profile_column(df.get_column(name)) for name in names}


def population_stability(profile: Mapping[str, Any], df: pl.DataFrame) -> dict[str, float]:
    """Return the PSI of each profiled feature of `df` against its training profile."""
    counter = DriftCounter(profile)
    counter.update(df)
    return counter.psi()


def worst_features(psi: Mapping[str, float], *, limit: int = 5) -> list[tuple[str, float]]:
    """Return the `limit` features with the highest PSI, worst first, ties by name."""
    return sorted(psi.items(), key=lambda item: (-item[1], item[0]))[:limit]


class DriftCounter:
    """Accumulate per-bin counts batch by batch, so PSI needs no second pass over the input.

    Every row is counted: the PSI is then the same however the rows are batched (one file, or
    Spark's partitions), at about 0.15 s per million rows of 47 features (measured).
    """

    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.profile = dict(profile)
        self.counts = {
            name: np.zeros(_n_slots(spec), dtype=np.int64) for name, spec in profile.items()
        }
        self.rows = 0
        self.seen: set[str] = set()

    def update(self, df: pl.DataFrame) -> None:
        """Add one batch's counts; columns absent from `df` are skipped."""
        self.add(self.count(df), df.height)

    def count(
        self, df: pl.DataFrame, *, counted: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Return one batch's counts per profiled column of `df`, without adding them.

        Args:
            counted: counts of columns already binned (`count_values`): not read again.

        The other numeric columns are read in one Polars query, each binned over its own
        contiguous memory. Reads nothing but the profile: safe from several threads at once.
        """
        counted = counted or {}
        present = {name: spec for name, spec in self.profile.items() if name in df.columns}
        numeric = [
            name
            for name, spec in present.items()
            if spec["kind"] == "numeric" and name not in counted
        ]
        values = _as_floats(df, numeric)
        counts = {name: counted[name] for name in present if name in counted}
        counts |= {
            name: _count_numeric(values[:, i], present[name]) for i, name in enumerate(numeric)
        }
        for name, spec in present.items():
            if name not in counts:
                counts[name] = _count_slots(df.get_column(name), spec)
        return {name: counts[name] for name in present}  # profile order, as `update` adds

    def count_values(
        self, names: Sequence[str], values: np.ndarray, into: dict[str, np.ndarray]
    ) -> None:
        """Bin numeric columns already read as float64 (null as NaN), adding into `into`.

        The encoder hands each block's numbers over here (`encoding.Observer`), so the scorer
        casts them once for both the model matrix and the drift counts.
        """
        for i, name in enumerate(names):
            spec = self.profile.get(name)
            if spec is not None and spec["kind"] == "numeric":
                counts = _count_numeric(values[:, i], spec)
                into[name] = into[name] + counts if name in into else counts

    def add(self, counts: Mapping[str, np.ndarray], rows: int) -> None:
        """Add the counts `count` returned for a batch of `rows` rows."""
        self.rows += rows
        for name, batch_counts in counts.items():
            self.counts[name] += batch_counts
            self.seen.add(name)

    def partial(self) -> dict[str, Any]:
        """Return the counts so far as plain JSON, for `merge` in another process."""
        counts = {name: self.counts[name].tolist() for name in sorted(self.seen)}
        return {"rows": self.rows, "counts": counts}

    def merge(self, partial: Mapping[str, Any]) -> None:
        """Add the counts of another counter over disjoint rows (from `partial`)."""
        self.rows += int(partial["rows"])
        for name, counts in partial["counts"].items():
            self.counts[name] += np.asarray(counts, dtype=np.int64)
            self.seen.add(name)

    def psi(self) -> dict[str, float]:
        """Return the PSI per feature seen so far (empty when no rows were counted)."""
        if self.rows == 0:
            return {}
        return {
            name: _psi(_expected_shares(spec), self.counts[name])
            for name, spec in self.profile.items()
            if name in self.seen
        }


def _profile_column(column: pl.Series) -> dict[str, Any]:
    if _is_categorical(column.dtype):
        return _profile_categorical(column)
    return _profile_numeric(column)


def _is_categorical(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _profile_numeric(column: pl.Series) -> dict[str, Any]:
    values = _as_float(column)
    present = values[~np.isnan(values)]
    finite = present[np.isfinite(present)]
    edges: list[float] = []
    if finite.size:
        quantiles = np.quantile(finite, np.arange(1, N_BINS) / N_BINS)
        edges = sorted({float(q) for q in quantiles})
    spec: dict[str, Any] = {"kind": "numeric", "edges": edges}
    shares = _shares(_count_slots(column, spec), len(column))
    spec["fractions"] = shares[:-1]
    spec["null_fraction"] = shares[-1]
    if finite.size:
        levels = np.quantile(finite, QUANTILE_LEVELS)
        spec["quantiles"] = {
            f"{lv:g}": float(q) for lv, q in zip(QUANTILE_LEVELS, levels, strict=True)
        }
    return spec


def _profile_categorical(column: pl.Series) -> dict[str, Any]:
    text = column.cast(pl.String)
    counts = text.drop_nulls().value_counts(sort=False)
    # Sort by count, then value, so equal counts pick the same top values on every run.
    top = counts.sort(["count", text.name], descending=[True, False]).head(TOP_VALUES)
    total = max(len(column), 1)
    values = {str(v): int(c) / total for v, c in top.iter_rows()}
    nulls = text.null_count() / total
    other = max(0.0, 1.0 - nulls - sum(values.values())) if len(column) else 0.0
    return {
        "kind": "categorical",
        "values": dict(sorted(values.items())),
        "other": other,
        "null_fraction": nulls,
    }


def _n_slots(spec: Mapping[str, Any]) -> int:
    """Bins plus one null slot (numeric), or top values plus other plus null (categorical)."""
    if spec["kind"] == "numeric":
        return len(spec["edges"]) + 2
    return len(spec["values"]) + 2


def _count_slots(column: pl.Series, spec: Mapping[str, Any]) -> np.ndarray:
    if spec["kind"] == "numeric":
        return _count_numeric(_as_float(column), spec)
    slots = _n_slots(spec)
    known = list(spec["values"])
    lookup = {value: i for i, value in enumerate(known)}
    counts = np.zeros(slots, dtype=np.int64)
    # Count each distinct value once, then place it: a batch holds few distinct values.
    for value, n in column.cast(pl.String).rename("v").value_counts(sort=False).iter_rows():
        counts[len(known) + 1 if value is None else lookup.get(value, len(known))] += n
    return counts


def _count_numeric(values: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Count float64 values (NaN for null) into a numeric profile's bins and null slot.

    Bin i holds edges[i-1] < x <= edges[i] (a value equal to an edge falls in the bin that
    edge closes; -inf in the first bin, +inf in the last). With at most N_BINS - 1 edges,
    counting x <= edge per edge and differencing is ~9x faster than a binary search per row.
    """
    edges = spec["edges"]
    at_or_below = np.fromiter(
        (np.count_nonzero(values <= edge) for edge in edges), dtype=np.int64, count=len(edges)
    )
    nan = int(np.count_nonzero(np.isnan(values)))  # never <= an edge: would land in the top bin
    top = len(values) - (int(at_or_below[-1]) if len(edges) else 0) - nan
    bins = np.diff(at_or_below, prepend=0) if len(edges) else np.empty(0, dtype=np.int64)
    return np.concatenate([bins, [top, nan]]).astype(np.int64)


def _as_float(column: pl.Series) -> np.ndarray:
    """Return the column as float64 with nulls as NaN."""
    return column.cast(pl.Float64).fill_null(float("nan")).to_numpy()


def _as_floats(df: pl.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Return columns as one float64 matrix with nulls as NaN, column-major (each column's
    values contiguous), in one query."""
    if not names:
        return np.empty((df.height, 0), dtype=np.float64)
    values = df.select(pl.col(names).cast(pl.Float64).fill_null(float("nan"))).to_numpy()
    return np.asfortranarray(values)


def _shares(counts: np.ndarray, total: int) -> list[float]:
    return [float(c) / total if total else 0.0 for c in counts]


def _expected_shares(spec: Mapping[str, Any]) -> list[float]:
    if spec["kind"] == "numeric":
        return [*spec["fractions"], spec["null_fraction"]]
    return [*spec["values"].values(), spec["other"], spec["null_fraction"]]


def _psi(expected: Sequence[float], counts: np.ndarray) -> float:
    total = int(counts.sum())
    psi = 0.0
    for share, count in zip(expected, counts, strict=True):
        e = share + EPSILON
        a = (count / total if total else 0.0) + EPSILON
        psi += (a - e) * math.log(a / e)
    return float(psi)
