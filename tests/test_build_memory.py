"""The build's memory budget: it follows the machine, and a labelled spine builds in chunks.

The training spine (a row per company and weekly cutoff) is built chunk by chunk, each chunk
sized from the budget, so a small budget gives the same features as a large one.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from inputs import FIRST_MONDAY, weekly, write_inputs
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core.config import FeaturesConfig, load_config
from hubscore.core.errors import ConfigError
from hubscore.features import memory
from hubscore.features.build import BuildRequest, build_features
from hubscore.features.chunks import ID_MAX, ID_MIN, Chunk, plan_chunks

DATA = Path(__file__).resolve().parent.parent / "data"
MONDAY = date(2025, 1, 5)


def build(out: Path, **features: object) -> pl.DataFrame:
    cfg = dataclasses.replace(FeaturesConfig(), **features)
    return pl.read_parquet(build_features(BuildRequest(DATA, out, cfg)).features_path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The bundled sample's training features with the default budget (one chunk)."""
    return build(tmp_path_factory.mktemp("reference"))


def test_a_small_budget_builds_the_same_features_in_chunks(
    tmp_path: Path, reference: pl.DataFrame
) -> None:
    assert memory.rows_per_chunk(memory.budget_bytes("64MB")) < reference.height // 10
    assert build(tmp_path, memory_limit="64MB").equals(reference)


def test_a_cutoff_larger_than_a_chunk_is_split_by_company_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = [{"id": n, "EMPLOYEE_RANGE": "1"} for n in range(2, 11)]
    usage = [row for n in range(2, 11) for row in weekly(n, 30, actions=n, start=FIRST_MONDAY)]
    customers = [{"CLOSEDATE": "2025-06-04", "MRR": 1, "id": 1}]
    folder = write_inputs(tmp_path / "raw", customers=customers, noncustomers=free, usage=usage)
    cfg = FeaturesConfig()
    whole = build_features(BuildRequest(folder, tmp_path / "whole", cfg)).features_path
    monkeypatch.setattr(memory, "rows_per_chunk", lambda budget: 4)  # 10 companies a cutoff
    split = build_features(BuildRequest(folder, tmp_path / "split", cfg)).features_path
    assert pl.read_parquet(split).equals(pl.read_parquet(whole))


def test_chunks_group_whole_cutoffs_in_order() -> None:
    rows = [(MONDAY + timedelta(weeks=n), count) for n, count in enumerate([40, 30, 50, 10, 10])]
    chunks = plan_chunks(rows, [], rows_per_chunk=80)
    assert [(c.cutoff_from, c.cutoff_to) for c in chunks] == [
        (rows[0][0], rows[1][0]),
        (rows[2][0], rows[4][0]),
    ]
    assert all((c.id_from, c.id_to) == (ID_MIN, ID_MAX) for c in chunks)


def test_a_large_cutoff_becomes_one_chunk_per_id_range() -> None:
    big, small = MONDAY, MONDAY + timedelta(weeks=1)
    chunks = plan_chunks([(big, 300), (small, 20)], [100, 200], rows_per_chunk=120)
    assert chunks == [
        Chunk(big, big, ID_MIN, 99),
        Chunk(big, big, 100, 199),
        Chunk(big, big, 200, ID_MAX),
        Chunk(small, small),
    ]


def test_the_budget_is_a_share_of_the_machine_or_a_size() -> None:
    machine = memory.machine_memory()
    assert memory.budget_bytes("auto") == pytest.approx(machine * 0.25, rel=1e-6)
    assert memory.budget_bytes("40%") == pytest.approx(machine * 0.40, rel=1e-6)
    assert memory.budget_bytes("4GB") == 4 * 10**9
    assert memory.budget_bytes("512MiB") == 512 * 2**20
    assert memory.duckdb_memory_limit(512 * 2**20) == "512MiB"


@pytest.mark.parametrize("value", ["lots", "0%", "150%", "10MB", "4 parsecs"])
def test_a_bad_budget_is_a_config_error_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"features\.memory_limit"):
        load_config(environ={"HUBSCORE_FEATURES_MEMORY_LIMIT": value})


def test_the_memory_limit_flag_reaches_the_config() -> None:
    result = CliRunner().invoke(app, ["build-features", "--memory-limit", "10MB"])
    assert result.exit_code == 2
    assert "features.memory_limit is '10MB'" in result.stderr
    assert "set by flag --memory-limit" in result.stderr
