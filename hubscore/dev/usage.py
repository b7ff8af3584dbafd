"""The sample's usage rows, drawn block by block so a million companies stream in bounded memory.

Each block of `BLOCK` companies draws from its own stream seeded by `(seed, block)`, so the rows
never depend on how the usage file is chunked.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from hubscore.dev.companies import F64, I64, Bool, Companies, Usage

OBJECTS = ("CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL")
USAGE_COLUMNS = (
    "id",
    "WHEN_TIMESTAMP",
    *(f"ACTIONS_{o}" for o in OBJECTS),
    *(f"USERS_{o}" for o in OBJECTS),
)
BLOCK = 1_000  # companies per independent row-level random stream
_MAX_COUNT = 90_000  # weekly actions per object are capped (an API rate limit, in the story)
_OBJECT_USE_P = np.array([0.92, 0.6, 0.4, 0.55])  # share of portals that ever touch each object
_OBJECT_SHARE = np.array([1.0, 0.35, 0.2, 0.6])  # relative weekly volume per object


def usage_block(
    c: Companies, block: int, *, seed: int, weeks: int, first_monday: date
) -> pl.DataFrame:
    """Draw the usage rows of the `block`-th run of `BLOCK` companies, in id then week order."""
    rng = np.random.default_rng([seed, 1, block])
    sl = slice(block * BLOCK, min((block + 1) * BLOCK, len(c.is_customer)))
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


def _boost(u: Usage, sl: slice, *, lead: I64, pre: Bool) -> F64:
    """Return each (company, week) activity boost: a pre-close ramp or a free trial's burst."""
    week = np.arange(lead.shape[1])[None, :]
    ramp = u.boost[sl, None] * np.exp(-np.maximum(lead, 0) / u.tau[sl, None])
    # A trial rises like a converter's ramp towards a close that never comes, then stops.
    until_end = u.trial_start[sl, None] + u.trial_weeks[sl, None] - 1 - week
    trial = (until_end >= 0) & (until_end < u.trial_weeks[sl, None])
    fade = u.boost[sl, None] * np.exp(-np.maximum(until_end, 0) / u.tau[sl, None])
    out: F64 = np.where(pre, ramp, np.where(trial, fade, 0.0))
    return out


def _row_probability(u: Usage, sl: slice, *, boost: F64, post: Bool) -> F64:
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
