"""Pooled figures of a model's mature lists, its promise, and champion-vs-challenger pairs.

Weeks are pooled by summing: precision@k over the mature lists is all converted over all listed
(each list weighs what it listed). Intervals resample companies (`stats.resampled`): a company
listed in several weeks is one draw with all its rows. A challenger is compared with the
champion on the cutoffs where both have a mature list, with one resample weighing both models'
rows, so the interval is of the paired difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from hubscore.monitoring import stats
from hubscore.monitoring.lists import MATURE, PROBABILITY, ListResult
from hubscore.monitoring.stats import Ratio, expected_figures, percentile_interval, resampled


def mature(results: Sequence[ListResult]) -> list[ListResult]:
    """Return the mature lists, oldest cutoff first."""
    return sorted((r for r in results if r.status == MATURE), key=lambda r: r.cutoff)


def _rows(results: Sequence[ListResult], k: int, *, side: str = "a") -> pl.DataFrame:
    frames = [
        r.top.filter(pl.col("rank") <= k).select(
            "id", pl.col("converted").cast(pl.Float64).alias(f"{side}_num"), PROBABILITY
        )
        for r in results
    ]
    schema = {"id": pl.Int64, f"{side}_num": pl.Float64, PROBABILITY: pl.Float32}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def _per_company(rows: pl.DataFrame, side: str) -> pl.DataFrame:
    """Sum a company's rows; sorted by id, so a seed always draws the same resamples."""
    return (
        rows.group_by("id")
        .agg(pl.col(f"{side}_num").sum(), pl.len().cast(pl.Float64).alias(f"{side}_den"))
        .sort("id")
    )


def pooled_precision(results: Sequence[ListResult], k: int) -> dict[str, Any]:
    """Return precision@k pooled over lists, with counts and a company-resampling interval."""
    rows = _rows(results, k)
    companies = _per_company(rows, "a")
    ratio = Ratio(companies["a_num"].to_numpy(), companies["a_den"].to_numpy())
    low, high = percentile_interval(resampled([ratio])[:, 0])
    return {
        "lists": len(results),
        "listed": rows.height,
        "converted": int(rows["a_num"].sum()),
        "companies": companies.height,
        "converting_companies": int((companies["a_num"] > 0).sum()),
        "precision": ratio.value,
        "precision_low": low,
        "precision_high": high,
        **calibration(results, k),
    }


def calibration(results: Sequence[ListResult], k: int) -> dict[str, Any]:
    """Return realised vs expected conversions among the top k of the given lists."""
    rows = _rows(results, k)
    p = rows[PROBABILITY].cast(pl.Float64)
    expected, variance = float(p.sum()), float((p * (1 - p)).sum())
    realised = int(rows["a_num"].sum())
    return {"realised": realised, **expected_figures(realised, expected, variance)}


def promise_at(promise: dict[str, Any] | None, k: int) -> dict[str, Any] | None:
    """Return the model's own test-weeks precision@k and interval (None if it has none)."""
    if not promise:
        return None
    at = promise.get("at_k", {}).get(str(k))
    if not at or at.get("precision") is None:
        return None
    return {
        "precision": at["precision"],
        "precision_low": at.get("precision_low"),
        "precision_high": at.get("precision_high"),
        "weeks": promise.get("weeks"),
        "positives": promise.get("positives"),
        "first_cutoff": promise.get("first_cutoff"),
        "last_cutoff": promise.get("last_cutoff"),
    }


def paired_difference(
    champion: Sequence[ListResult], challenger: Sequence[ListResult], k: int
) -> dict[str, Any]:
    """Return challenger minus champion precision@k on their shared mature cutoffs."""
    shared = sorted({r.cutoff for r in champion} & {r.cutoff for r in challenger})
    a = [r for r in champion if r.cutoff in shared]
    b = [r for r in challenger if r.cutoff in shared]
    both = _per_company(_rows(a, k, side="a"), "a").join(
        _per_company(_rows(b, k, side="b"), "b"), on="id", how="full", coalesce=True
    )
    both = both.fill_null(0.0).sort("id")
    ratios = [Ratio(both[f"{s}_num"].to_numpy(), both[f"{s}_den"].to_numpy()) for s in "ab"]
    difference, low, high = stats.paired_difference(*ratios)
    return {
        "weeks": len(shared),
        "first_cutoff": shared[0].isoformat() if shared else None,
        "last_cutoff": shared[-1].isoformat() if shared else None,
        "listed": int(ratios[1].denominator.sum()),
        "champion_converted": int(ratios[0].numerator.sum()),
        "challenger_converted": int(ratios[1].numerator.sum()),
        "champion_precision": ratios[0].value,
        "challenger_precision": ratios[1].value,
        "difference": difference,
        "difference_low": low,
        "difference_high": high,
        "companies": both.height,
    }


def pooled_uplift(results: Sequence[ListResult]) -> dict[str, Any] | None:
    """Return called vs held conversion pooled over mature lists with a control group."""
    with_group = [r for r in mature(results) if r.entry.holdout is not None]
    if not with_group:
        return None
    rows = pl.concat([r.top.filter("listed").select("id", "hold", "converted") for r in with_group])
    per = (
        rows.group_by("id")
        .agg(
            (pl.col("converted") & ~pl.col("hold")).sum().cast(pl.Float64).alias("c_num"),
            (~pl.col("hold")).sum().cast(pl.Float64).alias("c_den"),
            (pl.col("converted") & pl.col("hold")).sum().cast(pl.Float64).alias("h_num"),
            pl.col("hold").sum().cast(pl.Float64).alias("h_den"),
        )
        .sort("id")
    )
    held, called = (Ratio(per[f"{s}_num"].to_numpy(), per[f"{s}_den"].to_numpy()) for s in "hc")
    uplift, low, high = stats.paired_difference(held, called)
    return {
        "lists": len(with_group),
        "called": int(called.denominator.sum()),
        "called_converted": int(called.numerator.sum()),
        "held": int(held.denominator.sum()),
        "held_converted": int(held.numerator.sum()),
        "called_rate": called.value,
        "held_rate": held.value,
        "uplift": uplift,
        "uplift_low": low,
        "uplift_high": high,
    }
