"""The sample generator writes files with every property DATA_CONTRACT.md promises."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from hubscore.core.errors import ConfigError
from hubscore.dev.sample import (
    CUSTOMER_COLUMNS,
    EMPLOYEE_RANGES,
    NO_RANK,
    NONCUSTOMER_COLUMNS,
    USAGE_COLUMNS,
    SampleSummary,
    generate_sample,
)

COMPANIES = 3000
LARGE = 15_000
FIRST_CUTOFF = date(2025, 8, 31)  # the first Sunday with 13 complete weeks of usage behind it
HORIZON = timedelta(days=30)
WEEKS = 78
END = date(2026, 11, 23)
LAST_MONDAY = date(2026, 11, 23)
FIRST_MONDAY = LAST_MONDAY - timedelta(weeks=WEEKS - 1)
ACTIONS = [c for c in USAGE_COLUMNS if c.startswith("ACTIONS_")]
USERS = [c for c in USAGE_COLUMNS if c.startswith("USERS_")]


@dataclass(frozen=True)
class Sample:
    """One generated CSV sample: its summary, raw bytes and parsed frames."""

    summary: SampleSummary
    raw: dict[str, bytes]
    customers: pl.DataFrame
    noncustomers: pl.DataFrame
    usage: pl.DataFrame


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, null_values=[""], infer_schema_length=None)


def _load(summary: SampleSummary) -> Sample:
    out = summary.paths[0].parent
    usage = _read(out / "usage_actions.csv").with_columns(
        week=pl.col("WHEN_TIMESTAMP").str.to_datetime("%Y-%m-%d %H:%M:%S%.3f").dt.date()
    )
    return Sample(
        summary=summary,
        raw={p.stem: p.read_bytes() for p in summary.paths},
        customers=_read(out / "customers.csv").with_columns(pl.col("CLOSEDATE").str.to_date()),
        noncustomers=_read(out / "noncustomers.csv"),
        usage=usage,
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    out = tmp_path_factory.mktemp("sample")
    return _load(generate_sample(out, companies=COMPANIES, weeks=WEEKS, end=END))


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """A sample large enough that rates by week, bucket or rank are not noise."""
    out = tmp_path_factory.mktemp("large")
    return _load(generate_sample(out, companies=LARGE, weeks=WEEKS, end=END))


@pytest.fixture(scope="module")
def customer_usage(large: Sample) -> pl.DataFrame:
    """Customer usage rows with `lead`: whole weeks from the row's Monday to CLOSEDATE."""
    return large.usage.join(large.customers.select("id", "CLOSEDATE"), on="id").with_columns(
        lead=(pl.col("CLOSEDATE") - pl.col("week")).dt.total_days() // 7,
        total=pl.sum_horizontal(ACTIONS),
    )


# --- files and encoding ---------------------------------------------------------------------


def test_writes_three_files_and_summary_counts_rows(sample: Sample) -> None:
    assert [p.name for p in sample.summary.paths] == [
        "customers.csv",
        "noncustomers.csv",
        "usage_actions.csv",
    ]
    assert sample.summary.customers == sample.customers.height
    assert sample.summary.noncustomers == sample.noncustomers.height
    assert sample.summary.usage_rows == sample.usage.height


def test_leaves_no_temp_files_behind(sample: Sample) -> None:
    folder = sample.summary.paths[0].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in sample.summary.paths)


def test_headers_list_contract_columns_in_order(sample: Sample) -> None:
    headers = {name: raw.split(b"\n", 1)[0].decode() for name, raw in sample.raw.items()}
    assert headers["customers"] == ",".join(CUSTOMER_COLUMNS)
    assert headers["noncustomers"] == ",".join(NONCUSTOMER_COLUMNS)
    assert headers["usage_actions"] == ",".join(USAGE_COLUMNS)
    assert CUSTOMER_COLUMNS[0] == "CLOSEDATE"
    assert NONCUSTOMER_COLUMNS[-1] == CUSTOMER_COLUMNS[-1] == "id"


def test_csv_is_plain_ascii_with_lf_line_endings(sample: Sample) -> None:
    for raw in sample.raw.values():
        assert raw.isascii()
        assert b"\r" not in raw
        assert not raw.startswith(b"\xef\xbb\xbf")
        assert raw.endswith(b"\n")


