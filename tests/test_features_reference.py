"""The SQL features equal an independent Polars computation on the bundled sample."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
from reference import read_usage_csv, reference_features

from hubscore.core.config import FeaturesConfig
from hubscore.features.build import BuildRequest, build_features

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLED_ROWS = 150


@pytest.fixture(scope="module")
def sample_features(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("build")
    # A short warm-up: its early rows see windows partly before the files start.
    result = build_features(BuildRequest(DATA, out, FeaturesConfig(warmup_days=14)))
    return pl.read_parquet(result.features_path)


def test_sql_features_equal_a_polars_reference_on_random_spine_rows(
    sample_features: pl.DataFrame,
) -> None:
    usage = read_usage_csv(str(DATA / "usage_actions.csv"))
    active = sample_features.filter(pl.col("tenure_days").is_not_null())
    rows = active.sample(SAMPLED_ROWS, seed=7).to_dicts()
    rows += sample_features.filter(pl.col("label") == 1).sample(50, seed=7).to_dicts()
    warm_up = active.filter(pl.col("weeks_observed") < 13)
    rows += warm_up.sample(50, seed=7).to_dicts()
    for row in rows:
        expected = reference_features(usage, row["id"], row["cutoff"], lookback=91, recent=28)
        for name, value in expected.items():
            actual = row[name]
            where = f"id={row['id']} cutoff={row['cutoff']} {name}"
            if value is None:
                assert actual is None, where
            else:
                assert actual is not None and math.isclose(actual, value, rel_tol=1e-9), where


def test_the_sample_has_labelled_rows_at_every_cutoff(sample_features: pl.DataFrame) -> None:
    per_cutoff = sample_features.group_by("cutoff").agg(pl.col("label").sum())
    assert per_cutoff["label"].min() > 0
    assert sample_features["label"].mean() < 0.01, "positives are rare, as in the real files"
