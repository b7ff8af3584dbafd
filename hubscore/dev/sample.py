"""Generate a deterministic synthetic sample shaped like the real input files.

The three files (customers, noncustomers, usage_actions) follow the data contract
(DATA_CONTRACT.md): same columns, encodings and kinds of mess, the real files' sizes (~5,200
companies, ~200 customers, ~25k usage rows), and a signal that is as hard to learn as theirs:

- conversion depends on firmographics partly non-monotonically (mid-sized companies and
  mid-ranked sites convert most), on a latent engagement that also drives usage, and on a
  larger latent intent the files never show; heavy free users (agencies, automations) rarely
  convert, and with free trials they crowd the top of any ranking by recent activity;
- most converters get busier in the weeks before their close, some show no ramp, and about a
  fifth have no usage before it at all; free companies run trials that rise like a ramp and end
  without a purchase;
- a dozen or so converters a week, at a rate rising over the history (the later months convert
  about 1.4x as often as the earlier ones), and every customer keeps using the product, more
  heavily, after its close.

Company-level draws come from `numpy.random.default_rng(seed)`; the row-level usage draws of
each block of `_BLOCK` companies come from their own stream seeded by `(seed, block)`, so the
data never depends on how the usage file is chunked, and one seed gives byte-identical files.
Usage is generated and written block by block, so a million companies stream in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from hubscore.core.atomic import atomic_file
from hubscore.core.contract import ALEXA_NO_RANK_SENTINEL, EMPLOYEE_RANGES
from hubscore.core.errors import ConfigError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

NO_RANK = ALEXA_NO_RANK_SENTINEL  # the contract's sentinel, short for the tables below
OBJECTS = ("CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL")
CUSTOMER_COLUMNS = ("CLOSEDATE", "MRR", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id")
NONCUSTOMER_COLUMNS = ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY", "id")
USAGE_COLUMNS = (
    "id",
    "WHEN_TIMESTAMP",
    *(f"ACTIONS_{o}" for o in OBJECTS),
    *(f"USERS_{o}" for o in OBJECTS),
)
USAGE_SCHEMA = pa.schema(
    [("id", pa.int64()), ("WHEN_TIMESTAMP", pa.timestamp("ms"))]
    + [(name, pa.int64()) for name in USAGE_COLUMNS[2:]]
)
CUSTOMER_SCHEMA = pa.schema(
    zip(
        CUSTOMER_COLUMNS,
        [pa.date32(), pa.float64(), pa.int64(), pa.string(), pa.string(), pa.int64()],
        strict=True,
    )
)
NONCUSTOMER_SCHEMA = pa.schema([CUSTOMER_SCHEMA.field(name) for name in NONCUSTOMER_COLUMNS])

_BLOCK = 1_000  # companies per independent row-level random stream
BENCHMARK_ACTIVITY = 6.0
"""`activity` for the 1M-company benchmark: ~20 usage rows per company (~5 at 1.0)."""
_CONVERSION_RATE = 0.04  # ~200 customers in 5,200 companies, as in the real files
_DRIFT = 2.1  # conversion rate at the end of the files over the start: later months ~1.4x
_PRE_CLOSE_USAGE_P = 0.84  # converters using the product before closing (with early closes ~4/5)
_POWER_P = 0.03  # heavy free users (agencies, automations) that rarely convert
_TRIAL_P = 0.25  # active free companies that try the product hard for weeks, then do not buy
_RAMP_P = 0.8  # converters whose activity rises before the close; the others show no ramp
# Conversion log-odds by bucket: mid-sized companies buy self-serve, the largest buy through sales.
_EMPLOYEE_EFFECT = np.array([-0.9, -0.4, 0.0, 0.35, 0.55, 0.55, 0.2, -0.5, -1.0])
_MAX_COUNT = 90_000  # weekly actions per object are capped (an API rate limit, in the story)
_EMPLOYEE_P = (0.22, 0.27, 0.15, 0.12, 0.08, 0.08, 0.045, 0.025, 0.01)
_CLOSE_WEEKDAY_P = (0.19, 0.21, 0.21, 0.2, 0.16, 0.015, 0.015)  # Monday..Sunday
_OBJECT_USE_P = np.array([0.92, 0.6, 0.4, 0.55])  # share of portals that ever touch each object
_OBJECT_SHARE = np.array([1.0, 0.35, 0.2, 0.6])  # relative weekly volume per object

_CODES = (
    "COMPUTER_SOFTWARE", "MARKETING_AND_ADVERTISING", "HIGHER_EDUCATION", "REAL_ESTATE", "INTERNET",
    "INFORMATION_TECHNOLOGY_AND_SERVICES", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE",
    "CONSTRUCTION", "RETAIL", "NON_PROFIT_ORGANIZATION_MANAGEMENT", "MANAGEMENT_CONSULTING",
    "EDUCATION_MANAGEMENT", "STAFFING_AND_RECRUITING", "INSURANCE", "ACCOUNTING", "LEGAL_SERVICES",
    "AUTOMOTIVE", "HOSPITALITY", "FOOD_AND_BEVERAGES", "E_LEARNING", "TELECOMMUNICATIONS",
    "MACHINERY", "BANKING", "MEDICAL_DEVICES", "ENVIRONMENTAL_SERVICES",
    "RENEWABLES_AND_ENVIRONMENT", "LOGISTICS_AND_SUPPLY_CHAIN", "WHOLESALE", "CONSUMER_GOODS",
    "APPAREL_AND_FASHION", "ARCHITECTURE_AND_PLANNING", "BROADCAST_MEDIA", "DESIGN",
    "EVENTS_SERVICES", "FITNESS", "GOVERNMENT_ADMINISTRATION", "HUMAN_RESOURCES",
    "INVESTMENT_MANAGEMENT", "LEISURE_TRAVEL_AND_TOURISM", "MECHANICAL_OR_INDUSTRIAL_ENGINEERING",
    "ONLINE_MEDIA", "PUBLIC_RELATIONS_AND_COMMUNICATIONS", "RESEARCH",
    "SECURITY_AND_INVESTIGATIONS", "SPORTS", "TRANSPORTATION_TRUCKING_RAILROAD",
    "VENTURE_CAPITAL_AND_PRIVATE_EQUITY", "WRITING_AND_EDITING",
)  # fmt: skip
_LABELS = (
    "Technology - Software", "Non-Profit/Educational Institution", "real estate", "Other",
    "Marketing Agency", "Consulting", "Financial Services", "Healthcare", "Manufacturing",
    "E-commerce", "Retail", "Education", "Professional Services", "Travel & Hospitality",
    "Media & Entertainment", "Real Estate", "Software", "SaaS", "Agency", "Government",
    "Telecommunications", "Construction", "Insurance", "Legal", "Automotive", "Energy",
    "Transportation/Logistics", "Food & Beverage", "Fitness", "Arts", "Technology - Hardware",
    "Technology - Services", "Business Services", "Health, Wellness and Fitness",
    "Banking, Finance", "Recruiting", "Hospitality", "Non-Profit", "Church/Religious Organization",
    "Photography",
)  # fmt: skip
_LONG_LABELS = (
    "Non-Profit Organization Management and Fundraising Services",
    "Information Technology and Services - Managed Service Providers",
    "Marketing and Advertising - Digital Agency Partner Programme",
    "Computer Software - Customer Relationship Management Tools",
    "Real Estate Development, Brokerage and Property Management",
    "Higher Education - Universities, Colleges and Vocational Schools",
    "Health, Wellness and Fitness - Gyms, Studios and Personal Training",
    "Professional Training and Coaching for Small Business Owners",
    "Financial Services - Wealth Management and Financial Planning",
    "Environmental Services and Renewable Energy Consultancies",
)
_RARE = (
    "Dental", "Veterinary", "Brewery", "Yoga Studio", "Solar", "Plumbing", "Landscaping",
    "Wedding Planning", "Pet Care", "Crypto", "Blockchain", "Drones", "Esports", "Aquaculture",
    "Translation Services", "Printing", "Signage", "Coworking", "Chiropractic", "Tutoring",
    "Funeral Services", "Bakery", "Winery", "Interior Design", "HVAC", "Roofing", "Pest Control",
    "Moving & Storage", "Car Wash", "Mining", "Shipbuilding", "Tobacco", "Dairy", "Museums",
)  # fmt: skip


@dataclass(frozen=True)
class SampleSummary:
    """What `generate_sample` wrote: row counts (duplicate noncustomer rows included) and paths."""

    customers: int
    noncustomers: int
    usage_rows: int
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class _Companies:
    """Every company's attributes, in id order (ids 1..n; customers first, one contiguous block)."""

    is_customer: Bool
    employee: I64  # bucket 0..8, or -1 when missing in the file
    alexa: I64  # rank, NO_RANK, or -1 for a true null
    industry: I64  # index into the vocabulary, -1 when missing
    close_day: I64  # days after the first usage Monday (customers only)
    mrr: F64
    usage: _Usage


