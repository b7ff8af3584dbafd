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
from hubscore.core.contract import RAW_FEATURES
from hubscore.core.errors import ArtifactError
from hubscore.engine import reasons
from hubscore.engine.calibration import calibrate
from hubscore.engine.explain import EXPLAIN_FILE, read_explain_file, to_probability
from hubscore.engine.reasons import WORDING, Row, group_of, strongest
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
    assert listed.columns[-7:] == list(reasons.EXPLANATION_COLUMNS)
    assert listed["reason_1"].null_count() == 0
    assert set(listed["basis"]) <= {"usage", "profile only"}
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


def test_priority_tiers_are_quartiles_of_the_scored_population() -> None:
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


# --- the words -----------------------------------------------------------------------------


def test_every_feature_group_has_wording() -> None:
    groups = {group_of(name) for name in load_scorer(EXPLAINED / "run").spec.output_names}
    groups |= {group_of(name) for name in RAW_FEATURES} | {reasons.USAGE}
    assert groups <= set(WORDING)
    assert group_of("INDUSTRY=real estate") == "INDUSTRY"
    assert group_of("ALEXA_RANK_missing") == group_of("alexa_no_rank") == "ALEXA_RANK"


ACTIVE = {
    "EMPLOYEE_RANGE": " 51 TO 200",
    "INDUSTRY": "COMPUTER_SOFTWARE",
    "ALEXA_RANK": 123456,
    "alexa_no_rank": False,
    "total_actions": 1520.0,
    "total_users": 31.0,
    "actions_per_user": 49.03,
    "days_active": 63,
    "activity_frequency": 0.6923,
    "ACTIONS_CRM_CONTACTS_sum": 980.0,
    "ACTIONS_CRM_CONTACTS_mean": 75.38,
    "ACTIONS_CRM_CONTACTS_max": 210.0,
    "ACTIONS_CRM_CONTACTS_std": 40.5,
    "USERS_EMAIL_sum": 12.0,
    "recency_days": 6,
    "tenure_days": 400,
    "actions_recent": 412.0,
    "actions_prior": 133.0,
    "trend_actions": math.log(413 / 134),
    "weeks_active_recent": 3,
    "weeks_observed": 13,
}
EXPECTED_ACTIVE = {
    "EMPLOYEE_RANGE": "51 to 200 employees",
    "INDUSTRY": "industry: COMPUTER_SOFTWARE",
    "ALEXA_RANK": "Alexa rank 123,456",
    "total_actions": "1,520 actions in the last 13 weeks",
    "total_users": "31 user-weeks in the last 13 weeks",
    "actions_per_user": "49.0 actions per user-week (last 13 weeks)",
    "days_active": "active 9 of the last 13 weeks",
    "activity_frequency": "active in 69% of the last 13 weeks",
    "ACTIONS_CRM_CONTACTS_sum": "contact actions in the last 13 weeks: 980",
    "ACTIONS_CRM_CONTACTS_mean": "contact actions per week (last 13 weeks): 75.4",
    "ACTIONS_CRM_CONTACTS_max": "contact actions in the busiest of the last 13 weeks: 210",
    "ACTIONS_CRM_CONTACTS_std": "contact actions vary by 40.5 from week to week (last 13 weeks)",
    "USERS_EMAIL_sum": "email user-weeks in the last 13 weeks: 12",
    "recency_days": "last active 6 days ago",
    "tenure_days": "using the product for 13 weeks or more",
    "actions_recent": "actions in the last 4 weeks: 412, 3.1\u00d7 the 4 weeks before",
    "actions_prior": "actions in the 4 weeks before the last 4: 133",
    "trend_actions": "activity trend: 3.1\u00d7 the 4 weeks before",
    "weeks_active_recent": "active 3 of the last 4 weeks",
    "weeks_observed": "usage on file for 13 of the last 13 weeks",
    "usage": "no product usage yet: listed on company profile only",
}
EXPECTED_EMPTY = {
    "EMPLOYEE_RANGE": "employee count not given",
    "INDUSTRY": "industry not given",
    "ALEXA_RANK": "web traffic rank (Alexa) not given",
    "actions_per_user": "no users in the last 13 weeks",
    "ACTIONS_CRM_DEALS_mean": "no deal actions in the last 13 weeks",
    "recency_days": "never active",
    "tenure_days": "no usage history",
    "activity_frequency": "no active week in the last 13 weeks",
    "weeks_observed": "no usage on file yet",
    "actions_recent": "actions in the last 4 weeks: 0, none the 4 weeks before",
    "trend_actions": "no activity trend yet",
}


@pytest.mark.parametrize(("group", "text"), EXPECTED_ACTIVE.items())
def test_wording_of_an_active_company(group: str, text: str) -> None:
    assert WORDING[group](Row(ACTIVE, recent_weeks=4, lookback_weeks=13)) == text


@pytest.mark.parametrize(("group", "text"), EXPECTED_EMPTY.items())
def test_wording_of_a_company_without_usage_or_profile(group: str, text: str) -> None:
    empty = {"actions_recent": 0.0, "actions_prior": 0.0, "actions_per_user": math.nan}
    assert WORDING[group](Row(empty, recent_weeks=4, lookback_weeks=13)) == text


