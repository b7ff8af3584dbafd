"""Reasons in a salesperson's words: one test per wording rule, then the golden lists."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubscore.core.config import MODEL_NAMES
from hubscore.core.contract import RAW_FEATURES
from hubscore.engine.reasons import CONCEPTS, Concepts, choose_reasons, explain_rows
from hubscore.engine.scorer import load_scorer
from hubscore.engine.wording import (
    AGAINST,
    FOR,
    NOT_GIVEN,
    PROFILE_ONLY,
    USAGE,
    WORDING,
    Row,
    basis_of,
)

GOLDEN = Path(__file__).parent / "golden"
LEVELS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def quantiles(*values: float) -> list[tuple[float, float]]:
    """Training quantiles at `LEVELS` from nine ascending values."""
    return list(zip(LEVELS, values, strict=True))


# Free companies mostly never touch deals; a few work them hard.
TRAINING = {
    "ACTIONS_CRM_DEALS_sum": quantiles(0, 0, 0, 0, 0, 0, 5, 40, 200),
    "actions_recent": quantiles(0, 0, 0, 0, 3, 20, 80, 150, 400),
    "total_actions": quantiles(0, 0, 0, 2, 15, 90, 300, 600, 1500),
    "total_users": quantiles(0, 0, 0, 1, 3, 8, 20, 30, 60),
    "ALEXA_RANK": quantiles(2e3, 1e4, 5e4, 2e5, 8e5, 2e6, 5e6, 8e6, 1.2e7),
}
ACTIVE = {
    "EMPLOYEE_RANGE": "51 to 200",
    "INDUSTRY": "COMPUTER_SOFTWARE",
    "ALEXA_RANK": 1500,
    "alexa_no_rank": 0,
    "total_actions": 1_520.0,
    "total_users": 31.0,
    "actions_per_user": 49.03,
    "days_active": 84,
    "activity_frequency": 12 / 13,
    "ACTIONS_CRM_DEALS_sum": 240.0,
    "USERS_CRM_DEALS_sum": 9.0,
    "ACTIONS_EMAIL_sum": 0.0,
    "USERS_EMAIL_sum": 0.0,
    "recency_days": 0,
    "tenure_days": 91,
    "actions_recent": 412.0,
    "actions_prior": 133.0,
    "trend_actions": math.log(413 / 134),
    "weeks_active_recent": 4,
    "weeks_observed": 13,
}


def row(values: dict[str, Any], **changes: Any) -> Row:
    return Row({**values, **changes}, recent_weeks=4, lookback_weeks=13, quantiles=TRAINING)


def said(concept: str, side: int, **values: Any) -> str | None:
    return WORDING[concept](row(ACTIVE, **values), side)


# --- concepts: exact contributions, summed ------------------------------------------------------


def test_every_feature_belongs_to_exactly_one_concept_and_every_concept_has_words() -> None:
    placed = [feature for features in CONCEPTS.values() for feature in features]
    assert sorted(placed) == sorted(RAW_FEATURES)
    assert set(WORDING) == {*CONCEPTS, USAGE}


@pytest.mark.parametrize("family", MODEL_NAMES)
def test_concepts_add_up_to_the_contributions_of_every_golden_model(family: str) -> None:
    scorer = load_scorer(GOLDEN / family / "run")
    groups = {g.name: g.columns for g in scorer.spec.flag_groups}
    concepts = Concepts.of(scorer.spec.output_names, groups)
    np.testing.assert_allclose(concepts.weights.sum(axis=1), 1.0)
    phi = np.random.default_rng(0).normal(size=(5, len(scorer.spec.output_names)))
    np.testing.assert_allclose((phi @ concepts.weights).sum(axis=1), phi.sum(axis=1))


def test_a_flag_shared_by_several_features_is_split_among_their_concepts() -> None:
    columns = ["ACTIONS_CRM_DEALS_mean", "recency_days", "ACTIONS_CRM_DEALS_mean_missing"]
    shared = {"ACTIONS_CRM_DEALS_mean_missing": ["ACTIONS_CRM_DEALS_mean", "recency_days"]}
    concepts = Concepts.of(columns, shared)
    flag = dict(zip(concepts.names, concepts.weights[2], strict=True))
    assert flag["deals"] == flag["recent activity"] == 0.5


# --- one concept, one side ------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(list(WORDING)), st.floats(-2, 2), min_size=1))
def test_a_concept_is_a_reason_for_only_when_it_adds_and_against_only_when_it_takes(
    totals: dict[str, float],
) -> None:
    chosen = choose_reasons(row(ACTIVE), totals)
    for_texts = {WORDING[c](row(ACTIVE), FOR) for c, v in totals.items() if v > 0}
    against_texts = {WORDING[c](row(ACTIVE), AGAINST) for c, v in totals.items() if v < 0}
    assert set(filter(None, chosen[:3])) <= for_texts
    assert chosen[3] is None or chosen[3] in against_texts
    said_for = {WORDING[c](row(ACTIVE), FOR) for c in totals} & set(filter(None, chosen[:3]))
    negative = {WORDING[c](row(ACTIVE), FOR) for c, v in totals.items() if v <= 0}
    assert not said_for & negative - {
        WORDING[c](row(ACTIVE), FOR) for c, v in totals.items() if v > 0
    }


def test_the_strongest_concepts_come_first_and_three_at_most() -> None:
    totals = {"deals": 0.9, "recent activity": 0.5, "momentum": 0.7, "team": 0.2, "email": -0.4}
    chosen = choose_reasons(row(ACTIVE), totals)
    assert chosen[0] == said("deals", FOR)
    assert chosen[1] == said("momentum", FOR)
    assert chosen[2] == said("recent activity", FOR)
    assert chosen[3] == "has not used email in the last 13 weeks"


def test_heavy_use_is_never_a_reason_against_the_next_concept_is() -> None:
    # The model may push a heavy user down on a concept; no words say heavy use holds it back.
    totals = {"regular use": -0.8, "recent activity": -0.5, "email": -0.1, "deals": 0.4}
    assert said("regular use", AGAINST) is None
    assert said("recent activity", AGAINST) is None
    assert choose_reasons(row(ACTIVE), totals)[3] == "has not used email in the last 13 weeks"


def test_no_use_is_never_a_reason_for() -> None:
    assert said("email", FOR) is None
    assert said("recent activity", FOR, actions_recent=0.0) is None
    assert said("momentum", FOR, actions_recent=10.0, actions_prior=40.0) is None


# --- words a caller can check, never a statistic ----------------------------------------------


def test_strengths_compare_with_the_free_companies_the_model_learned_from() -> None:
    assert said("deals", FOR) == (
        "more deal activity in the last 13 weeks than 99% of free companies: 240 deal actions"
    )
    assert said("recent activity", FOR) == (
        "more activity in the last 4 weeks than 99% of free companies: "
        "412 actions, active in 4 of the 4 weeks"
    )
    assert said("regular use", FOR) == (
        "more use in the last 13 weeks than 99% of free companies: "
        "1,520 actions, active in 12 of the 13 weeks"
    )
    assert said("team", FOR) == (
        "more people using it in the last 13 weeks than 95% of free companies: "
        "31 user-weeks (each week's users, added up)"
    )
    assert said("web presence", FOR) == (
        "busier website than 99% of ranked free companies: Alexa rank 1,500"
    )


def test_weaknesses_say_what_holds_the_company_back() -> None:
    assert said("momentum", AGAINST, actions_recent=40.0, actions_prior=85.0) == (
        "usage fell by half against the 4 weeks before: 40 actions in the last 4 weeks against 85"
    )
    assert said("momentum", AGAINST, actions_recent=0.0, actions_prior=85.0) == (
        "stopped: no actions in the last 4 weeks after 85 before"
    )
    assert said("deals", AGAINST, ACTIONS_CRM_DEALS_sum=0.0, USERS_CRM_DEALS_sum=0.0) == (
        "has not used deals in the last 13 weeks"
    )
    assert said("regular use", AGAINST, total_actions=4.0, days_active=7) == (
        "less use in the last 13 weeks than 50% of free companies: "
        "4 actions, active in 1 of the 13 weeks"
    )
    assert said("recent activity", AGAINST, actions_recent=0.0, recency_days=63) == (
        "no activity in the last 4 weeks, last active 9 weeks ago"
    )
    assert said("time with the product", AGAINST) == (
        "has used the free product for 13 weeks or more without buying"
    )


def test_against_mostly_idle_companies_a_little_use_is_said_as_some_use() -> None:
    # 95% of free companies worked no deal: 3 deal actions is "some", not "more than 95%".
    assert said("deals", FOR, ACTIONS_CRM_DEALS_sum=3.0) == (
        "deal activity in the last 13 weeks, where 75% of free companies had none: 3 deal actions"
    )


def test_a_small_fall_in_use_is_not_a_reason_against() -> None:
    assert said("momentum", AGAINST, actions_recent=95.0, actions_prior=100.0) is None
    assert said("momentum", AGAINST, actions_recent=85.0, actions_prior=100.0) == (
        "usage fell by 15% against the 4 weeks before: 85 actions in the last 4 weeks against 100"
    )


def test_growth_is_said_as_a_ratio_with_its_figures() -> None:
    assert said("momentum", FOR) == (
        "usage up 3.1\u00d7 on the 4 weeks before: 412 actions in the last 4 weeks against 133"
    )
    assert said("momentum", FOR, actions_prior=0.0) == (
        "new activity: 412 actions in the last 4 weeks, none before"
    )


STATISTICS = ("vary", "deviation", "std", "mean", "per week (", "0 days ago")


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            name: st.one_of(st.none(), st.floats(0, 5_000), st.just(0.0))
            for name in (
                "total_actions",
                "total_users",
                "days_active",
                "actions_recent",
                "actions_prior",
                "weeks_active_recent",
                "recency_days",
                "tenure_days",
                "ACTIONS_CRM_DEALS_sum",
                "ACTIONS_EMAIL_sum",
                "ALEXA_RANK",
            )
        }
    ),
    st.sampled_from([FOR, AGAINST]),
)
def test_no_wording_quotes_a_statistic(values: dict[str, Any], side: int) -> None:
    for concept, word in WORDING.items():
        text = word(row(values), side)
        assert text is None or not any(s in text for s in STATISTICS), (concept, text)


def test_profile_words_are_facts_on_either_side() -> None:
    for side in (FOR, AGAINST):
        assert said("company size", side) == "51 to 200 employees"
        assert said("company size", side, EMPLOYEE_RANGE="1") == "1 employee"
        assert said("company size", side, EMPLOYEE_RANGE="huge") == (
            "employee count not recognised: 'huge'"
        )
        assert said("industry", side) == "industry: COMPUTER_SOFTWARE"


def test_no_web_rank_and_a_rank_not_given_read_differently() -> None:
    no_rank = said("web presence", AGAINST, alexa_no_rank=1, ALEXA_RANK=None)
    not_given = said("web presence", AGAINST, alexa_no_rank=None, ALEXA_RANK=None)
    assert no_rank == "website too little visited to have an Alexa traffic rank"
    assert not_given == "Alexa web traffic rank not given"


def test_an_old_run_folder_without_quantiles_words_strengths_plainly_and_no_weakness() -> None:
    plain = Row(ACTIVE, recent_weeks=4, lookback_weeks=13)
    assert WORDING["deals"](plain, FOR) == "240 deal actions in the last 13 weeks"
    assert WORDING["deals"](plain, AGAINST) is None  # low or high? unknown: not said
    assert WORDING["email"](plain, AGAINST) == "has not used email in the last 13 weeks"


# --- missing is missing ---------------------------------------------------------------------------


def test_a_field_not_given_is_not_given_never_zero_usage() -> None:
    sparse = Row({"actions_recent": 50.0}, recent_weeks=4, lookback_weeks=13)
    assert basis_of(sparse) == USAGE
    assert WORDING["regular use"](sparse, AGAINST) == "use over the last 13 weeks not given"
    assert WORDING["deals"](sparse, AGAINST) == "deal activity not given"
    assert WORDING["momentum"](sparse, AGAINST) == "activity trend not given"
    assert WORDING["time with the product"](sparse, FOR) == "time with the product not given"


def test_profile_only_needs_usage_fields_that_say_there_was_none() -> None:
    none_used = Row({"total_actions": 0.0, "actions_recent": 0.0}, 4, 13)
    assert basis_of(none_used) == PROFILE_ONLY
    assert basis_of(Row({"EMPLOYEE_RANGE": "1"}, 4, 13)) == NOT_GIVEN
    assert basis_of(Row({"total_actions": 0.0, "recency_days": 200}, 4, 13)) == USAGE
    assert basis_of(Row({"total_actions": math.nan}, 4, 13)) == NOT_GIVEN


def test_without_usage_the_usage_concepts_are_one_reason() -> None:
    frame = pl.DataFrame(
        {"EMPLOYEE_RANGE": ["51 to 200", "51 to 200"], "total_actions": [0.0, None]},
        schema={"EMPLOYEE_RANGE": pl.String, "total_actions": pl.Float64},
    )
    columns = ["EMPLOYEE_RANGE", "total_actions", "recency_days", "ACTIONS_EMAIL_sum"]
    phi = np.array([[0.5, -0.25, -0.5, -0.1, -1.0]] * 2)
    out = explain_rows(frame, phi, columns, recent_days=28, lookback_days=91).to_dicts()
    assert [o["reason_1"] for o in out] == ["51 to 200 employees"] * 2
    assert [o["reason_against"] for o in out] == [
        "has not used the product yet",
        "product usage not given",
    ]
    assert [o["basis"] for o in out] == [PROFILE_ONLY, NOT_GIVEN]
    assert json.loads(out[0]["contributions"]) == dict(
        zip(columns, [0.5, -0.25, -0.5, -0.1], strict=True)
    )
    assert out[0]["base_value"] == -1.0


# --- the golden lists, reviewed by eye --------------------------------------------------------


@pytest.mark.parametrize("family", MODEL_NAMES)
def test_golden_reasons_are_the_reviewed_ones(family: str) -> None:
    from golden.make_golden import reasons_text  # the generator that wrote the reviewed file

    expected = (GOLDEN / family / "expected_reasons.txt").read_text(encoding="utf-8")
    assert reasons_text(GOLDEN / family) == expected