def test_text_nulls_are_quoted_empty_strings(sample: Sample) -> None:
    lines = sample.raw["noncustomers"].decode().splitlines()[1:]
    assert any(',"",' in line for line in lines)
    # Only ALEXA_RANK (first column) is numeric and nullable: no empty unquoted text field.
    assert not any(",," in line for line in lines)


def test_numeric_nulls_are_empty_unquoted_fields(sample: Sample) -> None:
    lines = sample.raw["noncustomers"].decode().splitlines()[1:]
    assert any(line.startswith(",") for line in lines)
    assert not any(line.startswith('""') for line in lines)


def test_employee_range_with_comma_is_quoted(sample: Sample) -> None:
    text = sample.raw["customers"].decode() + sample.raw["noncustomers"].decode()
    assert ',"10,001 or more",' in text
    assert text.count("10,001 or more") == text.count('"10,001 or more"')


def test_text_nulls_read_as_null_with_polars_null_values(sample: Sample) -> None:
    for frame in (sample.customers, sample.noncustomers):
        for column in ("EMPLOYEE_RANGE", "INDUSTRY"):
            values = frame[column].drop_nulls()
            assert (values.str.strip_chars() != "").all()


# --- customers ------------------------------------------------------------------------------


def test_closedate_is_iso_mostly_weekdays_with_some_weekends(sample: Sample) -> None:
    raw_dates = [
        line.split(",", 1)[0] for line in sample.raw["customers"].decode().splitlines()[1:]
    ]
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) for d in raw_dates)
    weekend = (sample.customers["CLOSEDATE"].dt.weekday() >= 6).mean()
    assert 0 < weekend < 0.1  # type: ignore[operator]


def test_closedates_spread_over_history_and_beyond_it(sample: Sample) -> None:
    close = sample.customers["CLOSEDATE"]
    months = close.dt.strftime("%Y-%m").n_unique()
    assert months >= 15
    assert (close < FIRST_MONDAY).sum() >= 1
    assert (close > LAST_MONDAY + timedelta(days=6)).sum() >= 1


def test_mrr_is_float_with_a_few_negative_or_zero(sample: Sample) -> None:
    mrr = sample.customers["MRR"]
    assert mrr.dtype == pl.Float64
    assert mrr.null_count() == 0
    share = (mrr <= 0).mean()
    assert 0 < share < 0.1  # type: ignore[operator]
    assert (mrr < 0).any() and (mrr == 0).any()


def test_about_four_percent_convert_as_in_the_real_files(sample: Sample) -> None:
    rate = sample.customers.height / COMPANIES
    assert 0.028 <= rate <= 0.052


# --- firmographics --------------------------------------------------------------------------


def test_alexa_rank_is_integer_with_the_no_rank_sentinel(sample: Sample) -> None:
    for frame in (sample.customers, sample.noncustomers):
        rank = frame["ALEXA_RANK"].drop_nulls()
        assert rank.dtype == pl.Int64
        assert rank.min() >= 1  # type: ignore[operator]
        assert rank.max() == NO_RANK


def test_sentinel_on_a_third_of_customers_and_two_thirds_of_noncustomers(sample: Sample) -> None:
    cust = (sample.customers["ALEXA_RANK"] == NO_RANK).mean()
    non = (sample.noncustomers["ALEXA_RANK"] == NO_RANK).mean()
    assert 0.2 <= cust <= 0.45  # type: ignore[operator]
    assert 0.55 <= non <= 0.78  # type: ignore[operator]


def test_true_null_alexa_rank_is_far_more_common_among_noncustomers(sample: Sample) -> None:
    non = sample.noncustomers["ALEXA_RANK"].is_null().mean()
    cust = sample.customers["ALEXA_RANK"].is_null().mean()
    assert non >= 0.04  # type: ignore[operator]
    assert cust <= non / 3  # type: ignore[operator]


def test_employee_range_uses_contract_buckets_only(sample: Sample) -> None:
    for frame in (sample.customers, sample.noncustomers):
        assert set(frame["EMPLOYEE_RANGE"].drop_nulls()) <= set(EMPLOYEE_RANGES)
    assert set(sample.noncustomers["EMPLOYEE_RANGE"].drop_nulls()) == set(EMPLOYEE_RANGES)


