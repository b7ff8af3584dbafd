-- Validation: type and domain checks on the raw inputs.
--
-- `raw_customers`, `raw_noncustomers` and `raw_usage` are registered by hubscore/build.py from
-- CSV (every column read as text) or Parquet (typed), with `_row`, the 1-based data row number.
-- Columns are matched by name; DuckDB identifiers are case-insensitive. Each `*_checked` table
-- keeps every input row, typed, with `problem` = '<column>: <reason>' for the first failed check
-- (NULL when the row is good). Empty and whitespace-only text is NULL, as in the encoders.

-- name: check_customers
-- Type customer rows; CLOSEDATE and id are required, ALEXA_RANK is a positive integer or empty.
-- A table: deduplication, its counts and the quarantine each read it (company files are small
-- beside usage).
create or replace temp table customers_checked as
with typed as (
    select
        r._row,
        try_cast(r.id as bigint) as id,
        try_cast(r.CLOSEDATE as date) as closedate,
        try_cast(r.MRR as double) as mrr,
        try_cast(r.ALEXA_RANK as bigint) as alexa_rank,
        nullif(trim(r.EMPLOYEE_RANGE::varchar), '') as employee_range,
        nullif(trim(r.INDUSTRY::varchar), '') as industry,
        nullif(trim(r.id::varchar), '') as id_text,
        nullif(trim(r.CLOSEDATE::varchar), '') as closedate_text,
        nullif(trim(r.MRR::varchar), '') as mrr_text,
        nullif(trim(r.ALEXA_RANK::varchar), '') as alexa_rank_text
    from raw_customers as r
)
select
    * exclude (id_text, closedate_text, mrr_text, alexa_rank_text),
    case
        when id_text is null then 'id: missing'
        when id is null then 'id: not an integer'
        when closedate_text is null then 'CLOSEDATE: missing'
        when closedate is null then 'CLOSEDATE: not a YYYY-MM-DD date'
        when mrr_text is not null and mrr is null then 'MRR: not a number'
        when alexa_rank_text is not null and alexa_rank is null then 'ALEXA_RANK: not an integer'
        when alexa_rank < 1 then 'ALEXA_RANK: below 1 (1 is the best rank)'
    end as problem
from typed

-- name: check_noncustomers
-- Type free-tier company rows; id is required, ALEXA_RANK is a positive integer or empty. A
-- table, as customers_checked.
create or replace temp table noncustomers_checked as
with typed as (
    select
        r._row,
        try_cast(r.id as bigint) as id,
        try_cast(r.ALEXA_RANK as bigint) as alexa_rank,
        nullif(trim(r.EMPLOYEE_RANGE::varchar), '') as employee_range,
        nullif(trim(r.INDUSTRY::varchar), '') as industry,
        nullif(trim(r.id::varchar), '') as id_text,
        nullif(trim(r.ALEXA_RANK::varchar), '') as alexa_rank_text
    from raw_noncustomers as r
)
select
    * exclude (id_text, alexa_rank_text),
    case
        when id_text is null then 'id: missing'
        when id is null then 'id: not an integer'
        when alexa_rank_text is not null and alexa_rank is null then 'ALEXA_RANK: not an integer'
        when alexa_rank < 1 then 'ALEXA_RANK: below 1 (1 is the best rank)'
    end as problem
from typed

