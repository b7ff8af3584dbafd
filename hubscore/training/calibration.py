"""Fit the probability calibration on out-of-fold, time-ordered predictions; let the data choose.

Candidates: none, Platt scaling and, with at least `ISOTONIC_POSITIVES` positives, isotonic
regression over bins of at least `MIN_BIN_POSITIVES` expected positives (in log-odds; see
`hubscore.engine.calibration`).
Each is fitted on the earlier weeks of the out-of-fold predictions and scored by log loss on
the later weeks; the winner is refitted on all of them. Few positives favour Platt by the
numbers, not by a rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from hubscore.engine.calibration import METHODS, calibrate, logit

Vector = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
MIN_BIN_POSITIVES = 10
"""Expected positives per isotonic bin: fewer and a bin's rate is mostly noise."""
ISOTONIC_POSITIVES = 200
"""Positives the fitting weeks need before isotonic is a candidate (20 bins' worth): on the
samples, isotonic fitted on ~100 positives over-stated a forest's test weeks 1.6x."""


def fit_calibration(y: Ints, p: Vector, weeks: Ints) -> dict[str, Any]:
    """Return the calibration chosen on time-ordered out-of-fold predictions, with its evidence."""
    order = np.unique(weeks)
    cut = order[math.ceil(len(order) * 2 / 3) - 1] if len(order) > 1 else order[-1]
    early, late = weeks <= cut, weeks > cut
    scores: dict[str, float] = {}
    # Isotonic needs positives to spread over its bins; with fewer, Platt's two parameters.
    candidates = [m for m in METHODS if m != "isotonic" or y[early].sum() >= ISOTONIC_POSITIVES]
    if late.any() and y[early].any() and y[late].any() and not y[early].all():
        for method in candidates:
            fitted = fit_method(method, y[early], p[early])
            scores[method] = _log_loss(y[late], calibrate(p[late], fitted))
    chosen = (
        min(scores, key=lambda m: math.inf if scores[m] is None else scores[m])
        if scores
        else "platt"
    )
    return {
        **fit_method(chosen, y, p),
        "chosen_by": "log loss on the later third of the out-of-fold weeks",
        "validation_log_loss": scores,
        "fitted_on_rows": int(y.size),
        "fitted_on_positives": int(y.sum()),
    }


def fit_method(method: str, y: Ints, p: Vector) -> dict[str, Any]:
    """Fit one calibration method (none, platt or isotonic) on predictions and labels."""
    if method == "platt":
        return _fit_platt(y, p)
    if method == "isotonic":
        return _fit_isotonic(y, p)
    return {"method": "none"}


def _fit_platt(y: Ints, p: Vector) -> dict[str, Any]:
    z = logit(p).reshape(-1, 1)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(z, y)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not a > 0:  # a flat or inverted fit would tie or reverse the list
        return {"method": "none"}
    return {"method": "platt", "a": a, "b": b}


def _fit_isotonic(y: Ints, p: Vector) -> dict[str, Any]:
    """Isotonic regression over equal-count bins of log-odds; one point per pooled block."""
    z = logit(p)
    order = np.argsort(z, kind="stable")
    rate = max(float(y.mean()), 1.0 / y.size)
    per_bin = max(math.ceil(MIN_BIN_POSITIVES / rate), 1)
    n_bins = max(y.size // per_bin, 1)
    bins = np.array_split(order, n_bins)
    mean_z = np.array([z[b].mean() for b in bins])
    positives = np.array([y[b].sum() for b in bins], dtype=np.float64)
    counts = np.array([b.size for b in bins], dtype=np.float64)
    fitted = IsotonicRegression().fit(mean_z, positives / counts, sample_weight=counts)
    level = fitted.predict(mean_z)
    x, y_logit = _pooled_points(mean_z, level, positives, counts)
    if x.size < 2:
        return {"method": "none"}
    return {"method": "isotonic", "x": x.tolist(), "y": y_logit.tolist()}


def _pooled_points(
    mean_z: Vector, level: Vector, positives: Vector, counts: Vector
) -> tuple[Vector, Vector]:
    """Merge bins that isotonic regression pooled; return strictly increasing (x, logit y)."""
    xs: list[float] = []
    ys: list[float] = []
    start = 0
    for end in range(1, level.size + 1):
        if end == level.size or level[end] != level[start]:
            n = counts[start:end].sum()
            hits = positives[start:end].sum()
            xs.append(float(np.average(mean_z[start:end], weights=counts[start:end])))
            ys.append(float(logit(np.array([(hits + 0.5) / (n + 1.0)]))[0]))
            start = end
    x, y = np.array(xs), np.array(ys)
    keep = np.concatenate([[True], np.diff(x) > 0])  # pooled blocks have distinct centres
    x, y = x[keep], np.maximum.accumulate(y[keep])
    # Strictly increasing, so no two scores that differ before calibration tie after it.
    y = y + np.arange(y.size) * 1e-6
    return x, y


def _log_loss(y: Ints, p: npt.NDArray[np.float32]) -> float:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(log_loss(y, q, labels=[0, 1]))


def calibration_error(y: Ints, p: Vector, *, bins: int = 10) -> float:
    """Expected calibration error over equal-count bins of predicted probability."""
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, max(p.size, 1))):
        if chunk.size:
            total += chunk.size * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return total / max(p.size, 1)


def reliability_table(y: Ints, p: Vector, *, bins: int = 10) -> list[dict[str, Any]]:
    """Rows per decile of predicted probability: rows, mean predicted, observed rate."""
    order = np.argsort(p, kind="stable")
    rows = []
    for number, chunk in enumerate(np.array_split(order, bins), start=1):
        if chunk.size:
            rows.append(
                {
                    "decile": number,
                    "rows": int(chunk.size),
                    "mean_predicted": float(p[chunk].mean()),
                    "observed_rate": float(y[chunk].mean()),
                    "positives": int(y[chunk].sum()),
                }
            )
    return rows