def test_missing_employee_range_is_rare_for_customers_common_for_free(sample: Sample) -> None:
    cust = sample.customers["EMPLOYEE_RANGE"].is_null().mean()
    non = sample.noncustomers["EMPLOYEE_RANGE"].is_null().mean()
    assert 0 < cust <= 0.08  # type: ignore[operator]
    assert non >= 0.2  # type: ignore[operator]


def _industries(sample: Sample) -> pl.Series:
    return pl.concat([sample.customers["INDUSTRY"], sample.noncustomers["INDUSTRY"]])


def test_industry_is_mostly_missing_with_many_distinct_values(sample: Sample) -> None:
    industry = _industries(sample)
    assert industry.is_null().mean() > 0.6  # type: ignore[operator]
    assert 120 <= industry.drop_nulls().n_unique() <= 220


def test_industry_mixes_upper_snake_codes_and_free_text(sample: Sample) -> None:
    values = set(_industries(sample).drop_nulls())
    assert {"COMPUTER_SOFTWARE", "MARKETING_AND_ADVERTISING", "HIGHER_EDUCATION"} <= values
    assert {"Technology - Software", "Non-Profit/Educational Institution", "Other"} <= values
    codes = [v for v in values if re.fullmatch(r"[A-Z]+(_[A-Z]+)*", v)]
    assert 20 <= len(codes) < len(values) - 50


def test_industry_has_near_duplicates_differing_in_case_or_punctuation(sample: Sample) -> None:
    values = set(_industries(sample).drop_nulls())
    normalised = {re.sub(r"[^a-z0-9]", "", v.lower()) for v in values}
    assert len(values) - len(normalised) >= 15
    assert "realestate" in normalised


def test_some_industry_values_are_truncated_at_40_characters(sample: Sample) -> None:
    lengths = _industries(sample).drop_nulls().str.len_chars()
    assert (lengths == 40).sum() >= 1
    assert lengths.max() == 40


def test_industry_has_a_long_tail_of_rare_values(sample: Sample) -> None:
    counts = _industries(sample).drop_nulls().value_counts()["count"]
    assert (counts <= 2).sum() >= 30


# --- ids ------------------------------------------------------------------------------------


def test_ids_are_integers_and_customers_form_one_contiguous_block(sample: Sample) -> None:
    ids = sample.customers["id"].sort()
    assert ids.dtype == pl.Int64
    assert ids.n_unique() == ids.len()
    assert ids.max() - ids.min() + 1 == ids.len()  # type: ignore[operator]


def test_no_id_is_both_customer_and_noncustomer(sample: Sample) -> None:
    assert not set(sample.customers["id"]) & set(sample.noncustomers["id"])


def test_a_handful_of_noncustomer_ids_appear_twice_with_a_partly_null_twin(sample: Sample) -> None:
    frame = sample.noncustomers
    twice = frame.filter(pl.col("id").is_duplicated())
    assert 2 <= twice["id"].n_unique() <= 15
    assert frame.group_by("id").len()["len"].max() == 2
    for _, rows in twice.group_by("id"):
        filled = rows.select(pl.all().exclude("id").is_not_null().cast(pl.Int32)).sum_horizontal()
        full, twin = rows[int(filled.arg_max())], rows[int(filled.arg_min())]  # type: ignore[arg-type]
        assert int(filled.max()) > int(filled.min())  # type: ignore[arg-type]
        for column in ("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY"):
            if twin[column].item() is not None:
                assert twin[column].item() == full[column].item()


# --- usage ----------------------------------------------------------------------------------


def test_usage_timestamps_are_monday_midnight(sample: Sample) -> None:
    stamps = sample.usage["WHEN_TIMESTAMP"]
    assert stamps.str.contains(r"^\d{4}-\d{2}-\d{2} 00:00:00\.000$").all()
    assert (sample.usage["week"].dt.weekday() == 1).all()


def test_usage_spans_the_requested_weeks_ending_at_the_monday_before_end(sample: Sample) -> None:
    weeks = sample.usage["week"]
    assert weeks.max() == LAST_MONDAY
    assert weeks.min() == FIRST_MONDAY
    assert weeks.n_unique() == WEEKS


