"""The ledger: every `score` run records every scored row, atomically, replacing its own re-runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from hubscore.cli import app
from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.errors import ConfigError
from hubscore.core.ledger import (
    LAYOUT_DIR,
    LEDGER_SCHEMA,
    METADATA_KEY,
    Holdout,
    current_lists,
    hold_flags,
    read_entries,
)
from hubscore.engine.scorer import load_scorer
from hubscore.serving.ledger import LedgerRequest, ledger_rows

GOLDEN = Path(__file__).parent / "golden"
INPUT = GOLDEN / "xgboost" / "input.parquet"  # 60 companies, no cutoff column
CHAMPION, CHALLENGER = GOLDEN / "xgboost" / "run", GOLDEN / "lightgbm" / "run"
runner = CliRunner()


def score(ledger: Path, out: Path, *args: str | Path, model: Path = CHAMPION) -> Result:
    argv = ["score", str(INPUT), "-o", str(out), "--model", str(model), "--ledger", str(ledger)]
    return runner.invoke(app, [*argv, "-q", *map(str, args)])


def files(ledger: Path) -> list[Path]:
    return sorted((ledger / LAYOUT_DIR).glob("*.parquet"))


def test_a_run_records_every_scored_row_and_its_metadata(tmp_path: Path) -> None:
    ledger, out = tmp_path / "ledger", tmp_path / "list.csv"
    result = score(ledger, out, "--top-k", "10", "--scored-at", "2024-01-07")
    assert result.exit_code == 0, result.output
    (path,) = files(ledger)
    assert path.name.startswith("2024-01-07__golden-xgboost-2__")
    rows = pl.read_parquet(path)
    assert rows.schema == pl.Schema(LEDGER_SCHEMA)
    assert rows.height == 60  # every scored company, not only the 10 listed
    assert rows["rank"].to_list() == list(range(1, 61))
    assert rows["listed"].sum() == 10 and rows["hold"].sum() == 0
    assert set(rows["cutoff"]) == {date(2024, 1, 7)}  # no cutoff column: the --scored-at day
    assert set(rows["role"]) == {"champion"}
    listed = pl.read_csv(out)
    head = rows.head(10)
    assert listed["id"].to_list() == head["id"].to_list()
    assert listed["rank"].to_list() == head["rank"].to_list()
    meta = json.loads(pq.read_metadata(path).metadata[METADATA_KEY.encode()])
    assert meta["ledger_version"] == 1
    assert meta["top_k"] == 10 and meta["rows"] == 60 and meta["role"] == "champion"
    assert meta["cutoffs"] == [{"cutoff": "2024-01-07", "rows": 60, "listed": 10, "held": 0}]
    assert meta["run_dir"] == str(CHAMPION.resolve())
    assert meta["output"] == str(out.resolve()) and meta["input"] == str(INPUT.resolve())


@pytest.mark.parametrize("shuffled", [False, True], ids=["in rank order", "shuffled"])
def test_ledger_rows_run_by_cutoff_then_rank_whatever_order_they_come_in(shuffled: bool) -> None:
    scorer = load_scorer(CHAMPION)
    scored = scorer.score(pl.read_parquet(INPUT).with_columns(cutoff=date(2024, 1, 7)))
    ranked = pl.concat([scored, scored.with_columns(cutoff=date(2024, 1, 14))])
    ranked = ranked.sample(fraction=1.0, shuffle=True, seed=5) if shuffled else ranked
    at = datetime(2024, 1, 14, tzinfo=UTC)
    rows = ledger_rows(ranked, scorer, LedgerRequest(Path("unused")), top_k=10, scored_at=at)
    assert rows.select("cutoff", "rank").equals(
        ranked.sort("cutoff", "rank").select("cutoff", "rank")
    )


def test_rescoring_a_cutoff_with_the_same_model_replaces_its_entry(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    for top_k in ("10", "20"):
        assert (
            score(
                ledger, tmp_path / "a.csv", "--top-k", top_k, "--scored-at", "2024-01-07"
            ).exit_code
            == 0
        )
    (path,) = files(ledger)
    assert pl.read_parquet(path)["listed"].sum() == 20  # the second run's
    assert score(ledger, tmp_path / "b.csv", "--scored-at", "2024-01-14").exit_code == 0
    assert len(files(ledger)) == 2  # another cutoff: kept beside it


def test_another_model_on_the_same_cutoff_is_kept_beside_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    assert score(ledger, tmp_path / "a.csv", "--scored-at", "2024-01-07").exit_code == 0
    assert (
        score(ledger, tmp_path / "b.csv", "--scored-at", "2024-01-07", model=CHALLENGER).exit_code
        == 0
    )
    entries = read_entries(ledger)
    assert sorted(e.model_version for e in entries) == ["golden-lightgbm-2", "golden-xgboost-2"]
    assert len(current_lists(entries)) == 2


def test_readers_count_an_overlapping_rescored_list_once(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    two = pl.read_parquet(INPUT)
    both = pl.concat([two.with_columns(pl.lit(date(2024, 1, d)).alias("cutoff")) for d in (7, 14)])
    multi = tmp_path / "multi.parquet"
    pq.write_table(both.to_arrow().replace_schema_metadata(pq.read_schema(INPUT).metadata), multi)
    argv = ["score", str(multi), "-o", str(tmp_path / "m.csv"), "--model", str(CHAMPION)]
    assert runner.invoke(app, [*argv, "--ledger", str(ledger), "-q"]).exit_code == 0
    assert score(ledger, tmp_path / "s.csv", "--scored-at", "2024-01-14").exit_code == 0
    entries = read_entries(ledger)
    assert len(entries) == 2  # 2024-01-07_to_2024-01-14 and 2024-01-14
    lists = current_lists(entries)
    assert [(e.path, c) for e, c in lists] == [
        (entries[0].path, date(2024, 1, 7)),
        (entries[1].path, date(2024, 1, 14)),  # the newer run holds that list
    ]


def test_no_ledger_records_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    assert score(ledger, tmp_path / "a.csv", "--no-ledger").exit_code == 0
    assert not ledger.exists()


def test_the_default_ledger_is_data_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUBSCORE_SCORING_LEDGER_DIR")
    argv = [
        "score",
        str(INPUT),
        "-o",
        "a.csv",
        "--model",
        str(CHAMPION),
        "--scored-at",
        "2024-01-07",
    ]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert len(files(tmp_path / "data" / "ledger")) == 1
    assert "ledger: recorded 60 rows as champion in" in result.stderr


def test_an_unwritable_ledger_fails_before_any_output(tmp_path: Path) -> None:
    blocker = tmp_path / "ledger"
    blocker.write_text("a file, not a folder")
    out = tmp_path / "a.csv"
    result = score(blocker, out)
    assert result.exit_code == 2
    assert f"cannot write the ledger folder {blocker} (--ledger)" in result.stderr
    assert "--no-ledger" in result.stderr
    assert not out.exists()


def test_the_control_group_is_flagged_in_the_list_and_the_ledger(tmp_path: Path) -> None:
    ledger, out = tmp_path / "ledger", tmp_path / "list.csv"
    args = (
        "--top-k",
        "20",
        "--holdout-share",
        "0.25",
        "--holdout-seed",
        "7",
        "--scored-at",
        "2024-01-07",
    )
    result = runner.invoke(
        app,
        [
            "score",
            str(INPUT),
            "-o",
            str(out),
            "--model",
            str(CHAMPION),
            "--ledger",
            str(ledger),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "control group: 5 listed companies marked hold (do not call them)" in result.stderr
    listed = pl.read_csv(out)
    assert listed.columns.index("hold") == listed.columns.index("rank") + 1
    assert listed["hold"].sum() == 5
    rows = pl.read_parquet(files(ledger)[0])
    held = rows.filter("hold")
    assert held["id"].sort().to_list() == listed.filter("hold")["id"].sort().to_list()
    assert held["listed"].all()  # only listed companies are held out
    again = tmp_path / "again.csv"
    assert score(ledger, again, *args).exit_code == 0
    assert pl.read_csv(again)["hold"].to_list() == listed["hold"].to_list()  # reproducible


def test_a_control_group_needs_a_list_and_a_ledger(tmp_path: Path) -> None:
    result = score(tmp_path / "l", tmp_path / "a.csv", "--holdout-share", "0.1")
    assert result.exit_code == 2
    assert "--holdout-share holds out a share of the list: it needs --top-k" in result.stderr
    result = score(
        tmp_path / "l", tmp_path / "a.csv", "--holdout-share", "0.1", "--top-k", "5", "--no-ledger"
    )
    assert result.exit_code == 2
    assert "is measured from the ledger, and this run keeps none" in result.stderr
    result = score(tmp_path / "l", tmp_path / "a.csv", "--holdout-share", "1.5", "--top-k", "5")
    assert result.exit_code == 2


def test_hold_flags_hold_round_share_per_cutoff_whatever_the_order() -> None:
    ids = list(range(1000, 1040))
    cutoffs = [date(2024, 1, 7)] * 30 + [date(2024, 1, 14)] * 10
    flags = hold_flags(ids, cutoffs, Holdout(0.1, seed=3))
    assert flags[:30].sum() == 3 and flags[30:].sum() == 1
    reversed_flags = hold_flags(ids[::-1], cutoffs[::-1], Holdout(0.1, seed=3))[::-1]
    assert (flags == reversed_flags).all()
    assert (hold_flags(ids, cutoffs, Holdout(0.1, seed=4)) != flags).any()
    with pytest.raises(ConfigError, match="a share in"):
        Holdout(0.0)


def test_shadows_go_to_the_ledger_only(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    alone, shadowed = tmp_path / "alone.csv", tmp_path / "shadowed.csv"
    assert (
        score(tmp_path / "other", alone, "--top-k", "10", "--scored-at", "2024-01-07").exit_code
        == 0
    )
    result = score(
        ledger, shadowed, "--top-k", "10", "--scored-at", "2024-01-07", "--shadow", CHALLENGER
    )
    assert result.exit_code == 0, result.output
    assert alone.read_bytes() == shadowed.read_bytes()  # the list is the champion's alone
    roles = {e.model_version: e.role for e in read_entries(ledger)}
    assert roles == {"golden-xgboost-2": "champion", "golden-lightgbm-2": "shadow"}
    shadow = pl.read_parquet(next(p for p in files(ledger) if "lightgbm" in p.name))
    assert shadow.height == 60 and shadow["listed"].sum() == 10
    assert not [p for p in ledger.iterdir() if p.name.startswith(".shadow")]  # scratch removed


def test_the_champion_cannot_shadow_itself(tmp_path: Path) -> None:
    result = score(tmp_path / "l", tmp_path / "a.csv", "--shadow", CHAMPION)
    assert result.exit_code == 2
    assert "is the model the list is scored with" in result.stderr
    assert not (tmp_path / "a.csv").exists()


def test_a_killed_writes_litter_is_never_a_list_and_the_next_write_removes_it(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    assert score(ledger, tmp_path / "a.csv", "--scored-at", "2024-01-07").exit_code == 0
    (path,) = files(ledger)
    litter = path.with_name(f".{path.name}{TEMP_MARKER}abc")  # what SIGKILL mid-write leaves
    litter.write_bytes(b"half a parquet file")
    assert [e.model_version for e in read_entries(ledger)] == ["golden-xgboost-2"]
    assert score(ledger, tmp_path / "a.csv", "--scored-at", "2024-01-07").exit_code == 0
    assert not litter.exists()


def test_a_ledger_file_written_through_arrow_still_reads(tmp_path: Path) -> None:
    # Ledgers recorded before the writer moved to Polars: the metadata in the Arrow schema too.
    ledger = tmp_path / "ledger"
    assert score(ledger, tmp_path / "a.csv", "--scored-at", "2024-01-07").exit_code == 0
    (path,) = files(ledger)
    meta = pq.read_metadata(path).metadata[METADATA_KEY.encode()]
    table = pl.read_parquet(path).to_arrow().replace_schema_metadata({METADATA_KEY: meta})
    pq.write_table(table, path, compression="zstd")
    (entry,) = read_entries(ledger)
    assert entry.rows == 60 and entry.model_version == "golden-xgboost-2"
