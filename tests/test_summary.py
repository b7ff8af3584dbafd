"""The score summary's probabilities: exact, and the same from merged parts as from one array."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubscore.serving import summary
from hubscore.serving.summary import Partial, summarise, summarise_array

BANDS = {"high": 0.7, "medium": 0.4}
PROBABILITIES = st.lists(
    st.one_of(
        st.floats(0, 1, width=32),
        st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-45, 0.4, 0.7]),
    ),
    max_size=300,
).map(lambda values: np.asarray(values, dtype=np.float32))


@settings(max_examples=200, deadline=None)
@given(probs=PROBABILITIES)
def test_the_summary_is_polars_quantiles_and_an_exact_mean(probs: np.ndarray) -> None:
    stats = summarise_array(probs, threshold=0.5, bands=BANDS)
    series = pl.Series(probs, dtype=pl.Float32)
    assert stats.rows == len(probs)
    assert stats.positives == int((probs >= np.float32(0.5)).sum())
    high = int((probs >= np.float32(0.7)).sum())
    medium = int((probs >= np.float32(0.4)).sum()) - high
    assert stats.confidence == {"high": high, "medium": medium, "low": len(probs) - high - medium}
    if not len(probs):
        assert stats.distribution == {}
        return
    expected = {
        "min": series.min(),
        "p50": series.quantile(0.5),
        "p90": series.quantile(0.9),
        "p99": series.quantile(0.99),
        "max": series.max(),
        "mean": float(sum(Fraction(float(p)) for p in probs) / len(probs)),
    }
    assert stats.distribution == {k: round(float(v), 6) for k, v in expected.items()}  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(probs=PROBABILITIES, cuts=st.lists(st.integers(0, 300), max_size=4))
def test_merged_parts_give_the_summary_of_the_whole(probs: np.ndarray, cuts: list[int]) -> None:
    # As the Spark tasks send them: one part per task, in any split, through JSON.
    whole = Partial()
    for part in np.split(probs, sorted(c % (len(probs) + 1) for c in cuts)):
        whole.merge(Partial.from_json(Partial.of(part, threshold=0.5, bands=BANDS).to_json()))
    p = probs + np.float32(0.0)

    def bucket_values(bucket: int) -> dict[float, int]:
        inside = p[(p.view(np.uint32) >> 16) == bucket]
        values, counts = np.unique(inside, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist(), strict=True))

    assert summarise(whole, bucket_values) == summarise_array(probs, threshold=0.5, bands=BANDS)


@settings(max_examples=100, deadline=None)
@given(probs=PROBABILITIES, rows_at_a_time=st.integers(1, 400))
def test_the_scaled_sum_is_exact_however_the_rows_are_split(
    probs: np.ndarray, rows_at_a_time: int
) -> None:
    exact = sum(Fraction(float(p)) for p in probs) * 2**summary._SCALE
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(summary, "_EXACT_SUM_ROWS", rows_at_a_time)
        assert summary.exact_scaled_sum(probs) == exact
