-- Deduplication: one row per company and one usage row per company and week.
--
-- Strategy "most-complete-wins" (documented in README.md, counted in quality.json):
-- 1. Rows that failed validation (`problem` is not NULL) never reach these tables.
-- 2. Exact duplicate rows are dropped.
-- 3. Rows sharing a company id: the one with the most non-null fields wins; ties go to the
--    earliest CLOSEDATE (customers), then the earliest row in the file.
-- 4. An id in both company files is a customer: the customer record wins.
-- 5. Usage rows sharing (id, week): the one with the most actions wins (a re-delivered week
--    that was topped up), ties to the later row in the file.

-- name: valid_company_rows
-- The valid rows of both company files, typed and read once (the checks are views), with the
-- ids on more than one valid row of their file: usually a handful, and the only rows that
-- need the most-complete-wins ranking and the duplicate counts.
create or replace temp table company_rows as
select 'customers' as file, _row, id, closedate, mrr, alexa_rank, employee_range, industry
from customers_checked
where problem is null
union all
select 'noncustomers', _row, id, null, null, alexa_rank, employee_range, industry
from noncustomers_checked
where problem is null

-- name: repeated_company_ids
-- Ids on more than one valid row of their company file.
create or replace temp table repeated_company_ids as
select file, id from company_rows group by file, id having count(*) > 1

-- name: dedupe_customers
-- One row per customer id, by the most-complete-wins rule (ranked where an id repeats).
create or replace temp table customers as
with rows as materialized (
    select * exclude (file) from company_rows where file = 'customers'
)
select id, closedate, mrr, alexa_rank, employee_range, industry
from rows
anti join (select id from repeated_company_ids where file = 'customers') using (id)
union all
select id, closedate, mrr, alexa_rank, employee_range, industry
from rows
semi join (select id from repeated_company_ids where file = 'customers') using (id)
qualify row_number() over (
    partition by id
    order by
        (mrr is not null)::int + (alexa_rank is not null)::int
        + (employee_range is not null)::int + (industry is not null)::int desc,
        closedate,
        _row
) = 1

-- name: dedupe_noncustomers
-- One row per free-tier company id not also in customers, by the most-complete-wins rule
-- (ranked where an id repeats).
create or replace temp table noncustomers as
with rows as materialized (
    select n.*
    from company_rows as n
    anti join customers as c using (id)
    where n.file = 'noncustomers'
)
select id, alexa_rank, employee_range, industry
from rows
anti join (select id from repeated_company_ids where file = 'noncustomers') using (id)
union all
select id, alexa_rank, employee_range, industry
from rows
semi join (select id from repeated_company_ids where file = 'noncustomers') using (id)
qualify row_number() over (
    partition by id
    order by
        (alexa_rank is not null)::int + (employee_range is not null)::int
        + (industry is not null)::int desc,
        _row
) = 1

-- name: company_duplicates
-- Count what deduplication resolved in the company files, per file: only the rows of
-- repeated ids can be exact or conflicting duplicates.
with
    repeated as (
        select r.*
        from company_rows as r
        semi join repeated_company_ids as k using (file, id)
    ),
    resolved as (
        select
            file,
            count(*) - count(distinct (id, closedate, mrr, alexa_rank, employee_range, industry))
                as exact_duplicates,
            count(distinct (id, closedate, mrr, alexa_rank, employee_range, industry))
                - count(distinct id) as conflicting_duplicates
        from repeated
        group by file
    ),
    counted as (
        select file, count(*) as valid_rows from company_rows group by file
    ),
    also as (
        select 'noncustomers' as file, count(distinct id) as also_customers
        from company_rows
        semi join customers using (id)
        where file = 'noncustomers'
    )
select
    f.file,
    coalesce(c.valid_rows, 0) as valid_rows,
    coalesce(r.exact_duplicates, 0) as exact_duplicates,
    coalesce(r.conflicting_duplicates, 0) as conflicting_duplicates,
    coalesce(a.also_customers, 0) as also_customers
from (values ('customers'), ('noncustomers')) as f(file)
left join counted as c using (file)
left join resolved as r using (file)
left join also as a using (file)
order by f.file

-- name: build_companies
-- Every company once: customers with their CLOSEDATE, free-tier companies without one.
create or replace temp table companies as
select id, closedate, true as is_customer, alexa_rank, employee_range, industry
from customers
union all
select id, null::date, false, alexa_rank, employee_range, industry
from noncustomers