def test_at_most_one_usage_row_per_company_per_week(sample: Sample) -> None:
    assert not sample.usage.select(pl.struct("id", "week").is_duplicated().any()).item()


def test_usage_rows_come_in_id_then_week_order(sample: Sample) -> None:
    order = sample.usage.select("id", "week")
    assert order.equals(order.sort("id", "week"))


def test_usage_ids_are_known_companies(sample: Sample) -> None:
    known = set(sample.customers["id"]) | set(sample.noncustomers["id"])
    assert set(sample.usage["id"]) <= known


def test_usage_counts_are_nonnegative_integers(sample: Sample) -> None:
    counts = sample.usage.select(ACTIONS + USERS)
    assert all(dtype == pl.Int64 for dtype in counts.dtypes)
    assert counts.null_count().sum_horizontal().item() == 0
    assert counts.min().min_horizontal().item() >= 0


def test_users_are_positive_exactly_when_actions_are(sample: Sample) -> None:
    for actions, users in zip(ACTIONS, USERS, strict=True):
        a, u = sample.usage[actions], sample.usage[users]
        assert ((a > 0) == (u > 0)).all()
        assert (u <= a).all()


def test_usage_counts_are_heavy_tailed(sample: Sample) -> None:
    contacts = sample.usage["ACTIONS_CRM_CONTACTS"].to_numpy()
    assert 500 <= np.percentile(contacts, 99) <= 5000
    assert sample.usage.select(ACTIONS).max().max_horizontal().item() >= 10_000


def test_over_a_third_of_usage_rows_are_all_zeros(sample: Sample) -> None:
    zero = (sample.usage.select(pl.sum_horizontal(ACTIONS)).to_series() == 0).mean()
    assert 0.34 <= zero <= 0.6  # type: ignore[operator]


def test_about_a_third_of_noncustomers_have_no_usage(sample: Sample) -> None:
    ids = set(sample.noncustomers["id"])
    share = len(ids - set(sample.usage["id"])) / len(ids)
    assert 0.25 <= share <= 0.42


def test_almost_every_customer_has_usage(sample: Sample) -> None:
    ids = set(sample.customers["id"])
    assert len(ids & set(sample.usage["id"])) / len(ids) >= 0.95


def test_most_customer_usage_is_after_close_and_heavier(customer_usage: pl.DataFrame) -> None:
    after = customer_usage.filter(pl.col("week") >= pl.col("CLOSEDATE"))
    before = customer_usage.filter(pl.col("week") + pl.duration(days=6) < pl.col("CLOSEDATE"))
    assert after.height / customer_usage.height > 0.6
    assert after["total"].mean() > 1.5 * before["total"].mean()  # type: ignore[operator]


def test_about_a_fifth_of_customers_have_no_usage_before_close(
    large: Sample, customer_usage: pl.DataFrame
) -> None:
    complete_before = customer_usage.filter(
        pl.col("week") + pl.duration(days=6) < pl.col("CLOSEDATE")
    )
    share = 1 - complete_before["id"].n_unique() / large.customers.height
    assert 0.15 <= share <= 0.25


# --- learnable signal -----------------------------------------------------------------------


def test_customer_activity_rises_in_the_weeks_before_close(customer_usage: pl.DataFrame) -> None:
    near = customer_usage.filter(pl.col("lead").is_between(1, 4))
    far = customer_usage.filter(pl.col("lead").is_between(9, 12))
    assert near.height > 1.5 * far.height
    assert near["total"].mean() > far["total"].mean()  # type: ignore[operator]


def test_converters_are_better_ranked(sample: Sample) -> None:
    def ranked(frame: pl.DataFrame) -> float:
        rank = frame["ALEXA_RANK"].drop_nulls()
        return float((rank < NO_RANK).mean())  # type: ignore[arg-type]

    assert ranked(sample.customers) > ranked(sample.noncustomers) + 0.2


def test_converters_were_more_active_before_close_than_free_companies(
    large: Sample, customer_usage: pl.DataFrame
) -> None:
    free = large.usage.filter(pl.col("id").is_in(large.noncustomers["id"].implode()))
    before = customer_usage.filter(pl.col("lead") >= 1)
    free_total = free.select(pl.sum_horizontal(ACTIONS)).to_series()
    assert before["total"].median() > 1.5 * free_total.median()  # type: ignore[operator]


