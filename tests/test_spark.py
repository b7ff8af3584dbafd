"""The Spark engine against a real local[2] Spark: the same outputs as the single machine.

One session serves every test (start-up costs ~20 s); the CLI joins it. Marked `spark`: the
default `just test` deselects these, `just ci` runs them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from inputs import split_csv
from typer.testing import CliRunner, Result

from hubscore.cli import app
from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.config import FeaturesConfig
from hubscore.core.contract import feature_file_metadata
from hubscore.core.datasets import parquet_parts, read_kv_metadata, write_folder_metadata
from hubscore.core.errors import ValidationError
from hubscore.core.ledger import LAYOUT_DIR, read_entries
from hubscore.dev.sample import generate_sample
from hubscore.features.build import BuildRequest, build_features
from hubscore.features.inputs import INPUT_KINDS

pyspark = pytest.importorskip("pyspark")

from hubscore.spark.build import build_features_spark  # noqa: E402
from hubscore.spark.session import SPARK_EXIT_CODE, spark_session  # noqa: E402

pytestmark = pytest.mark.spark
ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden" / "basic"
runner = CliRunner()
OUTPUTS = ("features.parquet", "rejects.parquet", "quality.json")


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """One local[2] session on loopback for the module."""
    with spark_session("local[2]") as session:
        yield session


def read_any(path: Path) -> pl.DataFrame:
    """Read a Parquet file or a folder of part files in part order."""
    return pl.read_parquet(parquet_parts(path))


def assert_same_build(local: Path, distributed: Path) -> None:
    """Features, rejects, metadata and quality profile are equal, floats included."""
    for name in ("features.parquet", "rejects.parquet"):
        expected, actual = read_any(local / name), read_any(distributed / name)
        assert actual.schema == expected.schema, name
        assert actual.equals(expected), name
    features = "features.parquet"
    assert read_kv_metadata(distributed / features) == read_kv_metadata(local / features)
    quality = json.loads((local / "quality.json").read_text())
    assert json.loads((distributed / "quality.json").read_text()) == quality


def both_builds(
    data: Path, tmp_path: Path, spark: object, *, as_of: date | None = None, **features: object
) -> tuple[Path, Path]:
    """Build `data` with DuckDB and with Spark; return the two output folders."""
    cfg = dataclasses.replace(FeaturesConfig(), **features)
    local, distributed = tmp_path / "duckdb", tmp_path / "spark"
    build_features(BuildRequest(data, local, cfg, as_of))
    build_features_spark(BuildRequest(data, distributed, cfg, as_of), spark, partitions=5)  # type: ignore[arg-type]
    return local, distributed


def append_lines(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def mess_up(folder: Path) -> None:
    """Add what real exports get wrong: bad rows, duplicates, an id in both files, BOM, CRLF."""
    customers = (folder / "customers.csv").read_text().splitlines()
    usage = (folder / "usage_actions.csv").read_text().splitlines()
    customer_id = customers[1].split(",")[-1]
    append_lines(
        folder / "customers.csv",
        [
            customers[3],  # an exact duplicate
            '2026-13-45,10.0,5,"1","",777001',  # not a date
            'not-a-date,10.0,5,"1","",abc',  # not an integer id
            '2026-03-02,,,"2 to 5","",' + customers[4].split(",")[-1],  # a less complete twin
        ],
    )
    append_lines(
        folder / "noncustomers.csv",
        [
            f'5,"1","",{customer_id}',  # also a customer: the customer wins
            '-5,"1","",888001',  # ALEXA_RANK below 1
            '12,"5000+","  Some   Industry ",888002',  # an unseen range, stray whitespace
            ',"   ","",888003',  # whitespace-only text
        ],
    )
    first = usage[1].split(",")
    company, week = first[0], first[1]
    append_lines(
        folder / "usage_actions.csv",
        [
            usage[2],  # an exact duplicate row
            f"{company},{week},900,0,0,0,3,0,0,0",  # a repeated week with more actions
            f"{company},2026-06-02 00:00:00.000,5,0,0,0,1,0,0,0",  # a Tuesday
            f"{company},2026-06-01 00:00:00.000,-1,0,0,0,0,0,0,0",  # negative
            f"{company},2026-06-08 00:00:00.000,5,0,0,0,6,0,0,0",  # users > actions
            "999999,2026-06-08 00:00:00.000,5,0,0,0,1,0,0,0",  # an orphan id
            "x1,2026-06-08 00:00:00.000,5,0,0,0,1,0,0,0",  # not an integer id
        ],
    )
    path = folder / "noncustomers.csv"
    text = path.read_text().replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated sample (another seed) with the mess of real exports added."""
    folder = tmp_path_factory.mktemp("messy")
    generate_sample(folder, seed=7, companies=1500, weeks=40)
    mess_up(folder)
    return folder


