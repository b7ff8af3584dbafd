"""Calibration: chosen by the data, strictly increasing, and applied the same everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubscore.engine.calibration import METHODS, calibrate
from hubscore.training import calibration
from hubscore.training.calibration import calibration_error, fit_calibration


def predictions(scale: float, *, n: int = 40_000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Rows over 20 weeks whose model says `scale` times their true conversion rate."""
    rng = np.random.default_rng(seed)
    truth = rng.beta(0.4, 60, n)
    y = (rng.random(n) < truth).astype(np.int64)
    weeks = np.sort(rng.integers(0, 20, n)) * 7
    return y, np.clip(truth * scale, 1e-6, 1 - 1e-6), weeks


@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_a_miscalibrated_model_is_corrected_on_later_weeks(scale: float) -> None:
    y, p, weeks = predictions(scale)
    fitted = fit_calibration(y, p, weeks)
    assert fitted["method"] in ("platt", "isotonic")
    fresh_y, fresh_p, _ = predictions(scale, seed=1)
    after = calibrate(fresh_p, fitted).astype(np.float64)
    assert abs(after.sum() / fresh_y.sum() - 1) < 0.15 < abs(fresh_p.sum() / fresh_y.sum() - 1)
    assert calibration_error(fresh_y, after) < calibration_error(fresh_y, fresh_p)


def test_isotonic_replaces_platt_only_beyond_noise_and_says_why() -> None:
    y, p, weeks = predictions(3.0)
    few = fit_calibration(y[:3000], p[:3000], weeks[:3000])  # under 200 positives
    assert few["method"] == "platt" and "fewer than the 200 isotonic needs" in few["chosen_by"]
    fitted = fit_calibration(y, p, weeks)
    evidence = fitted["evidence"]
    assert evidence["later_weeks"] >= 5 and set(evidence["log_loss"]) == {"platt", "isotonic"}
    expected = "isotonic" if evidence["beyond_noise"] else "platt"
    assert fitted["method"] == expected
    assert (evidence["isotonic_gain_per_week"] - 1.645 * evidence["standard_error"] > 0) == (
        expected == "isotonic"
    )


def test_a_calibrated_model_keeps_its_probabilities_unless_the_data_says_otherwise() -> None:
    y, p, weeks = predictions(1.0)
    fitted = fit_calibration(y, p, weeks)
    fresh_y, fresh_p, _ = predictions(1.0, seed=1)
    after = calibrate(fresh_p, fitted).astype(np.float64)
    assert abs(after.sum() / fresh_y.sum() - 1) < 0.15


@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(0.1, 10.0),
    seed=st.integers(0, 1000),
    probe=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=50),
)
def test_every_calibration_is_strictly_increasing_so_it_never_reorders_the_list(
    scale: float, seed: int, probe: list[float]
) -> None:
    y, p, _ = predictions(scale, n=5_000, seed=seed)
    for method in METHODS:
        fitted = calibration.fit_method(method, y, p)
        values = np.unique(np.array(probe, dtype=np.float32))
        out = calibrate(values, fitted)
        assert out.dtype == np.float32 and np.all(np.isfinite(out))
        assert np.all(np.diff(out.astype(np.float64)) >= 0)
        assert np.all((out >= 0) & (out <= 1))


def test_the_top_of_the_list_keeps_its_order_beyond_the_last_fitted_point() -> None:
    y, p, weeks = predictions(3.0)
    fitted = fit_calibration(y, p, weeks)
    top = np.array([0.5, 0.6, 0.7, 0.8, 0.9], dtype=np.float32)
    assert np.all(np.diff(calibrate(top, fitted)) > 0)


def test_no_calibration_returns_the_input_and_an_unknown_method_is_refused() -> None:
    p = np.array([0.1, 0.2], dtype=np.float32)
    assert calibrate(p, {"method": "none"}).tobytes() == p.tobytes()
    with pytest.raises(ValueError, match="unknown calibration"):
        calibrate(p, {"method": "magic"})


@pytest.mark.parametrize("levels", [7, 40, 400])
def test_isotonic_has_no_step_where_a_tree_gives_many_rows_one_score(levels: int) -> None:
    # A tree model's scores come in ties: equal-count bins split a tie, and two bins with one
    # centre would make a step there, where float32 and float64 scores land on either side.
    rng = np.random.default_rng(levels)
    p = rng.choice(np.linspace(0.0005, 0.05, levels), size=200_000)
    y = (rng.random(p.size) < p).astype(np.int64)
    sampled = np.where(y == 1, 1.0, 7.0)  # negatives read 1 in 7 (training.max_rows)
    fitted = calibration.fit_method("isotonic", y, p, sampled)
    x = np.array(fitted["x"])
    assert np.all(np.diff(x) >= calibration.MIN_POINT_GAP)
    # A rounding error in the model's score stays a rounding error after calibration.
    scores = np.unique(p)
    nudged = np.nextafter(scores.astype(np.float32), np.float32(1))
    moved = np.abs(calibrate(nudged, fitted).astype(np.float64) - calibrate(scores, fitted))
    assert moved.max() < 1e-5