# --- a signal as hard as the real files' -----------------------------------------------------


def _weekly_rates(sample: Sample) -> pl.DataFrame:
    """Per Sunday cutoff with a full look-back and horizon: converters within 30 days, eligible."""
    close = sample.customers["CLOSEDATE"]
    companies = sample.customers.height + sample.noncustomers["id"].n_unique()
    last = LAST_MONDAY + timedelta(days=6) - HORIZON
    cutoffs = pl.date_range(FIRST_CUTOFF, last, "1w", eager=True)
    rows = [
        (((close > s) & (close <= s + HORIZON)).sum(), companies - (close <= s).sum())
        for s in cutoffs
    ]
    return pl.DataFrame(rows, schema=["positives", "eligible"], orient="row")


def test_a_dozen_or_so_converters_a_week_well_under_one_percent(large: Sample) -> None:
    weekly = _weekly_rates(large)
    per_real_file = weekly["positives"].mean() * 5200 / LARGE  # type: ignore[operator]
    assert 8 <= per_real_file <= 16
    assert (weekly["positives"] / weekly["eligible"]).max() < 0.01


def test_later_months_convert_about_1_4_times_as_often_as_earlier_ones(large: Sample) -> None:
    weekly = _weekly_rates(large)
    third = weekly.height // 3

    def rate(frame: pl.DataFrame) -> float:
        return float(frame["positives"].sum() / frame["eligible"].sum())

    assert 1.2 <= rate(weekly.tail(third)) / rate(weekly.head(third)) <= 1.7


def test_about_one_customer_in_six_closes_before_the_first_full_look_back(large: Sample) -> None:
    share = (large.customers["CLOSEDATE"] <= FIRST_CUTOFF).mean()
    assert 0.1 <= share <= 0.22  # type: ignore[operator]


def _conversion_rate_by(large: Sample, key: pl.Expr) -> dict[object, float]:
    companies = pl.concat(
        [
            large.customers.select("EMPLOYEE_RANGE", "ALEXA_RANK", converted=pl.lit(1.0)),
            large.noncustomers.unique("id").select(
                "EMPLOYEE_RANGE", "ALEXA_RANK", converted=pl.lit(0.0)
            ),
        ]
    )
    rates = companies.group_by(key.alias("key")).agg(pl.col("converted").mean()).drop_nulls()
    return dict(zip(rates["key"], rates["converted"], strict=True))


def test_conversion_peaks_at_mid_sized_companies(large: Sample) -> None:
    buckets = pl.col("EMPLOYEE_RANGE").replace_strict(
        {label: k for k, label in enumerate(EMPLOYEE_RANGES)}, default=None
    )
    rate = _conversion_rate_by(large, buckets.clip(0, 7))  # 7: the two largest buckets
    peak = max(rate[3], rate[4], rate[5])
    assert rate[0] < peak / 2
    assert rate[7] < 0.8 * peak
    assert rate[7] < rate[6] < peak


def test_conversion_peaks_at_mid_web_ranks(large: Sample) -> None:
    ranked = pl.when(pl.col("ALEXA_RANK") < NO_RANK).then(pl.col("ALEXA_RANK").log10().floor())
    rate = _conversion_rate_by(large, ranked.clip(2, 6))
    assert rate[4] > 1.4 * rate[2]
    assert rate[4] > 1.4 * rate[6]


def test_recent_activity_finds_converters_but_mostly_lists_free_companies(large: Sample) -> None:
    """Rank by actions in the 4 weeks before a cutoff: trials and heavy free users crowd the top."""
    close = large.customers.select("id", "CLOSEDATE")
    usage = large.usage.join(close, on="id", how="left").with_columns(
        total=pl.sum_horizontal(ACTIONS), end=pl.col("week") + pl.duration(days=6)
    )
    top = LARGE // 50
    precision, recall = [], []
    for cutoff in pl.date_range(FIRST_CUTOFF, date(2026, 10, 18), "4w", eager=True):
        eligible = pl.col("CLOSEDATE").is_null() | (pl.col("CLOSEDATE") > cutoff)
        recent = pl.col("end").is_between(cutoff - timedelta(days=27), cutoff)
        listed = set(
            usage.filter(eligible & recent)
            .group_by("id")
            .agg(pl.col("total").sum())
            .top_k(top, by="total")["id"]
        )
        window = pl.col("CLOSEDATE").is_between(cutoff + timedelta(days=1), cutoff + HORIZON)
        converters = set(close.filter(window)["id"])
        precision.append(len(listed & converters) / top)
        recall.append(len(listed & converters) / len(converters))
    assert np.mean(precision) < 0.08
    assert 0.15 <= np.mean(recall) <= 0.6


