"""Reasons a salesperson reads: exact contributions summed into concepts, worded with context.

Every model column belongs to one concept a caller recognises (recent activity, momentum,
deals, email, team, company size, web presence ...): INDUSTRY's one-hot levels to
"industry", `<feature>_missing` to its feature's concept, a missingness flag shared by several
features split evenly among their concepts. A concept's contribution is the sum of its
columns' (weights of a shared flag included), so the concepts add up to the model's margin
exactly as the columns do.

The largest positive concepts are the reasons for, the most negative the reason against, so
a concept is never both. Each concept is worded from the company's own values, compared with
the free companies the model was trained on (the quantiles `drift.profile_features` stores in
the manifest): "more deal activity than 95% of free companies: 240 deal actions in the last
13 weeks". A wording that would contradict its side (heavy use named as a reason against) is
not given; the next concept is taken instead. Words never quote a statistic (no "vary by").

Missing is missing: a value that is not given is worded "not given", never as zero usage.
`basis` is "usage" when a given usage field shows activity, "profile only" when the given
usage fields say there was none, and "usage not given" when no usage field was given; without
usage, the usage concepts merge into one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from hubscore.core.contract import USAGE_STATS
from hubscore.engine.wording import (
    AGAINST,
    FOR,
    OBJECTS,
    USAGE,
    WORDING,
    Row,
    basis_of,
)

REASON_COLUMNS = ("reason_1", "reason_2", "reason_3", "reason_against")
BASIS, BASE_VALUE, CONTRIBUTIONS = "basis", "base_value", "contributions"
EXPLANATION_COLUMNS = (*REASON_COLUMNS, BASIS, BASE_VALUE, CONTRIBUTIONS)
EXPLANATION_DTYPES: dict[str, pl.DataType] = {
    name: pl.Float64() if name == BASE_VALUE else pl.String() for name in EXPLANATION_COLUMNS
}
CONCEPTS: dict[str, tuple[str, ...]] = {
    "recent activity": ("actions_recent", "weeks_active_recent", "recency_days", "objects_recent"),
    "momentum": ("trend_actions", "actions_prior", "trend_users"),
    "regular use": ("total_actions", "days_active", "activity_frequency"),
    "team": ("total_users", "actions_per_user", "peak_users_recent", "peak_users_prior"),
    "time with the product": ("tenure_days", "weeks_observed"),
    **{
        concept: (
            *(f"{kind}_{obj}_{stat}" for kind in ("ACTIONS", "USERS") for stat in USAGE_STATS),
            f"{obj}_recency_days",
        )
        for obj, (concept, _) in OBJECTS.items()
    },
    "company size": ("EMPLOYEE_RANGE",),
    "industry": ("INDUSTRY",),
    "web presence": ("ALEXA_RANK", "alexa_no_rank"),
}
"""Each concept's features; every feature of `contract.RAW_FEATURES` is in exactly one.
`wording.WORDING` words each, and "usage" (every usage concept merged, for a company without)."""
CONCEPT_OF = {feature: concept for concept, names in CONCEPTS.items() for feature in names}
PROFILE_CONCEPTS = frozenset(("company size", "industry", "web presence"))
USAGE_CONCEPTS = frozenset(CONCEPTS) - PROFILE_CONCEPTS


def group_of(column: str) -> str:
    """Return the feature a model column belongs to ("INDUSTRY=retail" -> "INDUSTRY")."""
    if column.startswith(("INDUSTRY=", "INDUSTRY_")):  # one-hot levels, frequency, flag
        return "INDUSTRY"
    if column.endswith("_missing"):
        column = column.removesuffix("_missing")
    return {"alexa_no_rank": "ALEXA_RANK"}.get(column, column)


@dataclass(frozen=True)
class Concepts:
    """How a model's columns add up into concepts: contributions @ weights = concept totals."""

    names: list[str]
    weights: npt.NDArray[np.float64]
    """(columns, concepts): each column's share in each concept; every row sums to 1."""

    @classmethod
    def of(cls, columns: Sequence[str], flag_groups: Mapping[str, Sequence[str]]) -> Concepts:
        """Map model columns to concepts; a flag shared by several features splits evenly."""
        names = list(CONCEPTS)
        weights = np.zeros((len(columns), len(names)))
        for i, column in enumerate(columns):
            features = flag_groups.get(column) or [group_of(column)]
            for feature in features:
                concept = CONCEPT_OF.get(group_of(feature), "regular use")  # never unplaced
                weights[i, names.index(concept)] += 1 / len(features)
        return cls(names, weights)


def explain_rows(
    frame: pl.DataFrame,
    contributions: npt.NDArray[np.float64],
    columns: Sequence[str],
    *,
    recent_days: int,
    lookback_days: int,
    flag_groups: Mapping[str, Sequence[str]] | None = None,
    quantiles: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> pl.DataFrame:
    """Return the explanation columns for each row of raw `frame` and its contributions.

    Args:
        contributions: (rows, columns + 1): each column's contribution, then the base value.
        flag_groups: missingness flag column -> the features it flags.
        quantiles: feature -> [(level, value)] of the training rows, for the comparisons.
    """
    concepts = Concepts.of(columns, flag_groups or {})
    totals = contributions[:, :-1] @ concepts.weights
    records: dict[str, list[Any]] = {name: [] for name in EXPLANATION_COLUMNS}
    for i, values in enumerate(frame.iter_rows(named=True)):
        row = Row(values, recent_days // 7, lookback_days // 7, quantiles or {})
        basis = basis_of(row)
        chosen = choose_reasons(row, _merged(concepts.names, totals[i], basis))
        for name, text in zip(REASON_COLUMNS, chosen, strict=True):
            records[name].append(text)
        records[BASIS].append(basis)
        records[BASE_VALUE].append(float(contributions[i, -1]))
        shares = dict(zip(columns, contributions[i, :-1].tolist(), strict=True))
        records[CONTRIBUTIONS].append(json.dumps(shares, allow_nan=False))
    return pl.DataFrame(records, schema=EXPLANATION_DTYPES)


def _merged(names: Sequence[str], totals: npt.NDArray[np.float64], basis: str) -> dict[str, float]:
    """Concept -> total; without usage, the usage concepts are one: "usage"."""
    merged: dict[str, float] = {}
    for name, value in zip(names, totals.tolist(), strict=True):
        key = USAGE if basis != USAGE and name in USAGE_CONCEPTS else name
        merged[key] = merged.get(key, 0.0) + value
    return merged


def choose_reasons(row: Row, totals: Mapping[str, float]) -> list[str | None]:
    """Return up to three reasons for (largest first), then the reason against (None-padded).

    A concept is a reason for only when its total is positive and against only when negative;
    one whose words cannot support its side is passed over for the next.
    """
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    reasons_for = [
        text
        for concept, value in ranked
        if value > 0 and (text := WORDING[concept](row, FOR)) is not None
    ][:3]
    against = (
        text
        for concept, value in reversed(ranked)
        if value < 0 and (text := WORDING[concept](row, AGAINST)) is not None
    )
    return [*reasons_for, *[None] * (3 - len(reasons_for)), next(against, None)]


def training_quantiles(
    distributions: Mapping[str, Any],
) -> dict[str, list[tuple[float, float]]]:
    """Return feature -> [(level, value)] from the manifest's feature distributions."""
    found: dict[str, list[tuple[float, float]]] = {}
    for name, profile in distributions.items():
        stored = profile.get("quantiles") if isinstance(profile, Mapping) else None
        if stored:
            found[name] = sorted((float(level), float(value)) for level, value in stored.items())
    return found