-- name: type_usage
-- Cast weekly usage rows to their types; a value that does not parse becomes NULL here and is
-- named by check_usage. A view: on the nightly path it streams over a large Parquet file.
-- `ok` is a few whole-row tests that pass a good row (nearly every row is good): an id, a
-- Monday-midnight week (the epoch began on a Thursday, so a Monday is 4 days past a whole
-- number of weeks), and per object 0 <= USERS <= ACTIONS with USERS > 0 exactly when
-- ACTIONS > 0. A NULL anywhere makes the test NULL, hence not ok. Plain comparisons, the
-- cheapest tests DuckDB runs: every usage row passes through them.
create or replace temp view usage_typed as
with typed as (
    select
        r._row,
        try_cast(r.id as bigint) as id,
        try_cast(r.WHEN_TIMESTAMP as timestamp) as week_ts,
        week_ts::date as week_start,
        week_ts::date + 6 as week_end,
        try_cast(r.ACTIONS_CRM_CONTACTS as bigint) as ACTIONS_CRM_CONTACTS,
        try_cast(r.ACTIONS_CRM_COMPANIES as bigint) as ACTIONS_CRM_COMPANIES,
        try_cast(r.ACTIONS_CRM_DEALS as bigint) as ACTIONS_CRM_DEALS,
        try_cast(r.ACTIONS_EMAIL as bigint) as ACTIONS_EMAIL,
        try_cast(r.USERS_CRM_CONTACTS as bigint) as USERS_CRM_CONTACTS,
        try_cast(r.USERS_CRM_COMPANIES as bigint) as USERS_CRM_COMPANIES,
        try_cast(r.USERS_CRM_DEALS as bigint) as USERS_CRM_DEALS,
        try_cast(r.USERS_EMAIL as bigint) as USERS_EMAIL,
        r.id is null as id_missing,
        r.WHEN_TIMESTAMP is null as week_missing,
        r.ACTIONS_CRM_CONTACTS is null as ACTIONS_CRM_CONTACTS_missing,
        r.ACTIONS_CRM_COMPANIES is null as ACTIONS_CRM_COMPANIES_missing,
        r.ACTIONS_CRM_DEALS is null as ACTIONS_CRM_DEALS_missing,
        r.ACTIONS_EMAIL is null as ACTIONS_EMAIL_missing,
        r.USERS_CRM_CONTACTS is null as USERS_CRM_CONTACTS_missing,
        r.USERS_CRM_COMPANIES is null as USERS_CRM_COMPANIES_missing,
        r.USERS_CRM_DEALS is null as USERS_CRM_DEALS_missing,
        r.USERS_EMAIL is null as USERS_EMAIL_missing
    from raw_usage as r
)
select
    *,
    coalesce(
        id is not null
        and (epoch_us(week_ts) - 4 * 86400000000) % (7 * 86400000000) = 0
        and USERS_CRM_CONTACTS >= 0
        and USERS_CRM_CONTACTS <= ACTIONS_CRM_CONTACTS
        and (USERS_CRM_CONTACTS > 0) = (ACTIONS_CRM_CONTACTS > 0)
        and USERS_CRM_COMPANIES >= 0
        and USERS_CRM_COMPANIES <= ACTIONS_CRM_COMPANIES
        and (USERS_CRM_COMPANIES > 0) = (ACTIONS_CRM_COMPANIES > 0)
        and USERS_CRM_DEALS >= 0
        and USERS_CRM_DEALS <= ACTIONS_CRM_DEALS
        and (USERS_CRM_DEALS > 0) = (ACTIONS_CRM_DEALS > 0)
        and USERS_EMAIL >= 0
        and USERS_EMAIL <= ACTIONS_EMAIL
        and (USERS_EMAIL > 0) = (ACTIONS_EMAIL > 0),
        false
    ) as ok
from typed

