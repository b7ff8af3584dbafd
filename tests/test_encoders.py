"""Encoders: fit on training rows, JSON round trip, one `encode` for training and scoring."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest_train import make_features
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubscore.core.config import EncodingConfig
from hubscore.core.contract import EMPLOYEE_RANGES, NUMERIC_FEATURES, RAW_FEATURES
from hubscore.core.errors import ArtifactError, SchemaError
from hubscore.engine import encoding
from hubscore.training import encoders

CONFIG = EncodingConfig(industry_min_frequency=3)
UNSCALED = EncodingConfig(industry_min_frequency=3, scaling="none")
"""Imputed, one-hot and flagged like logistic regression's inputs, but not scaled."""


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_features(60, 4)


@pytest.fixture(scope="module")
def spec(frame: pl.DataFrame) -> encoding.EncoderSpec:
    return encoders.fit_encoders(frame, CONFIG, linear=True)


def column(spec: encoding.EncoderSpec, matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, spec.output_names.index(name)]


def one_row(frame: pl.DataFrame, **values: object) -> pl.DataFrame:
    row = frame.head(1)
    return row.with_columns(**{k: pl.lit(v, dtype=row.schema[k]) for k, v in values.items()})


def test_matrix_is_float32_c_contiguous_in_output_order(frame, spec) -> None:
    matrix = encoding.encode(frame, spec)
    assert matrix.dtype == np.float32
    assert matrix.flags["C_CONTIGUOUS"]
    assert matrix.shape == (frame.height, len(spec.output_names))
    assert np.isfinite(matrix).all()


def test_each_output_column_holds_its_feature_wherever_the_spec_places_it(frame, spec) -> None:
    # Numbers are written in runs of neighbouring columns: a reordered layout breaks the runs.
    names = spec.output_names
    industry = [n for n in names if n.startswith("INDUSTRY=")]
    others = [n for n in names if n not in industry]
    shuffled = [*others[::-2], *industry, *others[-2::-2]]
    moved = encoding.encode(frame, dataclasses.replace(spec, output_names=shuffled))
    matrix = encoding.encode(frame, spec)
    assert sorted(shuffled) == sorted(names)
    for name in names:
        assert column(spec, matrix, name).tobytes() == moved[:, shuffled.index(name)].tobytes()


def test_rows_encode_independently_across_blocks(frame, spec, monkeypatch) -> None:
    whole = encoding.encode(frame, spec)
    monkeypatch.setattr(encoding, "ENCODE_BLOCK_ROWS", 7)  # blocks end mid-company
    assert encoding.encode(frame, spec).tobytes() == whole.tobytes()
    assert encoding.encode(frame.head(0), spec).shape == (0, len(spec.output_names))


@pytest.mark.parametrize(
    ("memo_rows", "many_distinct"), [(4, True), (64, False)], ids=["many-distinct", "few-distinct"]
)
def test_one_row_at_a_time_encodes_like_the_whole_frame(
    frame, spec, monkeypatch, memo_rows, many_distinct
) -> None:
    # Small frames (API requests) fold text row by row through a memo; large ones fold their
    # distinct values, through the memo while they are few, in one query when they are many.
    monkeypatch.setattr(encoding, "_MEMO_MAX_ROWS", memo_rows)
    messy = frame.head(8).with_columns(
        pl.Series(encoding.EMPLOYEE, ["2 to 5", " 2  TO 5 ", "", None, "huge", "1", "1", "?"]),
        pl.Series(encoding.INDUSTRY, ["Retail", "retail!", "  ", None, "new one", "", "x", "X"]),
    )
    df = pl.concat([frame, messy])
    distinct = [df.get_column(c).n_unique() for c in (encoding.EMPLOYEE, encoding.INDUSTRY)]
    assert df.height > memo_rows
    assert all((n > memo_rows) == many_distinct for n in distinct)
    rows = [encoding.encode(df.slice(i, 1), spec) for i in range(df.height)]
    assert np.vstack(rows).tobytes() == encoding.encode(df, spec).tobytes()


@pytest.mark.parametrize(
    ("raw", "ordinal"),
    [("1", 1), ("2 to 5", 2), (" 2  TO 5 ", 2), ("10,001 or more", 9), ("10001 OR MORE", 9)],
)
def test_employee_range_is_ordinal_after_folding(frame, raw, ordinal) -> None:
    spec = encoders.fit_encoders(frame, UNSCALED, linear=True)
    matrix = encoding.encode(one_row(frame, EMPLOYEE_RANGE=raw), spec)
    assert column(spec, matrix, "EMPLOYEE_RANGE")[0] == ordinal
    assert column(spec, matrix, "EMPLOYEE_RANGE_missing")[0] == 0


