"""`hubscore monitor`: realised figures of every list in a real ledger, checked by hand.

The ledger is written by `hubscore score` itself (the golden xgboost run as champion, the golden
lightgbm run as its shadow, six weekly cutoffs); the outcomes are customers and noncustomers
files the tests write, so every expected figure is counted here independently.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from hubscore.cli import app
from hubscore.core.ledger import LAYOUT_DIR
from hubscore.monitoring.stats import wilson

GOLDEN = Path(__file__).parent / "golden"
INPUT = GOLDEN / "xgboost" / "input.parquet"
CHAMPION, CHALLENGER = GOLDEN / "xgboost" / "run", GOLDEN / "logreg" / "run"
CUTOFFS = [date(2024, 1, 7) + timedelta(weeks=w) for w in range(6)]
HORIZON = 30
runner = CliRunner()


def write_champion_run(tmp: Path, promise: float) -> Path:
    """Copy the golden champion with a metrics.json promising `promise` precision@10."""
    run = tmp / "models" / "champion"
    shutil.copytree(CHAMPION, run)
    test = {"precision_at_10": promise, "recall_at_10": 0.5, "weeks": 6, "positives": 40}
    metrics = {
        "test": test,
        "test_intervals": {"precision_at_10": [promise - 0.1, promise + 0.1]},
        "split": {"test": {"first_cutoff": "2023-10-01", "last_cutoff": "2023-11-05"}},
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six weekly lists of the champion (top 10, a control group of 2) and its shadow."""
    tmp = tmp_path_factory.mktemp("monitor")
    run = write_champion_run(tmp, promise=0.6)
    folder = tmp / "ledger"
    for cutoff in CUTOFFS:
        args = ["score", str(INPUT), "-o", str(tmp / f"{cutoff}.csv"), "--model", str(run)]
        args += ["--ledger", str(folder), "--scored-at", cutoff.isoformat(), "--top-k", "10"]
        args += ["--shadow", str(CHALLENGER), "--holdout-share", "0.2", "-q"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return folder


def ranking(ledger: Path, model: str) -> list[int]:
    """Return the ids of a model's (identical) weekly lists, best first."""
    path = next((ledger / LAYOUT_DIR).glob(f"{CUTOFFS[0]}__{model}*.parquet"))
    return pl.read_parquet(path).sort("rank")["id"].to_list()


def write_files(data: Path, closes: dict[int, date], *, free: list[int], usage_end: date) -> Path:
    """Write customers (with CLOSEDATE), noncustomers and a usage file ending at `usage_end`."""
    data.mkdir(parents=True, exist_ok=True)
    customers = ["CLOSEDATE,MRR,ALEXA_RANK,EMPLOYEE_RANGE,INDUSTRY,id"]
    customers += [f"{day},100.0,,,,{i}" for i, day in closes.items()]
    (data / "customers.csv").write_text("\n".join(customers) + "\n")
    noncustomers = ["ALEXA_RANK,EMPLOYEE_RANGE,INDUSTRY,id", *(f",,,{i}" for i in free)]
    (data / "noncustomers.csv").write_text("\n".join(noncustomers) + "\n")
    monday = usage_end - timedelta(days=6)
    (data / "usage_actions.csv").write_text(f"id,WHEN_TIMESTAMP\n1,{monday} 00:00:00.000\n")
    return data


def monitor(ledger: Path, data: Path, *args: str) -> Result:
    argv = ["monitor", "--ledger", str(ledger), "--data-dir", str(data), "--k", "5,10", *args]
    return runner.invoke(app, argv)


def document(ledger: Path, data: Path, tmp: Path, *args: str) -> dict[str, Any]:
    out = tmp / "monitor.json"
    result = monitor(ledger, data, "--json", str(out), "--fail-on", "none", "-q", *args)
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def expected_conversions(ids: list[int], closes: dict[int, date], cutoff: date, until: date) -> int:
    end = min(cutoff + timedelta(days=HORIZON), until)
    return sum(1 for i in ids if i in closes and cutoff < closes[i] <= end)


def test_realised_figures_match_a_hand_count(ledger: Path, tmp_path: Path) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    closes = {champ[0]: date(2024, 1, 20), champ[3]: date(2024, 2, 1), champ[7]: date(2024, 2, 25)}
    closes |= {champ[30]: date(2024, 1, 25)}  # converts, but never in the top 10
    data = write_files(tmp_path / "data", closes, free=champ, usage_end=date(2024, 3, 24))
    doc = document(ledger, data, tmp_path)
    until = date(2024, 3, 24)  # the newest usage week's end: later than any CLOSEDATE
    assert doc["known_until"] == until.isoformat()
    assert doc["known_until_source"] == "the end of the newest usage week"
    lists = [item for item in doc["lists"] if item["role"] == "champion"]
    assert [item["cutoff"] for item in lists] == [c.isoformat() for c in CUTOFFS]
    for item, cutoff in zip(lists, CUTOFFS, strict=True):
        converters = expected_conversions(champ, closes, cutoff, until)
        assert item["converters"] == converters
        for k in (5, 10):
            at = item["at_k"][str(k)]
            hits = expected_conversions(champ[:k], closes, cutoff, until)
            assert (at["listed"], at["converted"]) == (k, hits)
            assert at["precision"] == pytest.approx(hits / k)
            assert (at["precision_low"], at["precision_high"]) == pytest.approx(wilson(hits, k))
            assert at["recall"] == (pytest.approx(hits / converters) if converters else None)
    pooled = next(m for m in doc["models"] if m["champion"])["at_k"]["10"]["pooled"]
    hits = sum(expected_conversions(champ[:10], closes, c, until) for c in CUTOFFS)
    assert (pooled["lists"], pooled["listed"], pooled["converted"]) == (6, 60, hits)
    assert pooled["companies"] == 10
    assert pooled["precision_low"] <= pooled["precision"] <= pooled["precision_high"]


def test_known_until_makes_lists_maturing_and_immature(ledger: Path, tmp_path: Path) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    closes = {champ[0]: date(2024, 1, 20), champ[1]: date(2024, 2, 5), champ[2]: date(2024, 2, 10)}
    data = write_files(tmp_path / "data", closes, free=champ, usage_end=date(2024, 3, 24))
    doc = document(ledger, data, tmp_path, "--known-until", "2024-02-06")
    by_cutoff = {i["cutoff"]: i for i in doc["lists"] if i["role"] == "champion"}
    assert doc["known_until_source"] == "--known-until"
    assert by_cutoff["2024-01-07"]["status"] == "mature"  # 01-07 + 30 days = 02-06
    first = by_cutoff["2024-01-14"]
    assert (first["status"], first["days_known"], first["days_left"]) == ("maturing", 23, 7)
    assert first["at_k"]["5"]["converted"] == 2  # 01-20 and 02-05; 02-10 is not known yet
    assert first["at_k"]["5"]["expected_so_far"] == pytest.approx(
        first["at_k"]["5"]["expected"] * 23 / 30
    )
    immature = by_cutoff["2024-02-11"]
    assert immature["status"] == "immature"
    assert immature["at_k"]["5"]["converted"] is None and immature["converters"] is None
    assert doc["counts"] == {"mature": 2, "maturing": 8, "immature": 2}  # both models' lists


def test_the_document_is_versioned_and_has_the_documented_keys(
    ledger: Path, tmp_path: Path
) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    data = write_files(
        tmp_path / "data", {champ[0]: date(2024, 1, 9)}, free=champ, usage_end=date(2024, 3, 24)
    )
    doc = document(ledger, data, tmp_path)
    assert (doc["format"], doc["version"]) == ("hubscore-monitor", 1)
    for item in doc["lists"]:
        assert {"cutoff", "model_version", "status"} <= item.keys()
        for at in item["at_k"].values():
            keys = {
                "listed",
                "converted",
                "precision",
                "precision_low",
                "precision_high",
                "expected",
            }
            assert keys <= at.keys()


def test_counts_add_up_across_k_and_precision_stays_within_0_and_1(
    ledger: Path, tmp_path: Path
) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    closes = {i: date(2024, 1, 8) + timedelta(days=3 * n) for n, i in enumerate(champ[:40:2])}
    data = write_files(tmp_path / "data", closes, free=champ, usage_end=date(2024, 3, 24))
    doc = document(ledger, data, tmp_path)
    for item in doc["lists"]:
        five, ten = item["at_k"]["5"], item["at_k"]["10"]
        assert five["converted"] <= ten["converted"] <= item["converters"]
        assert ten["converted"] - five["converted"] <= 5
        for at in (five, ten):
            assert 0 <= at["precision_low"] <= at["precision"] <= at["precision_high"] <= 1
            assert at["recall"] is None or 0 <= at["recall"] <= 1
        up = item["uplift"]
        if item["role"] == "champion":
            assert up["called"]["companies"] + up["held"]["companies"] == 10
            assert up["held"]["companies"] == 2
            assert up["called"]["converted"] + up["held"]["converted"] == ten["converted"]
        else:
            assert up is None  # a shadow's list was never handed out: no control group


def test_a_challenger_better_on_the_same_weeks_shows_a_positive_paired_difference(
    ledger: Path, tmp_path: Path
) -> None:
    champ, chall = ranking(ledger, "golden-xgboost-2"), ranking(ledger, "golden-logreg-2")
    only = [i for i in chall[:10] if i not in champ[:10]]
    assert len(only) >= 4, "the golden models must disagree on their top 10"
    # Each converts within the horizon of the first five lists (after 02-04, by 02-06); the
    # sixth list (02-11) comes after their close.
    closes = {i: date(2024, 2, 5) + timedelta(days=n % 2) for n, i in enumerate(only)}
    data = write_files(tmp_path / "data", closes, free=champ, usage_end=date(2024, 3, 24))
    doc = document(ledger, data, tmp_path)
    (pair,) = doc["comparisons"]
    at = pair["at_k"]["10"]
    assert (pair["champion"], pair["challenger"]) == ("golden-xgboost-2", "golden-logreg-2")
    assert at["weeks"] == 6 and at["champion_converted"] == 0
    assert at["challenger_converted"] == len(only) * 5
    assert at["difference"] == pytest.approx(len(only) * 5 / 60)
    assert 0 < at["difference_low"] <= at["difference"] <= at["difference_high"]
    (check,) = [c for c in doc["checks"] if c["kind"] == "challenger" and c["k"] == 10]
    assert check["fired"] and "promote it with hubscore promote" in check["message"]


def test_a_promise_missed_alerts_with_exit_9_unless_told_not_to(
    ledger: Path, tmp_path: Path
) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    data = write_files(tmp_path / "data", {}, free=champ, usage_end=date(2024, 3, 24))
    result = monitor(ledger, data)  # promised 0.6 [0.5, 0.7]; nobody converted
    assert result.exit_code == 9, result.output
    assert (
        "alert (precision): pooled realised precision@10 0.000 over 6 mature lists" in result.stderr
    )
    assert "monitor: " in result.stderr and "(--fail-on precision,calibration)" in result.stderr
    assert monitor(ledger, data, "--fail-on", "none").exit_code == 0
    assert monitor(ledger, data, "--fail-on", "challenger").exit_code == 0
    quiet = monitor(ledger, data, "--min-lists", "7")
    assert quiet.exit_code == 0  # fewer mature lists than the minimum: nothing alerts
    assert "not evaluated (precision, k=10): 6 mature lists, fewer than the 7" in quiet.stderr
    assert "no promise at k=5" in quiet.stderr  # metrics.json promised k=10 only


def test_data_limits_are_stated(ledger: Path, tmp_path: Path) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    closes = {champ[0]: date(2024, 1, 1)}  # before every cutoff: it should not be listed
    free = champ[3:]  # champ[1], champ[2] vanished from the newer files
    data = write_files(tmp_path / "data", closes, free=free, usage_end=date(2024, 3, 24))
    notes = document(ledger, data, tmp_path)["notes"]
    text = "\n".join(notes)
    assert "counted up to 2024-03-24 (the end of the newest usage week)" in text
    assert "the newest CLOSEDATE (2024-01-01) is 83 days older than the newest usage week" in text
    assert "companies in neither company file" in text
    assert "had a CLOSEDATE at or before their list's cutoff" in text


def test_the_html_page_is_self_contained(ledger: Path, tmp_path: Path) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    data = write_files(
        tmp_path / "data", {champ[0]: date(2024, 1, 20)}, free=champ, usage_end=date(2024, 3, 24)
    )
    page = tmp_path / "monitor.html"
    assert monitor(ledger, data, "--html", str(page), "--fail-on", "none", "-q").exit_code == 0
    html = page.read_text()
    assert html.count("<svg") == 2  # one chart per k
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "Over the 6 weekly lists whose 30 days are over, 2 of the 60 companies" in html
    assert "On its test weeks the model (golden-xgboost-2) found 60.0%" in html


def test_a_page_path_that_is_a_folder_exits_2(ledger: Path, tmp_path: Path) -> None:
    champ = ranking(ledger, "golden-xgboost-2")
    data = write_files(tmp_path / "data", {}, free=champ, usage_end=date(2024, 3, 24))
    (tmp_path / "monitor.html").mkdir()
    result = monitor(ledger, data, "--html", str(tmp_path / "monitor.html"), "--fail-on", "none")
    assert result.exit_code == 2
    assert f"output {tmp_path / 'monitor.html'} is a folder" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--k", "ten"], 2, "--k 'ten' is not a list of list sizes, e.g. 50,100"),
        (["--fail-on", "drift"], 2, "--fail-on 'drift': use none or some of precision"),
        (["--known-until", "2024-13-01"], 2, "is not a date"),
    ],
)
def test_bad_flags_exit_2(
    ledger: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = monitor(ledger, tmp_path, *args)
    assert result.exit_code == code
    assert message in " ".join(result.stderr.replace("│", " ").split())  # Rich wraps the box


def test_missing_inputs_are_clear_errors(ledger: Path, tmp_path: Path) -> None:
    result = monitor(tmp_path / "empty", tmp_path)
    assert result.exit_code == 3
    assert "holds no lists" in result.stderr
    result = monitor(ledger, tmp_path)
    assert result.exit_code == 3
    assert "no customers.csv or customers.parquet" in result.stderr
    (tmp_path / "customers.csv").write_text("MRR,id\n1.0,5\n")
    result = monitor(ledger, tmp_path)
    assert result.exit_code == 4
    assert "customers.csv is missing required column CLOSEDATE" in result.stderr


def test_a_ledger_file_of_an_unknown_version_is_refused(ledger: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ledger"
    shutil.copytree(ledger, copy)
    path = next((copy / LAYOUT_DIR).glob("*.parquet"))
    frame = pl.read_parquet(path)
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_metadata(path).metadata[b"hubscore_ledger"])  # the footer's
    meta["ledger_version"] = 99
    frame.write_parquet(path, metadata={"hubscore_ledger": json.dumps(meta)})
    result = monitor(copy, tmp_path)
    assert result.exit_code == 5
    assert "has ledger_version 99; this hubscore reads 1" in result.stderr