# --- determinism, sizes, parquet, arguments ---------------------------------------------------


def test_same_seed_gives_identical_bytes(sample: Sample, tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, companies=COMPANIES, weeks=WEEKS, end=END)
    assert {p.stem: p.read_bytes() for p in summary.paths} == sample.raw


def test_different_seed_gives_different_files(sample: Sample, tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, seed=7, companies=COMPANIES, weeks=WEEKS, end=END)
    for path in summary.paths:
        assert path.read_bytes() != sample.raw[path.stem]


def test_default_size_is_the_real_files_size(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path)
    assert 150 <= summary.customers <= 260
    assert 4900 <= summary.noncustomers <= 5150
    assert 20_000 <= summary.usage_rows <= 30_000


def test_bundled_data_is_the_default_sample(tmp_path: Path) -> None:
    bundled = Path(__file__).parent.parent / "data"
    for path in generate_sample(tmp_path).paths:
        assert (bundled / path.name).read_bytes() == path.read_bytes(), f"regenerate {path.name}"


def test_usage_rows_scale_with_companies_and_activity(sample: Sample, tmp_path: Path) -> None:
    double = generate_sample(tmp_path / "a", companies=2 * COMPANIES, weeks=WEEKS)
    busy = generate_sample(tmp_path / "b", companies=COMPANIES, weeks=WEEKS, activity=2.0)
    assert 1.8 <= double.usage_rows / sample.summary.usage_rows <= 2.2
    assert busy.usage_rows > 1.5 * sample.summary.usage_rows


def test_parquet_files_have_contract_types(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, companies=COMPANIES, fmt="parquet")
    schemas = {p.stem: pq.read_schema(p) for p in summary.paths}
    assert [str(t) for t in schemas["customers"].types] == [
        "date32[day]",
        "double",
        "int64",
        "string",
        "string",
        "int64",
    ]
    assert schemas["noncustomers"].names == list(NONCUSTOMER_COLUMNS)
    assert str(schemas["usage_actions"].field("WHEN_TIMESTAMP").type) == "timestamp[ms]"
    assert {str(t) for t in schemas["usage_actions"].types[2:]} == {"int64"}
    assert schemas["usage_actions"].field("id").type == schemas["customers"].field("id").type


def test_parquet_holds_the_same_data_as_csv(sample: Sample, tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, companies=COMPANIES, fmt="parquet", row_group_rows=2000)
    usage = pl.read_parquet(summary.paths[2])
    expected = sample.usage.drop("week").with_columns(
        pl.col("WHEN_TIMESTAMP").str.to_datetime("%Y-%m-%d %H:%M:%S%.3f", time_unit="ms")
    )
    assert usage.equals(expected)
    assert pl.read_parquet(summary.paths[0]).equals(sample.customers)
    assert pl.read_parquet(summary.paths[1]).equals(sample.noncustomers)


def test_parquet_usage_is_streamed_in_row_groups(tmp_path: Path) -> None:
    small = generate_sample(tmp_path / "a", companies=COMPANIES, fmt="parquet", row_group_rows=1)
    meta = pq.ParquetFile(small.paths[2]).metadata
    assert meta.num_row_groups == COMPANIES // 1000  # one group per block of 1000 companies
    assert meta.num_rows == small.usage_rows
    whole = generate_sample(tmp_path / "b", companies=COMPANIES, fmt="parquet")
    assert pq.ParquetFile(whole.paths[2]).metadata.num_row_groups == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"companies": 10}, {"weeks": 0}, {"fmt": "xlsx"}, {"activity": 0.0}, {"row_group_rows": 0}],
)
def test_bad_arguments_raise_config_error(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="bad sample arguments"):
        generate_sample(tmp_path, **kwargs)  # type: ignore[arg-type]
