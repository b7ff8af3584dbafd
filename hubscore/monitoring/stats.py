"""The monitor's intervals: Wilson for one list, company resampling for pooled figures.

Every interval is a 90% one (`LEVEL`), the level of the promise `train` writes (metrics.json's
`test_intervals`), so a realised figure and its promise are read on one scale. Pooled figures
resample companies, not rows: a company listed in several weeks is one draw with all its rows,
as `train` resamples for its intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

LEVEL = 0.9
Z = 1.6448536269514722  # the standard normal's 95th percentile: a two-sided 90% interval
RESAMPLES = 1000
CHUNK = 100  # resamples drawn at once: bounded memory however many companies are listed

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def wilson(successes: int, trials: int, z: float = Z) -> tuple[float | None, float | None]:
    """Return the Wilson score interval of a proportion (None, None without trials)."""
    if trials <= 0:
        return None, None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    half /= 1 + z * z / trials
    # The interval always holds p; rounding must not push a bound past it (0/19 gave 1e-17).
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)


@dataclass(frozen=True)
class Ratio:
    """A ratio of sums over companies: sum(numerator) / sum(denominator), per company arrays."""

    numerator: F64
    denominator: F64

    @property
    def value(self) -> float | None:
        """Return the ratio, None when the denominator sums to 0."""
        total = float(self.denominator.sum())
        return float(self.numerator.sum()) / total if total else None


def resampled(ratios: list[Ratio], *, seed: int = 0, resamples: int = RESAMPLES) -> F64:
    """Return each ratio under `resamples` company resamples: shape (resamples, len(ratios)).

    Every ratio's arrays index the same companies, and each resample weighs all of them with the
    same draw, so differences of the ratios are paired. A resample whose denominator is 0 is NaN.
    """
    n = ratios[0].numerator.size if ratios else 0
    rng = np.random.default_rng(seed)
    out = np.full((resamples, len(ratios)), np.nan)
    if n == 0:
        return out
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        draws = rng.integers(0, n, (size, n))
        weights = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)
        for j, ratio in enumerate(ratios):
            num, den = weights @ ratio.numerator, weights @ ratio.denominator
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + size, j] = np.where(den > 0, num / den, np.nan)
    return out


def paired_difference(
    first: Ratio, second: Ratio
) -> tuple[float | None, float | None, float | None]:
    """Return second minus first and its interval, one company resample weighing both."""
    draws = resampled([first, second])
    low, high = percentile_interval(draws[:, 1] - draws[:, 0])
    a, b = first.value, second.value
    return (b - a if a is not None and b is not None else None), low, high


def percentile_interval(values: F64) -> tuple[float | None, float | None]:
    """Return the central `LEVEL` interval of resampled values (None when too few are finite)."""
    finite = values[np.isfinite(values)]
    if finite.size < 10:
        return None, None
    tail = (1 - LEVEL) / 2 * 100
    return float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))


def expected_band(expected: float, variance: float) -> tuple[float, float]:
    """Return the `LEVEL` band of conversions a calibrated model expects: E ± z·sqrt(V)."""
    half = Z * math.sqrt(max(variance, 0.0))
    return max(0.0, expected - half), expected + half


def expected_figures(realised: int, expected: float, variance: float) -> dict[str, Any]:
    """Return expected conversions, their band, and realised / expected with the band a
    calibrated model's ratio falls in 90% of the time (`calibrated_low`..`calibrated_high`)."""
    low, high = expected_band(expected, variance)
    return {
        "expected": expected,
        "expected_low": low,
        "expected_high": high,
        "realised_over_expected": realised / expected if expected else None,
        "calibrated_low": low / expected if expected else None,
        "calibrated_high": high / expected if expected else None,
    }
