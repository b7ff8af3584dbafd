"""The replay on the real history: train on its early cutoffs, list later Sundays, monitor them.

Everything runs through the CLI as a user would: `build-features` of the real files, `train
--model logreg --search off --until 2019-09-29` (2 folds and refit train_side, for CI time),
then for three later Sundays `build-features --as-of` and `score --top-k 100` into a ledger,
and `monitor` with the real customers file. The realised figures are checked against a count
made here from the raw CSV and the call lists.
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from inputs import REAL_HISTORY
from typer.testing import CliRunner

from hubscore.cli import app

pytestmark = pytest.mark.slow


SUNDAYS = [date(2019, 12, 15), date(2019, 12, 22), date(2020, 1, 12)]
HORIZON = 30
runner = CliRunner()


def run(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train on the cutoffs up to 2019-09-29; score three later Sundays into a ledger."""
    assert REAL_HISTORY.is_dir(), f"the real history is missing: {REAL_HISTORY} (CI has it)"
    root = tmp_path_factory.mktemp("replay")
    patch = pytest.MonkeyPatch()
    patch.setenv("HUBSCORE_TRAINING_CV_FOLDS", "2")  # 3 folds of 16 weeks leave one positive-free
    patch.setenv("HUBSCORE_TRAINING_REFIT", "train_side")  # one fit fewer: the promise is its own
    try:
        run("build-features", "--data-dir", REAL_HISTORY, "--out", root / "build")
        run("train", "--features", root / "build" / "features.parquet", "--model", "logreg",
            "--search", "off", "--until", "2019-09-29",
            "--models-dir", root / "models")  # fmt: skip
    finally:
        patch.undo()
    for sunday in SUNDAYS:
        out = root / "asof" / sunday.isoformat()
        run("build-features", "--data-dir", REAL_HISTORY, "--as-of", sunday, "--out", out)
        run("score", out / "features.parquet", "-o", root / f"{sunday}.csv", "--top-k", "100",
            "--model", root / "models" / "latest", "--scored-at", sunday,
            "--ledger", root / "ledger", "-q")  # fmt: skip
    return root


def closes() -> dict[int, date]:
    """Each customer's CLOSEDATE, read with the csv module (not the monitor's reader)."""
    with (REAL_HISTORY / "customers.csv").open(newline="") as handle:
        return {
            int(row["id"]): date.fromisoformat(row["CLOSEDATE"]) for row in csv.DictReader(handle)
        }


def converted(ids: list[int], sunday: date, until: date) -> int:
    end = min(sunday + timedelta(days=HORIZON), until)
    known = closes()
    return sum(1 for i in ids if i in known and sunday < known[i] <= end)


def monitor(replay: Path, *args: str) -> dict[str, Any]:
    out = replay / "monitor.json"
    argv = ["monitor", "--ledger", replay / "ledger", "--data-dir", REAL_HISTORY, "--k", "50,100"]
    run(*argv, "--json", out, "--fail-on", "none", "-q", *args)
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_realised_figures_on_the_real_history_match_an_independent_count(replay: Path) -> None:
    doc = monitor(replay)
    until = date(2020, 1, 28)  # the files are cut there: the newest CLOSEDATE
    assert doc["known_until"] == until.isoformat()
    lists = {item["cutoff"]: item for item in doc["lists"]}
    assert sorted(lists) == [s.isoformat() for s in SUNDAYS]
    for sunday in SUNDAYS:
        item = lists[sunday.isoformat()]
        called = pl.read_csv(replay / f"{sunday}.csv")  # the call list the team got
        scored = pl.read_parquet(replay / "asof" / sunday.isoformat() / "features.parquet")
        assert item["scored"] == scored.height
        assert item["converters"] == converted(scored["id"].to_list(), sunday, until)
        for k in (50, 100):
            at = item["at_k"][str(k)]
            hits = converted(called.filter(pl.col("rank") <= k)["id"].to_list(), sunday, until)
            assert (at["listed"], at["converted"]) == (k, hits)
            assert at["precision"] == pytest.approx(hits / k)
    assert [lists[s.isoformat()]["status"] for s in SUNDAYS] == ["mature", "mature", "maturing"]
    assert lists["2020-01-12"]["days_left"] == 14
    (model,) = doc["models"]
    promise = model["at_k"]["100"]["promise"]
    assert promise["weeks"] >= 1 and promise["precision_low"] <= promise["precision_high"]
    metrics = json.loads((replay / "models" / "latest" / "metrics.json").read_text())
    assert promise["precision"] == pytest.approx(metrics["test"]["precision_at_100"])
    pooled = model["at_k"]["100"]["pooled"]
    assert pooled["lists"] == 2
    assert pooled["converted"] == sum(
        lists[s.isoformat()]["at_k"]["100"]["converted"] for s in SUNDAYS[:2]
    )


def test_an_earlier_known_until_makes_the_lists_maturing_or_immature(replay: Path) -> None:
    doc = monitor(replay, "--known-until", "2019-12-31")
    lists = {item["cutoff"]: item for item in doc["lists"]}
    assert [
        (lists[s.isoformat()]["status"], lists[s.isoformat()]["days_known"]) for s in SUNDAYS
    ] == [
        ("maturing", 16),
        ("maturing", 9),
        ("immature", 0),
    ]
    first = lists["2019-12-15"]["at_k"]["100"]
    called = pl.read_csv(replay / "2019-12-15.csv")["id"].to_list()
    assert first["converted"] == converted(called, date(2019, 12, 15), date(2019, 12, 31))
    notes = "\n".join(doc["notes"])
    assert "no alert is raised on fewer than 4" in notes
    assert all(not c["evaluated"] for c in doc["checks"])  # no mature list: nothing alerts
