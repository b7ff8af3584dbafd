"""How values look in the Rich tables on stderr (the quality profile, the leaderboard)."""

from __future__ import annotations


def cell(value: object) -> str:
    """Format one table cell: thousands separators, four decimals, a dash for no value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