def test_wording_of_unusual_profiles() -> None:
    def word(group: str, **values: object) -> str:
        return WORDING[group](Row(values, recent_weeks=4, lookback_weeks=13))

    assert word("EMPLOYEE_RANGE", EMPLOYEE_RANGE="1") == "1 employee"
    assert word("EMPLOYEE_RANGE", EMPLOYEE_RANGE="10,001 or more") == "10,001 or more employees"
    assert word("EMPLOYEE_RANGE", EMPLOYEE_RANGE="huge") == "employee count not recognised: 'huge'"
    assert word("ALEXA_RANK", alexa_no_rank=True) == "no web traffic rank (Alexa)"


def test_profile_only_rows_merge_their_usage_into_one_reason() -> None:
    frame = pl.DataFrame(
        {"EMPLOYEE_RANGE": ["51 to 200"], "recency_days": [None], "total_actions": [0.0]},
        schema={"EMPLOYEE_RANGE": pl.String, "recency_days": pl.Int32, "total_actions": pl.Float64},
    )
    columns = ["EMPLOYEE_RANGE", "EMPLOYEE_RANGE_missing", "total_actions", "recency_days"]
    phi = np.array([[0.5, 0.25, -0.25, -0.5, -1.0]])
    out = reasons.explain_rows(frame, phi, columns, recent_days=28, lookback_days=91).row(
        0, named=True
    )
    assert out["reason_1"] == "51 to 200 employees"
    assert out["reason_2"] is None
    assert out["reason_against"] == "no product usage yet: listed on company profile only"
    assert out["basis"] == "profile only"
    assert out["base_value"] == -1.0
    assert json.loads(out["contributions"]) == dict(
        zip(columns, [0.5, 0.25, -0.25, -0.5], strict=True)
    )


def test_strongest_takes_three_for_and_one_against() -> None:
    totals = {"a": 0.1, "b": 0.4, "c": -0.2, "d": 0.3, "e": 0.2, "f": -0.5}
    assert strongest(totals) == ["b", "d", "e", "f"]
    assert strongest({"a": -0.1}) == [None, None, None, "a"]


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
        assert single["basis"] == "profile only"
        wanted = [expected[name] for name in reasons.REASON_COLUMNS[:3] if expected[name]]
        assert single["reasons"] == wanted
        assert single["reason_against"] == expected["reason_against"]
        batch = {"companies": [company, {"id": 2}]}
        plain = client.post("/predict", json=batch).json()["predictions"]
        assert "reasons" not in plain[0]
        explained = client.post("/predict?explain=true", json=batch).json()["predictions"]
        assert [p["basis"] for p in explained] == ["profile only", "profile only"]
        assert explained[0]["reasons"] == single["reasons"]
    with TestClient(create_app(OLD / "run", max_batch=3)) as old:
        assert "reasons" not in old.post("/predict/single", json=company).json()


def test_outcome_by_tier_ranks_each_week_apart() -> None:
    from hubscore.training.evaluate import outcome_by_tier

    p = np.array([0.9, 0.8, 0.1, 0.2, 0.5, 0.4, 0.3, 0.6])
    y = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    weeks = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    table = outcome_by_tier(y, p, weeks, (0.25, 0.5, 0.75))
    assert [row["rows"] for row in table] == [2, 2, 2, 2]
    assert [row["converted"] for row in table] == [1, 1, 1, 0]
    assert table[0] == {
        "priority": "very high",
        "rows": 2,
        "converted": 1,
        "conversion_rate": 0.5,
        "share_of_converters": 1 / 3,
    }


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
    assert explained["basis"].to_list() == [
        "profile only" if row["recency_days"] is None else "usage" for row in rows
    ]


def test_priority_quantiles_are_validated_by_key() -> None:
    from hubscore.core.config import load_config
    from hubscore.core.errors import ConfigError

    overrides = {"scoring.priority_quantiles": [0.1, 0.3, 0.6]}
    assert load_config(None, overrides=overrides, environ={}).scoring.priority_quantiles == (
        0.1,
        0.3,
        0.6,
    )
    with pytest.raises(ConfigError, match=r"scoring\.priority_quantiles"):
        load_config(None, overrides={"scoring.priority_quantiles": [0.5, 0.2, 0.9]}, environ={})


def test_early_in_the_files_the_share_of_active_weeks_is_of_the_weeks_on_file() -> None:
    word = reasons.WORDING["activity_frequency"]
    early = {"activity_frequency": 0.5, "weeks_observed": 4}
    assert word(reasons.Row(early, 4, 13)) == "active in 50% of the 4 weeks with usage on file"


def test_tenure_below_the_cap_is_exact_and_at_the_cap_is_at_least() -> None:
    word = reasons.WORDING["tenure_days"]
    assert word(reasons.Row({"tenure_days": 30}, 4, 13)) == "first used the product 30 days ago"
    assert word(reasons.Row({"tenure_days": 91}, 4, 13)) == "using the product for 13 weeks or more"