@pytest.mark.parametrize("raw", [None, "", "   ", "5 to 9 people"])
def test_missing_or_unseen_employee_range_is_imputed_and_flagged(frame, raw) -> None:
    spec = encoders.fit_encoders(frame, UNSCALED, linear=True)
    matrix = encoding.encode(one_row(frame, EMPLOYEE_RANGE=raw), spec)
    assert column(spec, matrix, "EMPLOYEE_RANGE")[0] == pytest.approx(spec.employee.fill)
    assert column(spec, matrix, "EMPLOYEE_RANGE_missing")[0] == 1
    assert spec.employee.fill is not None
    assert 1 <= spec.employee.fill <= len(EMPLOYEE_RANGES)


def test_industry_near_duplicates_meet_and_rare_unseen_go_to_other(frame, spec) -> None:
    assert "computer software" in spec.industry_levels
    assert spec.industry_levels[-2:] == [encoding.OTHER, encoding.MISSING]
    assert spec.industry_levels[:-2] == sorted(spec.industry_levels[:-2])
    cases = {
        "Computer-Software!": "computer software",
        "never seen before": encoding.OTHER,
        "Other": encoding.OTHER,
        None: encoding.MISSING,
        "  ": encoding.MISSING,
    }
    for raw, level in cases.items():
        matrix = encoding.encode(one_row(frame, INDUSTRY=raw), spec)
        assert column(spec, matrix, f"INDUSTRY={level}")[0] == 1, raw
        onehot = [n for n in spec.output_names if n.startswith("INDUSTRY=")]
        assert sum(column(spec, matrix, n)[0] for n in onehot) == 1


def test_rare_industries_below_min_frequency_are_not_levels() -> None:
    frame = make_features(60, 4)
    spec = encoders.fit_encoders(frame, EncodingConfig(industry_min_frequency=10**6), linear=True)
    assert spec.industry_levels == [encoding.OTHER, encoding.MISSING]


def test_categorical_input_encodes_like_strings(frame, spec) -> None:
    # Physical category codes differ with the order values are first seen; output must not.
    shuffled = frame.reverse().with_columns(pl.col("INDUSTRY").cast(pl.Categorical))
    expected = encoding.encode(frame.reverse(), spec)
    np.testing.assert_array_equal(encoding.encode(shuffled, spec), expected)


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_nan_inf_and_null_are_missing(frame, spec, bad) -> None:
    name = "total_actions"
    row = frame.head(1).with_columns(pl.lit(bad, dtype=pl.Float64).alias(name))
    matrix = encoding.encode(row, spec)
    numeric = next(n for n in spec.numeric if n.name == name)
    group = next(g for g in spec.flag_groups if name in g.columns)
    assert column(spec, matrix, group.name)[0] == 1
    assert numeric.fill is not None
    expected = (numeric.fill - numeric.center) / numeric.scale
    assert column(spec, matrix, name)[0] == pytest.approx(expected, rel=1e-6)


def test_heavy_tails_are_compressed(frame) -> None:
    spec = encoders.fit_encoders(frame, UNSCALED, linear=True)
    kinds = {n.name: n.transform for n in spec.numeric}
    assert kinds["ALEXA_RANK"] == "log"
    assert kinds["ACTIONS_CRM_CONTACTS_sum"] == "log1p"
    assert kinds["days_active"] == "none"
    row = one_row(frame, ACTIONS_CRM_CONTACTS_sum=1e12, ALEXA_RANK=10**12)
    matrix = encoding.encode(row, spec)
    assert column(spec, matrix, "ACTIONS_CRM_CONTACTS_sum")[0] == pytest.approx(math.log1p(1e12))
    assert column(spec, matrix, "ALEXA_RANK")[0] == pytest.approx(math.log(1e12), rel=1e-6)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("median", np.median), ("mean", np.mean), ("zero", lambda v: 0.0), ("constant", None)],
)
def test_missing_strategies_learn_from_training_rows(frame, strategy, expected) -> None:
    config = EncodingConfig(missing_strategy=strategy, missing_constant=-3.0)
    spec = encoders.fit_encoders(frame, config, linear=True)
    days = next(n for n in spec.numeric if n.name == "recency_days")
    raw = frame.get_column("recency_days").drop_nulls().to_numpy().astype(float)
    seen = encoding.transform_values(raw, days.transform)  # filled after the log1p
    assert days.transform == "log1p"
    assert days.fill == pytest.approx(-3.0 if expected is None else expected(seen))


