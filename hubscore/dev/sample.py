"""Generate a deterministic synthetic sample shaped like the real input files.

The three files (customers, noncustomers, usage_actions) follow the data contract
(DATA_CONTRACT.md): same columns, encodings and kinds of mess, the real files' sizes (~5,200
companies, ~200 customers, ~25k usage rows), and a signal that is as hard to learn as theirs:

- conversion depends on firmographics partly non-monotonically (mid-sized companies and
  mid-ranked sites convert most), on a latent engagement that also drives usage, and on a
  larger latent intent the files never show; heavy free users (agencies, automations) rarely
  convert, and with free trials they crowd the top of any ranking by recent activity;
- most converters get busier in the weeks before their close, some show no ramp, and about a
  fifth have no usage before it at all; free companies run trials that rise like a ramp and end
  without a purchase;
- a dozen or so converters a week, at a rate rising over the history (the later months convert
  about 1.4x as often as the earlier ones), and every customer keeps using the product, more
  heavily, after its close.

Company-level draws come from `numpy.random.default_rng(seed)`; the row-level usage draws of
each block of `BLOCK` companies come from their own stream seeded by `(seed, block)`, so the
data never depends on how the usage file is chunked, and one seed gives byte-identical files.
Usage is generated and written block by block, so a million companies stream in bounded memory.

The parts: `vocabulary` (INDUSTRY values), `companies` (firmographics, label, close dates, usage
habits), `usage` (the weekly rows, block by block) and `files` (CSV and Parquet as the exports
look); this module checks the arguments and puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from hubscore.core.contract import EMPLOYEE_RANGES
from hubscore.core.errors import ConfigError
from hubscore.dev.companies import NO_RANK, draw_companies, last_monday
from hubscore.dev.files import (
    CUSTOMER_COLUMNS,
    CUSTOMER_SCHEMA,
    NONCUSTOMER_COLUMNS,
    NONCUSTOMER_SCHEMA,
    add_twins,
    batches,
    company_frame,
    write_table,
    write_usage,
)
from hubscore.dev.usage import BLOCK, USAGE_COLUMNS, usage_block
from hubscore.dev.vocabulary import industry_vocabulary

__all__ = [
    "BENCHMARK_ACTIVITY",
    "CUSTOMER_COLUMNS",
    "EMPLOYEE_RANGES",
    "NONCUSTOMER_COLUMNS",
    "NO_RANK",
    "USAGE_COLUMNS",
    "SampleSummary",
    "generate_sample",
]

BENCHMARK_ACTIVITY = 6.0
"""`activity` for the 1M-company benchmark: ~20 usage rows per company (~5 at 1.0)."""


@dataclass(frozen=True)
class SampleSummary:
    """What `generate_sample` wrote: row counts (duplicate noncustomer rows included) and paths."""

    customers: int
    noncustomers: int
    usage_rows: int
    paths: tuple[Path, ...]


def _check_args(
    companies: int, weeks: int, *, fmt: str, activity: float, row_group_rows: int
) -> None:
    """Raise ConfigError for arguments the generator cannot honour."""
    problems = [
        f"companies must be >= 100, got {companies}" if companies < 100 else "",
        f"weeks must be >= 1, got {weeks}" if weeks < 1 else "",
        f"fmt must be 'csv' or 'parquet', got {fmt!r}" if fmt not in ("csv", "parquet") else "",
        f"activity must be > 0, got {activity}" if not activity > 0 else "",
        f"row_group_rows must be >= 1, got {row_group_rows}" if row_group_rows < 1 else "",
    ]
    if any(problems):
        raise ConfigError(
            "bad sample arguments: " + "; ".join(p for p in problems if p),
            hint="see `hubscore.dev.sample.generate_sample` for the accepted values",
        )


def generate_sample(
    out: Path,
    *,
    seed: int = 42,
    companies: int = 5200,
    weeks: int = 78,
    fmt: Literal["csv", "parquet"] = "csv",
    end: date = date(2026, 11, 23),
    activity: float = 1.0,
    row_group_rows: int = 1_000_000,
) -> SampleSummary:
    """Write customers, noncustomers and usage_actions files into `out`; same seed, same bytes.

    Args:
        companies: customers + noncustomers (about 4% convert); twin rows are extra.
        weeks: weeks of usage history, ending at the Monday on or before `end`.
        activity: multiplies every company's weekly chance of a usage row (capped at 0.95).
            1.0 gives ~5 usage rows per company (the bundled 5,200-company sample, ~25k rows);
            the 1M-company benchmark uses 4.0 (~20 rows per company, ~20M rows).
        row_group_rows: least rows per Parquet row group / CSV write (groups hold whole blocks of
            1000 companies); it bounds memory and never changes the data.
    """
    _check_args(companies, weeks, fmt=fmt, activity=activity, row_group_rows=row_group_rows)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab = industry_vocabulary()
    first_monday = last_monday(end) - timedelta(weeks=weeks - 1)
    c = draw_companies(rng, companies, weeks=weeks, activity=activity, vocab=vocab)
    customers = company_frame(c, vocab, first_monday=first_monday, customers=True)
    free = company_frame(c, vocab, first_monday=first_monday, customers=False)
    noncustomers = add_twins(rng, free, companies=companies)
    paths = tuple(out / f"{name}.{fmt}" for name in ("customers", "noncustomers", "usage_actions"))
    write_table(customers, paths[0], schema=CUSTOMER_SCHEMA)
    write_table(noncustomers, paths[1], schema=NONCUSTOMER_SCHEMA)
    blocks = (
        usage_block(c, b, seed=seed, weeks=weeks, first_monday=first_monday)
        for b in range(-(-companies // BLOCK))
    )
    usage_rows = write_usage(batches(blocks, row_group_rows), paths[2])
    return SampleSummary(customers.height, noncustomers.height, usage_rows, paths)
