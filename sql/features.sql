-- Point-in-time features: a spine of (company, cutoff) rows, then usage aggregates per row.
--
-- A usage row stamped Monday M covers M..M+6 (`week_end`). At cutoff S (knowledge through the
-- end of day S) only rows with week_end <= S are complete, so only those are seen. For a
-- customer every spine cutoff is before its CLOSEDATE, so no usage at or after conversion can
-- reach a labelled row. Windows are measured back from S on week_end:
--   look-back: S - week_end < $lookback_days     recent: S - week_end < $recent_days
--   prior:     $recent_days <= S - week_end < 2 * $recent_days (trend compares recent to prior)
-- Recency uses all complete history; tenure is capped at the look-back window.
-- weeks_observed counts the look-back's weeks that the files cover (fewer only for cutoffs in
-- a warm-up shorter than the look-back): the share of active weeks is over those weeks.
-- Per object (contacts, companies, deals, email), `<object>_recency_days` is the days since
-- the end of the last week with actions on it inside the look-back (NULL without one);
-- `peak_users_recent` / `_prior` the most users on one object in a week of the recent / prior
-- window (a lower bound of the people using the product), `trend_users` their log ratio, and
-- `objects_recent` how many of the four objects had actions in the recent window.

-- name: usage_timeline
-- First usage week, the last complete day of usage, the latest CLOSEDATE, and every distinct
-- CLOSEDATE (the derived known-until date takes the latest close around the last usage week).
select
    (select min(first_week_start) from usage_by_company) as first_week,
    (select max(last_week_end) from usage_by_company) as usage_end,
    (select max(closedate) from companies) as last_close,
    (
        select coalesce(list(distinct closedate order by closedate), [])
        from companies
        where closedate is not null
    ) as close_dates

-- name: first_usage_macro
-- first_usage(eligibility): each company's first complete usage week, read only when the
-- eligibility is 'first_usage' (with 'file_start' it is empty and never scans usage). The
-- three spines share it.
create or replace temp macro first_usage(eligibility) as table
    select id, min(week_end) as first_week_end
    from usage
    where eligibility = 'first_usage'
    group by id

-- name: spine_converted_within
-- One row per company not yet converted at each cutoff in $cutoffs (Sundays); label 1 when
-- its CLOSEDATE falls in (cutoff, cutoff + $horizon_days]. With $eligibility 'first_usage' a
-- company enters the spine only once its first usage week is complete. A table in the build's
-- own database file (compressed, spilled past the memory budget), in output order: the
-- features are built in chunks of it.
create or replace table spine as
with cutoffs as (select unnest($cutoffs::date[]) as cutoff)
select
    c.id,
    k.cutoff,
    coalesce(c.closedate <= k.cutoff + $horizon_days::integer, false)::tinyint as label
from companies as c
cross join cutoffs as k
left join first_usage($eligibility) as f using (id)
where
    (c.closedate is null or c.closedate > k.cutoff)
    and ($eligibility = 'file_start' or f.first_week_end <= k.cutoff)
order by k.cutoff, c.id

