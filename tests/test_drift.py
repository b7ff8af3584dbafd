"""Training profiles and the population stability index, one-shot and streamed."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubscore.engine.drift import (
    DriftCounter,
    population_stability,
    profile_features,
    worst_features,
)

N_ROWS = 2000


@pytest.fixture(scope="module")
def train() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    counts = np.where(rng.random(N_ROWS) < 0.4, 0.0, rng.pareto(1.5, N_ROWS) * 10)
    counts[:20] = np.nan
    industry = rng.choice(["software", "retail", "health", "other"], N_ROWS).tolist()
    return pl.DataFrame(
        {
            "actions": counts,
            "rank": pl.Series([None, None, *rng.integers(1, 100, N_ROWS - 2).tolist()]),
            "industry": pl.Series([None if i % 7 == 0 else v for i, v in enumerate(industry)]),
        }
    )


def test_profile_is_plain_json_with_shares_summing_to_one(train: pl.DataFrame) -> None:
    profile = profile_features(train, ["actions", "rank", "industry"])
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    numeric, categorical = profile["actions"], profile["industry"]
    assert numeric["kind"] == "numeric"
    assert numeric["edges"] == sorted(set(numeric["edges"]))  # heavy zeros collapse edges
    assert len(numeric["fractions"]) == len(numeric["edges"]) + 1
    assert sum(numeric["fractions"]) + numeric["null_fraction"] == pytest.approx(1.0)
    assert numeric["null_fraction"] == pytest.approx(20 / N_ROWS)
    assert categorical["kind"] == "categorical"
    shares = [*categorical["values"].values(), categorical["other"], categorical["null_fraction"]]
    assert sum(shares) == pytest.approx(1.0)


def test_same_data_is_stable_and_shifted_data_drifts(train: pl.DataFrame) -> None:
    profile = profile_features(train, ["actions", "rank", "industry"])
    same = population_stability(profile, train)
    assert max(same.values()) < 1e-9
    shifted = train.with_columns(
        pl.col("actions") * 5, pl.lit("brand new", dtype=pl.String).alias("industry")
    )
    psi = population_stability(profile, shifted)
    assert psi["actions"] > 0.25
    assert psi["industry"] > 1.0
    assert psi["rank"] < 1e-9
    assert [name for name, _ in worst_features(psi, limit=2)] == ["industry", "actions"]


def test_streamed_counts_equal_one_pass(train: pl.DataFrame) -> None:
    profile = profile_features(train, ["actions", "industry"])
    scoring = train.with_columns(pl.col("actions") + 1.0)
    counter = DriftCounter(profile)
    for start in range(0, scoring.height, 333):
        counter.update(scoring.slice(start, 333))
    assert counter.psi() == pytest.approx(population_stability(profile, scoring))


def test_nan_inf_and_all_null_columns_are_handled() -> None:
    df = pl.DataFrame(
        {
            "x": [1.0, 2.0, float("inf"), -float("inf"), float("nan"), None],
            "empty": pl.Series([None] * 6, dtype=pl.Float64),
        }
    )
    profile = profile_features(df, ["x", "empty"])
    assert profile["x"]["null_fraction"] == pytest.approx(2 / 6)
    assert profile["empty"] == {
        "kind": "numeric",
        "edges": [],
        "fractions": [0.0],
        "null_fraction": 1.0,
    }
    assert max(population_stability(profile, df).values()) < 1e-9


def test_empty_input_has_no_psi_and_missing_columns_are_skipped(train: pl.DataFrame) -> None:
    profile = profile_features(train, ["actions", "industry"])
    assert population_stability(profile, train.head(0)) == {}
    psi = population_stability(profile, train.select("actions"))
    assert psi["actions"] < 1e-9
    assert "industry" not in psi  # absent: no PSI at all, not the PSI of zero counts


def test_counts_do_not_depend_on_how_the_rows_are_batched(train: pl.DataFrame) -> None:
    profile = profile_features(train, ["actions", "industry"])
    scoring = train.with_columns(pl.col("actions") * 2.0)
    whole = DriftCounter(profile)
    whole.update(scoring)
    merged = DriftCounter(profile)
    # Disjoint parts in uneven batches, sent as JSON, as Spark's partitions send them.
    parts = [(0, 5, 1), (5, 60, 7), (65, scoring.height - 65, 300)]
    for start, rows, batch_rows in parts:
        part = DriftCounter(profile)
        for batch in scoring.slice(start, rows).iter_slices(batch_rows):
            part.update(batch)
        merged.merge(json.loads(json.dumps(part.partial())))
    assert merged.rows == whole.rows == scoring.height
    assert merged.psi() == whole.psi()
    assert merged.psi()["actions"] > 0.1  # the doubled counts really moved


def test_columns_the_encoder_already_counted_are_not_read_again(train: pl.DataFrame) -> None:
    profile = profile_features(train, ["actions", "rank", "industry"])
    counter = DriftCounter(profile)
    counted: dict[str, np.ndarray] = {}
    values = train.select(pl.col("actions").fill_null(float("nan"))).to_numpy()
    counter.count_values(["actions"], values, counted)  # what the encoder's observer does
    unread = train.with_columns(pl.lit(-1.0).alias("actions"))  # counting it again would show
    counts = counter.count(unread, counted=counted)
    assert list(counts) == ["actions", "rank", "industry"]  # the profile's order
    np.testing.assert_array_equal(counts["actions"], counter.count(train)["actions"])


@settings(max_examples=200, deadline=None)
@given(
    edges=st.lists(st.floats(-1e6, 1e6), max_size=9, unique=True).map(sorted),
    values=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0])),
        max_size=60,
    ),
)
def test_each_value_lands_in_the_bin_its_edges_define(
    edges: list[float], values: list[float]
) -> None:
    # Bin i holds edges[i-1] < x <= edges[i]: the binary search's definition, row by row.
    values += edges  # values equal to an edge fall in the bin that edge closes
    profile = {"x": {"kind": "numeric", "edges": edges, "fractions": [0.0] * (len(edges) + 1)}}
    profile["x"]["null_fraction"] = 0.0
    counter = DriftCounter(profile)
    counter.update(pl.DataFrame({"x": pl.Series(values, dtype=pl.Float64)}))
    x = np.asarray(values, dtype=np.float64)
    expected = np.bincount(np.searchsorted(edges, x[~np.isnan(x)]), minlength=len(edges) + 1)
    assert counter.counts["x"].tolist() == [*expected.tolist(), int(np.isnan(x).sum())]
