"""The build's memory budget: a share of the machine's memory (or of its cgroup), or a size.

DuckDB gets the budget as its `memory_limit` and spills past it into the build's scratch
folder; the labelled spines are built in chunks sized from it, so no single step needs more.
"""

from __future__ import annotations

import os
from pathlib import Path

from hubscore.core.config import MIN_MEMORY_BYTES, memory_budget

CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
CHUNK_ROW_BYTES = 4096
"""Budget per spine row of a chunk: the aggregation's state (exact sums of eight columns), the
joins and the sorted feature row (~60 columns). Measured peaks stay well under it (bench/)."""
MIN_CHUNK_ROWS = 10_000


def machine_memory() -> int:
    """Return the memory this process may use: physical memory, or its cgroup's limit if lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = [physical]
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 reports a huge number instead
            limits.append(int(text))
    return min(limits)


def budget_bytes(setting: str) -> int:
    """Return the budget `features.memory_limit` names, in bytes (validated by the config)."""
    budget = memory_budget(setting)
    if budget is None:  # FeaturesConfig refuses it; a direct caller gets the floor
        return MIN_MEMORY_BYTES
    if isinstance(budget, float):
        return max(MIN_MEMORY_BYTES, int(machine_memory() * budget))
    return budget


def duckdb_memory_limit(budget: int) -> str:
    """Return DuckDB's `memory_limit` setting for a budget in bytes (whole MiB)."""
    return f"{max(budget // 2**20, 1)}MiB"


def rows_per_chunk(budget: int) -> int:
    """Return how many spine rows one chunk of the labelled build may hold within `budget`."""
    return max(MIN_CHUNK_ROWS, budget // CHUNK_ROW_BYTES)