-- name: check_usage
-- Name the first failed check of each usage row, in this order: id, a Monday-midnight
-- WHEN_TIMESTAMP, counts present and integer, counts >= 0, USERS <= ACTIONS, USERS > 0 when
-- ACTIONS > 0. Only a row that fails `ok` pays for the column-by-column search.
create or replace temp view usage_checked as
select
    _row,
    case
        when ok then null
        else case
            when id_missing then 'id: missing'
            when id is null then 'id: not an integer'
            when week_missing then 'WHEN_TIMESTAMP: missing'
            when week_ts is null then 'WHEN_TIMESTAMP: not a YYYY-MM-DD HH:MM:SS.mmm timestamp'
            when isodow(week_ts) <> 1 or week_ts <> date_trunc('day', week_ts)
                then 'WHEN_TIMESTAMP: not a Monday at 00:00:00'
            when ACTIONS_CRM_CONTACTS_missing then 'ACTIONS_CRM_CONTACTS: missing'
            when ACTIONS_CRM_CONTACTS is null then 'ACTIONS_CRM_CONTACTS: not an integer'
            when ACTIONS_CRM_COMPANIES_missing then 'ACTIONS_CRM_COMPANIES: missing'
            when ACTIONS_CRM_COMPANIES is null then 'ACTIONS_CRM_COMPANIES: not an integer'
            when ACTIONS_CRM_DEALS_missing then 'ACTIONS_CRM_DEALS: missing'
            when ACTIONS_CRM_DEALS is null then 'ACTIONS_CRM_DEALS: not an integer'
            when ACTIONS_EMAIL_missing then 'ACTIONS_EMAIL: missing'
            when ACTIONS_EMAIL is null then 'ACTIONS_EMAIL: not an integer'
            when USERS_CRM_CONTACTS_missing then 'USERS_CRM_CONTACTS: missing'
            when USERS_CRM_CONTACTS is null then 'USERS_CRM_CONTACTS: not an integer'
            when USERS_CRM_COMPANIES_missing then 'USERS_CRM_COMPANIES: missing'
            when USERS_CRM_COMPANIES is null then 'USERS_CRM_COMPANIES: not an integer'
            when USERS_CRM_DEALS_missing then 'USERS_CRM_DEALS: missing'
            when USERS_CRM_DEALS is null then 'USERS_CRM_DEALS: not an integer'
            when USERS_EMAIL_missing then 'USERS_EMAIL: missing'
            when USERS_EMAIL is null then 'USERS_EMAIL: not an integer'
            when ACTIONS_CRM_CONTACTS < 0 then 'ACTIONS_CRM_CONTACTS: negative'
            when ACTIONS_CRM_COMPANIES < 0 then 'ACTIONS_CRM_COMPANIES: negative'
            when ACTIONS_CRM_DEALS < 0 then 'ACTIONS_CRM_DEALS: negative'
            when ACTIONS_EMAIL < 0 then 'ACTIONS_EMAIL: negative'
            when USERS_CRM_CONTACTS < 0 then 'USERS_CRM_CONTACTS: negative'
            when USERS_CRM_COMPANIES < 0 then 'USERS_CRM_COMPANIES: negative'
            when USERS_CRM_DEALS < 0 then 'USERS_CRM_DEALS: negative'
            when USERS_EMAIL < 0 then 'USERS_EMAIL: negative'
            when USERS_CRM_CONTACTS > ACTIONS_CRM_CONTACTS
                then 'USERS_CRM_CONTACTS: exceeds ACTIONS_CRM_CONTACTS'
            when USERS_CRM_COMPANIES > ACTIONS_CRM_COMPANIES
                then 'USERS_CRM_COMPANIES: exceeds ACTIONS_CRM_COMPANIES'
            when USERS_CRM_DEALS > ACTIONS_CRM_DEALS
                then 'USERS_CRM_DEALS: exceeds ACTIONS_CRM_DEALS'
            when USERS_EMAIL > ACTIONS_EMAIL
                then 'USERS_EMAIL: exceeds ACTIONS_EMAIL'
            when ACTIONS_CRM_CONTACTS > 0 and USERS_CRM_CONTACTS = 0
                then 'USERS_CRM_CONTACTS: zero while ACTIONS_CRM_CONTACTS > 0'
            when ACTIONS_CRM_COMPANIES > 0 and USERS_CRM_COMPANIES = 0
                then 'USERS_CRM_COMPANIES: zero while ACTIONS_CRM_COMPANIES > 0'
            when ACTIONS_CRM_DEALS > 0 and USERS_CRM_DEALS = 0
                then 'USERS_CRM_DEALS: zero while ACTIONS_CRM_DEALS > 0'
            when ACTIONS_EMAIL > 0 and USERS_EMAIL = 0
                then 'USERS_EMAIL: zero while ACTIONS_EMAIL > 0'
        end
    end as problem
from usage_typed

-- name: assume_usage_valid
-- Start with no usage rejects: the first pass over usage (summarise_usage) counts the rows
-- that fail `ok`, and only when there are any is find_usage_rejects run and the pass redone.
-- Most nights this saves a whole pass over a large file.
create or replace temp table usage_rejects (_row bigint, problem varchar)

-- name: find_usage_rejects
-- Name the failed check of every bad usage row.
create or replace temp table usage_rejects as
select _row, problem
from usage_checked
where problem is not null

-- name: valid_usage
-- Usage rows that passed every check (once usage_rejects is complete), typed. `week_ts` (the
-- week's Monday) stays: a filter on it reaches a Parquet scan, which then skips the other
-- columns of the rows it drops.
create or replace temp view usage_valid as
select
    _row,
    id,
    week_ts,
    week_start,
    week_end,
    ACTIONS_CRM_CONTACTS, ACTIONS_CRM_COMPANIES, ACTIONS_CRM_DEALS, ACTIONS_EMAIL,
    USERS_CRM_CONTACTS, USERS_CRM_COMPANIES, USERS_CRM_DEALS, USERS_EMAIL,
    ok
from usage_typed
anti join usage_rejects using (_row)
