"""The baselines `bench_build.py` measures hubscore's build against, each in its own process.

- `bare_scan`: read every column of the usage file once: the floor for any reader;
- `naive_features`: the `--as-of` features as one plain DuckDB query over the Parquet files,
  written like hubscore's (zstd Parquet, ordered by id): no validation, quarantine,
  deduplication or profile, and stddev_pop where hubscore keeps exact integer sums;
- `pandas_features`: the same features with idiomatic pandas (what peers typically write).

Neither the naive query nor pandas validates, quarantines, deduplicates or profiles: both do
strictly less work than hubscore. `compare_outputs` counts where their values differ.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from hubscore.core.contract import ALEXA_NO_RANK_SENTINEL

LOOKBACK_DAYS = 91
RECENT_DAYS = 28
NO_RANK = ALEXA_NO_RANK_SENTINEL
OBJECTS = ("CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL")
ACTIONS = tuple(f"ACTIONS_{o}" for o in OBJECTS)
USERS = tuple(f"USERS_{o}" for o in OBJECTS)
USAGE_COLUMNS = ACTIONS + USERS
# One query, as someone who knows DuckDB would write it without hubscore: the complete weeks
# read twice (all history for recency and tenure, the look-back window for the statistics),
# grouped by company, joined to the two company files and written ordered by id.
NAIVE_QUERY = r"""
copy (
    with
        complete as not materialized (
            select
                id,
                WHEN_TIMESTAMP::date as week_start,
                WHEN_TIMESTAMP::date + 6 as week_end,
                ACTIONS_CRM_CONTACTS + ACTIONS_CRM_COMPANIES + ACTIONS_CRM_DEALS + ACTIONS_EMAIL
                    as actions,
                USERS_CRM_CONTACTS + USERS_CRM_COMPANIES + USERS_CRM_DEALS + USERS_EMAIL as users,
                greatest(USERS_CRM_CONTACTS, USERS_CRM_COMPANIES, USERS_CRM_DEALS, USERS_EMAIL)
                    as peak_users,
                COLUMNS('^(ACTIONS|USERS)_')
            from read_parquet($usage)
            where WHEN_TIMESTAMP::date + 6 <= $as_of::date
        ),
        history as (
            select
                id,
                min(week_start) as first_week_start,
                max(case when actions > 0 then week_end end) as last_active_week_end
            from complete
            group by id
        ),
        windowed as (
            select
                id,
                sum(actions) as total_actions,
                sum(users) as total_users,
                sum((actions > 0)::integer) as weeks_active,
                sum(COLUMNS('^(ACTIONS|USERS)_')) as '\0_sum',
                avg(COLUMNS('^(ACTIONS|USERS)_')) as '\0_mean',
                max(COLUMNS('^(ACTIONS|USERS)_')) as '\0_max',
                stddev_pop(COLUMNS('^(ACTIONS|USERS)_')) as '\0_std',
                sum(case when $as_of::date - week_end < 28 then actions else 0 end)
                    as actions_recent,
                sum(case when $as_of::date - week_end between 28 and 55 then actions else 0 end)
                    as actions_prior,
                sum(($as_of::date - week_end < 28 and actions > 0)::integer)
                    as weeks_active_recent,
                min(case when ACTIONS_CRM_CONTACTS > 0 then $as_of::date - week_end end)
                    as CRM_CONTACTS_recency_days,
                min(case when ACTIONS_CRM_COMPANIES > 0 then $as_of::date - week_end end)
                    as CRM_COMPANIES_recency_days,
                min(case when ACTIONS_CRM_DEALS > 0 then $as_of::date - week_end end)
                    as CRM_DEALS_recency_days,
                min(case when ACTIONS_EMAIL > 0 then $as_of::date - week_end end)
                    as EMAIL_recency_days,
                max(case when $as_of::date - week_end < 28 then peak_users end)
                    as peak_users_recent,
                max(case when $as_of::date - week_end between 28 and 55 then peak_users end)
                    as peak_users_prior,
                bool_or($as_of::date - week_end < 28 and ACTIONS_CRM_CONTACTS > 0)::integer
                    + bool_or($as_of::date - week_end < 28 and ACTIONS_CRM_COMPANIES > 0)::integer
                    + bool_or($as_of::date - week_end < 28 and ACTIONS_CRM_DEALS > 0)::integer
                    + bool_or($as_of::date - week_end < 28 and ACTIONS_EMAIL > 0)::integer
                    as objects_recent
            from complete
            where $as_of::date - week_end < 91
            group by id
        ),
        companies as (
            select id, ALEXA_RANK, EMPLOYEE_RANGE, INDUSTRY
            from read_parquet($customers)
            where CLOSEDATE is null or CLOSEDATE > $as_of::date
            union all
            select id, ALEXA_RANK, EMPLOYEE_RANGE, INDUSTRY
            from read_parquet($noncustomers)
        )
    select
        c.id,
        $as_of::date as cutoff,
        c.EMPLOYEE_RANGE,
        c.INDUSTRY,
        nullif(c.ALEXA_RANK, 16000001) as ALEXA_RANK,
        coalesce(c.ALEXA_RANK = 16000001, false)::tinyint as alexa_no_rank,
        coalesce(w.total_actions, 0) as total_actions,
        coalesce(w.total_users, 0) as total_users,
        w.total_actions / nullif(w.total_users, 0) as actions_per_user,
        7 * coalesce(w.weeks_active, 0) as days_active,
        coalesce(w.weeks_active, 0) / 13 as activity_frequency,
        coalesce(COLUMNS('^(ACTIONS|USERS)_.+_(sum|max)$'), 0),
        COLUMNS('^(ACTIONS|USERS)_.+_(mean|std)$'),
        $as_of::date - h.last_active_week_end as recency_days,
        case when h.first_week_start is not null
            then least($as_of::date - h.first_week_start, 91) end as tenure_days,
        coalesce(w.actions_recent, 0) as actions_recent,
        coalesce(w.actions_prior, 0) as actions_prior,
        ln((coalesce(w.actions_recent, 0) + 1) / (coalesce(w.actions_prior, 0) + 1))
            as trend_actions,
        coalesce(w.weeks_active_recent, 0) as weeks_active_recent,
        13 as weeks_observed,
        COLUMNS('_recency_days$'),
        coalesce(w.peak_users_recent, 0) as peak_users_recent,
        coalesce(w.peak_users_prior, 0) as peak_users_prior,
        ln((coalesce(w.peak_users_recent, 0) + 1) / (coalesce(w.peak_users_prior, 0) + 1))
            as trend_users,
        coalesce(w.objects_recent, 0) as objects_recent
    from companies as c
    left join windowed as w using (id)
    left join history as h using (id)
    order by c.id
) to $out (format parquet, compression zstd)
"""


def run_baseline(kind: str, data: Path, as_of: date) -> None:
    """Run one baseline in this (measured) process."""
    if kind == "scan":
        print(bare_scan(data / "usage_actions.parquet"))
    elif kind == "naive":
        naive_features(data, as_of, data / "naive" / "features.parquet")
    else:
        pandas_features(data, as_of, data / "pandas" / "features.parquet")


def naive_features(data: Path, as_of: date, out: Path) -> None:
    """Compute the `--as-of` features with the one naive DuckDB query; write them as Parquet."""
    import duckdb

    out.parent.mkdir(parents=True, exist_ok=True)
    files = {kind: str(data / f"{kind}.parquet") for kind in ("customers", "noncustomers")}
    params = files | {"usage": str(data / "usage_actions.parquet"), "as_of": as_of, "out": str(out)}
    with duckdb.connect() as con:
        con.execute(NAIVE_QUERY, params)


def bare_scan(usage: Path) -> tuple[Any, ...] | None:
    """Read every column of the usage file once and fold it into a handful of sums."""
    import duckdb

    query = """
        select
            count(*), sum(id), sum(epoch_ms(WHEN_TIMESTAMP)),
            sum(ACTIONS_CRM_CONTACTS), sum(ACTIONS_CRM_COMPANIES),
            sum(ACTIONS_CRM_DEALS), sum(ACTIONS_EMAIL),
            sum(USERS_CRM_CONTACTS), sum(USERS_CRM_COMPANIES),
            sum(USERS_CRM_DEALS), sum(USERS_EMAIL)
        from read_parquet($src)
    """
    with duckdb.connect() as con:
        return con.execute(query, {"src": str(usage)}).fetchone()


def pandas_features(data: Path, as_of: date, out: Path) -> None:
    """Compute the `--as-of` features with idiomatic pandas and write them as Parquet."""
    import numpy as np
    import pandas as pd

    cutoff = pd.Timestamp(as_of)
    usage = pd.read_parquet(data / "usage_actions.parquet")
    usage["week_end"] = usage["WHEN_TIMESTAMP"] + pd.Timedelta(days=6)
    usage = usage[usage["week_end"] <= cutoff]  # only weeks complete at the cutoff are known
    usage = usage.assign(
        days_back=(cutoff - usage["week_end"]).dt.days,
        actions=usage[list(ACTIONS)].sum(axis=1),
        users=usage[list(USERS)].sum(axis=1),
    )
    history = usage.groupby("id").agg(first_week_start=("WHEN_TIMESTAMP", "min"))
    history["last_active_week_end"] = (
        usage.loc[usage["actions"] > 0].groupby("id")["week_end"].max()
    )
    window = usage[usage["days_back"] < LOOKBACK_DAYS]
    recent = window["days_back"] < RECENT_DAYS
    prior = ~recent & (window["days_back"] < 2 * RECENT_DAYS)
    peak_users = window[list(USERS)].max(axis=1)
    used = {o: window[f"ACTIONS_{o}"] > 0 for o in OBJECTS}
    window = window.assign(
        active=(window["actions"] > 0).astype("int64"),
        actions_recent=window["actions"].where(recent, 0),
        actions_prior=window["actions"].where(prior, 0),
        active_recent=((window["actions"] > 0) & recent).astype("int64"),
        peak_users_recent=peak_users.where(recent),
        peak_users_prior=peak_users.where(prior),
        **{f"{o}_recency_days": window["days_back"].where(used[o]) for o in OBJECTS},
        **{f"{o}_recent": recent & used[o] for o in OBJECTS},
    )
    grouped = window.groupby("id")
    stats = {f"{c}_{s}": (c, s) for c in USAGE_COLUMNS for s in ("sum", "mean", "max")}
    aggregated = grouped.agg(
        total_actions=("actions", "sum"),
        total_users=("users", "sum"),
        weeks_active=("active", "sum"),
        actions_recent=("actions_recent", "sum"),
        actions_prior=("actions_prior", "sum"),
        weeks_active_recent=("active_recent", "sum"),
        peak_users_recent=("peak_users_recent", "max"),
        peak_users_prior=("peak_users_prior", "max"),
        **{f"{o}_recency_days": (f"{o}_recency_days", "min") for o in OBJECTS},
        **{f"{o}_recent": (f"{o}_recent", "any") for o in OBJECTS},
        **stats,
    ).join(grouped[list(USAGE_COLUMNS)].std(ddof=0).add_suffix("_std"))
    features = companies_at(data, as_of).join(aggregated, on="id").join(history, on="id")
    write_pandas_features(finish_features(features, cutoff, np, pd), out)


def companies_at(data: Path, as_of: date) -> Any:
    """Return the companies not yet converted at `as_of`, one row per id (no other dedupe)."""
    import pandas as pd

    firmographics = ["id", "ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY"]
    customers = pd.read_parquet(data / "customers.parquet", columns=[*firmographics, "CLOSEDATE"])
    customers = customers.dropna(subset=["id"]).drop_duplicates("id")
    free = pd.read_parquet(data / "noncustomers.parquet", columns=firmographics)
    free = free.dropna(subset=["id"]).drop_duplicates("id")
    free = free[~free["id"].isin(customers["id"])]
    closedate = pd.to_datetime(customers["CLOSEDATE"])
    open_customers = customers[closedate.isna() | (closedate > pd.Timestamp(as_of))]
    return pd.concat([open_customers[firmographics], free], ignore_index=True)


def finish_features(features: Any, cutoff: Any, np: Any, pd: Any) -> Any:
    """Fill companies without usage, derive the ratios and history features, order the columns."""
    counts = [
        "total_actions", "total_users", "weeks_active", "actions_recent", "actions_prior",
        "weeks_active_recent", *(f"{c}_{s}" for c in USAGE_COLUMNS for s in ("sum", "max")),
    ]  # fmt: skip
    features[counts] = features[counts].fillna(0).astype("int64")
    rank = features["ALEXA_RANK"]
    features["alexa_no_rank"] = (rank == NO_RANK).astype("int8")
    features["ALEXA_RANK"] = rank.mask(rank == NO_RANK)
    features["cutoff"] = cutoff
    features["actions_per_user"] = features["total_actions"] / features["total_users"].replace(
        0, np.nan
    )
    features["objects_recent"] = sum(
        features[f"{o}_recent"].fillna(False).astype("int64") for o in OBJECTS
    )
    for peak in ("peak_users_recent", "peak_users_prior"):
        features[peak] = features[peak].fillna(0).astype("int64")
    features["trend_users"] = np.log(
        (features["peak_users_recent"] + 1) / (features["peak_users_prior"] + 1)
    )
    features["days_active"] = 7 * features["weeks_active"]
    features["activity_frequency"] = features["weeks_active"] / (LOOKBACK_DAYS / 7)
    features["recency_days"] = (cutoff - features["last_active_week_end"]).dt.days
    tenure = (cutoff - features["first_week_start"]).dt.days
    features["tenure_days"] = tenure.clip(upper=LOOKBACK_DAYS)  # capped like hubscore's
    features["trend_actions"] = np.log(
        (features["actions_recent"] + 1) / (features["actions_prior"] + 1)
    )
    stats = [f"{c}_{s}" for c in USAGE_COLUMNS for s in ("sum", "mean", "max", "std")]
    columns = [
        "id", "cutoff", "EMPLOYEE_RANGE", "INDUSTRY", "ALEXA_RANK", "alexa_no_rank",
        "total_actions", "total_users", "actions_per_user", "days_active", "activity_frequency",
        *stats, "recency_days", "tenure_days", "actions_recent", "actions_prior",
        "trend_actions", "weeks_active_recent", *(f"{o}_recency_days" for o in OBJECTS),
        "peak_users_recent", "peak_users_prior", "trend_users", "objects_recent",
    ]  # fmt: skip
    return features[columns].sort_values("id", kind="stable")


def write_pandas_features(features: Any, out: Path) -> None:
    """Write the pandas features like hubscore does (zstd Parquet, no index)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    features.to_parquet(out, index=False, compression="zstd")


def compare_outputs(data: Path, baseline: str) -> dict[str, Any]:
    """Count, per feature, the companies whose baseline value differs from hubscore's."""
    import numpy as np
    import pandas as pd

    hub = pd.read_parquet(data / "build" / "features.parquet")
    theirs = pd.read_parquet(data / baseline / "features.parquet")
    joined = hub.merge(theirs, on="id", suffixes=("", "_theirs"))
    differing: dict[str, int] = {}
    for column in [c for c in hub.columns.drop(["id", "cutoff"]) if c in theirs.columns]:
        a, b = joined[column], joined[f"{column}_theirs"]
        if pd.api.types.is_numeric_dtype(a):
            x, y = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
            same = np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            same = ((a == b) | (a.isna() & b.isna())).to_numpy()
        differing[column] = int((~same).sum())
    return {
        "hubscore_rows": len(hub),
        "baseline_rows": len(theirs),
        "joined_rows": len(joined),
        "rows_differing_by_feature": {k: v for k, v in differing.items() if v},
        "note": f"differences come from what {baseline} skips: rejected, repeated or twin rows",
    }