@dataclass(frozen=True)
class _Usage:
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


def industry_vocabulary() -> tuple[str, ...]:
    """Return the INDUSTRY values, commonest first: codes, labels, near-duplicates, truncations."""
    head = [v for pair in zip(_CODES, _LABELS, strict=False) for v in pair]
    head += _CODES[len(_LABELS) :]
    dups = [label.lower() for label in _LABELS[:25]] + [label.upper() for label in _LABELS[25:]]
    dups += [label.replace(" - ", "-").replace("&", "and") for label in _LABELS]
    dups += [code.replace("_", " ").title() for code in _CODES]
    dups += [code.lower() for code in _CODES[:15]]
    truncated = [label[:40] for label in _LONG_LABELS]
    values = dict.fromkeys(head + truncated[:5] + dups + truncated[5:] + list(_RARE))
    return tuple(values)


def _industry_effect(vocab: tuple[str, ...]) -> F64:
    """Return each industry's shift of the conversion log-odds (software/marketing convert more)."""

    def effect(value: str) -> float:
        low = value.lower()
        if any(k in low for k in ("software", "marketing", "internet", "saas", "agency")):
            return 0.7
        if any(k in low for k in ("non-profit", "non_profit", "education", "church", "government")):
            return -0.6
        return 0.0

    return np.array([effect(v) for v in vocab])


