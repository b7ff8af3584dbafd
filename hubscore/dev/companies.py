"""The sample's companies: firmographics, the label, close dates, MRR and usage habits.

Company-level draws, all from the one generator `numpy.random.default_rng(seed)` in a fixed
order: reordering any draw changes every file a seed writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from hubscore.core.contract import ALEXA_NO_RANK_SENTINEL
from hubscore.dev.vocabulary import industry_effect

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

NO_RANK = ALEXA_NO_RANK_SENTINEL  # the contract's sentinel, short for the tables below
_CONVERSION_RATE = 0.04  # ~200 customers in 5,200 companies, as in the real files
_DRIFT = 2.1  # conversion rate at the end of the files over the start: later months ~1.4x
_PRE_CLOSE_USAGE_P = 0.84  # converters using the product before closing (with early closes ~4/5)
_POWER_P = 0.03  # heavy free users (agencies, automations) that rarely convert
_TRIAL_P = 0.25  # active free companies that try the product hard for weeks, then do not buy
_RAMP_P = 0.8  # converters whose activity rises before the close; the others show no ramp
# Conversion log-odds by bucket: mid-sized companies buy self-serve, the largest buy through sales.
_EMPLOYEE_EFFECT = np.array([-0.9, -0.4, 0.0, 0.35, 0.55, 0.55, 0.2, -0.5, -1.0])
_EMPLOYEE_P = (0.22, 0.27, 0.15, 0.12, 0.08, 0.08, 0.045, 0.025, 0.01)
_CLOSE_WEEKDAY_P = (0.19, 0.21, 0.21, 0.2, 0.16, 0.015, 0.015)  # Monday..Sunday


@dataclass(frozen=True)
class Usage:
    """Every company's usage habits, in id order."""

    p_week: F64  # weekly probability of a usage row
    p_post: F64  # the same, for a customer after its close
    level: F64  # typical weekly actions
    users: I64  # users in the portal
    start: I64  # first week that may hold usage (>= weeks: none)
    stop: I64  # last week that may hold usage
    anchor: I64  # a week that surely holds a usage row, or -1
    boost: F64  # a converter's pre-close ramp or a free company's trial burst (0: none)
    tau: F64  # weeks over which a ramp (or a trial) fades going back from its end
    trial_start: I64  # first week of a free company's trial burst
    trial_weeks: I64  # its length (0: no trial)


@dataclass(frozen=True)
class Companies:
    """Every company's attributes, in id order (ids 1..n; customers first, one contiguous block)."""

    is_customer: Bool
    employee: I64  # bucket 0..8, or -1 when missing in the file
    alexa: I64  # rank, NO_RANK, or -1 for a true null
    industry: I64  # index into the vocabulary, -1 when missing
    close_day: I64  # days after the first usage Monday (customers only)
    mrr: F64
    usage: Usage


def last_monday(end: date) -> date:
    """Return the Monday on or before `end`."""
    return end - timedelta(days=end.weekday())


def _choose(rng: np.random.Generator, n: int, *, p: tuple[float, ...] | F64) -> I64:
    """Draw `n` category indices with probabilities `p` (normalised)."""
    probs = np.asarray(p, dtype=np.float64)
    return rng.choice(len(probs), size=n, p=probs / probs.sum()).astype(np.int64)


