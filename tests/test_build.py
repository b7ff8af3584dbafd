"""build-features: validation, quarantine, dedupe, spines and point-in-time features.

Every test runs the real SQL on a real DuckDB over tiny hand-written CSV files.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from inputs import FIRST_MONDAY, split_csv, week, weekly, write_inputs

from hubscore.core.config import FeaturesConfig
from hubscore.core.contract import RAW_FEATURES
from hubscore.core.errors import SchemaError, ValidationError
from hubscore.features.build import (
    BuildRequest,
    BuildResult,
    build_features,
    dedupe_usage,
    prepare_partition,
)
from hubscore.features.calendar import weekly_cutoffs
from hubscore.features.inputs import INPUT_KINDS, find_input, register_input

CLOSE = FIRST_MONDAY + timedelta(weeks=20, days=2)  # a Wednesday
AS_OF = FIRST_MONDAY + timedelta(weeks=25, days=6)  # a Sunday


def customer(company: int = 1, close: date | str = CLOSE, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "CLOSEDATE": str(close),
        "MRR": 50.0,
        "ALEXA_RANK": 5000,
        "EMPLOYEE_RANGE": "26 to 50",
        "INDUSTRY": "COMPUTER_SOFTWARE",
        "id": company,
    }
    return row | fields


def noncustomer(company: int, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "ALEXA_RANK": 16000001,
        "EMPLOYEE_RANGE": "2 to 5",
        "INDUSTRY": None,
        "id": company,
    }
    return row | fields


OLD_CUSTOMER = customer(99, close=date(2024, 1, 3))
"""Converted before the files start: never in a weekly or as-of spine (files need a row)."""


def run_build(
    folder: Path, *, as_of: date | None = None, **features: Any
) -> tuple[BuildResult, pl.DataFrame]:
    """Build into folder/build and return the result and the feature frame."""
    cfg = dataclasses.replace(FeaturesConfig(), **features)
    result = build_features(BuildRequest(folder, folder / "build", cfg, as_of))
    return result, pl.read_parquet(result.features_path)


@pytest.fixture
def basic(tmp_path: Path) -> Path:
    """One customer and two free companies (one without usage), 30 weeks of usage."""
    return write_inputs(
        tmp_path,
        customers=[customer(1)],
        noncustomers=[noncustomer(2), noncustomer(3)],
        usage=[*weekly(1, 30, actions=10), *weekly(2, 30, actions=3)],
    )


# --- outputs and their contract -------------------------------------------------------------


def published(folder: Path) -> list[str]:
    """Return what a build folder holds, after checking it holds one published set and no
    litter: the outputs link through `.current` to the one folder in `.sets`."""
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [
        ".current",
        ".sets",
    ]
    assert [p.name for p in (folder / ".sets").iterdir()] == [
        (folder / ".current").resolve().name
    ], "one set"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_outputs_are_features_rejects_and_quality(basic: Path) -> None:
    result, features = run_build(basic)
    assert published(basic / "build") == ["features.parquet", "quality.json", "rejects.parquet"]
    assert features.columns == ["id", "cutoff", "label", *RAW_FEATURES]
    assert features.schema["cutoff"] == pl.Date
    assert json.loads(result.quality_path.read_text())["spine"]["target"] == "converted_within"


def test_feature_file_records_its_windows_as_metadata(basic: Path) -> None:
    result, _ = run_build(basic, lookback_days=56, recent_days=14)
    metadata = pq.read_schema(result.features_path).metadata
    assert metadata[b"target"] == b"converted_within"
    assert metadata[b"lookback_days"] == b"56"
    assert metadata[b"recent_days"] == b"14"
    assert metadata[b"horizon_days"] == b"30"


def test_outputs_are_deterministic(basic: Path, tmp_path: Path) -> None:
    first, _ = run_build(basic)
    before = first.features_path.read_bytes()
    second, _ = run_build(basic)
    assert second.features_path.read_bytes() == before


# --- spines and labels ----------------------------------------------------------------------


def test_weekly_cutoffs_are_sundays_with_full_lookback_and_observed_horizon() -> None:
    timeline = {
        "first_week": FIRST_MONDAY,
        "usage_end": FIRST_MONDAY + timedelta(weeks=29, days=6),
        "last_close": None,
    }
    full_warm_up = FeaturesConfig(lookback_days=91, horizon_days=30, warmup_days=91)
    cutoffs = weekly_cutoffs(timeline, full_warm_up)
    assert all(c.isoweekday() == 7 for c in cutoffs)
    assert cutoffs[0] == FIRST_MONDAY + timedelta(days=90)
    assert cutoffs[-1] + timedelta(days=30) <= timeline["usage_end"]
    assert cutoffs[-1] + timedelta(days=37) > timeline["usage_end"]


def test_a_shorter_warm_up_starts_the_cutoffs_earlier() -> None:
    timeline = {
        "first_week": FIRST_MONDAY,
        "usage_end": FIRST_MONDAY + timedelta(weeks=29, days=6),
        "last_close": None,
    }
    full = weekly_cutoffs(timeline, FeaturesConfig(lookback_days=91, warmup_days=91))
    short = weekly_cutoffs(timeline, FeaturesConfig(lookback_days=91, warmup_days=28))
    assert short[0] == FIRST_MONDAY + timedelta(days=27)
    assert short[9:] == full, "nine earlier cutoffs are added, the rest stay"
    longer = weekly_cutoffs(
        timeline, FeaturesConfig(lookback_days=28, recent_days=14, warmup_days=91)
    )
    assert longer[0] == FIRST_MONDAY + timedelta(days=27), "the warm-up is at most the look-back"


def test_warm_up_rows_count_the_weeks_observed_and_leave_later_rows_alone(basic: Path) -> None:
    _, full = run_build(basic, warmup_days=91)
    _, short = run_build(basic, warmup_days=28)
    added = short.filter(pl.col("cutoff") < full["cutoff"].min())
    assert added.group_by("cutoff").agg(pl.col("weeks_observed").first()).sort("cutoff")[
        "weeks_observed"
    ].to_list() == list(range(4, 13))
    assert full["weeks_observed"].unique().to_list() == [13]
    assert short.filter(pl.col("cutoff") >= full["cutoff"].min()).equals(full)
    # Company 2 is active every week: active in every week observed, however few.
    assert added.filter(pl.col("id") == 2)["activity_frequency"].unique().to_list() == [1.0]


def test_converted_within_label_is_one_exactly_when_close_is_in_the_horizon(basic: Path) -> None:
    _, features = run_build(basic)
    rows = features.filter(pl.col("id") == 1).sort("cutoff")
    for cutoff, label in rows.select("cutoff", "label").iter_rows():
        assert label == int(cutoff < CLOSE <= cutoff + timedelta(days=30)), cutoff
    assert rows["cutoff"].max() < CLOSE, "a customer leaves the spine once it has converted"


@pytest.mark.parametrize(
    ("days_after_cutoff", "in_spine", "label"),
    [(0, False, None), (1, True, 1), (30, True, 1), (31, True, 0)],
)
def test_label_boundaries_at_cutoff_and_horizon(
    tmp_path: Path, days_after_cutoff: int, in_spine: bool, label: int | None
) -> None:
    cutoff = FIRST_MONDAY + timedelta(weeks=15, days=6)
    folder = write_inputs(
        tmp_path,
        customers=[customer(1, close=cutoff + timedelta(days=days_after_cutoff))],
        noncustomers=[noncustomer(2)],
        usage=weekly(2, 40),
    )
    _, features = run_build(folder)
    row = features.filter((pl.col("id") == 1) & (pl.col("cutoff") == cutoff))
    assert row.height == int(in_spine)
    if in_spine:
        assert row["label"].item() == label


def test_noncustomers_are_eligible_at_every_cutoff_by_default(basic: Path) -> None:
    _, features = run_build(basic)
    cutoffs = features["cutoff"].unique().len()
    assert features.filter(pl.col("id") == 3).height == cutoffs
    assert features.filter(pl.col("id") == 3)["label"].sum() == 0


def test_first_usage_eligibility_starts_a_company_at_its_first_complete_week(
    tmp_path: Path,
) -> None:
    late = FIRST_MONDAY + timedelta(weeks=20)
    folder = write_inputs(
        tmp_path,
        customers=[OLD_CUSTOMER],
        noncustomers=[noncustomer(2), noncustomer(3), noncustomer(4)],
        usage=[*weekly(2, 30), *weekly(3, 5, start=late)],
    )
    _, features = run_build(folder, eligibility="first_usage")
    assert features.filter(pl.col("id") == 4).height == 0
    first = features.filter(pl.col("id") == 3)["cutoff"].min()
    assert first is not None and first >= late + timedelta(days=6)


def test_is_customer_spine_sees_customers_the_day_before_close(basic: Path) -> None:
    _, features = run_build(basic, target="is_customer")
    assert features.height == 3
    by_id = {r["id"]: r for r in features.to_dicts()}
    assert by_id[1]["cutoff"] == CLOSE - timedelta(days=1)
    assert by_id[1]["label"] == 1
    assert by_id[2]["label"] == 0


def test_as_of_spine_has_unconverted_companies_and_no_label(basic: Path) -> None:
    before_close = CLOSE - timedelta(days=10)
    _, features = run_build(basic, as_of=before_close)
    assert "label" not in features.columns
    assert sorted(features["id"]) == [1, 2, 3]
    assert set(features["cutoff"]) == {before_close}
    _, after = run_build(basic, as_of=AS_OF)
    assert sorted(after["id"]) == [2, 3], "a converted customer is not scored"


# --- point in time: nothing at or after the cutoff or the close ------------------------------


def test_a_week_counts_only_once_it_has_ended(tmp_path: Path) -> None:
    cutoff = FIRST_MONDAY + timedelta(weeks=20, days=6)  # Sunday
    ended = week(cutoff - timedelta(days=6), 2, actions=7)  # Monday..cutoff
    running = week(cutoff + timedelta(days=1), 2, actions=1000)  # ends after cutoff
    folder = write_inputs(
        tmp_path,
        customers=[OLD_CUSTOMER],
        noncustomers=[noncustomer(2)],
        usage=[*weekly(2, 3), ended, running],
    )
    _, features = run_build(folder, as_of=cutoff)
    row = features.row(0, named=True)
    assert row["actions_recent"] == 7
    assert row["recency_days"] == 0


def test_usage_after_cutoff_or_close_never_reaches_a_labelled_row(tmp_path: Path) -> None:
    base = [*weekly(1, 18, actions=5), *weekly(2, 30, actions=5)]
    after_close = weekly(1, 10, actions=1_000_000, start=CLOSE - timedelta(days=2))
    companies = {"customers": [customer(1)], "noncustomers": [noncustomer(2)]}
    clean = write_inputs(tmp_path / "clean", usage=base, **companies)  # type: ignore[arg-type]
    noisy = write_inputs(
        tmp_path / "noisy",
        usage=[*base, *after_close],
        **companies,  # type: ignore[arg-type]
    )
    for target in ("converted_within", "is_customer"):
        _, expected = run_build(clean, target=target)
        _, actual = run_build(noisy, target=target)
        customer_rows = actual.filter(pl.col("id") == 1)
        assert customer_rows.height > 0
        assert customer_rows.equals(expected.filter(pl.col("id") == 1)), target


def test_companies_without_usage_get_zeros_and_null_ratios(basic: Path) -> None:
    _, features = run_build(basic, as_of=AS_OF)
    row = features.filter(pl.col("id") == 3).row(0, named=True)
    assert row["total_actions"] == 0
    assert row["days_active"] == 0
    assert row["ACTIONS_EMAIL_max"] == 0
    assert row["actions_per_user"] is None
    assert row["ACTIONS_EMAIL_mean"] is None
    assert row["recency_days"] is None
    assert row["tenure_days"] is None
    assert row["trend_actions"] == 0.0


def test_alexa_sentinel_becomes_null_with_a_flag(tmp_path: Path) -> None:
    folder = write_inputs(
        tmp_path,
        customers=[OLD_CUSTOMER],
        noncustomers=[
            noncustomer(2, ALEXA_RANK=16000001),
            noncustomer(3, ALEXA_RANK=None),
            noncustomer(4, ALEXA_RANK=42),
        ],
        usage=weekly(2, 20),
    )
    _, features = run_build(folder, as_of=AS_OF)
    rows = {r["id"]: (r["ALEXA_RANK"], r["alexa_no_rank"]) for r in features.to_dicts()}
    assert rows == {2: (None, 1), 3: (None, 0), 4: (42, 0)}


# --- validation and quarantine --------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "column", "reason"),
    [
        ({"ACTIONS_EMAIL": -1}, "ACTIONS_EMAIL", "negative"),
        ({"USERS_CRM_CONTACTS": 50}, "USERS_CRM_CONTACTS", "exceeds ACTIONS_CRM_CONTACTS"),
        ({"USERS_CRM_CONTACTS": 0}, "USERS_CRM_CONTACTS", "zero while ACTIONS_CRM_CONTACTS > 0"),
        ({"WHEN_TIMESTAMP": "2025-02-04 00:00:00.000"}, "WHEN_TIMESTAMP", "not a Monday"),
        ({"WHEN_TIMESTAMP": "yesterday"}, "WHEN_TIMESTAMP", "not a YYYY-MM-DD"),
        ({"ACTIONS_CRM_DEALS": "many"}, "ACTIONS_CRM_DEALS", "not an integer"),
        ({"ACTIONS_CRM_DEALS": None}, "ACTIONS_CRM_DEALS", "missing"),
    ],
)
def test_a_bad_usage_row_is_quarantined_with_its_column_and_reason(
    tmp_path: Path, bad_row: dict[str, object], column: str, reason: str
) -> None:
    bad = week(FIRST_MONDAY + timedelta(weeks=40), 2, actions=10) | bad_row
    folder = write_inputs(
        tmp_path,
        customers=[OLD_CUSTOMER],
        noncustomers=[noncustomer(2)],
        usage=[*weekly(2, 20), bad],
    )
    result, _ = run_build(folder, max_reject_rate=0.5)
    rejects = pl.read_parquet(result.rejects_path)
    assert rejects.height == 1
    rejected = rejects.row(0, named=True)
    assert rejected["source_file"].endswith("usage_actions.csv")
    assert rejected["row_number"] == 21
    assert rejected["column"] == column
    assert reason in rejected["reason"]
    assert json.loads(rejected["original"])["id"] == "2"


def test_a_bad_company_row_is_quarantined(tmp_path: Path) -> None:
    folder = write_inputs(
        tmp_path,
        customers=[customer(1), customer(5, close="2025-13-40")],
        noncustomers=[noncustomer(2), noncustomer(3, ALEXA_RANK="top")],
        usage=weekly(2, 20),
    )
    result, features = run_build(folder, max_reject_rate=0.6)
    rejects = pl.read_parquet(result.rejects_path).sort("source_file")
    assert rejects.select("column", "reason").rows() == [
        ("CLOSEDATE", "not a YYYY-MM-DD date"),
        ("ALEXA_RANK", "not an integer"),
    ]
    assert 5 not in features["id"] and 3 not in features["id"]


def test_too_many_bad_rows_fail_the_run_and_keep_previous_outputs(basic: Path) -> None:
    first, _ = run_build(basic)
    previous = first.features_path.read_bytes()
    bad = [week(FIRST_MONDAY + timedelta(weeks=n), 9, actions=-1) for n in range(5)]
    rows = [*weekly(1, 30, actions=10), *weekly(2, 30, actions=3), *bad]
    write_inputs(basic, customers=[customer(1)], noncustomers=[noncustomer(2)], usage=rows)
    with pytest.raises(ValidationError) as failure:
        run_build(basic, max_reject_rate=0.01)
    message = str(failure.value)
    assert "usage_actions.csv: 5 of 65 rows are bad" in message
    assert "ACTIONS_CRM_CONTACTS: negative (5 rows, e.g. rows 61, 62, 63, 64, 65)" in message
    assert "hint: " in message
    assert first.features_path.read_bytes() == previous
    assert published(basic / "build") == ["features.parquet", "quality.json", "rejects.parquet"]
    assert [p.name for p in basic.iterdir() if "hubscore-tmp" in p.name] == [], "no scratch left"


def test_a_missing_column_names_the_file_and_the_column(basic: Path) -> None:
    text = (basic / "noncustomers.csv").read_text().replace("EMPLOYEE_RANGE", "EMPLOYEES")
    (basic / "noncustomers.csv").write_text(text)
    with pytest.raises(
        SchemaError, match=r"noncustomers.csv is missing required column EMPLOYEE_RANGE"
    ):
        run_build(basic)


def test_columns_match_by_name_in_any_case_and_order(basic: Path) -> None:
    _, expected = run_build(basic)
    lines = (basic / "customers.csv").read_text().splitlines()
    header = lines[0].lower().split(",")
    order = [5, 0, 4, 1, 3, 2]
    shuffled = [",".join(header[i] for i in order)]
    shuffled += [",".join(line.split(",")[i] for i in order) for line in lines[1:]]
    (basic / "customers.csv").write_text("\n".join(shuffled) + "\n")
    _, actual = run_build(basic)
    assert actual.equals(expected)


def test_bom_crlf_and_stray_whitespace_are_read_like_clean_files(basic: Path) -> None:
    _, expected = run_build(basic)
    for name in ("customers.csv", "noncustomers.csv", "usage_actions.csv"):
        path = basic / name
        text = path.read_text().replace('"2 to 5"', '"  2 to 5 "').replace('""', '"   "')
        path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    _, actual = run_build(basic)
    assert actual.equals(expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty (0 bytes)"),
        (b"ALEXA_RANK,EMPLOYEE_RANGE,INDUSTRY,id\n", "has a header but no rows"),
        (b'ALEXA_RANK,EMPLOYEE_RANGE,INDUSTRY,id\n5,"Caf\xe9",,"1"\n', "is not UTF-8: line 2"),
    ],
)
def test_unreadable_files_are_clear_errors(basic: Path, content: bytes, message: str) -> None:
    (basic / "noncustomers.csv").write_bytes(content)
    with pytest.raises(ValidationError, match=re.escape(message)):
        run_build(basic)
    assert not (basic / "build").exists()


def test_a_missing_file_is_a_clear_error(basic: Path) -> None:
    (basic / "usage_actions.csv").unlink()
    with pytest.raises(ValidationError, match=r"no usage_actions\.csv or usage_actions\.parquet"):
        run_build(basic)


def test_a_folder_of_csv_parts_reads_like_the_concatenated_file(tmp_path: Path) -> None:
    rows = [*weekly(2, 20), {**weekly(3, 1)[0], "ACTIONS_CRM_CONTACTS": -1}, *weekly(3, 20)]
    inputs = dict(customers=[customer(1)], noncustomers=[noncustomer(2), noncustomer(3)])
    single, _ = run_build(
        write_inputs(tmp_path / "file", **inputs, usage=rows), max_reject_rate=0.5
    )
    folder = write_inputs(tmp_path / "folder", **inputs, usage=rows)
    parts = split_csv(folder / "usage_actions.csv", [7, 20], gzip_last=True)
    result, features = run_build(folder, max_reject_rate=0.5)
    assert features.equals(pl.read_parquet(single.features_path))
    rejects = pl.read_parquet(result.rejects_path)
    expected = pl.read_parquet(single.rejects_path)
    assert rejects.drop("source_file").equals(expected.drop("source_file"))
    assert rejects["row_number"].to_list() == [21]  # the bad row is the third part's first
    assert rejects["source_file"].to_list() == [str(parts)]
    assert result.quality["files"]["usage_actions"]["rows"] == len(rows)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no .csv or .parquet part files"),
        (
            {"a.csv": "id\n1\n", "b.parquet": ""},
            "mixes CSV and Parquet part files (1 csv, 1 parquet)",
        ),
        ({"a.csv": "id\n1\n", "notes.txt": ""}, "holds files that are no part files: notes.txt"),
        ({"a.csv": "id,x\n1,2\n", "b.csv": "x,id\n2,1\n"}, "b.csv has the columns x, id"),
    ],
)
def test_a_bad_input_folder_is_a_clear_error(
    basic: Path, files: dict[str, str], message: str
) -> None:
    (basic / "usage_actions.csv").unlink()
    folder = basic / "usage_actions"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(ValidationError, match=re.escape(message)) as raised:
        run_build(basic)
    assert str(folder) in str(raised.value)
    assert not (basic / "build").exists()


def test_unknown_employee_range_is_kept_and_reported(tmp_path: Path) -> None:
    folder = write_inputs(
        tmp_path,
        customers=[OLD_CUSTOMER],
        noncustomers=[noncustomer(2, EMPLOYEE_RANGE="5000+"), noncustomer(3)],
        usage=weekly(2, 20),
    )
    result, features = run_build(folder, as_of=AS_OF)
    assert result.quality["unseen_employee_ranges"] == [{"value": "5000+", "rows": 1}]
    assert features.filter(pl.col("id") == 2)["EMPLOYEE_RANGE"].item() == "5000+"


def test_parquet_inputs_give_the_same_features_as_csv(basic: Path, tmp_path: Path) -> None:
    _, expected = run_build(basic)
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    for name in ("customers", "noncustomers", "usage_actions"):
        frame = pl.read_csv(basic / f"{name}.csv", null_values=[""], infer_schema=False)
        frame.write_parquet(parquet_dir / f"{name}.parquet")
    _, actual = run_build(parquet_dir)
    assert actual.equals(expected)


# --- deduplication --------------------------------------------------------------------------


def test_duplicate_company_ids_keep_the_most_complete_row(tmp_path: Path) -> None:
    twin = noncustomer(2, ALEXA_RANK=None, EMPLOYEE_RANGE=None)
    full = noncustomer(2, ALEXA_RANK=77, EMPLOYEE_RANGE="51 to 200", INDUSTRY="Retail")
    folder = write_inputs(
        tmp_path, customers=[OLD_CUSTOMER], noncustomers=[twin, full, full], usage=weekly(2, 20)
    )
    result, features = run_build(folder, as_of=AS_OF)
    assert features.select("ALEXA_RANK", "EMPLOYEE_RANGE", "INDUSTRY").rows() == [
        (77, "51 to 200", "Retail")
    ]
    duplicates = result.quality["duplicates"]["noncustomers"]
    assert duplicates["exact_duplicates"] == 1
    assert duplicates["conflicting_duplicates"] == 1


def test_an_id_in_both_company_files_is_a_customer(basic: Path, tmp_path: Path) -> None:
    folder = write_inputs(
        tmp_path,
        customers=[customer(1)],
        noncustomers=[noncustomer(1), noncustomer(2)],
        usage=weekly(1, 30),
    )
    result, features = run_build(folder, target="is_customer")
    assert features.filter(pl.col("id") == 1)["label"].to_list() == [1]
    assert result.quality["duplicates"]["noncustomers"]["also_customers"] == 1


def test_repeated_usage_weeks_keep_the_row_with_most_actions(tmp_path: Path) -> None:
    monday = FIRST_MONDAY + timedelta(weeks=19)
    rows = [*weekly(2, 19, actions=1), week(monday, 2, 5), week(monday, 2, 9), week(monday, 2, 9)]
    folder = write_inputs(
        tmp_path, customers=[OLD_CUSTOMER], noncustomers=[noncustomer(2)], usage=rows
    )
    result, features = run_build(folder, as_of=monday + timedelta(days=6))
    assert features["actions_recent"].item() == 9 + 3 * 1
    assert result.quality["duplicates"]["usage_actions"] == {
        "exact_duplicates": 1,
        "conflicting_duplicates": 1,
    }


def dedupe_into(inputs: Path, out: Path) -> Path:
    """Write hubscore's own deduplicated companies and usage as input files in `out`."""
    out.mkdir()
    found = {kind: find_input(inputs, kind) for kind in INPUT_KINDS}
    with duckdb.connect() as con:
        for kind, path in found.items():
            register_input(con, kind, path)
        prepare_partition(con, {kind: str(path) for kind, path in found.items()}, AS_OF)
        dedupe_usage(con)
        con.execute("copy customers to $out", {"out": str(out / "customers.csv")})
        con.execute("copy noncustomers to $out", {"out": str(out / "noncustomers.csv")})
        con.execute(
            "copy (select id, week_start::timestamp as WHEN_TIMESTAMP, "
            "COLUMNS('^(ACTIONS|USERS)_') from usage order by id, week_start) to $out",
            {"out": str(out / "usage_actions.csv")},
        )
    return out


def test_deduplication_is_idempotent(tmp_path: Path) -> None:
    twin = noncustomer(2, ALEXA_RANK=None)
    rows = [*weekly(2, 20, actions=4), week(FIRST_MONDAY, 2, 6), weekly(2, 20, actions=4)[3]]
    messy = write_inputs(
        tmp_path / "messy",
        customers=[OLD_CUSTOMER, OLD_CUSTOMER],
        noncustomers=[twin, noncustomer(2)],
        usage=rows,
    )
    first, _ = run_build(messy, as_of=AS_OF)
    assert sum(sum(v.values()) for v in first.quality["duplicates"].values()) > 0
    once = dedupe_into(messy, tmp_path / "once")
    twice = dedupe_into(once, tmp_path / "twice")
    for name in ("customers.csv", "noncustomers.csv", "usage_actions.csv"):
        assert (twice / name).read_text() == (once / name).read_text(), name
    result, features = run_build(once, as_of=AS_OF)
    kinds = ("exact_duplicates", "conflicting_duplicates")
    resolved = result.quality["duplicates"]
    assert all(resolved[f][k] == 0 for f in resolved for k in kinds)  # nothing left to resolve
    assert features.equals(run_build(messy, as_of=AS_OF)[1])