def _last_monday(end: date) -> date:
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
        if np.mean(_sigmoid(logit + mid)) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _sigmoid(x: F64) -> F64:
    """Return the logistic function of `x`."""
    out: F64 = 1 / (1 + np.exp(-x))
    return out


def _draw_companies(
    rng: np.random.Generator, n: int, *, weeks: int, activity: float, vocab: tuple[str, ...]
) -> _Companies:
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
        + 0.6 * _industry_effect(vocab)[industry]
        + 0.6 * engagement
        + 1.3 * intent
        - 2.0 * power
    )
    p_convert = _sigmoid(logit + _solve_intercept(logit, _CONVERSION_RATE))
    is_customer = rng.random(n) < p_convert
    # Customers take ids 1..k, one contiguous block as in the real files (the id encodes the label).
    order = np.argsort(~is_customer, kind="stable")
    engagement, employee, is_customer = engagement[order], employee[order], is_customer[order]
    rank = np.where(ranked, rank, NO_RANK)[order]
    close_day = _draw_close_days(rng, n, weeks=weeks)
    return _Companies(
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
) -> _Usage:
    """Draw each company's usage rates and the span of weeks that may hold its rows."""
    n = len(is_customer)
    start = np.where(rng.random(n) < 0.4, 0, rng.integers(0, weeks, n))
    stop = np.where(rng.random(n) < 0.6, weeks - 1, rng.integers(start, weeks))
    active = power | (rng.random(n) < _sigmoid(0.75 + 0.6 * engagement))  # others never use it
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
    return _Usage(
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


def _usage_block(
    c: _Companies, block: int, *, seed: int, weeks: int, first_monday: date
) -> pl.DataFrame:
    """Draw the usage rows of the `block`-th run of `_BLOCK` companies, in id then week order."""
    rng = np.random.default_rng([seed, 1, block])
    sl = slice(block * _BLOCK, min((block + 1) * _BLOCK, len(c.is_customer)))
    lead = c.close_day[sl, None] // 7 - 1 - np.arange(weeks)[None, :]  # 0: last week before close
    pre = c.is_customer[sl, None] & (lead >= 0)
    post = c.is_customer[sl, None] & ~pre
    boost = _boost(c.usage, sl, lead=lead, pre=pre)
    row, col = np.nonzero(
        rng.random(pre.shape) < _row_probability(c.usage, sl, boost=boost, post=post)
    )
    # Converters that ramp get busier as the close nears (trials too), and all stay heavier after.
    scale = np.where(post, 8.0, 1 + boost)
    zero_p = np.where(post, 0.15, np.where(pre, 0.3, 0.45))
    uses = rng.random((sl.stop - sl.start, len(OBJECTS))) < _OBJECT_USE_P
    actions, users = _draw_counts(
        rng,
        c.usage.level[sl][row] * scale[row, col],
        zero_p=zero_p[row, col],
        uses=uses[row],
        portal_users=c.usage.users[sl][row],
    )
    ids = (sl.start + 1 + row).astype(np.int64)
    return _usage_frame(ids, col, first_monday=first_monday, actions=actions, users=users)


def _boost(u: _Usage, sl: slice, *, lead: I64, pre: Bool) -> F64:
    """Return each (company, week) activity boost: a pre-close ramp or a free trial's burst."""
    week = np.arange(lead.shape[1])[None, :]
    ramp = u.boost[sl, None] * np.exp(-np.maximum(lead, 0) / u.tau[sl, None])
    # A trial rises like a converter's ramp towards a close that never comes, then stops.
    until_end = u.trial_start[sl, None] + u.trial_weeks[sl, None] - 1 - week
    trial = (until_end >= 0) & (until_end < u.trial_weeks[sl, None])
    fade = u.boost[sl, None] * np.exp(-np.maximum(until_end, 0) / u.tau[sl, None])
    out: F64 = np.where(pre, ramp, np.where(trial, fade, 0.0))
    return out


def _row_probability(u: _Usage, sl: slice, *, boost: F64, post: Bool) -> F64:
    """Return each (company, week) chance of a usage row within the company's span."""
    week = np.arange(boost.shape[1])[None, :]
    prob = np.where(post, u.p_post[sl, None], u.p_week[sl, None] * (1 + 1.5 * boost))
    in_span = (week >= u.start[sl, None]) & (week <= u.stop[sl, None])
    prob = np.where(in_span, np.minimum(prob, 0.95), 0.0)
    out: F64 = np.where(week == u.anchor[sl, None], 1.0, prob)
    return out


def _usage_frame(
    ids: I64, week: I64, *, first_monday: date, actions: I64, users: I64
) -> pl.DataFrame:
    """Assemble usage rows in file column order; WHEN_TIMESTAMP is Monday midnight (ms)."""
    epoch_day = (first_monday - date(1970, 1, 1)).days
    columns: dict[str, I64] = {
        "id": ids,
        "WHEN_TIMESTAMP": (epoch_day + 7 * week).astype(np.int64) * 86_400_000,
    }
    columns |= {f"ACTIONS_{o}": actions[:, k] for k, o in enumerate(OBJECTS)}
    columns |= {f"USERS_{o}": users[:, k] for k, o in enumerate(OBJECTS)}
    return pl.DataFrame(columns).with_columns(pl.col("WHEN_TIMESTAMP").cast(pl.Datetime("ms")))


def _draw_counts(
    rng: np.random.Generator, scale: F64, *, zero_p: F64, uses: Bool, portal_users: I64
) -> tuple[I64, I64]:
    """Draw heavy-tailed weekly actions per object, and users with 0 < users <= actions."""
    m = len(scale)
    total = scale * rng.lognormal(0.0, 1.0, m) * (rng.random(m) >= zero_p)
    volume = total[:, None] * _OBJECT_SHARE * rng.lognormal(0.0, 0.6, (m, len(OBJECTS)))
    volume *= uses & (rng.random((m, len(OBJECTS))) < 0.85)
    actions = np.minimum(np.floor(volume), _MAX_COUNT).astype(np.int64)
    extra = rng.binomial(np.maximum(portal_users - 1, 0)[:, None], 0.5, (m, len(OBJECTS)))
    users = np.where(actions > 0, np.minimum(actions, 1 + extra), 0).astype(np.int64)
    return actions, users


def _labels(values: tuple[str, ...], codes: I64) -> pl.Series:
    """Map codes to their text values; code -1 becomes null."""
    return pl.Series([*values, None], dtype=pl.String).gather(
        np.where(codes < 0, len(values), codes)
    )


def _company_frame(
    c: _Companies, vocab: tuple[str, ...], *, first_monday: date, customers: bool
) -> pl.DataFrame:
    """Return the customers or noncustomers table, columns in file order."""
    idx = np.flatnonzero(c.is_customer == customers)
    alexa = c.alexa[idx]
    frame = pl.DataFrame(
        {
            "CLOSEDATE": np.datetime64(first_monday, "D") + c.close_day[idx],
            "MRR": c.mrr[idx],
            "ALEXA_RANK": pl.Series(alexa, dtype=pl.Int64).set(pl.Series(alexa < 0), None),
            "EMPLOYEE_RANGE": _labels(EMPLOYEE_RANGES, c.employee[idx]),
            "INDUSTRY": _labels(vocab, c.industry[idx]),
            "id": (idx + 1).astype(np.int64),
        }
    )
    columns = CUSTOMER_COLUMNS if customers else NONCUSTOMER_COLUMNS
    return frame.select(columns)


def _add_twins(rng: np.random.Generator, frame: pl.DataFrame, *, companies: int) -> pl.DataFrame:
    """Add a partly-null twin row (same id) for a handful of complete noncustomer rows."""
    complete = frame.select(
        pl.col("ALEXA_RANK").is_not_null() & pl.col("EMPLOYEE_RANGE").is_not_null()
    ).to_series()
    candidates = np.flatnonzero(complete.to_numpy())
    k = min(len(candidates), max(1, round(companies * 0.0014)))
    pick = np.sort(rng.choice(candidates, k, replace=False))
    drop_employee = pl.Series(rng.random(k) < 0.5)
    drop_industry = pl.Series(rng.random(k) < 0.5)
    before = rng.random(k) < 0.5  # the twin comes before the full row about half the time
    twins = frame[pick].with_columns(
        pl.lit(None, dtype=pl.Int64).alias("ALEXA_RANK"),
        pl.when(drop_employee)
        .then(None)
        .otherwise(pl.col("EMPLOYEE_RANGE"))
        .alias("EMPLOYEE_RANGE"),
        pl.when(drop_industry).then(None).otherwise(pl.col("INDUSTRY")).alias("INDUSTRY"),
    )
    keys = np.concatenate([2 * np.arange(frame.height) + 1, 2 * pick + np.where(before, 0, 2)])
    both = pl.concat([frame, twins]).with_columns(pl.Series("_key", keys))
    return both.sort("_key", maintain_order=True).drop("_key")


def _csv_cell(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Format one column as CSV text: text nulls `""`, numeric nulls empty, quote when needed."""
    if dtype == pl.String:
        quoted = pl.concat_str(
            [pl.lit('"'), col.str.replace_all('"', '""', literal=True), pl.lit('"')]
        )
        needs_quotes = col.str.contains(r'[",\r\n]') | (col == "")
        return (
            pl.when(col.is_null()).then(pl.lit('""')).when(needs_quotes).then(quoted).otherwise(col)
        )
    if isinstance(dtype, pl.Datetime):
        return col.dt.to_string("%Y-%m-%d %H:%M:%S%.3f")
    return col.cast(pl.String).fill_null("")


def _write_csv_lines(handle: BinaryIO, frame: pl.DataFrame) -> None:
    """Append `frame` to an open CSV file as LF-terminated lines (no header)."""
    cells = [_csv_cell(pl.col(name), dtype) for name, dtype in frame.schema.items()]
    lines = frame.select(pl.concat_str(cells, separator=",").alias("line"))
    lines.write_csv(handle, include_header=False, quote_style="never", line_terminator="\n")


def _write_table(frame: pl.DataFrame, path: Path, *, schema: pa.Schema) -> None:
    """Write a whole table atomically as CSV or Parquet (by the suffix of `path`)."""
    with atomic_file(path) as temp:
        if path.suffix == ".parquet":
            pq.write_table(frame.to_arrow().cast(schema), temp)
            return
        with temp.open("wb") as handle:
            handle.write((",".join(frame.columns) + "\n").encode("ascii"))
            _write_csv_lines(handle, frame)


def _batches(frames: Iterator[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """Concatenate consecutive frames into batches of at least `rows` rows (the last: fewer)."""
    pending: list[pl.DataFrame] = []
    size = 0
    for frame in frames:
        pending.append(frame)
        size += frame.height
        if size >= rows:
            yield pl.concat(pending)
            pending, size = [], 0
    if pending:
        yield pl.concat(pending)


def _write_usage(batches: Iterator[pl.DataFrame], path: Path) -> int:
    """Stream usage batches to `path` atomically (one Parquet row group per batch); return rows."""
    rows = 0
    with atomic_file(path) as temp:
        if path.suffix == ".parquet":
            with pq.ParquetWriter(temp, USAGE_SCHEMA) as writer:
                for batch in batches:
                    writer.write_table(
                        batch.to_arrow().cast(USAGE_SCHEMA), row_group_size=batch.height
                    )
                    rows += batch.height
            return rows
        with temp.open("wb") as handle:
            handle.write((",".join(USAGE_COLUMNS) + "\n").encode("ascii"))
            for batch in batches:
                _write_csv_lines(handle, batch)
                rows += batch.height
    return rows


def _check_args(
    companies: int, weeks: int, *, fmt: str, activity: float, row_group_rows: int
) -> None:
    """Raise ConfigError for arguments the generator cannot honour."""
    problems = [
        f"companies must be >= 100, got {companies}" if companies < 100 else "",
        f"weeks must be >= 1, got {weeks}" if weeks < 1 else "",
        f"fmt must be 'csv' or 'parquet', got {fmt!r}" if fmt not in ("csv", "parquet") else "",
        f"activity must be > 0, got {activity}" if not activity > 0 else "",
        f"row_group_rows must be >= 1, got {row_group_rows}" if row_group_rows < 1 else "",
    ]
    if any(problems):
        raise ConfigError(
            "bad sample arguments: " + "; ".join(p for p in problems if p),
            hint="see `hubscore.dev.sample.generate_sample` for the accepted values",
        )


def generate_sample(
    out: Path,
    *,
    seed: int = 42,
    companies: int = 5200,
    weeks: int = 78,
    fmt: Literal["csv", "parquet"] = "csv",
    end: date = date(2026, 11, 23),
    activity: float = 1.0,
    row_group_rows: int = 1_000_000,
) -> SampleSummary:
    """Write customers, noncustomers and usage_actions files into `out`; same seed, same bytes.

    Args:
        companies: customers + noncustomers (about 4% convert); twin rows are extra.
        weeks: weeks of usage history, ending at the Monday on or before `end`.
        activity: multiplies every company's weekly chance of a usage row (capped at 0.95).
            1.0 gives ~5 usage rows per company (the bundled 5,200-company sample, ~25k rows);
            the 1M-company benchmark uses 4.0 (~20 rows per company, ~20M rows).
        row_group_rows: least rows per Parquet row group / CSV write (groups hold whole blocks of
            1000 companies); it bounds memory and never changes the data.
    """
    _check_args(companies, weeks, fmt=fmt, activity=activity, row_group_rows=row_group_rows)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = industry_vocabulary()
    first_monday = _last_monday(end) - timedelta(weeks=weeks - 1)
    c = _draw_companies(rng, companies, weeks=weeks, activity=activity, vocab=vocab)
    customers = _company_frame(c, vocab, first_monday=first_monday, customers=True)
    free = _company_frame(c, vocab, first_monday=first_monday, customers=False)
    noncustomers = _add_twins(rng, free, companies=companies)
    paths = tuple(out / f"{name}.{fmt}" for name in ("customers", "noncustomers", "usage_actions"))
    _write_table(customers, paths[0], schema=CUSTOMER_SCHEMA)
    _write_table(noncustomers, paths[1], schema=NONCUSTOMER_SCHEMA)
    blocks = (
        _usage_block(c, b, seed=seed, weeks=weeks, first_monday=first_monday)
        for b in range(-(-companies // _BLOCK))
    )
    usage_rows = _write_usage(_batches(blocks, row_group_rows), paths[2])
    return SampleSummary(customers.height, noncustomers.height, usage_rows, paths)