def test_auto_uses_mode_for_indicators_and_scaling_standardises(frame) -> None:
    indicator = frame.with_columns(
        alexa_no_rank=pl.when(pl.int_range(pl.len()) < 5).then(None).otherwise(1)
    )
    spec = encoders.fit_encoders(indicator, CONFIG, linear=True)
    assert next(n for n in spec.numeric if n.name == "alexa_no_rank").fill == 1.0
    matrix = encoding.encode(frame, encoders.fit_encoders(frame, CONFIG, linear=True))
    spec2 = encoders.fit_encoders(frame, CONFIG, linear=True)
    assert column(spec2, matrix, "days_active").mean() == pytest.approx(0, abs=1e-5)
    assert column(spec2, matrix, "days_active").std() == pytest.approx(1, rel=1e-4)
    assert encoders.fit_encoders(frame, CONFIG, linear=False).scaling == "none"


@pytest.mark.parametrize("scaling", ["minmax", "robust", "none"])
def test_every_scaling_gives_finite_values(frame, scaling) -> None:
    spec = encoders.fit_encoders(frame, EncodingConfig(scaling=scaling), linear=True)
    assert spec.scaling == scaling
    assert np.isfinite(encoding.encode(frame, spec)).all()


def test_encoder_never_sees_id_label_or_outcomes(frame, spec) -> None:
    leaky = frame.with_columns(
        id=pl.col("id") * 1000, label=1 - pl.col("label"), MRR=pl.lit(99.0), CLOSEDATE=pl.lit(1)
    )
    refit = encoders.fit_encoders(leaky, CONFIG, linear=True)
    assert refit == spec
    assert set(spec.input_names) <= set(RAW_FEATURES)
    assert not {"id", "cutoff", "label", "MRR", "CLOSEDATE"} & set(spec.input_names)
    np.testing.assert_array_equal(encoding.encode(leaky, spec), encoding.encode(frame, spec))


def test_without_missing_flags_drops_every_missingness_signal(frame) -> None:
    spec = encoders.fit_encoders(frame, UNSCALED, linear=True, missing_flags=False)
    assert not [n for n in spec.output_names if n.endswith("_missing")]
    assert "alexa_no_rank" not in spec.output_names
    assert encoding.MISSING not in spec.industry_levels
    matrix = encoding.encode(one_row(frame, INDUSTRY=None), spec)
    assert column(spec, matrix, f"INDUSTRY={encoding.OTHER}")[0] == 1


def test_missing_column_is_a_schema_error(frame, spec) -> None:
    with pytest.raises(SchemaError, match="lacks 1: INDUSTRY"):
        encoding.encode(frame.drop("INDUSTRY"), spec)


def test_foreign_or_future_json_is_an_artifact_error(spec, tmp_path) -> None:
    with pytest.raises(ArtifactError, match="version 99"):
        encoding.EncoderSpec.from_json(spec.to_json().replace('"version": 2', '"version": 99'))
    with pytest.raises(ArtifactError, match="not a hubscore encoder spec"):
        encoding.EncoderSpec.from_json("[1, 2]")
    with pytest.raises(ArtifactError, match="missing"):
        encoding.read_encoders(tmp_path / "nope.json")


def test_json_is_human_readable_and_stable(spec, tmp_path) -> None:
    path = tmp_path / "encoders.json"
    path.write_text(spec.to_json())
    text = path.read_text()
    assert '"industry_levels"' in text and "\n  " in text
    assert encoding.read_encoders(path).to_json() == text


words = st.one_of(st.none(), st.sampled_from(["", " ", "COMPUTER_SOFTWARE", "Other"]), st.text())
numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    employee=st.lists(
        st.one_of(st.none(), st.sampled_from(EMPLOYEE_RANGES), st.text()), min_size=3, max_size=3
    ),
    industry=st.lists(words, min_size=3, max_size=3),
    value=st.lists(numbers, min_size=3, max_size=3),
)
def test_fit_json_load_encode_is_unchanged(employee, industry, value) -> None:
    base = make_features(3, 1, seed=1)
    frame = base.with_columns(
        EMPLOYEE_RANGE=pl.Series(employee, dtype=pl.String),
        INDUSTRY=pl.Series(industry, dtype=pl.String),
        total_actions=pl.Series(value, dtype=pl.Float64),
    )
    for linear in (True, False):
        spec = encoders.fit_encoders(frame, EncodingConfig(industry_min_frequency=1), linear=linear)
        loaded = encoding.EncoderSpec.from_json(spec.to_json())
        assert loaded == spec
        matrix = encoding.encode(frame, loaded)
        np.testing.assert_array_equal(matrix, encoding.encode(frame, spec))
        assert np.isfinite(matrix).all() if linear else not np.isinf(matrix).any()
    assert len(NUMERIC_FEATURES) <= matrix.shape[1]


