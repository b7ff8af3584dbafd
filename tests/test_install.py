"""The locked environment: what `uv sync` installs on a CPU-only scoring or training host."""

from __future__ import annotations

import tomllib
from pathlib import Path

LOCK = Path(__file__).parent.parent / "uv.lock"


def locked_names() -> set[str]:
    """Return the name of every package in uv.lock."""
    lock = tomllib.loads(LOCK.read_text(encoding="utf-8"))
    return {package["name"] for package in lock["package"]}


def test_the_lock_holds_no_gpu_library() -> None:
    names = locked_names()
    assert "xgboost-cpu" in names  # the same library and model bytes, without nvidia-nccl
    assert "xgboost" not in names
    assert sorted(n for n in names if n.startswith("nvidia-")) == []