def _solve_intercept(logit: F64, rate: float) -> float:
    """Return the intercept that makes the mean of sigmoid(logit + intercept) equal `rate`."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(sigmoid(logit + mid)) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def sigmoid(x: F64) -> F64:
    """Return the logistic function of `x`."""
    out: F64 = 1 / (1 + np.exp(-x))
    return out


def draw_companies(
    rng: np.random.Generator, n: int, *, weeks: int, activity: float, vocab: tuple[str, ...]
) -> Companies:
    """Draw true firmographics, the label (customers first), then what the files show."""
    engagement = rng.standard_normal(n)
    intent = rng.standard_normal(n)  # budget, timing, a champion: nothing the files show
    power = rng.random(n) < _POWER_P
    employee = _choose(rng, n, p=_EMPLOYEE_P)
    ranked = rng.random(n) < 0.34
    rank = np.floor(10 ** rng.uniform(2.0, 7.2, n)).astype(np.int64)
    industry = _choose(rng, n, p=1 / np.arange(1, len(vocab) + 1) ** 1.05)
    logit = (
        _EMPLOYEE_EFFECT[employee]
        + _alexa_effect(ranked, rank)
        + 0.6 * industry_effect(vocab)[industry]
        + 0.6 * engagement
        + 1.3 * intent
        - 2.0 * power
    )
    p_convert = sigmoid(logit + _solve_intercept(logit, _CONVERSION_RATE))
    is_customer = rng.random(n) < p_convert
    # Customers take ids 1..k, one contiguous block as in the real files (the id encodes the label).
    order = np.argsort(~is_customer, kind="stable")
    engagement, employee, is_customer = engagement[order], employee[order], is_customer[order]
    rank = np.where(ranked, rank, NO_RANK)[order]
    close_day = _draw_close_days(rng, n, weeks=weeks)
    return Companies(
        is_customer=is_customer,
        employee=_mask(rng, employee, p_missing=np.where(is_customer, 0.03, 0.35)),
        alexa=_mask(rng, rank, p_missing=np.where(is_customer, 0.0, 0.09)),
        industry=_mask(rng, industry[order], p_missing=np.where(is_customer, 0.55, 0.8)),
        close_day=close_day,
        mrr=_draw_mrr(rng, employee),
        usage=_draw_usage(
            rng,
            is_customer,
            engagement=engagement,
            employee=employee,
            power=power[order],
            close_week=close_day // 7,
            weeks=weeks,
            activity=activity,
        ),
    )


def _alexa_effect(ranked: Bool, rank: I64) -> F64:
    """Return the log-odds shift of a web rank: ranked sites convert more, the very top less."""
    peak = np.exp(-(((np.log10(rank) - 4.8) / 1.0) ** 2))
    out: F64 = ranked * (0.7 + 1.6 * peak)
    return out


def _mask(rng: np.random.Generator, values: I64, *, p_missing: F64) -> I64:
    """Replace values by -1 (missing) with per-row probability `p_missing`."""
    return np.where(rng.random(len(values)) < p_missing, -1, values)


def _draw_close_days(rng: np.random.Generator, n: int, *, weeks: int) -> I64:
    """Draw close days (relative to the first Monday), ever more frequent over the history."""
    lo, hi = -21, 7 * weeks + 21
    day = np.floor(lo + _rising(rng.random(n), end_over_start=_DRIFT) * (hi - lo))
    weekday = _choose(rng, n, p=_CLOSE_WEEKDAY_P)
    return (7 * (day // 7) + weekday).astype(np.int64)


def _rising(u: F64, *, end_over_start: float) -> F64:
    """Map uniform draws onto [0, 1] with a density rising linearly `end_over_start`-fold."""
    k = end_over_start - 1
    if k == 0:
        return u
    out: F64 = (np.sqrt(1 + k * (k + 2) * u) - 1) / k  # the inverse of the linear density's CDF
    return out


def _draw_mrr(rng: np.random.Generator, employee: I64) -> F64:
    """Draw MRR growing with company size; ~2% zero and ~2% negative (refunds, credits)."""
    n = len(employee)
    mrr = rng.lognormal(np.log(60.0) + 0.3 * employee, 0.7, n)
    kind = rng.random(n)
    mrr = np.where(kind < 0.02, 0.0, mrr)
    mrr = np.where((kind >= 0.02) & (kind < 0.04), -rng.uniform(5, 300, n), mrr)
    out: F64 = np.round(mrr, 2)
    return out


def _draw_usage(
    rng: np.random.Generator,
    is_customer: Bool,
    *,
    engagement: F64,
    employee: I64,
    power: Bool,
    close_week: I64,
    weeks: int,
    activity: float,
) -> Usage:
    """Draw each company's usage rates and the span of weeks that may hold its rows."""
    n = len(is_customer)
    start = np.where(rng.random(n) < 0.4, 0, rng.integers(0, weeks, n))
    stop = np.where(rng.random(n) < 0.6, weeks - 1, rng.integers(start, weeks))
    active = power | (rng.random(n) < sigmoid(0.75 + 0.6 * engagement))  # others never use it
    first, anchor = _customer_span(
        rng, is_customer, start=start, close_week=close_week, weeks=weeks
    )
    first = np.where(is_customer, first, np.where(active, start, weeks))
    anchor = np.where(is_customer, anchor, first)
    trial = ~is_customer & active & (rng.random(n) < _TRIAL_P)
    ramps = rng.random(n) < _RAMP_P
    boost = np.where(is_customer & ~ramps, 0.0, 6.0 * rng.lognormal(0.0, 0.5, n))
    p_week = activity * 0.07 * np.exp(0.55 * engagement + 0.5 * rng.standard_normal(n))
    p_post = activity * 0.4 * np.exp(0.3 * rng.standard_normal(n))
    level = np.exp(2.4 + 0.25 * employee + 0.4 * engagement + 0.8 * rng.standard_normal(n))
    return Usage(
        p_week=p_week * np.where(power, 3.0, 1.0),
        p_post=p_post,
        level=level * np.where(power, 20.0, 1.0),
        users=1 + rng.poisson(0.4 + 0.7 * employee),
        start=first.astype(np.int64),
        stop=np.where(is_customer, weeks - 1, stop).astype(np.int64),
        anchor=np.where(anchor < weeks, anchor, -1).astype(np.int64),
        boost=np.where(is_customer | trial, boost, 0.0),
        tau=rng.uniform(3.0, 12.0, n),
        trial_start=rng.integers(0, weeks, n),
        trial_weeks=np.where(trial, rng.integers(3, 13, n), 0),
    )


def _customer_span(
    rng: np.random.Generator, is_customer: Bool, *, start: I64, close_week: I64, weeks: int
) -> tuple[I64, I64]:
    """Return a customer's first usage week and a week that surely holds a row.

    Most use the product before the close, last in one of the few weeks before it; the rest
    start in the close week or a little after; a few never use it at all.
    """
    n = len(is_customer)
    last_pre = close_week - rng.geometric(0.45, n)
    has_pre = (rng.random(n) < _PRE_CLOSE_USAGE_P) & (last_pre >= 0)
    never = rng.random(n) < 0.01
    after = np.maximum(close_week, 0) + rng.geometric(0.5, n) - 1
    first = np.where(never, weeks, np.where(has_pre, np.minimum(start, last_pre), after))
    anchor = np.where(has_pre, np.minimum(last_pre, weeks - 1), first)
    return first.astype(np.int64), anchor.astype(np.int64)
