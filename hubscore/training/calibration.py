"""Fit the probability calibration on time-ordered predictions; a richer method only on evidence.

Platt scaling (two parameters: the slope and the base rate in log-odds) is the default: it
follows a base rate that moves between the fitting weeks and the weeks ahead, and two numbers
are what a few dozen converting companies can carry. Isotonic regression over bins of at least
`MIN_BIN_POSITIVES` expected positives (in log-odds; see `hubscore.engine.calibration`) replaces
it only when the fitting weeks hold `ISOTONIC_POSITIVES` positives and, fitted on their
earlier two thirds, it beats Platt's log loss on the later third beyond noise (the paired
difference per week, at 95% one-sided).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from hubscore.engine.calibration import calibrate, logit

Vector = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
MIN_BIN_POSITIVES = 10
"""Expected positives per isotonic bin: fewer and a bin's rate is mostly noise."""
MIN_POINT_GAP = 0.01
"""Log-odds between two isotonic points at least: closer ones are one point (about 1% apart in
odds, far below what a bin's rate can tell)."""
ISOTONIC_POSITIVES = 200
"""Positives the fitting weeks need before isotonic is a candidate (20 bins' worth): on the
samples, isotonic fitted on ~100 positives over-stated a forest's test weeks 1.6x."""
ONE_SIDED_95 = 1.645


def fit_calibration(
    y: Ints, p: Vector, weeks: Ints, weights: Vector | None = None
) -> dict[str, Any]:
    """Return Platt scaling fitted on every row, or isotonic where it wins beyond noise.

    Args:
        weights: row weights of a sampled frame (a kept negative stands for m rows).
    """
    evidence = _isotonic_evidence(y, p, weeks, weights)
    method = "isotonic" if evidence.get("beyond_noise") else "platt"
    return {
        **fit_method(method, y, p, weights),
        "chosen_by": _chosen_by(method, evidence, int(y.sum())),
        "evidence": evidence,
        "fitted_on_rows": int(y.size),
        "fitted_on_positives": int(y.sum()),
    }


def _isotonic_evidence(y: Ints, p: Vector, weeks: Ints, weights: Vector | None) -> dict[str, Any]:
    """Compare isotonic with Platt on the later third of the weeks, paired week by week."""
    order = np.unique(weeks)
    if int(y.sum()) < ISOTONIC_POSITIVES or order.size < 3:
        return {}
    cut = order[math.ceil(order.size * 2 / 3) - 1]
    early, late = weeks <= cut, weeks > cut
    if not (y[early].any() and y[late].any() and not y[early].all()):
        return {}
    w = np.ones(y.size) if weights is None else weights
    losses = {
        method: w[late]
        * _row_losses(
            y[late],
            calibrate(p[late], fit_method(method, y[early], p[early], _part(weights, early))),
        )
        for method in ("platt", "isotonic")
    }
    _, week = np.unique(weeks[late], return_inverse=True)
    gain = np.bincount(week, weights=losses["platt"] - losses["isotonic"])  # per later week
    mean = float(gain.mean())
    error = float(gain.std(ddof=1) / math.sqrt(gain.size)) if gain.size > 1 else None
    return {
        "later_weeks": int(gain.size),
        "log_loss": {m: float(v.sum() / w[late].sum()) for m, v in losses.items()},
        "isotonic_gain_per_week": mean,
        "standard_error": error,
        "beyond_noise": error is not None and mean - ONE_SIDED_95 * error > 0,
    }


def _chosen_by(method: str, evidence: dict[str, Any], positives: int) -> str:
    if not evidence:
        return (
            f"Platt scaling, the default: {positives} positive rows, fewer than the "
            f"{ISOTONIC_POSITIVES} isotonic needs to be compared"
            if positives < ISOTONIC_POSITIVES
            else "Platt scaling, the default: too few weeks to compare isotonic on"
        )
    verdict = "beat" if method == "isotonic" else "did not beat"
    return (
        f"{'isotonic regression' if method == 'isotonic' else 'Platt scaling'}: isotonic "
        f"{verdict} Platt beyond noise on the later {evidence['later_weeks']} weeks "
        f"(log loss {evidence['log_loss']['isotonic']:.5f} vs {evidence['log_loss']['platt']:.5f})"
    )


def _part(weights: Vector | None, rows: npt.NDArray[np.bool_]) -> Vector | None:
    return None if weights is None else weights[rows]


def fit_method(method: str, y: Ints, p: Vector, weights: Vector | None = None) -> dict[str, Any]:
    """Fit one calibration method (none, platt or isotonic) on predictions and labels."""
    if method == "platt":
        return _fit_platt(y, p, weights)
    if method == "isotonic":
        return _fit_isotonic(y, p, weights)
    return {"method": "none"}


def _fit_platt(y: Ints, p: Vector, weights: Vector | None) -> dict[str, Any]:
    z = logit(p).reshape(-1, 1)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(z, y, sample_weight=weights)
    a, b = float(model.coef_[0, 0]), float(model.intercept_[0])
    if not a > 0:  # a flat or inverted fit would tie or reverse the list
        return {"method": "none"}
    return {"method": "platt", "a": a, "b": b}


