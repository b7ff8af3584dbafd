"""Render the data-quality profile that `build-features` writes to `quality.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hubscore.core.display import cell


def render_quality(quality: dict[str, Any], console: Console) -> None:
    """Print the quality profile as Rich tables: inputs, duplicates, missingness, usage, spine."""
    console.print(_inputs_table(quality))
    console.print(_missing_table(quality["missing_by_label"]))
    console.print(_facts_table(quality))


def _inputs_table(quality: dict[str, Any]) -> Table:
    table = Table(title="Inputs", title_justify="left")
    for column in ("file", "rows", "rejected", "exact dups", "conflicting dups", "resolved"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for kind, report in quality["files"].items():
        dups = quality["duplicates"].get(kind, {})
        table.add_row(
            Path(report["path"]).name,
            f"{report['rows']:,}",
            f"{report['rejected']:,} ({report['reject_rate']:.2%})",
            f"{dups.get('exact_duplicates', 0):,}",
            f"{dups.get('conflicting_duplicates', 0):,}",
            f"{dups.get('also_customers', 0):,} also customers" if kind == "noncustomers" else "",
        )
    return table


def _missing_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Missing firmographics by label", title_justify="left")
    table.add_column("companies")
    columns = [c for c in rows[0] if c not in ("companies", "rows")] if rows else []
    for column in ("rows", *columns):
        table.add_column(column, justify="right")
    for row in rows:
        share = [
            f"{row[c]:,} ({row[c] / row['rows']:.0%})" if row["rows"] else "0" for c in columns
        ]
        table.add_row(row["companies"], f"{row['rows']:,}", *share)
    return table


def _facts_table(quality: dict[str, Any]) -> Table:
    table = Table(title="Usage and spine", title_justify="left", show_header=False)
    table.add_column("fact")
    table.add_column("value", justify="right")
    for key, value in quality["usage"].items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    for key, value in quality["customers"].items():
        table.add_row(f"customers {key.replace('_', ' ')}", cell(value))
    for item in quality["unseen_employee_ranges"]:
        table.add_row(f"unseen EMPLOYEE_RANGE {item['value']!r}", f"{item['rows']:,}")
    labels = quality["labels"]
    how = labels["known_until_source"].split(":")[0].split(" (")[0]  # derived or given
    table.add_row("labels known until", f"{labels['known_until']} ({how})")
    closes = labels["closes_after_known_until"]
    examples = ", ".join(map(str, labels["example_ids"]))
    table.add_row(
        "closes after it (flagged)", f"{closes:,}" + (f" (ids {examples})" if closes else "")
    )
    for key, value in quality["spine"].items():
        table.add_row(f"spine {key.replace('_', ' ')}", cell(value))
    return table
