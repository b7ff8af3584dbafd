"""Map a model's probability to a calibrated one, as stored in the encoder spec (NumPy only).

A sales team reads 0.22 as 22%, so the scorer reports calibrated probabilities. Every method
works on the log-odds z of the model's probability and is strictly increasing, so it never
reorders (or ties) the list:
- `none`: the model's own probability.
- `platt`: sigmoid(a * z + b), a > 0.
- `isotonic`: piecewise linear through the points (x, y) in log-odds, fitted by isotonic
  regression on binned out-of-fold predictions; beyond the first and last point it continues
  with slope 1, so the top of the list keeps its order.
Training, `score` and `serve` all call `calibrate`: the numbers are the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

METHODS = ("none", "platt", "isotonic")
_EPS = 1e-7  # a probability of exactly 0 or 1 (a unanimous forest) still has finite log-odds


def logit(p: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Return the log-odds of probabilities, clipped away from 0 and 1."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def calibrate(
    p: npt.NDArray[np.floating[Any]], calibration: Mapping[str, Any]
) -> npt.NDArray[np.float32]:
    """Return calibrated probabilities (float32, like the model's own) for `p`."""
    method = calibration.get("method", "none")
    if method == "none" or len(p) == 0:
        return np.asarray(p, dtype=np.float32)
    z = logit(p)
    if method == "platt":
        out = float(calibration["a"]) * z + float(calibration["b"])
    elif method == "isotonic":
        out = _piecewise(z, np.asarray(calibration["x"]), np.asarray(calibration["y"]))
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    calibrated: npt.NDArray[np.float32] = (0.5 * (1.0 + np.tanh(0.5 * out))).astype(np.float32)
    return calibrated


def _piecewise(
    z: npt.NDArray[np.float64], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    out = np.interp(z, x, y)
    low, high = z < x[0], z > x[-1]
    out[low] = y[0] + (z[low] - x[0])
    out[high] = y[-1] + (z[high] - x[-1])
    return out