# --- build-features ---------------------------------------------------------------------------


def test_spark_build_equals_duckdb_on_the_bundled_sample(spark: object, tmp_path: Path) -> None:
    local, distributed = both_builds(ROOT / "data", tmp_path, spark)
    assert_same_build(local, distributed)
    assert len(parquet_parts(distributed / "features.parquet")) > 1  # really partitioned


def test_spark_build_equals_duckdb_on_messy_input(
    spark: object, messy: Path, tmp_path: Path
) -> None:
    local, distributed = both_builds(messy, tmp_path, spark, max_reject_rate=0.5)
    assert_same_build(local, distributed)
    quality = json.loads((distributed / "quality.json").read_text())
    assert quality["duplicates"]["noncustomers"]["also_customers"] == 1
    assert quality["duplicates"]["usage_actions"]["conflicting_duplicates"] >= 1
    assert {r["value"] for r in quality["unseen_employee_ranges"]} == {"5000+"}
    reasons = {r["reason"] for r in quality["rejects"]}
    assert {"not a Monday at 00:00:00", "negative", "below 1 (1 is the best rank)"} <= reasons


def test_spark_build_equals_duckdb_for_the_scoring_input(
    spark: object, messy: Path, tmp_path: Path
) -> None:
    local, distributed = both_builds(
        messy, tmp_path, spark, as_of=date(2026, 11, 22), max_reject_rate=0.5
    )
    assert_same_build(local, distributed)
    assert "label" not in read_any(distributed / "features.parquet").columns


