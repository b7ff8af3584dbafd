-- Data-quality profile: what build-features found in the inputs, for quality.json and the
-- Rich table. Every block returns a small result; none changes the data.

-- name: collect_rejects
-- Quarantine every row that failed validation, with its file, row number, column, reason and
-- original values as JSON. Only rejected rows are joined back to the raw input.
create or replace temp table rejects as
with failed as (
    select $customers_file as source_file, r._row, k.problem, to_json(r)::varchar as original
    from raw_customers as r
    join (select _row, problem from customers_checked where problem is not null) as k
        using (_row)
    union all
    select $noncustomers_file, r._row, k.problem, to_json(r)::varchar
    from raw_noncustomers as r
    join (select _row, problem from noncustomers_checked where problem is not null) as k
        using (_row)
    union all
    select $usage_file, r._row, k.problem, to_json(r)::varchar
    from raw_usage as r
    join usage_rejects as k using (_row)
)
select
    source_file,
    _row as row_number,
    split_part(problem, ': ', 1) as "column",
    substr(problem, strpos(problem, ': ') + 2) as reason,
    original
from failed

-- name: write_rejects
-- Write the quarantine, ordered by file and row, to $out.
copy (select * from rejects order by source_file, row_number) to $out (format parquet)

-- name: reject_summary
-- Rejected rows per file and reason, with the first few row numbers to look at.
select
    source_file,
    "column",
    reason,
    count(*) as rows,
    list(row_number order by row_number)[1:5] as first_rows
from rejects
group by all
order by source_file, rows desc, "column"

-- name: input_row_counts
-- Rows read from each input file.
select
    (select count(*) from raw_customers) as customers,
    (select count(*) from raw_noncustomers) as noncustomers,
    (select count(*) from raw_usage) as usage_actions

-- name: missing_by_label
-- Missing firmographics by label (customers vs free-tier companies): where missingness
-- differs sharply, a missingness flag may leak the label (see DATA_CONTRACT.md).
select
    case when is_customer then 'customers' else 'noncustomers' end as companies,
    count(*) as rows,
    count(*) filter (where employee_range is null) as EMPLOYEE_RANGE_missing,
    count(*) filter (where industry is null) as INDUSTRY_missing,
    count(*) filter (where alexa_rank is null) as ALEXA_RANK_missing,
    count(*) filter (where alexa_rank = $no_rank_sentinel::bigint) as ALEXA_RANK_sentinel
from companies
group by all
order by companies

-- name: unseen_employee_ranges
-- EMPLOYEE_RANGE spellings outside the contract's buckets: kept, and mapped to unknown by the
-- encoders at training and scoring time.
select employee_range as value, count(*) as rows
from companies
where employee_range is not null and employee_range not in (select unnest($known_ranges::varchar[]))
group by all
order by rows desc, value

-- name: usage_profile
-- Usage facts: orphan ids, companies without usage, usage at or after close, all-zero weeks.
-- Counted on valid rows, before repeated weeks are resolved.
select
    (select count(*) from usage_by_company anti join companies using (id)) as orphan_ids,
    (select coalesce(sum(rows), 0) from usage_by_company anti join companies using (id))
        as orphan_rows,
    (select coalesce(sum(zero_rows), 0) from usage_by_company) as all_zero_rows,
    (select count(*) from customers anti join usage_by_company using (id))
        as customers_without_usage,
    (select count(*) from noncustomers anti join usage_by_company using (id))
        as noncustomers_without_usage,
    (select count(*) from usage_by_company where rows_at_or_after_close > 0)
        as customers_with_usage_at_or_after_close,
    (select coalesce(sum(rows_at_or_after_close), 0) from usage_by_company)
        as usage_rows_at_or_after_close,
    (
        select count(*)
        from customers as c
        left join usage_by_company as u using (id)
        where u.first_week_end is null or u.first_week_end >= c.closedate
    ) as customers_without_usage_before_close

-- name: customer_profile
-- Customer facts: missing and non-positive MRR (refunds, credits: MRR is never a feature),
-- weekend closes, and the span of CLOSEDATE.
select
    count(*) filter (where mrr is null) as mrr_missing,
    count(*) filter (where mrr <= 0) as mrr_zero_or_negative,
    count(*) filter (where isodow(closedate) in (6, 7)) as weekend_closes,
    min(closedate) as first_close,
    max(closedate) as last_close
from customers

-- name: closes_after_known_until
-- Customers whose CLOSEDATE is after $known_until, the last day the files know conversions
-- for: a mistyped or future close. Flagged, not quarantined: no label looks past that day, so
-- such a company is a free company at every labelled cutoff (as it was when the files ended).
select
    count(*) as closes_after_known_until,
    coalesce(list(id order by id)[1:5], []) as example_ids
from customers
where closedate > $known_until::date
