-- Point-in-time features: a spine of (company, cutoff) rows, then usage aggregates per row.
--
-- A usage row stamped Monday M covers M..M+6 (`week_end`). At cutoff S (knowledge through the
-- end of day S) only rows with week_end <= S are complete, so only those are seen. For a
-- customer every spine cutoff is before its CLOSEDATE, so no usage at or after conversion can
-- reach a labelled row. Windows are measured back from S on week_end:
--   look-back: S - week_end < $lookback_days     recent: S - week_end < $recent_days
--   prior:     $recent_days <= S - week_end < 2 * $recent_days (trend compares recent to prior)
-- Recency and tenure use all complete history, not only the look-back window.

-- name: usage_timeline
-- First usage week, the last complete day of usage, and the latest CLOSEDATE.
select
    (select min(first_week_start) from usage_by_company) as first_week,
    (select max(last_week_end) from usage_by_company) as usage_end,
    (select max(closedate) from companies) as last_close

-- name: spine_converted_within
-- One row per company not yet converted at each cutoff in $cutoffs (Sundays); label 1 when
-- its CLOSEDATE falls in (cutoff, cutoff + $horizon_days]. With $eligibility 'first_usage' a
-- company enters the spine only once its first usage week is complete.
create or replace temp table spine as
with
    cutoffs as (select unnest($cutoffs::date[]) as cutoff),
    first_usage as (
        select id, min(week_end) as first_week_end
        from usage
        where $eligibility = 'first_usage'
        group by id
    )
select
    c.id,
    k.cutoff,
    coalesce(c.closedate <= k.cutoff + $horizon_days::integer, false)::tinyint as label
from companies as c
cross join cutoffs as k
left join first_usage as f using (id)
where
    (c.closedate is null or c.closedate > k.cutoff)
    and ($eligibility = 'file_start' or f.first_week_end <= k.cutoff)