-- name: summarise_usage
-- One pass over the valid usage rows, per company: rows, a bitmask of its weeks (more rows
-- than distinct weeks means a repeated week; grouping every (id, week) instead would cost a
-- hash table of all rows), first and last weeks, all-zero weeks, weeks at or after its close,
-- and the last active week complete at $as_of (NULL without one). `bad_rows` counts rows
-- that fail validation: while usage_rejects is still empty (assume_usage_valid) they are in
-- the pass, and build.py redoes it without them when there are any.
create or replace temp table usage_by_company as
select
    u.id,
    count(*) as rows,
    sum((not u.ok)::integer) as bad_rows,
    bit_count(bit_or(1::hugeint << (((u.week_start - date '2000-01-03') // 7) % 120)::hugeint))
        as distinct_weeks_at_most,
    min(u.week_start) as first_week_start,
    min(u.week_end) as first_week_end,
    max(u.week_end) as last_week_end,
    sum((u.ACTIONS_CRM_CONTACTS + u.ACTIONS_CRM_COMPANIES + u.ACTIONS_CRM_DEALS
        + u.ACTIONS_EMAIL = 0)::integer) as zero_rows,
    sum((u.week_end >= c.closedate)::integer) as rows_at_or_after_close,
    max(case
        when u.week_end <= $as_of::date
            and u.ACTIONS_CRM_CONTACTS + u.ACTIONS_CRM_COMPANIES + u.ACTIONS_CRM_DEALS
            + u.ACTIONS_EMAIL > 0
            then u.week_end
    end) as last_active_week_end_at_as_of
from usage_valid as u
left join customers as c using (id)
group by u.id

-- name: count_bad_usage_rows
-- Rows the optimistic first pass saw that fail validation.
select coalesce(sum(bad_rows), 0) as bad_rows from usage_by_company

-- name: collect_repeated_usage
-- The usage rows of companies with a repeated week (usually none), set aside to resolve.
-- Weeks are told apart modulo 120 in the bitmask, so a history over 120 weeks may bring a
-- company here without a repeat; resolving it then changes nothing.
create or replace temp table usage_repeated as
select * exclude (ok)
from usage_valid
semi join (select id from usage_by_company where rows > distinct_weeks_at_most) using (id)

-- name: repeated_usage_rows
-- How many rows were set aside with a repeated week (usually none).
select count(*) as rows from usage_repeated

-- name: usage_without_repeats
-- Valid usage when no week repeats: the rows as they are, without a union or a join to pass.
create or replace temp view usage as
select * exclude (_row, ok)
from usage_valid

-- name: resolve_usage_duplicates
-- Keep one row per (id, week) of the set-aside rows: the most actions win, ties to the later
-- row in the file.
create or replace temp table usage_resolved as
select *
from usage_repeated
qualify row_number() over (
    partition by id, week_start
    order by
        ACTIONS_CRM_CONTACTS + ACTIONS_CRM_COMPANIES + ACTIONS_CRM_DEALS + ACTIONS_EMAIL desc,
        _row desc
) = 1

-- name: dedupe_usage
-- Valid usage with one row per (id, week): companies without repeats pass straight through.
create or replace temp view usage as
select * exclude (_row, ok)
from usage_valid
anti join (select distinct id from usage_repeated) using (id)
union all
select * exclude (_row)
from usage_resolved

-- name: usage_duplicates
-- Count the repeated (id, week) usage rows: exact copies dropped, conflicting rows resolved.
select
    count(*) - count(distinct (
        id, week_start, ACTIONS_CRM_CONTACTS, ACTIONS_CRM_COMPANIES, ACTIONS_CRM_DEALS,
        ACTIONS_EMAIL, USERS_CRM_CONTACTS, USERS_CRM_COMPANIES, USERS_CRM_DEALS, USERS_EMAIL
    )) as exact_duplicates,
    count(distinct (
        id, week_start, ACTIONS_CRM_CONTACTS, ACTIONS_CRM_COMPANIES, ACTIONS_CRM_DEALS,
        ACTIONS_EMAIL, USERS_CRM_CONTACTS, USERS_CRM_COMPANIES, USERS_CRM_DEALS, USERS_EMAIL
    )) - count(distinct (id, week_start)) as conflicting_duplicates
from usage_repeated

-- Tables dropped once nothing reads them: the feature pass is the build's memory peak, and
-- these hold a row per input company (1M companies: ~150-300 MB beside it).

-- name: drop_customers_checked
-- The typed customer rows, read by deduplication and the quarantine only.
drop table customers_checked

-- name: drop_noncustomers_checked
-- The typed free-tier company rows, read by deduplication and the quarantine only.
drop table noncustomers_checked

-- name: drop_company_rows
-- The valid company rows, read by deduplication and its counts only.
drop table company_rows

-- name: drop_repeated_company_ids
-- The repeated company ids, read by deduplication and its counts only.
drop table repeated_company_ids
