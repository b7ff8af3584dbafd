"""`score --engine spark` records the same ledger as the single-machine scorer (real local[2])."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from hubscore.cli import app
from hubscore.core.ledger import LAYOUT_DIR, read_entries

pyspark = pytest.importorskip("pyspark")

from hubscore.spark.session import spark_session  # noqa: E402

pytestmark = pytest.mark.spark
GOLDEN = Path(__file__).parent / "golden"
INPUT = GOLDEN / "xgboost" / "input.parquet"
runner = CliRunner()


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """One local[2] session for the module; the CLI joins it."""
    with spark_session("local[2]") as session:
        yield session


def score(out: Path, ledger: Path, *args: str) -> Result:
    argv = ["score", str(INPUT), "-o", str(out), "--model", str(GOLDEN / "xgboost" / "run")]
    argv += ["--ledger", str(ledger), "--as-of", "2024-01-07", "--top-k", "12", "--no-explain"]
    return runner.invoke(app, [*argv, "--holdout-share", "0.25", "-q", *args])


def rows(ledger: Path, name: str) -> pl.DataFrame:
    (path,) = (ledger / LAYOUT_DIR).glob(f"*{name}*.parquet")
    return pl.read_parquet(path)


def test_spark_records_the_same_ledger_and_control_group(spark: object, tmp_path: Path) -> None:
    local, distributed = tmp_path / "local", tmp_path / "spark"
    assert score(tmp_path / "l.parquet", local).exit_code == 0
    result = score(
        tmp_path / "s.parquet", distributed, "--engine", "spark",
        "--shadow", str(GOLDEN / "lightgbm" / "run"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected, actual = rows(local, "xgboost"), rows(distributed, "xgboost")
    assert actual.drop("conversion_probability").equals(expected.drop("conversion_probability"))
    diff = (actual["conversion_probability"] - expected["conversion_probability"]).abs().max()
    assert diff is not None and float(diff) <= 1e-6  # type: ignore[arg-type]
    assert actual["hold"].sum() == 3
    listed = pl.read_parquet(sorted((tmp_path / "s.parquet").glob("*.parquet")))
    held = listed.filter("hold")["id"].sort().to_list()
    assert held == actual.filter("hold")["id"].sort().to_list()  # the list flags the same rows
    assert listed.columns == pl.read_parquet(tmp_path / "l.parquet").columns
    roles = {e.model_version: e.role for e in read_entries(distributed)}
    assert roles == {"golden-xgboost-2": "champion", "golden-lightgbm-2": "shadow"}
    assert rows(distributed, "lightgbm").height == 60
    assert not [p for p in tmp_path.iterdir() if "shadow" in p.name]  # shadow lists removed