-- name: spine_is_customer
-- One row per company (the seed's framing): a customer is seen the day before its CLOSEDATE,
-- the last day it was a prospect; a free-tier company at $as_of. Label: is a customer. The two
-- sides must differ only by the label, so a customer is a row only when its whole look-back
-- window lies in the files (its cutoff on or after $first_cutoff, as $as_of is: weeks_observed
-- and the tenure cap as for free companies) and before $last_cutoff (a week without usage rows
-- after the files' end would read as inactivity). A close after $as_of is not yet a
-- conversion: that company is free at $as_of. A close between $known_until (the last day
-- conversions are known) and $as_of is neither: the row is left out (and counted).
create or replace table spine as
with sides as (
    select
        c.id,
        case
            when c.closedate <= $known_until::date
                then c.closedate - 1
            when c.closedate is null or c.closedate > $as_of::date
                then $as_of::date
        end as cutoff,
        coalesce(c.closedate <= $known_until::date, false)::tinyint as label
    from companies as c
)
select s.id, s.cutoff, s.label
from sides as s
left join first_usage($eligibility) as f using (id)
where
    s.cutoff between $first_cutoff::date and $last_cutoff::date
    and ($eligibility = 'file_start' or f.first_week_end <= s.cutoff)
order by s.cutoff, s.id

-- name: is_customer_exclusions
-- Customers the is_customer spine leaves out, and why (for the quality report).
select
    count(*) filter (where closedate - 1 < $first_cutoff::date and closedate <= $known_until::date)
        as customers_before_full_lookback,
    count(*) filter (where closedate - 1 > $last_cutoff::date and closedate <= $known_until::date)
        as customers_after_usage_end,
    count(*) filter (where closedate > $known_until::date and closedate <= $as_of::date)
        as customers_closed_after_known_until
from companies
where is_customer and closedate <= greatest($known_until::date, $as_of::date)

-- name: spine_as_of
-- One row per company not yet converted at $as_of, without a label: the nightly scoring input.
create or replace temp table spine as
select c.id, $as_of::date as cutoff
from companies as c
left join first_usage($eligibility) as f using (id)
where
    (c.closedate is null or c.closedate > $as_of::date)
    and ($eligibility = 'file_start' or f.first_week_end <= $as_of::date)

-- name: spine_summary
-- Rows, companies, cutoffs and positives of the spine, for the quality report.
select
    count(*) as rows,
    count(distinct id) as companies,
    count(distinct cutoff) as cutoffs,
    min(cutoff) as first_cutoff,
    max(cutoff) as last_cutoff
from spine

-- name: spine_positives
-- Positive labels in a labelled spine.
select sum(label) as positives from spine

-- name: spine_cutoff_list
-- The spine's distinct cutoffs: partitions of companies share cutoffs, so their counts do not
-- add up; the Spark engine unites these lists instead.
select coalesce(list(distinct cutoff order by cutoff), []) as cutoff_list from spine

-- name: usage_weeks
-- The valid, deduplicated usage rows up to the last cutoff ($window_end), typed and in week
-- order, for the labelled spines: their features are built chunk by chunk, and each chunk
-- reads only its own weeks of this table. A table in the build's database file (compressed).
create or replace table usage_weeks as
select id, week_end, COLUMNS('^(ACTIONS|USERS)_')
from usage
where week_end <= $window_end::date
order by week_end, id

-- name: activity_spans
-- Each active week of a company and the next one (9999-12-31 for its last): at a cutoff in
-- [active_from, active_to) the company's last active week ended on active_from. One pass
-- gives every cutoff's recency, where joining each cutoff to all earlier weeks would not.
create or replace table activity_spans as
select
    id,
    week_end as active_from,
    coalesce(lead(week_end) over (partition by id order by week_end), date '9999-12-31')
        as active_to
from usage_weeks
where ACTIONS_CRM_CONTACTS + ACTIONS_CRM_COMPANIES + ACTIONS_CRM_DEALS + ACTIONS_EMAIL > 0

-- name: spine_cutoff_rows
-- The spine's rows per cutoff, in order: the build splits the spine into chunks that fit the
-- memory budget.
select cutoff, count(*) as rows from spine group by cutoff order by cutoff

-- name: company_id_bounds
-- Company ids at $shares of the way through their sorted list: the bounds of the id ranges a
-- cutoff with more rows than a chunk holds is split into.
select coalesce(quantile_disc(id, $shares::double[]), []) as bounds from companies

-- name: history_at_as_of
-- First usage week and last active week complete at the cutoff, for a spine whose cutoffs are
-- all $as_of: read from the per-company summary, without another pass over usage.
create or replace temp table history as
select
    s.id,
    s.cutoff,
    case when u.first_week_end <= s.cutoff then u.first_week_start end as first_week_start,
    u.last_active_week_end_at_as_of as last_active_week_end
from spine as s
left join usage_by_company as u using (id)

-- name: no_usage_macro
-- no_usage_default(x): a usage statistic of a spine row without usage in the window. Counts
-- and maxima (integers) are 0; means and standard deviations (doubles) stay NULL. typeof is
-- known when the query is planned, so the case costs nothing per row.
create or replace temp macro no_usage_default(x) as
    case when typeof(x) = 'DOUBLE' then x else coalesce(x, 0) end

-- name: exact_std_macro
-- exact_std_pop(x): the population standard deviation of integer counts from exact integer
-- sums (sum of a BIGINT is a HUGEINT), so every engine and thread order gives the same bits.
-- For the usage counts, never NULL in a valid row: count(*) is their count, and `sum(x)` is
-- the very aggregate `_sum` takes (computed once).
create or replace temp macro exact_std_pop(x) as
    sqrt((count(*) * sum(x::hugeint * x) - sum(x) * sum(x))::double / (count(*) * count(*)))

-- name: usage_stats_macro
-- usage_stats(scoped, recent_days): the usage statistics of each (id, cutoff) of `scoped`, a
-- relation of its usage rows inside the look-back window (id, cutoff, week_end and the eight
-- counts). Every window and aggregate of the usage features is here, once: the recent window
-- is cutoff - week_end < recent_days, the prior window the recent_days before it (trend
-- compares the two). Every usage column gets `_sum`, `_mean`, `_max` and `_std`.
-- Standard deviations come from exact integer sums (`exact_std_pop`), not stddev_pop: its
-- running update rounds differently with the order rows arrive in (threads, Spark
-- partitions); this does not.
create or replace temp macro usage_stats(scoped, recent_days) as table
select
    id,
    cutoff,
    sum(actions)::bigint as total_actions,
    sum(users)::bigint as total_users,
    sum((actions > 0)::integer)::bigint as weeks_active,
    sum(COLUMNS('^(ACTIONS|USERS)_'))::bigint as '\0_sum',
    avg(COLUMNS('^(ACTIONS|USERS)_')) as '\0_mean',
    max(COLUMNS('^(ACTIONS|USERS)_')) as '\0_max',
    exact_std_pop(COLUMNS('^(ACTIONS|USERS)_')) as '\0_std',
    sum(case when in_recent then actions else 0 end)::bigint as actions_recent,
    sum(case when in_prior then actions else 0 end)::bigint as actions_prior,
    sum((in_recent and actions > 0)::integer)::bigint as weeks_active_recent,
    min(case when ACTIONS_CRM_CONTACTS > 0 then age end) as CRM_CONTACTS_recency_days,
    min(case when ACTIONS_CRM_COMPANIES > 0 then age end) as CRM_COMPANIES_recency_days,
    min(case when ACTIONS_CRM_DEALS > 0 then age end) as CRM_DEALS_recency_days,
    min(case when ACTIONS_EMAIL > 0 then age end) as EMAIL_recency_days,
    max(case when in_recent then peak_users end) as peak_users_recent,
    max(case when in_prior then peak_users end) as peak_users_prior,
    (bool_or(in_recent and ACTIONS_CRM_CONTACTS > 0)::integer
        + bool_or(in_recent and ACTIONS_CRM_COMPANIES > 0)::integer
        + bool_or(in_recent and ACTIONS_CRM_DEALS > 0)::integer
        + bool_or(in_recent and ACTIONS_EMAIL > 0)::integer) as objects_recent
from (
    select
        id,
        cutoff,
        cutoff - week_end as age,
        cutoff - week_end < recent_days as in_recent,
        cutoff - week_end >= recent_days and cutoff - week_end < 2 * recent_days as in_prior,
        ACTIONS_CRM_CONTACTS + ACTIONS_CRM_COMPANIES + ACTIONS_CRM_DEALS + ACTIONS_EMAIL
            as actions,
        USERS_CRM_CONTACTS + USERS_CRM_COMPANIES + USERS_CRM_DEALS + USERS_EMAIL as users,
        greatest(USERS_CRM_CONTACTS, USERS_CRM_COMPANIES, USERS_CRM_DEALS, USERS_EMAIL)
            as peak_users,
        COLUMNS('^(ACTIONS|USERS)_')
    from query_table(scoped)
)
group by id, cutoff

-- name: feature_rows_macro
-- feature_rows(spine_rows, history_rows, stats_rows, lookback_days, first_week_end,
-- no_rank_sentinel): the feature rows of a spine (id, cutoff[, label]) from its history
-- (first usage week and last active week at each cutoff) and usage statistics, joined to the
-- firmographics. Without usage in the window, counts are 0 and ratios NULL. The union by name
-- with the empty `usage_stat_layout` (build.py registers it from the feature contract) puts
-- the statistics in the contract's order: a usage column's four statistics side by side.
create or replace temp macro feature_rows(
    spine_rows, history_rows, stats_rows, lookback_days, first_week_end, no_rank_sentinel
) as table
with
    ordered as (from usage_stat_layout union all by name from query_table(stats_rows)),
    -- Week ends in (cutoff - look-back, cutoff] from the files' first one on.
    observed as (
        select
            cutoff,
            case when cutoff >= first_week_end
                then (cutoff - first_week_end) // 7 + 1 - greatest(0, 1 + floor(
                    (cutoff - first_week_end - lookback_days) / 7
                )::integer)
                else 0
            end as weeks_observed
        from (select distinct cutoff from query_table(spine_rows))
    )
