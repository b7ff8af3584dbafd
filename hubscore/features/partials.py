"""Merge the quality-profile partials of disjoint sets of companies into one profile.

Every count in the profile adds up across partitions of company id (an id never straddles two
partitions); a few fields are minima or maxima, the first few row numbers, or a set of cutoffs.
Partials travel between processes as JSON with tagged dates (`dump_partial`, `load_partial`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

FIRST_ROWS = 5
"""Example row numbers a reject reason keeps (the SQL's `[1:5]`)."""
MIN_FIELDS = frozenset({"first_week", "first_close", "first_cutoff"})
MAX_FIELDS = frozenset({"usage_end", "last_close", "last_cutoff"})
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "rejects": ("source_file", "column", "reason"),
    "company_duplicates": ("file",),
    "missing_by_label": ("companies",),
    "unseen_employee_ranges": ("value",),
}
# The SQL's own orders; rejects also order by reason, so ties no longer depend on the engine.
ROW_ORDERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "rejects": lambda r: (r["source_file"], -r["rows"], r["column"], r["reason"]),
    "missing_by_label": lambda r: r["companies"],
    "unseen_employee_ranges": lambda r: (-r["rows"], r["value"]),
}
_DATE_TAG = "$date"


def merge_partials(partials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return one profile with the sections of `partials` summed (a single partial is a copy)."""
    merged: dict[str, Any] = {}
    for name in partials[0]:
        sections = [partial[name] for partial in partials]
        if isinstance(sections[0], list):
            merged[name] = _merge_rows(name, sections)
        else:
            merged[name] = _merge_record(sections)
    return merged


def _merge_record(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {field: _reduce(field, [r[field] for r in records]) for field in records[0]}


def _merge_rows(name: str, sections: Sequence[Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    keys = ROW_KEYS[name]
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in itertools.chain.from_iterable(sections):
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    rows = [
        {f: rows[0][f] if f in keys else _reduce(f, [r[f] for r in rows]) for f in rows[0]}
        for rows in groups.values()
    ]
    order = ROW_ORDERS.get(name)
    return sorted(rows, key=order) if order else rows


def _reduce(field: str, values: Sequence[Any]) -> Any:
    """Combine one field across partitions; NULL (an empty partition) is skipped."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if field in MIN_FIELDS:
        return min(present)
    if field in MAX_FIELDS:
        return max(present)
    if field in ("first_rows", "example_ids"):
        return sorted(itertools.chain.from_iterable(present))[:FIRST_ROWS]
    if field in ("cutoff_list", "close_dates"):
        return sorted(set(itertools.chain.from_iterable(present)))
    return sum(present)


def dump_partial(partial: Mapping[str, Any]) -> str:
    """Serialise a partial to JSON, tagging dates so `load_partial` restores them."""
    return json.dumps(partial, default=_tag_date)


def load_partial(text: str) -> dict[str, Any]:
    """Read a partial written by `dump_partial`."""
    loaded: dict[str, Any] = json.loads(text, object_hook=_untag_date)
    return loaded


def _tag_date(value: object) -> dict[str, str]:
    if isinstance(value, date):
        return {_DATE_TAG: value.isoformat()}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _untag_date(obj: dict[str, Any]) -> Any:
    return date.fromisoformat(obj[_DATE_TAG]) if set(obj) == {_DATE_TAG} else obj
