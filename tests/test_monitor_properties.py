"""Properties of the monitor's figures over random ledgers and outcomes (Hypothesis).

The ledgers are written with the ledger's own writer (`write_entry`), the outcomes as CSV files,
and `run_monitor` reads both as it reads real ones.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubscore.core.ledger import LedgerEntry, cutoff_counts, now_iso, write_entry
from hubscore.monitoring.report import MonitorRequest, run_monitor
from hubscore.monitoring.stats import wilson

FIRST = date(2024, 1, 7)
KS = (3, 10, 25)


def write_list(
    folder: Path, ids: np.ndarray, probs: np.ndarray, *, cutoff: date, model: str, top_k: int
) -> None:
    """Record one ranked list as `score` records it."""
    order = np.lexsort((ids, -probs))
    rows = pl.DataFrame(
        {
            "id": ids[order],
            "cutoff": [cutoff] * ids.size,
            "rank": np.arange(1, ids.size + 1),
            "conversion_probability": probs[order].astype(np.float32),
            "priority": ["high"] * ids.size,
        }
    ).with_columns(
        (pl.col("rank") <= top_k).alias("listed"),
        pl.lit(False).alias("hold"),
        pl.lit(model).alias("model_version"),
        pl.lit(model * 8).alias("model_sha256"),
        pl.lit("champion").alias("role"),
        pl.lit(FIRST).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
    )
    entry = LedgerEntry(
        role="champion",
        model_version=model,
        model_sha256=model * 8,
        model_kind="logreg",
        horizon_days=30,
        run_dir=None,
        input="in.parquet",
        output="out.csv",
        rows=rows.height,
        top_k=top_k,
        cutoffs=cutoff_counts(rows),
        scored_at=f"{cutoff}T00:00:00+00:00",
        recorded_at=now_iso(),
        hubscore_version="test",
    )
    write_entry(folder, rows, entry)


def write_customers(data: Path, closes: dict[int, date]) -> None:
    data.mkdir(parents=True, exist_ok=True)
    lines = ["id,CLOSEDATE", *(f"{i},{day}" for i, day in closes.items())]
    (data / "customers.csv").write_text("\n".join(lines) + "\n")


weeks = st.integers(min_value=1, max_value=5)
companies = st.integers(min_value=5, max_value=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(weeks=weeks, n=companies, seed=st.integers(0, 2**31), until_days=st.integers(-5, 200))
def test_figures_are_bounded_and_add_up(weeks: int, n: int, seed: int, until_days: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    closes = {
        int(i): FIRST + timedelta(days=int(rng.integers(-10, 7 * weeks + 40)))
        for i in ids
        if rng.random() < 0.3
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for w in range(weeks):
            probs = rng.random(n)
            write_list(
                root / "ledger", ids, probs, cutoff=FIRST + timedelta(weeks=w), model="a", top_k=10
            )
        write_customers(root / "data", closes)
        until = FIRST + timedelta(days=until_days)
        doc = run_monitor(MonitorRequest(root / "ledger", root / "data", KS, known_until=until))
    check_lists(doc["lists"], closes, until)
    pooled_total(doc, weeks)


def check_lists(lists: list[dict[str, Any]], closes: dict[int, date], until: date) -> None:
    for item in lists:
        cutoff = date.fromisoformat(item["cutoff"])
        known = min((until - cutoff).days, 30)
        assert item["status"] == (
            "mature" if known >= 30 else "immature" if known <= 0 else "maturing"
        )
        if item["status"] == "immature":
            assert all(at["converted"] is None for at in item["at_k"].values())
            continue
        end = cutoff + timedelta(days=known)
        converters = sum(cutoff < day <= end for day in closes.values())
        assert item["converters"] == converters
        previous = 0
        for k in KS:
            at = item["at_k"][str(k)]
            assert at["listed"] == min(k, item["scored"])
            assert previous <= at["converted"] <= min(at["listed"], converters)
            previous = at["converted"]
            assert 0 <= at["precision"] <= 1
            assert (at["precision_low"], at["precision_high"]) == wilson(
                at["converted"], at["listed"]
            )
            assert at["precision_low"] <= at["precision"] <= at["precision_high"]
            if converters:
                assert 0 <= at["recall"] <= 1


def pooled_total(doc: dict[str, Any], weeks: int) -> None:
    (model,) = doc["models"]
    mature = [item for item in doc["lists"] if item["status"] == "mature"]
    for k in KS:
        pooled = model["at_k"][str(k)]["pooled"]
        assert pooled["lists"] == len(mature) <= weeks
        assert pooled["converted"] == sum(item["at_k"][str(k)]["converted"] for item in mature)
        assert pooled["listed"] == sum(item["at_k"][str(k)]["listed"] for item in mature)
        if pooled["precision"] is not None:
            assert 0 <= pooled["precision"] <= 1
        if pooled["precision_low"] is not None:
            assert 0 <= pooled["precision_low"] <= pooled["precision_high"] <= 1


@settings(max_examples=15, deadline=None)
@given(n=companies, seed=st.integers(0, 2**31))
def test_a_rescored_list_counts_once_as_its_newest_run(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    closes = {int(i): FIRST + timedelta(days=5) for i in ids[: n // 2]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for _ in range(3):  # three runs of the same model on the same cutoff
            write_list(root / "ledger", ids, rng.random(n), cutoff=FIRST, model="a", top_k=10)
        last = rng.random(n)
        write_list(root / "ledger", ids, last, cutoff=FIRST, model="a", top_k=10)
        write_customers(root / "data", closes)
        doc = run_monitor(
            MonitorRequest(root / "ledger", root / "data", (10,), known_until=FIRST + timedelta(60))
        )
    (item,) = doc["lists"]
    top = ids[np.lexsort((ids, -last.astype(np.float32)))][:10]
    assert item["at_k"]["10"]["converted"] == sum(int(i) in closes for i in top)
    assert doc["models"][0]["at_k"]["10"]["pooled"]["listed"] == min(10, n)