select
    s.*,
    c.employee_range as EMPLOYEE_RANGE,
    c.industry as INDUSTRY,
    nullif(c.alexa_rank, no_rank_sentinel) as ALEXA_RANK,
    coalesce(c.alexa_rank = no_rank_sentinel, false)::tinyint as alexa_no_rank,
    coalesce(a.total_actions, 0) as total_actions,
    coalesce(a.total_users, 0) as total_users,
    a.total_actions / nullif(a.total_users, 0) as actions_per_user,
    7 * coalesce(a.weeks_active, 0) as days_active,
    coalesce(a.weeks_active, 0) / greatest(o.weeks_observed, 1) as activity_frequency,
    no_usage_default(COLUMNS('^(ACTIONS|USERS)_.+_(sum|mean|max|std)$')),
    s.cutoff - h.last_active_week_end as recency_days,
    -- Capped at the look-back window: uncapped it is a calendar clock (bounded only by the
    -- start of the files), so a model trained on one period would misread the next.
    -- (DuckDB's least() skips NULLs: a company without usage must stay NULL.)
    case when h.first_week_start is not null
        then least(s.cutoff - h.first_week_start, lookback_days) end as tenure_days,
    coalesce(a.actions_recent, 0) as actions_recent,
    coalesce(a.actions_prior, 0) as actions_prior,
    ln((coalesce(a.actions_recent, 0) + 1) / (coalesce(a.actions_prior, 0) + 1))
        as trend_actions,
    coalesce(a.weeks_active_recent, 0) as weeks_active_recent,
    o.weeks_observed,
    a.CRM_CONTACTS_recency_days,
    a.CRM_COMPANIES_recency_days,
    a.CRM_DEALS_recency_days,
    a.EMAIL_recency_days,
    coalesce(a.peak_users_recent, 0) as peak_users_recent,
    coalesce(a.peak_users_prior, 0) as peak_users_prior,
    ln((coalesce(a.peak_users_recent, 0) + 1) / (coalesce(a.peak_users_prior, 0) + 1))
        as trend_users,
    coalesce(a.objects_recent, 0) as objects_recent
from query_table(spine_rows) as s
join companies as c using (id)
left join query_table(history_rows) as h using (id, cutoff)
left join ordered as a using (id, cutoff)
join observed as o using (cutoff)

-- name: write_features
-- The features of an `--as-of` spine (one cutoff) in one pass over the usage rows of its
-- look-back window, written with the windows as key-value metadata. The window is a filter on
-- the week's Monday (`week_ts`), which a Parquet scan applies before reading the other
-- columns; statistics are grouped straight by company, without a join to the spine.
copy (
    with
        scoped as (
            select id, $as_of::date as cutoff, week_end, COLUMNS('^(ACTIONS|USERS)_')
            from usage
            where
                week_ts > ($as_of::date - $lookback_days::integer - 6)::timestamp
                and week_ts <= ($as_of::date - 6)::timestamp
        ),
        stats as (from usage_stats(scoped, $recent_days::integer))
    from feature_rows(
        spine,
        history,
        stats,
        $lookback_days::integer,
        $first_week_end::date,
        $no_rank_sentinel::bigint
    )
    order by cutoff, id
) to $out (format parquet, compression zstd, kv_metadata {
    hubscore_version: $hubscore_version,
    target: $target,
    horizon_days: $horizon_days_text,
    lookback_days: $lookback_days_text,
    recent_days: $recent_days_text,
    as_of: $as_of_text,
    features_version: $features_version_text
})

-- name: feature_chunk
-- The feature rows of one chunk of a labelled spine: its cutoffs in [$cutoff_from,
-- $cutoff_to] and ids in [$id_from, $id_to], in output order. Each usage row of the chunk's
-- weeks meets the chunk's few cutoffs whose look-back window holds it (a join to the spine's
-- rows would hash them all) and is grouped by company and cutoff; the spine's rows keep only
-- their own. History comes from the activity spans and the per-company summary.
with
    chunk as (
        select *
        from spine
        where
            cutoff between $cutoff_from::date and $cutoff_to::date
            and id between $id_from::bigint and $id_to::bigint
    ),
    scoped as (
        select u.id, k.cutoff, u.week_end, COLUMNS('^(ACTIONS|USERS)_')
        from (select distinct cutoff from chunk) as k
        join (
            select *
            from usage_weeks
            where
                week_end > $cutoff_from::date - $lookback_days::integer
                and week_end <= $cutoff_to::date
                and id between $id_from::bigint and $id_to::bigint
        ) as u
            on u.week_end <= k.cutoff
            and u.week_end > k.cutoff - $lookback_days::integer
    ),
    stats as (from usage_stats(scoped, $recent_days::integer)),
    history as (
        select
            s.id,
            s.cutoff,
            case when b.first_week_end <= s.cutoff then b.first_week_start end
                as first_week_start,
            a.active_from as last_active_week_end
        from chunk as s
        left join usage_by_company as b using (id)
        left join (
            select *
            from activity_spans
            where
                active_from <= $cutoff_to::date
                and active_to > $cutoff_from::date
                and id between $id_from::bigint and $id_to::bigint
        ) as a
            on a.id = s.id and a.active_from <= s.cutoff and s.cutoff < a.active_to
    )
from feature_rows(
    chunk,
    history,
    stats,
    $lookback_days::integer,
    $first_week_end::date,
    $no_rank_sentinel::bigint
)
order by cutoff, id
