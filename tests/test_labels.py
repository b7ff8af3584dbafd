"""Labels only where they are known, and is_customer rows that compare like for like.

A label says whether a company converted within the horizon after a cutoff, so it is only true
where the files saw that horizon: up to `known_until`, given or derived from the files in a
way a stray future CLOSEDATE cannot move. And `--target is_customer` compares customers seen
before their close with free companies seen at the end of the files: both sides need the same
look-back, or `weeks_observed` and the tenure cap tell the label apart.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from inputs import FIRST_MONDAY, weekly, write_inputs
from test_build import customer, noncustomer, run_build

from hubscore.core.config import FeaturesConfig
from hubscore.core.errors import ValidationError
from hubscore.features.build import BuildRequest, build_features
from hubscore.features.calendar import labels_known_until, weekly_cutoffs

DATA = Path(__file__).resolve().parent.parent / "data"
USAGE_END = FIRST_MONDAY + timedelta(weeks=29, days=6)  # 30 weeks of usage, ending a Sunday


def timeline(*closes: date) -> dict[str, object]:
    return {"first_week": FIRST_MONDAY, "usage_end": USAGE_END, "close_dates": list(closes)}


# --- known until -------------------------------------------------------------------------------


def test_known_until_is_the_last_usage_day_without_later_closes() -> None:
    known = labels_known_until(timeline(USAGE_END - timedelta(days=3)), FeaturesConfig())
    assert known.day == USAGE_END
    assert known.source == "derived: the last usage day"


def test_closes_after_the_last_usage_day_carry_it_forward_a_week_at_a_time() -> None:
    days = [USAGE_END + timedelta(days=d) for d in (2, 9, 16, 30, 3000)]
    known = labels_known_until(timeline(*days), FeaturesConfig())
    assert known.day == USAGE_END + timedelta(days=16), "the 14-day gap to day 30 stops it"
    assert "at most 7 days apart" in known.source


def test_a_stray_close_years_ahead_moves_nothing() -> None:
    cfg = FeaturesConfig()
    clean = weekly_cutoffs(timeline(), cfg)
    assert weekly_cutoffs(timeline(date(2031, 5, 1)), cfg) == clean
    assert clean[-1] + timedelta(days=cfg.horizon_days) <= USAGE_END


def test_a_given_known_until_wins_over_the_derived_one() -> None:
    cfg = FeaturesConfig(known_until=USAGE_END - timedelta(days=28))
    known = labels_known_until(timeline(USAGE_END + timedelta(days=1)), cfg)
    assert known.day == USAGE_END - timedelta(days=28)
    assert known.source.startswith("given")
    assert weekly_cutoffs(timeline(), cfg)[-1] + timedelta(days=30) <= known.day


def stray_inputs(folder: Path, stray_close: str) -> Path:
    return write_inputs(
        folder,
        customers=[customer(1), customer(7, close=stray_close)],
        noncustomers=[noncustomer(2), noncustomer(3)],
        usage=[*weekly(1, 30, actions=10), *weekly(2, 30, actions=3), *weekly(7, 30, actions=5)],
    )


def test_a_stray_future_close_is_flagged_and_labels_no_cutoff(tmp_path: Path) -> None:
    typo = stray_inputs(tmp_path / "typo", "2031-05-01")
    result, features = run_build(typo)
    labels = result.quality["labels"]
    assert labels["known_until"] == USAGE_END
    assert (labels["closes_after_known_until"], labels["example_ids"]) == (1, [7])
    # Without the typo (a close inside the files' last horizon), the cutoffs are the same.
    _, reference = run_build(stray_inputs(tmp_path / "clean", str(USAGE_END - timedelta(days=1))))
    assert features["cutoff"].unique().sort().equals(reference["cutoff"].unique().sort())
    stray = features.filter(pl.col("id") == 7)
    assert stray.height == features["cutoff"].n_unique(), "free at every cutoff, as it was"
    assert stray["label"].sum() == 0
    last = features["cutoff"].max()
    assert isinstance(last, date) and last + timedelta(days=30) <= USAGE_END


def test_a_cutoff_whose_horizon_passes_known_until_is_never_labelled(tmp_path: Path) -> None:
    known = USAGE_END - timedelta(days=40)
    result, features = run_build(stray_inputs(tmp_path, "2031-05-01"), known_until=known)
    last = features["cutoff"].max()
    assert isinstance(last, date) and last + timedelta(days=30) <= known
    assert result.quality["labels"]["known_until_source"].startswith("given")


# --- is_customer: like for like ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_is_customer(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("is_customer")
    result = build_features(BuildRequest(DATA, out, FeaturesConfig(target="is_customer")))
    return pl.read_parquet(result.features_path)


def test_is_customer_sides_share_weeks_observed_and_the_tenure_cap(
    sample_is_customer: pl.DataFrame,
) -> None:
    lookback = FeaturesConfig().lookback_days
    sides = sample_is_customer.partition_by("label", as_dict=True)
    customers, free = sides[(1,)], sides[(0,)]
    assert customers.height > 100 and free.height > 1000
    for side in (customers, free):
        assert side["weeks_observed"].unique().to_list() == [13], "the same look-back"
        assert side["tenure_days"].max() == lookback, "the cap is reached on both sides"
    # A company with usage from the files' first week is at the cap, whichever side it is on.
    for side in (customers, free):
        tenures = side.filter(pl.col("tenure_days") >= lookback)["tenure_days"]
        assert tenures.unique().to_list() == [lookback]


def test_is_customer_leaves_out_customers_it_cannot_compare(tmp_path: Path) -> None:
    early = customer(4, close=FIRST_MONDAY + timedelta(weeks=5, days=2))
    late = customer(5, close=USAGE_END + timedelta(days=12))  # a week with no usage rows
    folder = write_inputs(
        tmp_path,
        customers=[customer(1), early, late],
        noncustomers=[noncustomer(2), noncustomer(3)],
        usage=[*weekly(1, 30), *weekly(2, 30), *weekly(4, 5), *weekly(5, 30)],
    )
    known = USAGE_END + timedelta(days=30)
    result, features = run_build(folder, target="is_customer", known_until=known)
    assert sorted(features["id"]) == [1, 2, 3]
    spine = result.quality["spine"]
    assert spine["customers_before_full_lookback"] == 1
    assert spine["customers_after_usage_end"] == 1
    assert features["weeks_observed"].unique().to_list() == [13]


def test_is_customer_leaves_out_a_close_after_known_until_but_before_the_end(
    tmp_path: Path,
) -> None:
    known = USAGE_END - timedelta(weeks=4)
    unsure = customer(4, close=known + timedelta(days=10))  # converted, but after known_until
    folder = write_inputs(
        tmp_path,
        customers=[customer(1), unsure],
        noncustomers=[noncustomer(2), noncustomer(3)],
        usage=[*weekly(1, 30), *weekly(2, 30), *weekly(4, 30)],
    )
    result, features = run_build(folder, target="is_customer", known_until=known)
    assert 4 not in features["id"].to_list()  # neither a known customer nor a free company
    assert result.quality["spine"]["customers_closed_after_known_until"] == 1


def test_is_customer_refuses_files_shorter_than_the_look_back(tmp_path: Path) -> None:
    folder = write_inputs(
        tmp_path,
        customers=[customer(1, close=FIRST_MONDAY + timedelta(weeks=8))],
        noncustomers=[noncustomer(2)],
        usage=weekly(2, 10),
    )
    with pytest.raises(ValidationError, match="look-back window before it must lie within"):
        run_build(folder, target="is_customer")