def test_spark_build_equals_duckdb_on_parquet_inputs(spark: object, tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_sample(data, seed=11, companies=600, weeks=30, fmt="parquet")
    local, distributed = both_builds(data, tmp_path, spark, target="is_customer")
    assert_same_build(local, distributed)


def test_a_folder_of_parquet_files_reads_like_the_one_file(spark: object, tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_sample(data, seed=12, companies=600, weeks=30, fmt="parquet")
    local = tmp_path / "duckdb"
    build_features(BuildRequest(data, local, FeaturesConfig()))
    usage = pq.read_table(data / "usage_actions.parquet")
    folder = data / "usage_actions"
    folder.mkdir()
    third = -(-usage.num_rows // 3)
    for n in range(3):  # names sort in row order, as the folder's rows are numbered
        pq.write_table(usage.slice(n * third, third), folder / f"part-{n}.parquet")
    (data / "usage_actions.parquet").unlink()
    distributed = tmp_path / "spark"
    build_features_spark(BuildRequest(data, distributed, FeaturesConfig()), spark, partitions=3)  # type: ignore[arg-type]
    assert read_any(distributed / "features.parquet").equals(read_any(local / "features.parquet"))
    quality = json.loads((distributed / "quality.json").read_text())
    assert quality["files"]["usage_actions"]["path"] == str(folder)
    assert quality["files"]["usage_actions"]["rows"] == usage.num_rows
    expected = json.loads((local / "quality.json").read_text())
    for profile in (quality, expected):
        profile["files"]["usage_actions"].pop("path")
    assert quality == expected


@pytest.fixture(scope="module")
def messy_parts(messy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The messy input as folders of CSV parts, bad rows on both sides of a cut, one part gzip."""
    folder = tmp_path_factory.mktemp("messy-parts")
    for name, tail in (("customers", 2), ("noncustomers", 3), ("usage_actions", 4)):
        shutil.copy(messy / f"{name}.csv", folder / f"{name}.csv")
        rows = len((messy / f"{name}.csv").read_bytes().splitlines()) - 1
        split_csv(folder / f"{name}.csv", [rows // 2, rows - tail], gzip_last=True)
    return folder


def test_a_folder_of_csv_parts_builds_on_spark_as_on_duckdb(
    spark: object, messy: Path, messy_parts: Path, tmp_path: Path
) -> None:
    local, distributed = both_builds(messy_parts, tmp_path, spark, max_reject_rate=0.5)
    assert_same_build(local, distributed)
    # Rows are numbered through the parts: the rejects are the concatenated files' rejects.
    single = tmp_path / "single"
    cfg = dataclasses.replace(FeaturesConfig(), max_reject_rate=0.5)
    build_features(BuildRequest(messy, single, cfg))
    rejects, expected = (
        read_any(distributed / "rejects.parquet"),
        read_any(single / "rejects.parquet"),
    )
    assert rejects.drop("source_file").equals(expected.drop("source_file"))
    assert set(rejects["source_file"]) == {str(messy_parts / kind) for kind in INPUT_KINDS}
    assert read_any(distributed / "features.parquet").equals(read_any(single / "features.parquet"))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "holds no .csv or .parquet part files"),
        ({"a.csv": "id\n1\n", "b.parquet": ""}, "mixes CSV and Parquet part files"),
    ],
)
def test_an_empty_or_mixed_folder_behind_a_uri_is_a_clear_error(
    spark: object, messy_parts: Path, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(messy_parts, data)
    shutil.rmtree(data / "usage_actions")
    (data / "usage_actions").mkdir()
    for name, text in files.items():
        (data / "usage_actions" / name).write_text(text)
    request = BuildRequest(data, tmp_path / "out", FeaturesConfig())
    with pytest.raises(ValidationError, match=re.escape(message)) as raised:
        build_features_spark(request, spark, partitions=2, data_dir=data.as_uri())  # type: ignore[arg-type]
    assert f"{data.as_uri()}/usage_actions" in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_file_uris_build_through_hadoops_file_system(
    spark: object, messy_parts: Path, tmp_path: Path
) -> None:
    local = tmp_path / "duckdb"
    cfg = dataclasses.replace(FeaturesConfig(), max_reject_rate=0.5)
    build_features(BuildRequest(messy_parts, local, cfg))
    out = tmp_path / "out"
    args = ["--data-dir", messy_parts.as_uri(), "--out", out.as_uri(), "--max-reject-rate", "0.5"]
    result = runner.invoke(app, ["build-features", *args, "--engine", "spark"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{out.as_uri()}/features.parquet"
    # No temps, no checksum files: what a local path gives.
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    for name in ("features.parquet", "rejects.parquet"):
        expected, actual = read_any(local / name), read_any(out / name)
        uri = {str(messy_parts / k): f"{messy_parts.as_uri()}/{k}" for k in INPUT_KINDS}
        if name == "rejects.parquet":
            expected = expected.with_columns(pl.col("source_file").replace_strict(uri))
        assert actual.equals(expected), name
    assert read_kv_metadata(out / "features.parquet") == read_kv_metadata(
        local / "features.parquet"
    )
    quality = json.loads((out / "quality.json").read_text())
    assert quality["files"]["usage_actions"]["path"] == f"{messy_parts.as_uri()}/usage_actions"
    assert quality["spine"] == json.loads((local / "quality.json").read_text())["spine"]


def test_a_non_utf8_part_behind_a_uri_is_refused_by_name(
    spark: object, messy_parts: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(messy_parts, data)
    part = data / "customers" / "part-00001.csv"
    lines = part.read_bytes().count(b"\n")
    part.write_bytes(part.read_bytes() + b'2026-03-02,1.0,5,"Caf\xe9","",123456\n')
    args = ["--data-dir", data.as_uri(), "--out", (tmp_path / "out").as_uri(), "--engine", "spark"]
    result = runner.invoke(app, ["build-features", *args])
    assert result.exit_code == 3, result.output
    assert (
        f"{data.as_uri()}/customers/part-00001.csv is not UTF-8: line {lines + 1}" in result.stderr
    )
    assert not (tmp_path / "out").exists()


def test_too_many_bad_rows_fail_before_anything_is_written(
    spark: object, messy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "features.parquet").write_text("previous")
    args = ["--data-dir", str(messy), "--out", str(out), "--max-reject-rate", "0.0001"]
    result = runner.invoke(app, ["build-features", *args, "--engine", "spark"])
    assert result.exit_code == 3, result.output
    assert "rows are bad" in result.stderr and "max_reject_rate" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["features.parquet"]
    assert (out / "features.parquet").read_text() == "previous"


def test_train_and_score_read_a_spark_feature_folder(
    spark: object, messy: Path, tmp_path: Path
) -> None:
    from hubscore.training.dataset import read_features

    local, distributed = both_builds(messy, tmp_path, spark, max_reject_rate=0.5)
    from_file = read_features(local / "features.parquet")
    from_folder = read_features(distributed / "features.parquet")
    assert from_folder.frame.equals(from_file.frame)
    assert from_folder.metadata == from_file.metadata


# --- score ------------------------------------------------------------------------------------


def score(*args: str | Path, golden: Path = GOLDEN) -> Result:
    base = ["score", *map(str, args), "--model", str(golden / "run"), "--scored-at", "2026-11-29"]
    return runner.invoke(app, [*base, "--json", "-q"])


CALIBRATED = GOLDEN.parent / "xgboost"  # format 2: calibrated probabilities


@pytest.mark.parametrize("top_k", [None, 7])
def test_spark_scores_equal_the_single_machine_scorer(
    spark: object, tmp_path: Path, top_k: int | None
) -> None:
    # With --top-k the listed rows are explained (reasons, contributions) on both engines.
    k = ["--top-k", str(top_k)] if top_k else []
    rows = CALIBRATED / "input.parquet"
    local = score(rows, "-o", tmp_path / "local.parquet", *k, golden=CALIBRATED)
    distributed = score(
        rows, "-o", tmp_path / "spark.parquet", "--engine", "spark", *k, golden=CALIBRATED
    )
    assert local.exit_code == 0 and distributed.exit_code == 0, distributed.output
    expected = pl.read_parquet(tmp_path / "local.parquet")
    actual = read_any(tmp_path / "spark.parquet")
    assert actual.schema == expected.schema
    assert actual.drop("conversion_probability").equals(expected.drop("conversion_probability"))
    diff = (actual["conversion_probability"] - expected["conversion_probability"]).abs().max()
    assert diff is not None and float(diff) <= 1e-6  # type: ignore[arg-type]
    summaries = [json.loads(r.stdout) for r in (local, distributed)]
    for summary in summaries:
        summary.pop("duration_s")
        summary.pop("output")
    assert summaries[1] == summaries[0]
    assert len(actual) == (top_k or 60)


def test_a_small_input_is_listed_in_a_part_per_core_not_a_part_per_shuffle_partition(
    spark: object, tmp_path: Path
) -> None:
    # One small file is one input partition; it is sorted into one range partition per core
    # (local[2]), where a plain orderBy made 200 (spark.sql.shuffle.partitions): 200 Python
    # round trips for the labels and a part file for every few rows.
    out = tmp_path / "spark.parquet"
    done = score(CALIBRATED / "input.parquet", "-o", out, "--engine", "spark", golden=CALIBRATED)
    assert done.exit_code == 0, done.output
    assert 1 <= len(parquet_parts(out)) <= 2
    assert read_any(out).height == 60


def test_spark_drift_equals_the_local_scorers_when_batches_differ(
    spark: object, tmp_path: Path
) -> None:
    # 12,000 rows: one local batch, twelve Spark batches of 1,000; both count every row.
    table = pq.read_table(GOLDEN / "input.parquet")
    tiled = pl.concat([pl.from_arrow(table)] * 200)  # type: ignore[list-item]
    tiled = tiled.with_columns(pl.int_range(1, tiled.height + 1, dtype=pl.Int64).alias("id"))
    rows = tmp_path / "rows.parquet"
    pq.write_table(tiled.to_arrow().replace_schema_metadata(table.schema.metadata), rows)
    local = score(rows, "-o", tmp_path / "local.parquet")
    distributed = score(
        rows, "-o", tmp_path / "spark.parquet", "--engine", "spark", "--batch-size", "1000"
    )
    assert local.exit_code == 0 and distributed.exit_code == 0, distributed.output
    drifts = [json.loads(r.stdout)["drift_worst"] for r in (local, distributed)]
    assert drifts[1] == drifts[0]
    assert drifts[0] and drifts[0][0]["psi"] > 0


def test_spark_scores_file_uris_like_local_paths(spark: object, tmp_path: Path) -> None:
    # The footer's windows, the output's rename and its sidecar all go through Hadoop's FS.
    rows = CALIBRATED / "input.parquet"
    local = score(rows, "-o", tmp_path / "local.parquet", "--top-k", "7", golden=CALIBRATED)
    output = tmp_path / "scores.parquet"
    args = ["-o", output.as_uri(), "--engine", "spark", "--top-k", "7"]
    distributed = score(rows.as_uri(), *args, golden=CALIBRATED)
    assert distributed.exit_code == 0, distributed.output
    expected, actual = pl.read_parquet(tmp_path / "local.parquet"), read_any(output)
    assert actual.drop("conversion_probability").equals(expected.drop("conversion_probability"))
    assert (
        read_kv_metadata(output)["model_version"]
        == read_kv_metadata(tmp_path / "local.parquet")["model_version"]
    )
    summaries = [json.loads(r.stdout) for r in (local, distributed)]
    assert summaries[1]["input"] == rows.as_uri() and summaries[1]["output"] == output.as_uri()
    for summary in summaries:
        for key in ("duration_s", "input", "output"):
            summary.pop(key)
    assert summaries[1] == summaries[0]
    assert not [p.name for p in tmp_path.iterdir() if TEMP_MARKER in p.name or p.suffix == ".crc"]


def test_score_dataframe_ranks_per_cutoff_like_rank_scores(spark: object) -> None:
    from hubscore.engine.scorer import load_scorer, scored_at_for
    from hubscore.spark.score import score_dataframe

    base = pl.read_parquet(GOLDEN / "input.parquet")
    weeks = pl.concat(
        [base.with_columns(pl.lit(date(2026, 11, d)).alias("cutoff")) for d in (22, 29)]
    )
    at = scored_at_for(date(2026, 11, 29))
    expected = load_scorer(GOLDEN / "run").score(weeks, scored_at=at)
    frame = spark.createDataFrame(weeks.to_arrow())  # type: ignore[attr-defined]
    ranked = score_dataframe(frame, GOLDEN / "run", scored_at=at)
    actual = pl.from_arrow(ranked.toArrow())
    assert isinstance(actual, pl.DataFrame)
    keys = ["cutoff", "rank"]
    assert actual.sort(keys).select(expected.columns).equals(expected.sort(keys))


@pytest.fixture
def a_partition_per_file(spark: object) -> Iterator[None]:
    """Read each small part file as its own input partition, as Spark does large ones."""
    conf = spark.conf  # type: ignore[attr-defined]
    old = {k: conf.get(k) for k in (MAX_PARTITION_BYTES, OPEN_COST)}
    conf.set(MAX_PARTITION_BYTES, "64k")
    conf.set(OPEN_COST, "64k")
    yield
    for key, value in old.items():
        conf.set(key, value)


MAX_PARTITION_BYTES = "spark.sql.files.maxPartitionBytes"
OPEN_COST = "spark.sql.files.openCostInBytes"


def test_ranks_ties_and_summary_equal_the_local_scorer_over_many_partitions(
    spark: object, tmp_path: Path, a_partition_per_file: None
) -> None:
    # 6,000 rows, 60 distinct feature rows: every probability is shared by 100 shuffled ids,
    # so ties (to the smaller id) decide most ranks, and each rank range spans tasks: the
    # input is seven part files, and the scores are sorted into as many range partitions.
    table = pq.read_table(CALIBRATED / "input.parquet")
    tiled = pl.concat([pl.from_arrow(table)] * 100)  # type: ignore[list-item]
    ids = np.random.default_rng(3).permutation(tiled.height) + 1
    tiled = tiled.with_columns(pl.Series("id", ids, dtype=pl.Int64), cutoff=date(2026, 11, 29))
    rows = tmp_path / "rows.parquet"
    rows.mkdir()
    for i, part in enumerate(tiled.iter_slices(-(-tiled.height // 7))):
        pq.write_table(part.to_arrow(), rows / f"part-{i:05d}.parquet")
    write_folder_metadata(rows, feature_file_metadata(table.schema.metadata))
    k = ["--top-k", "2500", "--explain", "150"]
    local = score(rows, "-o", tmp_path / "local.parquet", *k, golden=CALIBRATED)
    spark_args = ["--engine", "spark", "--batch-size", "700", *k]
    distributed = score(rows, "-o", tmp_path / "spark.parquet", *spark_args, golden=CALIBRATED)
    assert local.exit_code == 0 and distributed.exit_code == 0, distributed.output
    expected, actual = (
        pl.read_parquet(tmp_path / "local.parquet"),
        read_any(tmp_path / "spark.parquet"),
    )
    assert actual.equals(expected)  # the same rows in the same order: by cutoff, then rank
    assert expected["conversion_probability"].n_unique() <= 60
    assert expected["reason_1"].head(150).null_count() == 0 and expected["reason_1"][150] is None
    written = [p for p in parquet_parts(tmp_path / "spark.parquet") if pq.read_metadata(p).num_rows]
    assert len(written) > 1  # several tasks ranked parts of the one cutoff
    summaries = [json.loads(r.stdout) for r in (local, distributed)]
    for summary in summaries:
        summary.pop("duration_s")
        summary.pop("output")
    assert summaries[1] == summaries[0]


def test_the_ranked_plan_sorts_by_range_not_in_one_window_task(spark: object) -> None:
    from hubscore.spark.score import score_dataframe

    frame = spark.createDataFrame(pq.read_table(GOLDEN / "input.parquet"))  # type: ignore[attr-defined]
    ranked = score_dataframe(frame, GOLDEN / "run")
    plan = ranked._jdf.queryExecution().executedPlan().toString()
    assert "Window" not in plan and "rangepartitioning" in plan.lower()


@pytest.mark.parametrize("as_uri", [False, True])
def test_a_failing_task_is_a_clear_error_and_keeps_the_previous_output(
    spark: object, tmp_path: Path, as_uri: bool
) -> None:
    table = pq.read_table(GOLDEN / "input.parquet")
    twice = tmp_path / "twice.parquet"
    pq.write_table(pl.concat([pl.from_arrow(table)] * 2).to_arrow(), twice)  # type: ignore[list-item]
    output = tmp_path / "scores.parquet"
    output.mkdir()
    (output / "previous").write_text("kept")
    target = output.as_uri() if as_uri else output
    result = score(twice, "-o", target, "--engine", "spark")
    assert result.exit_code == 3, result.output
    assert "share their id key" in result.stderr
    assert sorted(p.name for p in output.iterdir()) == ["previous"]
    assert not [p.name for p in tmp_path.iterdir() if TEMP_MARKER in p.name]


# --- errors at start-up -----------------------------------------------------------------------


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    result = score(GOLDEN / "input.parquet", "-o", tmp_path / "s.parquet", "--engine", "spark")
    assert result.exit_code == SPARK_EXIT_CODE
    assert "Spark needs Java" in result.stderr and "JAVA_HOME" in result.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_missing_spark_extra_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    for module in ("hubscore.spark.score", "hubscore.spark.build"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    result = score(GOLDEN / "input.parquet", "-o", tmp_path / "s.parquet", "--engine", "spark")
    assert result.exit_code == 2
    assert "hubscore[spark]" in result.stderr


def test_an_unreachable_master_is_a_clear_error(tmp_path: Path) -> None:
    args = ["--engine", "spark", "--master", "spark://127.0.0.1:9"]
    result = score(GOLDEN / "input.parquet", "-o", tmp_path / "s.parquet", *args)
    assert result.exit_code == SPARK_EXIT_CODE
    assert "cannot reach the Spark master spark://127.0.0.1:9" in result.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_a_fresh_cli_run_keeps_spark_quiet(tmp_path: Path) -> None:
    """A real process starts its own JVM: stderr holds hubscore's summary and nothing else."""
    output = tmp_path / "scores.parquet"
    command = [sys.executable, "-m", "hubscore", "score", str(GOLDEN / "input.parquet")]
    command += ["-o", str(output), "--model", str(GOLDEN / "run"), "--engine", "spark"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("scored 60 rows with model golden-basic-1")
    assert not [ln for ln in lines if "WARN" in ln or "log4j" in ln or "Spark" in ln]
    assert len(read_any(output)) == 60
    shutil.rmtree(output)


# --- the ledger (owner: monitoring): same session, so no second Spark gateway in this process --
GOLDENS = Path(__file__).parent / "golden"


def score_into_ledger(out: Path, ledger: Path, *args: str) -> Result:
    argv = ["score", str(GOLDENS / "xgboost" / "input.parquet"), "-o", str(out)]
    argv += ["--model", str(GOLDENS / "xgboost" / "run")]
    argv += ["--ledger", str(ledger), "--scored-at", "2024-01-07", "--top-k", "12", "--no-explain"]
    return runner.invoke(app, [*argv, "--holdout-share", "0.25", "-q", *args])


def ledger_rows(ledger: Path, name: str) -> pl.DataFrame:
    (path,) = (ledger / LAYOUT_DIR).glob(f"*{name}*.parquet")
    return pl.read_parquet(path)


def test_spark_records_the_same_ledger_and_control_group(spark: object, tmp_path: Path) -> None:
    local, distributed = tmp_path / "local", tmp_path / "spark"
    assert score_into_ledger(tmp_path / "l.parquet", local).exit_code == 0
    result = score_into_ledger(
        tmp_path / "s.parquet", distributed, "--engine", "spark",
        "--shadow", str(GOLDENS / "lightgbm" / "run"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected, actual = ledger_rows(local, "xgboost"), ledger_rows(distributed, "xgboost")
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
    assert ledger_rows(distributed, "lightgbm").height == 60
    assert not [p for p in tmp_path.iterdir() if "shadow" in p.name]  # shadow lists removed
