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

-- name: usage_timeline
-- First usage week, the last complete day of usage, and the latest CLOSEDATE.
select
    (select min(first_week_start) from usage_by_company) as first_week,
    (select max(last_week_end) from usage_by_company) as usage_end,
    (select max(closedate) from companies) as last_close

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
-- company enters the spine only once its first usage week is complete.
create or replace temp table spine as
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

-- name: spine_is_customer
-- One row per company (the seed's framing): a customer is seen the day before its CLOSEDATE,
-- the last day it was a prospect; a free-tier company at $as_of. Label: is a customer.
create or replace temp table spine as
select
    c.id,
    case when c.is_customer then c.closedate - 1 else $as_of::date end as cutoff,
    c.is_customer::tinyint as label
from companies as c
left join first_usage($eligibility) as f using (id)
where
    $eligibility = 'file_start'
    or f.first_week_end <= case when c.is_customer then c.closedate - 1 else $as_of::date end

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

-- name: history_by_cutoff
-- First usage week and last active week complete at each spine row's own cutoff.
create or replace temp table history as
select
    s.id,
    s.cutoff,
    min(u.week_start) as first_week_start,
    max(case
        when u.ACTIONS_CRM_CONTACTS + u.ACTIONS_CRM_COMPANIES + u.ACTIONS_CRM_DEALS
        + u.ACTIONS_EMAIL > 0
            then u.week_end
    end) as last_active_week_end
from spine as s
join usage as u on u.id = s.id and u.week_end <= s.cutoff
group by s.id, s.cutoff

-- name: no_usage_macro
-- no_usage_default(x): a usage statistic of a spine row without usage in the window. Counts
-- and maxima (integers) are 0; means and standard deviations (doubles) stay NULL. typeof is
-- known when the query is planned, so the case costs nothing per row.
create or replace temp macro no_usage_default(x) as
    case when typeof(x) = 'DOUBLE' then x else coalesce(x, 0) end

-- name: exact_std_macro
-- exact_std_pop(x): the population standard deviation of integer counts from exact (hugeint)
-- sums, so every engine and thread order gives the same bits; NULL without rows.
create or replace temp macro exact_std_pop(x) as
    sqrt((count(x) * sum(x::hugeint * x) - sum(x::hugeint) * sum(x))::double
        / (count(x) * count(x)))

-- name: write_features
-- Aggregate the look-back window's usage per spine row (the recent and prior windows in the
-- same pass), join firmographics and history, and write the feature Parquet with the windows
-- as key-value metadata. Rows outside every window ($window_start, $window_end] are dropped
-- before the join. Without usage in the window, counts are 0 and ratios NULL. Every usage
-- column gets `_sum`, `_mean`, `_max` and `_std`; the union by name with the empty
-- `usage_stat_layout` (build.py registers it from the feature contract) puts those in the
-- contract's order: a usage column's four statistics side by side.
-- Standard deviations come from exact integer sums (`exact_std_pop`), not stddev_pop: its
-- running update rounds differently with the order rows arrive in (threads, Spark
-- partitions); this does not.
copy (
    with
        scoped as (
            select
                s.id,
                s.cutoff,
                s.cutoff - u.week_end < $recent_days::integer as in_recent,
                s.cutoff - u.week_end >= $recent_days::integer
                and s.cutoff - u.week_end < 2 * $recent_days::integer as in_prior,
                u.ACTIONS_CRM_CONTACTS + u.ACTIONS_CRM_COMPANIES + u.ACTIONS_CRM_DEALS
                + u.ACTIONS_EMAIL as actions,
                u.USERS_CRM_CONTACTS + u.USERS_CRM_COMPANIES + u.USERS_CRM_DEALS
                + u.USERS_EMAIL as users,
                COLUMNS('^(ACTIONS|USERS)_')
            from spine as s
            join (
                select *
                from usage
                where week_end > $window_start::date and week_end <= $window_end::date
            ) as u
                on u.id = s.id
                and u.week_end <= s.cutoff
                and s.cutoff - u.week_end < $lookback_days::integer
        ),
        aggregated as (
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
                sum((in_recent and actions > 0)::integer)::bigint as weeks_active_recent
            from scoped
            group by id, cutoff
        ),
        ordered as (from usage_stat_layout union all by name from aggregated),
        -- Week ends in (cutoff - look-back, cutoff] from the files' first one on.
        observed as (
            select
                cutoff,
                case when cutoff >= $first_week_end::date
                    then (cutoff - $first_week_end::date) // 7 + 1 - greatest(0, 1 + floor(
                        (cutoff - $first_week_end::date - $lookback_days::integer) / 7
                    )::integer)
                    else 0
                end as weeks_observed
            from (select distinct cutoff from spine)
        )
    select
        s.*,
        c.employee_range as EMPLOYEE_RANGE,
        c.industry as INDUSTRY,
        nullif(c.alexa_rank, $no_rank_sentinel::bigint) as ALEXA_RANK,
        coalesce(c.alexa_rank = $no_rank_sentinel::bigint, false)::tinyint as alexa_no_rank,
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
            then least(s.cutoff - h.first_week_start, $lookback_days::integer) end as tenure_days,
        coalesce(a.actions_recent, 0) as actions_recent,
        coalesce(a.actions_prior, 0) as actions_prior,
        ln((coalesce(a.actions_recent, 0) + 1) / (coalesce(a.actions_prior, 0) + 1))
            as trend_actions,
        coalesce(a.weeks_active_recent, 0) as weeks_active_recent,
        o.weeks_observed
    from spine as s
    join companies as c using (id)
    left join history as h using (id, cutoff)
    left join ordered as a using (id, cutoff)
    join observed as o using (cutoff)
    order by s.cutoff, s.id
) to $out (format parquet, compression zstd, kv_metadata {
    hubscore_version: $hubscore_version,
    target: $target,
    horizon_days: $horizon_days_text,
    lookback_days: $lookback_days_text,
    recent_days: $recent_days_text,
    as_of: $as_of_text,
    features_version: $features_version_text
})
