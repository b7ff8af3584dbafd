"""Explanations through the scorer: golden folders, old folders, the CLI, the gate, the words."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core.artifacts import read_manifest
from hubscore.core.config import MODEL_NAMES
from hubscore.core.errors import ArtifactError
from hubscore.engine import reasons, wording
from hubscore.engine.calibration import calibrate
from hubscore.engine.explain import EXPLAIN_FILE, read_explain_file, to_probability
from hubscore.engine.scorer import load_scorer, with_priority

GOLDEN = Path(__file__).parent / "golden"
OLD, EXPLAINED = GOLDEN / "basic", GOLDEN / "xgboost"  # format 1; the newest xgboost


@pytest.mark.parametrize("family", MODEL_NAMES)
def test_golden_contributions_add_up_to_the_onnx_output_before_calibration(family: str) -> None:
    scorer = load_scorer(GOLDEN / family / "run")
    matrix = scorer.encode(scorer.conform(pl.read_parquet(GOLDEN / family / "input.parquet")))
    phi = scorer.explainer().contributions(matrix)
    p = to_probability(phi.sum(axis=1), scorer.explainer().space)
    np.testing.assert_allclose(p, scorer.model_output(matrix), rtol=0, atol=1e-6)
    assert scorer.spec.calibration["method"] != "none"  # the reported numbers are calibrated
    reported = calibrate(scorer.model_output(matrix), scorer.spec.calibration)
    assert reported.tobytes() == scorer.run_model(matrix).tobytes()


def test_golden_explanations_are_reproduced_exactly() -> None:
    expected = pl.read_parquet(EXPLAINED / "expected_explanations.parquet")
    got = load_scorer(EXPLAINED / "run").explain(pl.read_parquet(EXPLAINED / "input.parquet"))
    assert got.drop(reasons.CONTRIBUTIONS, reasons.BASE_VALUE).equals(
        expected.drop(reasons.CONTRIBUTIONS, reasons.BASE_VALUE)
    )
    np.testing.assert_allclose(got[reasons.BASE_VALUE], expected[reasons.BASE_VALUE], atol=1e-12)
    first = json.loads(got[reasons.CONTRIBUTIONS][0])
    assert list(first) == load_scorer(EXPLAINED / "run").spec.output_names


def test_an_old_run_folder_scores_but_names_the_missing_file_for_reasons() -> None:
    scorer = load_scorer(OLD / "run")
    frame = pl.read_parquet(OLD / "input.parquet")
    assert scorer.score(frame).height == 60
    with pytest.raises(ArtifactError, match=f"{EXPLAIN_FILE} is missing"):
        scorer.explain(frame)


def test_cli_explain_on_an_old_folder_exits_5_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "list.csv"
    args = ["score", str(OLD / "input.parquet"), "-o", str(out), "--model", str(OLD / "run")]
    result = CliRunner().invoke(app, [*args, "--explain", "5", "-q"])
    assert result.exit_code == 5
    assert f"{OLD / 'run' / EXPLAIN_FILE} is missing" in result.stderr
    assert "--no-explain" in result.stderr
    assert not out.exists()
    listed = CliRunner().invoke(app, [*args, "--top-k", "5", "--json"], catch_exceptions=False)
    assert listed.exit_code == 0
    assert "no explanations" in json.loads(listed.stdout)["warnings"][-1]
    assert "reason_1" not in pl.read_csv(out).columns


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_top_k_lists_are_explained_by_default(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"list{suffix}"
    args = ["score", str(EXPLAINED / "input.parquet"), "-o", str(out)]
    args += ["--model", str(EXPLAINED / "run"), "--top-k", "5", "--as-of", "2024-01-07", "--json"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert json.loads(result.stdout)["rows_explained"] == 5
    listed = pl.read_csv(out) if suffix == ".csv" else pl.read_parquet(out)
    if suffix == ".parquet":  # every column, the contributions too
        assert listed.columns[-7:] == list(reasons.EXPLANATION_COLUMNS)
    else:  # what a caller reads
        assert listed.columns == [
            "rank", "id", "scored_at", "conversion_probability", "priority", "prediction",
            "reason_1", "reason_2", "reason_3", "reason_against", "basis",
        ]  # fmt: skip
    assert listed["reason_1"].null_count() == 0
    assert set(listed["basis"]) <= set(wording.BASES)
    expected = load_scorer(EXPLAINED / "run").explain(pl.read_parquet(EXPLAINED / "input.parquet"))
    joined = listed.select("id", "reason_1", "reason_against").join(expected, on="id")
    assert joined["reason_1"].equals(joined["reason_1_right"], check_names=False)


def test_explain_n_fills_the_top_n_and_leaves_nulls_below(tmp_path: Path) -> None:
    out = tmp_path / "all.parquet"
    args = ["score", str(EXPLAINED / "input.parquet"), "-o", str(out), "-q"]
    args += ["--model", str(EXPLAINED / "run"), "--explain", "3"]
    CliRunner().invoke(app, args, catch_exceptions=False)
    scores = pl.read_parquet(out).sort("rank")
    assert scores.height == 60
    assert scores["contributions"].is_not_null().to_list() == [True] * 3 + [False] * 57
    assert scores["base_value"].dtype == pl.Float64
    no = tmp_path / "none.parquet"
    args[3] = str(no)
    CliRunner().invoke(app, [*args, "--no-explain"], catch_exceptions=False)
    assert "reason_1" not in pl.read_parquet(no).columns


def test_an_old_run_folder_keeps_its_tiers_quartiles_of_the_scored_population() -> None:
    scores = load_scorer(OLD / "run").score(pl.read_parquet(OLD / "input.parquet"))
    counts = scores.group_by("priority").len().sort("priority")
    assert dict(counts.iter_rows()) == {"very high": 15, "high": 15, "medium": 15, "low": 15}
    top = scores.sort("rank").head(15)
    assert set(top["priority"]) == {"very high"}
    ranked = pl.DataFrame({"id": [1, 2, 3, 4], "rank": [1, 2, 3, 4]})
    tiers = with_priority(ranked, (0.5, 0.75, 0.9))["priority"].to_list()
    assert tiers == ["very high", "very high", "high", "medium"]  # shares 0, .25, .5, .75


def test_predictor_explains_a_list_of_dicts() -> None:
    rows = pl.read_parquet(EXPLAINED / "input.parquet").head(2).to_dicts()
    explained = load_scorer(EXPLAINED / "run").explain(rows)
    assert explained.columns == ["id", *reasons.EXPLANATION_COLUMNS]
    assert explained.height == 2


def test_explain_file_is_plain_arrays_and_hashed() -> None:
    arrays = read_explain_file(EXPLAINED / "run" / EXPLAIN_FILE)
    assert set(arrays) == {"covers"}
    assert EXPLAIN_FILE in read_manifest(EXPLAINED / "run").files


# --- the words: tests/test_reasons.py -------------------------------------------------------


# --- the gate ------------------------------------------------------------------------------


@pytest.mark.slow
def test_trained_run_records_the_explanation_gate(trained_artifact) -> None:
    manifest = read_manifest(trained_artifact.run_dir)
    gate = manifest.explanations["gate"]
    assert manifest.explanations["space"] == "log-odds"
    assert gate["native"] == "pred_contribs" and gate["rows"] > 0
    assert gate["max_native_delta"] <= 1e-4
    assert gate["max_additivity_delta"] <= 1e-5
    assert gate["max_native_margin_delta"] <= 1e-4


@pytest.mark.slow
def test_gate_refuses_explanations_that_disagree(
    trained_artifact, features_file: Path, tmp_path: Path
) -> None:
    import xgboost as xgb

    from hubscore.engine.explain import write_explain_file
    from hubscore.training.explanations import verify_explanations
    from hubscore.training.runs import file_hashes

    stage = Path(shutil.copytree(trained_artifact.run_dir, tmp_path / "run"))
    covers = read_explain_file(stage / EXPLAIN_FILE)["covers"]
    write_explain_file(stage / EXPLAIN_FILE, covers=covers[::-1].copy())
    manifest = json.loads((stage / "manifest.json").read_text())
    manifest["files"] = file_hashes(stage)
    (stage / "manifest.json").write_text(json.dumps(manifest))
    native = xgb.XGBClassifier()
    native.load_model(stage / "model.xgb.json")
    scorer = load_scorer(stage)
    x = scorer.encode(scorer.conform(pl.read_parquet(features_file)))
    assert verify_explanations(trained_artifact.run_dir, native, "xgboost", x)["rows"] > 0
    with pytest.raises(ArtifactError, match="explanations disagree"):
        verify_explanations(stage, native, "xgboost", x)


# --- the HTTP API --------------------------------------------------------------------------


def test_api_single_gives_reasons_and_a_batch_on_request() -> None:
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    from hubscore.serving.api import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from fastapi.testclient import TestClient

    scorer = load_scorer(EXPLAINED / "run")
    company = {"id": 7, "EMPLOYEE_RANGE": "51 to 200"}
    blank = dict.fromkeys(scorer.manifest.feature_names) | company
    expected = scorer.explain([blank]).row(0, named=True)
    with TestClient(create_app(EXPLAINED / "run", max_batch=3)) as client:
        single = client.post("/predict/single", json=company).json()
        assert single["basis"] == "usage not given"  # nothing was said about its usage
        wanted = [expected[name] for name in reasons.REASON_COLUMNS[:3] if expected[name]]
        assert single["reasons"] == wanted
        assert single["reason_against"] == expected["reason_against"]
        assert single["priority"] in ("very high", "high", "medium", "low")
        batch = {"companies": [company, {"id": 2, "total_actions": 0, "actions_recent": 0}]}
        plain = client.post("/predict", json=batch).json()["predictions"]
        assert "reasons" not in plain[0]
        explained = client.post("/predict?explain=true", json=batch).json()["predictions"]
        assert [p["basis"] for p in explained] == ["usage not given", "profile only"]
        assert explained[0]["reasons"] == single["reasons"]
    with TestClient(create_app(OLD / "run", max_batch=3)) as old:
        answer = old.post("/predict/single", json=company).json()
        assert "reasons" not in answer and "priority" not in answer


# --- every family, and any raw values --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["logreg", "random_forest", "xgboost", "lightgbm"])
def test_every_family_adds_up_to_its_native_margin(
    name: str, features_file: Path, tmp_path: Path
) -> None:
    from conftest_train import small_config

    from hubscore.core.artifacts import MODEL_FILE
    from hubscore.engine.encoding import encode
    from hubscore.engine.explain import load_explainer
    from hubscore.training import dataset, explanations, export, models

    frame = dataset.read_features(features_file).frame
    model, spec = models.fit_family(name, frame, small_config(name))
    models.round_thresholds_down(model)
    matrix = encode(frame, spec)
    (tmp_path / MODEL_FILE).write_bytes(export.to_onnx(model.estimator, matrix.shape[1]))
    explanations.write_explain_file(tmp_path, model.estimator, name, matrix)
    explainer = load_explainer(tmp_path, model_file=MODEL_FILE, n_columns=matrix.shape[1])
    phi = explainer.contributions(matrix[:300])
    margin = explanations.native_margin(model.estimator, name, matrix[:300])
    np.testing.assert_allclose(phi.sum(axis=1), margin, rtol=0, atol=1e-5)
    assert explainer.space == ("probability" if name == "random_forest" else "log-odds")


def test_logreg_means_are_read_a_slice_at_a_time_and_weighted_as_the_fit(
    features_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest_train import small_config

    from hubscore.engine.encoding import encode
    from hubscore.training import dataset, explanations, models

    frame = dataset.read_features(features_file).frame
    _, spec = models.fit_family("logreg", frame, small_config("logreg"))
    matrix = encode(frame, spec).astype(np.float64)
    weights = np.where(frame["label"].to_numpy() == 1, 1.0, 3.0)  # negatives read 1 in 3
    monkeypatch.setattr(explanations, "MEANS_BATCH_ROWS", 997)  # several slices, one short
    plain = explanations.column_means(frame, spec, None)
    weighted = explanations.column_means(frame, spec, weights)
    np.testing.assert_allclose(plain, matrix.mean(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted, np.average(matrix, axis=0, weights=weights), rtol=1e-9)


RAW = st.fixed_dictionaries(
    {
        "EMPLOYEE_RANGE": st.sampled_from([None, "", "51 TO 200", "never heard of", "1"]),
        "INDUSTRY": st.sampled_from([None, "COMPUTER_SOFTWARE", "Brand new industry", " "]),
        "total_actions": st.floats(allow_nan=True, allow_infinity=True, width=32),
        "actions_recent": st.one_of(st.none(), st.floats(-(2.0**40), 2.0**40, width=32)),
        "recency_days": st.one_of(st.none(), st.integers(0, 2_000)),
        "ALEXA_RANK": st.one_of(st.none(), st.integers(1, 16_000_001)),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(RAW, min_size=1, max_size=8))
def test_any_raw_row_is_explained_exactly(rows) -> None:
    scorer = load_scorer(EXPLAINED / "run")
    companies = [
        dict.fromkeys(scorer.manifest.feature_names) | row | {"id": i} for i, row in enumerate(rows)
    ]
    frame = scorer.conform(pl.DataFrame(companies, infer_schema_length=None))
    matrix = scorer.encode(frame)
    phi = scorer.explainer().contributions(matrix)
    p = to_probability(phi.sum(axis=1), scorer.explainer().space)
    np.testing.assert_allclose(p, scorer.model_output(matrix), rtol=0, atol=1e-6)
    explained = scorer.explain(frame)
    assert explained.height == len(rows)
    for row, basis in zip(rows, explained["basis"].to_list(), strict=True):
        counts = [row["total_actions"], row["actions_recent"]]
        given = [c for c in counts if c is not None and math.isfinite(c)]  # inf: missing
        if row["recency_days"] is not None or any(given):
            assert basis == "usage"
        else:
            assert basis == ("profile only" if given else "usage not given")


def test_priority_shares_are_validated_by_key() -> None:
    from hubscore.core.config import load_config
    from hubscore.core.errors import ConfigError

    overrides = {"training.priority_shares": [0.02, 0.1, 0.3]}
    config = load_config(None, overrides=overrides, environ={})
    assert config.training.priority_shares == (0.02, 0.1, 0.3)
    with pytest.raises(ConfigError, match=r"training\.priority_shares"):
        load_config(None, overrides={"training.priority_shares": [0.5, 0.2, 0.9]}, environ={})