-- name: spine_is_customer
-- One row per company (the seed's framing): a customer is seen the day before its CLOSEDATE,
-- the last day it was a prospect; a free-tier company at $as_of. Label: is a customer.
create or replace temp table spine as
with first_usage as (
    select id, min(week_end) as first_week_end
    from usage
    where $eligibility = 'first_usage'
    group by id
)
select
    c.id,
    case when c.is_customer then c.closedate - 1 else $as_of::date end as cutoff,
    c.is_customer::tinyint as label
from companies as c
left join first_usage as f using (id)
where
    $eligibility = 'file_start'
    or f.first_week_end <= case when c.is_customer then c.closedate - 1 else $as_of::date end

-- name: spine_as_of
-- One row per company not yet converted at $as_of, without a label: the nightly scoring input.
create or replace temp table spine as
with first_usage as (
    select id, min(week_end) as first_week_end
    from usage
    where $eligibility = 'first_usage'
    group by id
)
select c.id, $as_of::date as cutoff
from companies as c
left join first_usage as f using (id)
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

-- name: write_features
-- Aggregate the look-back window's usage per spine row (the recent and prior windows in the
-- same pass), join firmographics and history, and write the feature Parquet with the windows
-- as key-value metadata. Rows outside every window ($window_start, $window_end] are dropped
-- before the join. Without usage in the window, counts are 0 and ratios NULL.
-- Standard deviations come from exact integer sums, not stddev_pop: its running update rounds
-- differently with the order rows arrive in (threads, Spark partitions), this does not.
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
                u.ACTIONS_CRM_CONTACTS,
                u.ACTIONS_CRM_COMPANIES,
                u.ACTIONS_CRM_DEALS,
                u.ACTIONS_EMAIL,
                u.USERS_CRM_CONTACTS,
                u.USERS_CRM_COMPANIES,
                u.USERS_CRM_DEALS,
                u.USERS_EMAIL
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
                sum(ACTIONS_CRM_CONTACTS)::bigint as ACTIONS_CRM_CONTACTS_sum,
                avg(ACTIONS_CRM_CONTACTS) as ACTIONS_CRM_CONTACTS_mean,
                max(ACTIONS_CRM_CONTACTS) as ACTIONS_CRM_CONTACTS_max,
                sqrt((count(ACTIONS_CRM_CONTACTS) * sum(ACTIONS_CRM_CONTACTS::hugeint * ACTIONS_CRM_CONTACTS) - sum(ACTIONS_CRM_CONTACTS::hugeint) * sum(ACTIONS_CRM_CONTACTS))::double
                    / (count(ACTIONS_CRM_CONTACTS) * count(ACTIONS_CRM_CONTACTS))) as ACTIONS_CRM_CONTACTS_std,
                sum(ACTIONS_CRM_COMPANIES)::bigint as ACTIONS_CRM_COMPANIES_sum,
                avg(ACTIONS_CRM_COMPANIES) as ACTIONS_CRM_COMPANIES_mean,
                max(ACTIONS_CRM_COMPANIES) as ACTIONS_CRM_COMPANIES_max,
                sqrt((count(ACTIONS_CRM_COMPANIES) * sum(ACTIONS_CRM_COMPANIES::hugeint * ACTIONS_CRM_COMPANIES) - sum(ACTIONS_CRM_COMPANIES::hugeint) * sum(ACTIONS_CRM_COMPANIES))::double
                    / (count(ACTIONS_CRM_COMPANIES) * count(ACTIONS_CRM_COMPANIES))) as ACTIONS_CRM_COMPANIES_std,
                sum(ACTIONS_CRM_DEALS)::bigint as ACTIONS_CRM_DEALS_sum,
                avg(ACTIONS_CRM_DEALS) as ACTIONS_CRM_DEALS_mean,
                max(ACTIONS_CRM_DEALS) as ACTIONS_CRM_DEALS_max,
                sqrt((count(ACTIONS_CRM_DEALS) * sum(ACTIONS_CRM_DEALS::hugeint * ACTIONS_CRM_DEALS) - sum(ACTIONS_CRM_DEALS::hugeint) * sum(ACTIONS_CRM_DEALS))::double
                    / (count(ACTIONS_CRM_DEALS) * count(ACTIONS_CRM_DEALS))) as ACTIONS_CRM_DEALS_std,
                sum(ACTIONS_EMAIL)::bigint as ACTIONS_EMAIL_sum,
                avg(ACTIONS_EMAIL) as ACTIONS_EMAIL_mean,
                max(ACTIONS_EMAIL) as ACTIONS_EMAIL_max,
                sqrt((count(ACTIONS_EMAIL) * sum(ACTIONS_EMAIL::hugeint * ACTIONS_EMAIL) - sum(ACTIONS_EMAIL::hugeint) * sum(ACTIONS_EMAIL))::double
                    / (count(ACTIONS_EMAIL) * count(ACTIONS_EMAIL))) as ACTIONS_EMAIL_std,
                sum(USERS_CRM_CONTACTS)::bigint as USERS_CRM_CONTACTS_sum,
                avg(USERS_CRM_CONTACTS) as USERS_CRM_CONTACTS_mean,
                max(USERS_CRM_CONTACTS) as USERS_CRM_CONTACTS_max,
                sqrt((count(USERS_CRM_CONTACTS) * sum(USERS_CRM_CONTACTS::hugeint * USERS_CRM_CONTACTS) - sum(USERS_CRM_CONTACTS::hugeint) * sum(USERS_CRM_CONTACTS))::double
                    / (count(USERS_CRM_CONTACTS) * count(USERS_CRM_CONTACTS))) as USERS_CRM_CONTACTS_std,
                sum(USERS_CRM_COMPANIES)::bigint as USERS_CRM_COMPANIES_sum,
                avg(USERS_CRM_COMPANIES) as USERS_CRM_COMPANIES_mean,
                max(USERS_CRM_COMPANIES) as USERS_CRM_COMPANIES_max,
                sqrt((count(USERS_CRM_COMPANIES) * sum(USERS_CRM_COMPANIES::hugeint * USERS_CRM_COMPANIES) - sum(USERS_CRM_COMPANIES::hugeint) * sum(USERS_CRM_COMPANIES))::double
                    / (count(USERS_CRM_COMPANIES) * count(USERS_CRM_COMPANIES))) as USERS_CRM_COMPANIES_std,
                sum(USERS_CRM_DEALS)::bigint as USERS_CRM_DEALS_sum,
                avg(USERS_CRM_DEALS) as USERS_CRM_DEALS_mean,
                max(USERS_CRM_DEALS) as USERS_CRM_DEALS_max,
                sqrt((count(USERS_CRM_DEALS) * sum(USERS_CRM_DEALS::hugeint * USERS_CRM_DEALS) - sum(USERS_CRM_DEALS::hugeint) * sum(USERS_CRM_DEALS))::double
                    / (count(USERS_CRM_DEALS) * count(USERS_CRM_DEALS))) as USERS_CRM_DEALS_std,
                sum(USERS_EMAIL)::bigint as USERS_EMAIL_sum,
                avg(USERS_EMAIL) as USERS_EMAIL_mean,
                max(USERS_EMAIL) as USERS_EMAIL_max,
                sqrt((count(USERS_EMAIL) * sum(USERS_EMAIL::hugeint * USERS_EMAIL) - sum(USERS_EMAIL::hugeint) * sum(USERS_EMAIL))::double
                    / (count(USERS_EMAIL) * count(USERS_EMAIL))) as USERS_EMAIL_std,
                sum(case when in_recent then actions else 0 end)::bigint as actions_recent,
                sum(case when in_prior then actions else 0 end)::bigint as actions_prior,
                sum((in_recent and actions > 0)::integer)::bigint as weeks_active_recent
            from scoped
            group by id, cutoff
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
        coalesce(a.weeks_active, 0) / ($lookback_days::integer / 7.0) as activity_frequency,
        coalesce(a.ACTIONS_CRM_CONTACTS_sum, 0) as ACTIONS_CRM_CONTACTS_sum,
        a.ACTIONS_CRM_CONTACTS_mean,
        coalesce(a.ACTIONS_CRM_CONTACTS_max, 0) as ACTIONS_CRM_CONTACTS_max,
        a.ACTIONS_CRM_CONTACTS_std,
        coalesce(a.ACTIONS_CRM_COMPANIES_sum, 0) as ACTIONS_CRM_COMPANIES_sum,
        a.ACTIONS_CRM_COMPANIES_mean,
        coalesce(a.ACTIONS_CRM_COMPANIES_max, 0) as ACTIONS_CRM_COMPANIES_max,
        a.ACTIONS_CRM_COMPANIES_std,
        coalesce(a.ACTIONS_CRM_DEALS_sum, 0) as ACTIONS_CRM_DEALS_sum,
        a.ACTIONS_CRM_DEALS_mean,
        coalesce(a.ACTIONS_CRM_DEALS_max, 0) as ACTIONS_CRM_DEALS_max,
        a.ACTIONS_CRM_DEALS_std,
        coalesce(a.ACTIONS_EMAIL_sum, 0) as ACTIONS_EMAIL_sum,
        a.ACTIONS_EMAIL_mean,
        coalesce(a.ACTIONS_EMAIL_max, 0) as ACTIONS_EMAIL_max,
        a.ACTIONS_EMAIL_std,
        coalesce(a.USERS_CRM_CONTACTS_sum, 0) as USERS_CRM_CONTACTS_sum,
        a.USERS_CRM_CONTACTS_mean,
        coalesce(a.USERS_CRM_CONTACTS_max, 0) as USERS_CRM_CONTACTS_max,
        a.USERS_CRM_CONTACTS_std,
        coalesce(a.USERS_CRM_COMPANIES_sum, 0) as USERS_CRM_COMPANIES_sum,
        a.USERS_CRM_COMPANIES_mean,
        coalesce(a.USERS_CRM_COMPANIES_max, 0) as USERS_CRM_COMPANIES_max,
        a.USERS_CRM_COMPANIES_std,
        coalesce(a.USERS_CRM_DEALS_sum, 0) as USERS_CRM_DEALS_sum,
        a.USERS_CRM_DEALS_mean,
        coalesce(a.USERS_CRM_DEALS_max, 0) as USERS_CRM_DEALS_max,
        a.USERS_CRM_DEALS_std,
        coalesce(a.USERS_EMAIL_sum, 0) as USERS_EMAIL_sum,
        a.USERS_EMAIL_mean,
        coalesce(a.USERS_EMAIL_max, 0) as USERS_EMAIL_max,
        a.USERS_EMAIL_std,
        s.cutoff - h.last_active_week_end as recency_days,
        s.cutoff - h.first_week_start as tenure_days,
        coalesce(a.actions_recent, 0) as actions_recent,
        coalesce(a.actions_prior, 0) as actions_prior,
        ln((coalesce(a.actions_recent, 0) + 1) / (coalesce(a.actions_prior, 0) + 1))
            as trend_actions,
        coalesce(a.weeks_active_recent, 0) as weeks_active_recent
    from spine as s
    join companies as c using (id)
    left join history as h using (id, cutoff)
    left join aggregated as a using (id, cutoff)
    order by s.cutoff, s.id
) to $out (format parquet, compression zstd, kv_metadata {
    hubscore_version: $hubscore_version,
    target: $target,
    horizon_days: $horizon_days_text,
    lookback_days: $lookback_days_text,
    recent_days: $recent_days_text,
    as_of: $as_of_text
})
