"""The lean scorer against the committed golden run folders: exactness, validation, ranking."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest_train import small_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubscore.core.artifacts import FORMAT_VERSION, MANIFEST, MODEL_FILE
from hubscore.core.config import MODEL_NAMES
from hubscore.core.errors import ArtifactError, SchemaError, ValidationError
from hubscore.engine.conform import check_windows
from hubscore.engine.scorer import (
    Predictor,
    Scorer,
    empty_batch,
    load_scorer,
    output_columns,
    rank_scores,
    scored_at_for,
    to_frame,
)

GOLDEN = Path(__file__).parent / "golden"
BASIC = GOLDEN / "basic"
SCORED_AT = scored_at_for(date(2024, 1, 7))


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return load_scorer(BASIC / "run")


@pytest.fixture(scope="module")
def companies() -> pl.DataFrame:
    return pl.read_parquet(BASIC / "input.parquet")


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(BASIC / "run", tmp_path / "run"))


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir() if (p / "run").is_dir()))
def test_every_golden_folder_loads_and_reproduces_its_scores(case: str) -> None:
    scorer = load_scorer(GOLDEN / case / "run")
    expected = pl.read_parquet(GOLDEN / case / "expected_scores.parquet")
    got = scorer.score(pl.read_parquet(GOLDEN / case / "input.parquet"), scored_at=SCORED_AT)
    assert got.columns == output_columns(got.columns)
    assert got.drop("conversion_probability").equals(
        expected.select(got.columns).drop("conversion_probability")
    )
    np.testing.assert_allclose(
        got["conversion_probability"], expected["conversion_probability"], rtol=0, atol=1e-6
    )
    # The native model's probabilities: ONNX conversion is exact on nulls, NaN, inf, unseen.
    np.testing.assert_allclose(
        got["conversion_probability"], expected["native_probability"], rtol=1e-5, atol=1e-6
    )


def test_every_model_family_has_a_golden_run_folder() -> None:
    for family in MODEL_NAMES:
        manifest = json.loads((GOLDEN / family / "run" / MANIFEST).read_text())
        assert manifest["model_kind"] == family


def test_golden_basic_is_the_first_format_version_and_still_scores() -> None:
    # tests/golden/basic is format 1 (imputed inputs, no calibration): kept so old run
    # folders keep loading; the test above scores it against its expected output.
    manifest = json.loads((BASIC / "run" / MANIFEST).read_text())
    assert manifest["format_version"] == 1 < FORMAT_VERSION


def test_predict_proba_returns_float32_per_row(scorer: Scorer, companies: pl.DataFrame) -> None:
    probs = scorer.predict_proba(scorer.conform(companies).drop("id"))
    assert probs.dtype == np.float32
    assert probs.shape == (companies.height,)
    assert np.all((probs >= 0) & (probs <= 1))


def test_score_batch_is_pure_and_matches_score(scorer: Scorer, companies: pl.DataFrame) -> None:
    batch = companies.to_arrow().to_batches()[0]
    first = scorer.score_batch(batch, scored_at=SCORED_AT)
    assert first.equals(scorer.score_batch(batch, scored_at=SCORED_AT))
    whole = scorer.score(companies, scored_at=SCORED_AT).sort("id")
    assert pl.from_arrow(first).sort("id").equals(whole.drop("rank", "priority"))  # type: ignore[union-attr]


def test_empty_input_gives_empty_output_with_schema(
    scorer: Scorer, companies: pl.DataFrame
) -> None:
    empty = scorer.score(companies.head(0))
    assert empty.height == 0
    assert empty.columns == output_columns(["priority"])
    schema = companies.to_arrow().schema
    batch = scorer.score_batch(empty_batch(schema), scored_at=SCORED_AT)
    assert batch.num_rows == 0
    assert batch.schema.names == [c for c in output_columns([]) if c != "rank"]


def test_predictor_scores_list_of_dicts_and_arrow(companies: pl.DataFrame) -> None:
    predictor = Predictor.load(BASIC / "run")
    expected = predictor.score(companies, scored_at=SCORED_AT)
    assert predictor.score(companies.to_dicts(), scored_at=SCORED_AT).equals(expected)
    assert predictor.score(companies.to_arrow(), scored_at=SCORED_AT).equals(expected)


def test_missing_columns_are_listed_in_one_error(scorer: Scorer, companies: pl.DataFrame) -> None:
    with pytest.raises(SchemaError) as raised:
        scorer.score(companies.drop("days_active", "INDUSTRY", "id"))
    assert "missing: id, INDUSTRY, days_active" in raised.value.message
    assert raised.value.hint is not None
    assert "hubscore build-features --as-of DATE" in raised.value.hint


def test_extra_columns_are_ignored_and_names_match_case_insensitively(
    scorer: Scorer, companies: pl.DataFrame
) -> None:
    expected = scorer.score(companies, scored_at=SCORED_AT)
    messy = companies.rename({"id": "ID", "INDUSTRY": "industry"}).with_columns(
        pl.lit("x").alias("notes")
    )
    assert scorer.score(messy, scored_at=SCORED_AT).equals(expected)


def test_lossless_casts_are_accepted(scorer: Scorer, companies: pl.DataFrame) -> None:
    expected = scorer.score(companies, scored_at=SCORED_AT)
    widened = companies.with_columns(
        pl.col("ALEXA_RANK").cast(pl.Float64),  # integral floats: lossless back to Int64
        pl.col("days_active").cast(pl.Int64),
        pl.col("total_actions").cast(pl.Float32).cast(pl.Float64),
        pl.col("id").cast(pl.Int32),
    )
    got = scorer.score(widened, scored_at=SCORED_AT)
    assert got.drop("conversion_probability").equals(expected.drop("conversion_probability"))


def test_lossy_casts_are_rejected_with_every_column(
    scorer: Scorer, companies: pl.DataFrame
) -> None:
    bad = companies.with_columns(
        (pl.col("ALEXA_RANK") + 0.5).alias("ALEXA_RANK"),
        pl.col("total_actions").cast(pl.String),
    )
    with pytest.raises(SchemaError) as raised:
        scorer.score(bad)
    assert "ALEXA_RANK is Float64, expected Int64" in raised.value.message
    assert "total_actions is String, expected Float64" in raised.value.message


def test_duplicate_ids_are_refused(scorer: Scorer, companies: pl.DataFrame) -> None:
    doubled = pl.concat([companies, companies.head(2)])
    with pytest.raises(ValidationError, match=r"4 input rows share their id key.*100000"):
        scorer.score(doubled)


def test_null_ids_are_refused(scorer: Scorer, companies: pl.DataFrame) -> None:
    one_null = companies.with_columns(pl.when(pl.col("id") != 100_003).then(pl.col("id")))
    with pytest.raises(ValidationError, match="1 input rows have no id"):
        scorer.score(one_null)
    conformed = scorer.conform(companies).with_columns(  # the schema fast path checks too
        pl.when(pl.col("id") != 100_003).then(pl.col("id")).alias("id")
    )
    with pytest.raises(ValidationError, match="1 input rows have no id"):
        scorer.conform(conformed)


def test_cutoff_keys_rows_and_ranks_per_cutoff(scorer: Scorer, companies: pl.DataFrame) -> None:
    weeks = [date(2024, 1, 7), date(2024, 1, 14)]
    backtest = pl.concat([companies.with_columns(cutoff=pl.lit(w)) for w in weeks])
    scores = scorer.score(backtest, scored_at=SCORED_AT)
    assert scores.columns[:2] == ["id", "cutoff"]
    for week in weeks:
        ranks = scores.filter(pl.col("cutoff") == week)["rank"]
        assert ranks.to_list() == list(range(1, companies.height + 1))
    with pytest.raises(ValidationError, match="id/cutoff"):
        scorer.score(pl.concat([backtest, backtest.head(1)]))


def test_rank_breaks_ties_by_id_and_threshold_overrides(
    scorer: Scorer, companies: pl.DataFrame
) -> None:
    scores = scorer.score(companies, scored_at=SCORED_AT, threshold=0.99)
    assert scores["rank"].to_list() == list(range(1, companies.height + 1))
    order = scores.select(-pl.col("conversion_probability").cast(pl.Float64), "id").rows()
    assert order == sorted(order)
    assert scores["prediction"].sum() == 0


_probabilities = st.sampled_from([0.0, -0.0, 0.25, 0.5, 0.75, 1.0, float("nan")]) | st.floats(0, 1)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(-(2**63), 2**63 - 1), _probabilities),
        min_size=2,
        max_size=40,
        unique_by=lambda row: row[0],
    ),
    ids=st.sampled_from(["wide", "narrow", "int8"]),
)
def test_rank_order_is_probability_descending_then_the_smaller_id(
    rows: list[tuple[int, float]], ids: str
) -> None:
    # 64-bit ids within 2**32 of each other and probabilities without NaN take the one-key
    # sort; the rest the two-key sort. Both must give the order the two keys define, ties
    # included (-0.0 ties with 0.0, NaN first).
    folded = {"wide": lambda i: i, "narrow": lambda i: i % 1000, "int8": lambda i: i % 256 - 128}
    dtype = pl.Int8 if ids == "int8" else pl.Int64
    scores = pl.DataFrame(
        {"id": [folded[ids](i) for i, _ in rows], "conversion_probability": [p for _, p in rows]},
        schema={"id": dtype, "conversion_probability": pl.Float32},
    ).unique("id")
    expected = scores.sort(["conversion_probability", "id"], descending=[True, False])
    ranked = rank_scores(scores)
    assert ranked.select("id").equals(expected.select("id"))
    assert ranked["rank"].to_list() == list(range(1, scores.height + 1))


def test_confidence_follows_manifest_bands(scorer: Scorer, companies: pl.DataFrame) -> None:
    scores = scorer.score(companies, scored_at=SCORED_AT)
    bands = scorer.manifest.confidence_bands
    p = pl.col("conversion_probability")
    expected = (
        pl.when(p >= bands["high"]).then(pl.lit("high"))
        .when(p >= bands["medium"]).then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )  # fmt: skip
    assert scores.select((pl.col("confidence") == expected).all()).item()
    assert set(scores["confidence"]) == {"high", "medium", "low"}


def test_windows_from_another_build_are_refused(scorer: Scorer) -> None:
    good = {k: str(v) for k, v in scorer.manifest.target.items()}
    assert check_windows(good, scorer.manifest) == []
    assert "not checked" in check_windows({}, scorer.manifest)[0]
    with pytest.raises(SchemaError, match="horizon_days=14 \\(model: 30\\)"):
        check_windows({**good, "horizon_days": "14"}, scorer.manifest)


def test_scored_at_derives_from_as_of() -> None:
    assert scored_at_for(date(2024, 1, 7)) == datetime(2024, 1, 7, tzinfo=UTC)
    assert scored_at_for(None).tzinfo is UTC


def test_tampered_model_is_refused(run_copy: Path) -> None:
    model = run_copy / MODEL_FILE
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_scorer(run_copy)


def test_truncated_model_is_refused(run_copy: Path) -> None:
    model = run_copy / MODEL_FILE
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="sha256"):
        load_scorer(run_copy)


def test_unknown_format_version_is_refused(run_copy: Path) -> None:
    manifest = json.loads((run_copy / MANIFEST).read_text())
    (run_copy / MANIFEST).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_scorer(run_copy)


def test_unknown_feature_dtype_is_refused(run_copy: Path) -> None:
    manifest = json.loads((run_copy / MANIFEST).read_text())
    manifest["features"][0]["dtype"] = "Decimal"
    (run_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="dtype 'Decimal' is unknown"):
        load_scorer(run_copy)


_numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6),
)
_texts = st.one_of(st.none(), st.sampled_from(["", "  ", "51 to 200", "REAL_ESTATE"]), st.text())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    numbers=st.lists(_numbers, min_size=1, max_size=8),
    employee=_texts,
    industry=_texts,
)
def test_any_values_score_in_unit_range_and_batch_independently(
    scorer: Scorer,
    companies: pl.DataFrame,
    numbers: list[float | None],
    employee: str | None,
    industry: str | None,
) -> None:
    n = len(numbers)
    rows = companies.head(n).with_columns(
        pl.Series("total_actions", numbers, dtype=pl.Float64),
        pl.Series("actions_recent", numbers[::-1], dtype=pl.Float64),
        pl.lit(employee, dtype=pl.String).alias("EMPLOYEE_RANGE"),
        pl.lit(industry, dtype=pl.String).alias("INDUSTRY"),
    )
    together = scorer.predict_proba(scorer.conform(rows).drop("id"))
    alone = np.concatenate(
        [scorer.predict_proba(scorer.conform(rows.slice(i, 1)).drop("id")) for i in range(n)]
    )
    assert np.all(np.isfinite(together) & (together >= 0) & (together <= 1))
    np.testing.assert_array_equal(together, alone)


def test_rows_the_model_cannot_score_are_refused_not_labelled(
    features_file: Path, tmp_path: Path
) -> None:
    from hubscore.training.runs import train_and_export

    (run,) = train_and_export(features_file, small_config("logreg"), out_dir=tmp_path)
    logreg = load_scorer(run.run_dir)
    # Values past float32's range reach a linear model as +-inf; mixed-sign weights make NaN.
    overflowed = np.full((2, len(logreg.spec.output_names)), np.inf, dtype=np.float32)
    overflowed[1] = 0.0
    with pytest.raises(ValidationError, match="1 rows have no probability"):
        logreg.run_model(overflowed)


def test_record_batch_input_needs_no_copy_of_extra_columns(
    scorer: Scorer, companies: pl.DataFrame
) -> None:
    table = companies.to_arrow()
    wide = table.append_column("notes", pa.array(["x" * 1000] * table.num_rows)).combine_chunks()
    batch = wide.to_batches()[0]
    conformed = scorer.conform(to_frame(batch))
    assert "notes" not in conformed.columns
    # The feature columns are the batch's own buffers: conforming copied nothing.
    for name in ("total_actions", "ALEXA_RANK"):
        given = batch.column(batch.schema.get_field_index(name)).buffers()[1].address
        assert conformed.get_column(name).to_arrow().buffers()[1].address == given
    scored = scorer.score(wide, scored_at=SCORED_AT)
    assert scored.equals(scorer.score(table, scored_at=SCORED_AT))


def test_a_manifest_key_this_format_version_lacks_is_refused(run_copy: Path) -> None:
    manifest = json.loads((run_copy / MANIFEST).read_text())
    (run_copy / MANIFEST).write_text(json.dumps({**manifest, "decision_treshold": 0.5}))
    with pytest.raises(ArtifactError, match="unknown key decision_treshold"):
        load_scorer(run_copy)


def test_manifest_naming_a_missing_onnx_output_is_refused(run_copy: Path) -> None:
    manifest = json.loads((run_copy / MANIFEST).read_text())
    (run_copy / MANIFEST).write_text(json.dumps({**manifest, "onnx_output": "label"}))
    with pytest.raises(ArtifactError, match="has no output 'label'"):
        load_scorer(run_copy)