def _fit_isotonic(y: Ints, p: Vector, weights: Vector | None) -> dict[str, Any]:
    """Isotonic regression over equal-count bins of log-odds; one point per pooled block."""
    z = logit(p)
    w = np.ones(y.size) if weights is None else weights
    order = np.argsort(z, kind="stable")
    total = float(w.sum())
    rate = max(float((w * y).sum()) / total, 1.0 / total)
    per_bin = max(math.ceil(MIN_BIN_POSITIVES / rate), 1)
    bins = equal_weight_bins(order, weights, max(int(total) // per_bin, 1))
    mean_z = np.array([np.average(z[b], weights=w[b]) for b in bins])
    positives = np.array([(w[b] * y[b]).sum() for b in bins], dtype=np.float64)
    counts = np.array([w[b].sum() for b in bins], dtype=np.float64)
    fitted = IsotonicRegression().fit(mean_z, positives / counts, sample_weight=counts)
    level = fitted.predict(mean_z)
    x, y_logit = _pooled_points(mean_z, level, positives, counts)
    if x.size < 2:
        return {"method": "none"}
    return {"method": "isotonic", "x": x.tolist(), "y": y_logit.tolist()}


def _pooled_points(
    mean_z: Vector, level: Vector, positives: Vector, counts: Vector
) -> tuple[Vector, Vector]:
    """Merge bins that isotonic regression pooled; return strictly increasing (x, logit y).

    Blocks whose centres lie within `MIN_POINT_GAP` of the previous point are merged into it:
    a tree model gives many rows one score, so two bins of one tie share a centre, and a step
    there would send scores a rounding error apart (float32 ONNX against float64 native) to
    probabilities far apart.
    """
    blocks: list[list[float]] = []  # [centre, rows, positives], merged
    start = 0
    for end in range(1, level.size + 1):
        if end == level.size or level[end] != level[start]:
            n = float(counts[start:end].sum())
            hits = float(positives[start:end].sum())
            centre = float(np.average(mean_z[start:end], weights=counts[start:end]))
            if blocks and centre - blocks[-1][0] < MIN_POINT_GAP:
                last = blocks[-1]
                last[0] = (last[0] * last[1] + centre * n) / (last[1] + n)
                last[1] += n
                last[2] += hits
            else:
                blocks.append([centre, n, hits])
            start = end
    merged = np.array(blocks).reshape(-1, 3)
    x = merged[:, 0]
    points = logit((merged[:, 2] + 0.5) / (merged[:, 1] + 1.0))
    kept = [0]  # a merge may pull a centre back by a rounding error: keep the gap exact
    for i in range(1, x.size):
        if x[i] - x[kept[-1]] >= MIN_POINT_GAP:
            kept.append(i)
    x, points = x[kept], np.maximum.accumulate(points[kept])
    # Strictly increasing, so no two scores that differ before calibration tie after it.
    return x, points + np.arange(points.size) * 1e-6


def _row_losses(y: Ints, p: npt.NDArray[np.float32]) -> Vector:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    positive = y.astype(np.float64)
    losses: Vector = -(positive * np.log(q) + (1.0 - positive) * np.log1p(-q))
    return losses


def equal_weight_bins(
    order: Ints, weights: Vector | None, bins: int
) -> list[npt.NDArray[np.int64]]:
    """Split rows (in `order`) into `bins` runs of about equal weight (equal counts without)."""
    if weights is None:
        return [b for b in np.array_split(order, bins) if b.size]
    cumulative = np.cumsum(weights[order])
    edges = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, bins) / bins, side="right")
    return [b for b in np.split(order, edges) if b.size]


def calibration_error(
    y: Ints, p: Vector, *, bins: int = 10, weights: Vector | None = None
) -> float:
    """Expected calibration error over equal-count bins of predicted probability."""
    w = np.ones(y.size) if weights is None else weights
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in equal_weight_bins(order, weights, min(bins, max(p.size, 1))):
        mass = float(w[chunk].sum())
        gap = np.average(p[chunk], weights=w[chunk]) - np.average(y[chunk], weights=w[chunk])
        total += mass * abs(float(gap))
    return total / max(float(w.sum()), 1.0)


def reliability_table(
    y: Ints, p: Vector, *, bins: int = 10, weights: Vector | None = None
) -> list[dict[str, Any]]:
    """Rows per decile of predicted probability: rows, mean predicted, observed rate."""
    w = np.ones(y.size) if weights is None else weights
    order = np.argsort(p, kind="stable")
    rows = []
    for number, chunk in enumerate(equal_weight_bins(order, weights, bins), start=1):
        rows.append(
            {
                "decile": number,
                "rows": round(float(w[chunk].sum())),
                "mean_predicted": float(np.average(p[chunk], weights=w[chunk])),
                "observed_rate": float(np.average(y[chunk], weights=w[chunk])),
                "positives": round(float((w[chunk] * y[chunk]).sum())),
            }
        )
    return rows