def test_trees_keep_missing_values_as_nan_and_read_one_industry_indicator(frame) -> None:
    spec = encoders.fit_encoders(frame, CONFIG, linear=False)
    assert spec.industry == "missing_flag"
    assert all(n.fill is None for n in (spec.employee, *spec.numeric))
    row = one_row(frame, total_actions=None, EMPLOYEE_RANGE="5 to 9 people", INDUSTRY=None)
    matrix = encoding.encode(row, spec)
    assert math.isnan(column(spec, matrix, "total_actions")[0])
    assert math.isnan(column(spec, matrix, "EMPLOYEE_RANGE")[0])
    assert column(spec, matrix, "INDUSTRY_missing")[0] == 1
    assert not [n for n in spec.output_names if n.startswith("INDUSTRY=")]


def test_columns_missing_together_share_one_flag(frame) -> None:
    # Companies without usage in the window have none of these statistics.
    usage_stats = ["actions_per_user", *(n for n in NUMERIC_FEATURES if n.endswith("_mean"))]
    no_usage = pl.col("id") % 5 == 0
    frame = frame.with_columns(
        pl.when(no_usage).then(None).otherwise(pl.col(n).fill_null(1.0)).alias(n)
        for n in usage_stats
    )
    patterns = EncodingConfig(industry_min_frequency=3, missing_flags="pattern")
    spec = encoders.fit_encoders(frame, patterns, linear=True)
    usage = next(g for g in spec.flag_groups if "actions_per_user" in g.columns)
    assert usage.columns == usage_stats
    assert len(spec.flag_groups) == len({tuple(g.columns) for g in spec.flag_groups})
    per_column = encoders.fit_encoders(
        frame, EncodingConfig(industry_min_frequency=3, missing_flags="column"), linear=True
    )
    assert len(per_column.flag_groups) > len(spec.flag_groups)
    assert all(len(g.columns) == 1 for g in per_column.flag_groups)
    matrix = encoding.encode(one_row(frame, actions_per_user=None), spec)
    assert column(spec, matrix, usage.name)[0] == 1  # any member missing sets the flag


def test_industry_frequency_is_the_share_of_training_companies(frame) -> None:
    config = EncodingConfig(industry="frequency")
    spec = encoders.fit_encoders(frame, config, linear=False)
    normal = frame.select("id", encoding.normalise_industry(pl.col("INDUSTRY")).alias("v"))
    companies = normal.drop_nulls("v").group_by("v").agg(pl.col("id").n_unique())
    share = dict(companies.iter_rows())
    value = "computer software"
    rows = one_row(frame, INDUSTRY="Computer-Software!")
    unseen = one_row(frame, INDUSTRY="never seen")
    missing = one_row(frame, INDUSTRY=None)
    encoded = [
        column(spec, encoding.encode(r, spec), "INDUSTRY_frequency")[0]
        for r in (rows, unseen, missing)
    ]
    assert encoded[0] == pytest.approx(share[value] / sum(share.values()), rel=1e-6)
    assert encoded[1] == 0.0
    assert math.isnan(encoded[2])


def test_a_version_1_spec_still_encodes_as_it_did(frame) -> None:
    golden = Path(__file__).parent / "golden" / "basic"
    spec = encoding.read_encoders(golden / "run" / "encoders.json")
    assert spec.version == 1 and spec.industry == "onehot"
    flagged = {g.name for g in spec.flag_groups}
    assert "EMPLOYEE_RANGE_missing" in flagged
    assert all(g.columns == [g.name.removesuffix("_missing")] for g in spec.flag_groups)


def test_auto_flags_are_per_pattern_for_trees_and_per_column_for_logreg(frame) -> None:
    trees = encoders.choose_encoding(EncodingConfig(), linear=False)
    linear = encoders.choose_encoding(EncodingConfig(), linear=True)
    assert trees.per_pattern and not linear.per_pattern
    assert trees.native_missing and not linear.native_missing
