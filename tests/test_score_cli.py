"""`hubscore score` end to end: exit codes, stderr, atomic output, locks, signals."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from inputs import golden_copies
from typer.testing import CliRunner, Result

from hubscore.cli import app
from hubscore.core.artifacts import ENCODERS_FILE, MANIFEST, MODEL_FILE, sha256_file
from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.ledger import read_entries
from hubscore.serving.batch import _group_rows, _row_groups

GOLDEN = Path(__file__).parent / "golden" / "basic"
INPUT = GOLDEN / "input.parquet"
RUN = GOLDEN / "run"
runner = CliRunner()


def score(*args: str | Path, model: Path = RUN) -> Result:
    return runner.invoke(app, ["score", *map(str, args), "--model", str(model), "-q"])


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARKER in p.name)


def test_scores_parquet_with_summary_and_json(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    result = runner.invoke(
        app, ["score", str(INPUT), "-o", str(out), "--model", str(RUN), "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_scored"] == summary["rows_written"] == 60
    assert summary["model_version"] == "golden-basic-1"
    assert "scored 60 rows with model golden-basic-1" in result.stderr
    assert "drift (PSI, worst first):" in result.stderr
    expected = pl.read_parquet(GOLDEN / "expected_scores.parquet").drop("native_probability")
    got = pl.read_parquet(out)
    assert got.drop("scored_at").equals(expected.drop("scored_at"))
    assert temps(tmp_path) == []


def test_as_of_makes_output_byte_identical(tmp_path: Path) -> None:
    for ext in ("parquet", "csv"):
        first, second = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
        assert score(INPUT, "-o", first, "--as-of", "2024-01-07").exit_code == 0
        assert (
            score(INPUT, "-o", second, "--as-of", "2024-01-07", "--batch-size", "7").exit_code == 0
        )
        assert first.read_bytes() == second.read_bytes()
    assert "2024-01-07T00:00:00Z" in (tmp_path / "a.csv").read_text()


@pytest.mark.parametrize("groups", [[60], [25, 35]], ids=["one row group", "two row groups"])
def test_a_big_row_group_is_decoded_in_parts_into_the_same_batches(
    tmp_path: Path, groups: list[int]
) -> None:
    # Parts of 32 rows (40 rounded down to whole batches of 16), each group in its own parts.
    source, table, start = tmp_path / "input.parquet", pq.read_table(INPUT), 0
    with pq.ParquetWriter(source, table.schema) as writer:
        for rows in groups:
            writer.write_table(table.slice(start, rows), row_group_size=rows)
            start += rows
    assert _group_rows(pq.ParquetFile(source)) == groups
    columns = pq.ParquetFile(source).schema_arrow.names
    parts = list(_row_groups(source, columns, groups, 16, decoded_rows=40))
    whole = list(_row_groups(source, columns, groups, 16, decoded_rows=10**9))
    assert [b.height for b in parts] == [b.height for b in whole]
    assert all(p.equals(w) for p, w in zip(parts, whole, strict=True))
    assert pl.concat(parts).equals(pl.read_parquet(INPUT))


def test_csv_input_scores_like_parquet(tmp_path: Path) -> None:
    csv_in = tmp_path / "companies.csv"
    pl.read_parquet(INPUT).write_csv(csv_in)
    assert score(csv_in, "-o", tmp_path / "c.parquet", "--as-of", "2024-01-07").exit_code == 0
    assert score(INPUT, "-o", tmp_path / "p.parquet", "--as-of", "2024-01-07").exit_code == 0
    csv_scores = pl.read_parquet(tmp_path / "c.parquet")
    assert csv_scores.equals(pl.read_parquet(tmp_path / "p.parquet"))


def test_top_k_writes_only_the_call_list(tmp_path: Path) -> None:
    out = tmp_path / "calls.csv"
    assert score(INPUT, "-o", out, "--top-k", "5", "--threshold", "0.9").exit_code == 0
    calls = pl.read_csv(out)
    assert calls["rank"].to_list() == [1, 2, 3, 4, 5]
    # what a caller reads, in order; the week is the scoring time when the input has no cutoff
    assert calls.columns[:6] == [
        "rank", "id", "scored_at", "conversion_probability", "priority", "prediction"
    ]  # fmt: skip
    assert "contributions" not in calls.columns and "confidence" not in calls.columns
    every = tmp_path / "every.csv"
    explained = GOLDEN.parent / "xgboost"
    args = ("-o", every, "--top-k", "5", "--all-columns")
    assert score(explained / "input.parquet", *args, model=explained / "run").exit_code == 0
    assert {"contributions", "base_value", "confidence", "model_version"} <= set(
        pl.read_csv(every).columns
    )


def test_empty_input_writes_valid_empty_output(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pl.read_parquet(INPUT).head(0).write_parquet(empty)
    out = tmp_path / "scores.parquet"
    assert score(empty, "-o", out).exit_code == 0
    assert pl.read_parquet(out).columns[:3] == ["id", "conversion_probability", "prediction"]
    assert pl.read_parquet(out).height == 0


def test_missing_columns_exit_4_with_one_message(tmp_path: Path) -> None:
    partial = tmp_path / "partial.parquet"
    pl.read_parquet(INPUT).drop("days_active", "tenure_days").write_parquet(partial)
    result = score(partial, "-o", tmp_path / "s.parquet")
    assert result.exit_code == 4
    assert result.stderr == (
        "error: model expects 47 feature columns and id, the input lacks 2; "
        "missing: days_active, tenure_days\n"
        "hint: build it with hubscore build-features --as-of DATE (a scoring input) or without "
        "--as-of (training features), from the same hubscore version\n"
    )


def test_duplicate_ids_exit_3(tmp_path: Path) -> None:
    doubled = tmp_path / "doubled.parquet"
    rows = pl.read_parquet(INPUT)
    pl.concat([rows, rows.tail(1)]).write_parquet(doubled)
    result = score(doubled, "-o", tmp_path / "s.parquet", "--batch-size", "10")
    assert result.exit_code == 3
    assert "share their id key with another row; first: 100059" in result.stderr


def test_a_missing_input_exits_3_as_documented(tmp_path: Path) -> None:
    result = score(tmp_path / "absent.parquet", "-o", tmp_path / "s.parquet")
    assert result.exit_code == 3
    assert f"input {tmp_path / 'absent.parquet'} does not exist" in result.stderr


def test_other_feature_windows_exit_4(tmp_path: Path) -> None:
    table = pq.read_table(INPUT)
    other = tmp_path / "other.parquet"
    metadata = {**table.schema.metadata, b"horizon_days": b"14"}
    pq.write_table(table.replace_schema_metadata(metadata), other)
    result = score(other, "-o", tmp_path / "s.parquet")
    assert result.exit_code == 4
    assert "horizon_days=14 (model: 30)" in result.stderr


def with_metadata(tmp_path: Path, **changes: str | None) -> Path:
    """The golden input with its hubscore metadata changed (None drops a key)."""
    table = pq.read_table(INPUT)
    metadata = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    metadata = {k: v for k, v in {**metadata, **changes}.items() if v is not None}
    path = tmp_path / "input.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def with_features_version(tmp_path: Path, version: int) -> Path:
    """The golden run folder as if trained on features of `version` (the manifest is not
    hashed: it lists the hashes)."""
    run = Path(shutil.copytree(RUN, tmp_path / "run"))
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["target"]["features_version"] = version
    (run / MANIFEST).write_text(json.dumps(manifest))
    return run


@pytest.mark.parametrize(
    ("built", "trained", "says"),
    [
        ("1", 2, "built by features version 1, the model was trained on version 2"),
        (None, 2, "before features versions; the model was trained on features version 2"),
        ("2", None, "features version 2; the model's run folder predates features versions"),
    ],
)
def test_an_input_whose_features_mean_something_else_exits_4(
    tmp_path: Path, built: str | None, trained: int | None, says: str
) -> None:
    # The tenure cap changed a feature's meaning without changing any window.
    source = with_metadata(tmp_path, features_version=built)
    run = with_features_version(tmp_path, trained) if trained else RUN
    result = score(source, "-o", tmp_path / "s.parquet", model=run)
    assert result.exit_code == 4, result.output
    assert says in result.stderr and "rebuild the input with this hubscore" in result.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_inputs_of_the_models_features_version_score_whichever_hubscore_built_them(
    tmp_path: Path,
) -> None:
    source = with_metadata(tmp_path, features_version="2", hubscore_version="0.0.9")
    run = with_features_version(tmp_path, 2)
    assert score(source, "-o", tmp_path / "s.parquet", model=run).exit_code == 0


def test_unversioned_files_compare_by_hubscore_version(tmp_path: Path) -> None:
    # A file and a run folder from before the stamp: the same hubscore built both, or refused.
    older = with_metadata(tmp_path, hubscore_version="0.0.9")
    result = score(older, "-o", tmp_path / "s.parquet")
    assert result.exit_code == 4
    assert "built by hubscore 0.0.9 without a features version" in result.stderr
    assert score(INPUT, "-o", tmp_path / "s.parquet").exit_code == 0  # both 0.1.0


def test_build_features_stamps_the_features_version(tmp_path: Path) -> None:
    from hubscore.core.contract import FEATURES_VERSION
    from hubscore.core.datasets import read_kv_metadata

    args = ["build-features", "--out", str(tmp_path), "--as-of", "2026-11-29"]
    assert runner.invoke(app, args).exit_code == 0
    metadata = read_kv_metadata(tmp_path / "features.parquet")
    assert metadata["features_version"] == str(FEATURES_VERSION)


def test_tampered_model_exits_5(tmp_path: Path) -> None:
    run = Path(shutil.copytree(RUN, tmp_path / "run"))
    (run / MODEL_FILE).write_bytes((run / MODEL_FILE).read_bytes()[:-1])
    result = score(INPUT, "-o", tmp_path / "s.parquet", model=run)
    assert result.exit_code == 5
    assert "model.onnx does not match its manifest" in result.stderr


def test_a_manifest_value_of_the_wrong_type_exits_5_naming_file_key_and_values(
    tmp_path: Path,
) -> None:
    run = Path(shutil.copytree(RUN, tmp_path / "run"))
    manifest = json.loads((run / MANIFEST).read_text())
    (run / MANIFEST).write_text(json.dumps({**manifest, "decision_threshold": "high"}))
    result = score(INPUT, "-o", tmp_path / "s.parquet", model=run)
    assert result.exit_code == 5
    assert f"{run / MANIFEST}: key decision_threshold: expected float, got str" in result.stderr
    assert "(the value is 'high')" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "s.parquet").exists()


def test_an_encoder_spec_value_of_the_wrong_type_exits_5_naming_the_key(tmp_path: Path) -> None:
    run = Path(shutil.copytree(RUN, tmp_path / "run"))
    spec = json.loads((run / ENCODERS_FILE).read_text())
    spec["numeric"][0]["fill"] = "median"
    (run / ENCODERS_FILE).write_text(json.dumps(spec))
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"][ENCODERS_FILE] = sha256_file(run / ENCODERS_FILE)  # a consistent folder
    (run / MANIFEST).write_text(json.dumps(manifest))
    result = score(INPUT, "-o", tmp_path / "s.parquet", model=run)
    assert result.exit_code == 5
    expected = "key numeric[0].fill: expected float | null, got str (the value is 'median')"
    assert expected in result.stderr


def test_default_model_is_models_latest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["score", str(INPUT), "-o", "s.parquet"])
    assert result.exit_code == 5
    assert "models/latest is not a hubscore run folder" in result.stderr
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "latest").symlink_to(RUN)
    assert runner.invoke(app, ["score", str(INPUT), "-o", "s.parquet"]).exit_code == 0


def test_bad_output_extension_exits_2(tmp_path: Path) -> None:
    result = score(INPUT, "-o", tmp_path / "scores.xlsx")
    assert result.exit_code == 2
    assert "expected one of .parquet, .pq, .csv" in result.stderr


def test_an_output_that_is_a_folder_exits_2_before_scoring(tmp_path: Path) -> None:
    (tmp_path / "scores.parquet").mkdir()
    result = score(INPUT, "-o", tmp_path / "scores.parquet")
    assert result.exit_code == 2
    assert f"output {tmp_path / 'scores.parquet'} is a folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert temps(tmp_path) == []


def test_drift_past_limit_exits_7_and_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"previous")
    result = score(INPUT, "-o", out, "--fail-on-drift", "0.05")
    assert result.exit_code == 7
    assert "features drifted past their allowed PSI" in result.stderr
    assert "(allowed 0.05)" in result.stderr
    assert out.read_bytes() == b"previous"
    assert temps(tmp_path) == []
    assert score(INPUT, "-o", out, "--fail-on-drift", "50").exit_code == 0


def test_per_feature_drift_allowances_replace_the_limit_for_those_features(
    tmp_path: Path,
) -> None:
    out = tmp_path / "scores.parquet"
    first = score(INPUT, "-o", out, "--fail-on-drift", "0.05", "--json")
    assert first.exit_code == 7
    drifted = re.findall(r"(\w+) \d+\.\d+ \(allowed", first.stderr)
    allow = {"scoring": {"drift_allowances": dict.fromkeys(drifted, 1000.0)}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(allow))
    args = ("--fail-on-drift", "0.05", "--config", config)
    # Only the five worst are named; allowing them lets the next worst fail the run.
    second = score(INPUT, "-o", out, *args)
    assert second.exit_code in (0, 7)
    assert not set(drifted) & set(re.findall(r"(\w+) \d+\.\d+ \(allowed", second.stderr))
    typo = {"scoring": {"drift_allowances": {"tenure_dayz": 2.0}}}
    config.write_text(yaml.safe_dump(typo))
    refused = score(INPUT, "-o", out, "--config", config)
    assert refused.exit_code == 2
    assert "tenure_dayz" in refused.stderr


def test_stale_temps_are_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    (tmp_path / f".scores.parquet{TEMP_MARKER}killed").write_bytes(b"litter")
    assert score(INPUT, "-o", out).exit_code == 0
    assert temps(tmp_path) == []


def test_a_second_run_on_the_same_output_exits_6(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time; from pathlib import Path\n"
            "from hubscore.core.atomic import exclusive_lock\n"
            "with exclusive_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        result = score(INPUT, "-o", out)
        assert result.exit_code == 6
        assert "another hubscore run is writing" in result.stderr
    finally:
        holder.kill()
        holder.communicate()
    assert score(INPUT, "-o", out).exit_code == 0  # the kernel released the lock


def _start_scoring(source: Path, out: Path, ledger: Path) -> subprocess.Popen[bytes]:
    args = ["score", str(source), "-o", str(out), "--model", str(RUN), "--batch-size", "2000"]
    args += ["--ledger", str(ledger)]
    proc = subprocess.Popen([sys.executable, "-m", "hubscore", *args], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    # Wait until the run is mid-flight: its temp output exists beside the target.
    while not temps(out.parent):
        assert proc.poll() is None and time.monotonic() < deadline, "scoring ended too soon"
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_keeps_previous_output(tmp_path: Path, sig: signal.Signals) -> None:
    source = golden_copies(tmp_path, copies=2500)  # 150k rows: a few seconds of scoring
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scores.parquet"
    out.write_bytes(b"previous")
    ledger = tmp_path / "ledger"
    proc = _start_scoring(source, out, ledger)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    assert out.read_bytes() == b"previous"
    assert read_entries(ledger) == []  # no list, so no record of one
    if sig == signal.SIGTERM:
        assert proc.returncode == 130
        assert b"interrupted; the previous output is unchanged" in err
        assert temps(out_dir) == []
    else:
        assert proc.returncode == -signal.SIGKILL
        assert temps(out_dir) != []  # litter a SIGKILL cannot clean; the next run does
    assert score(INPUT, "-o", out).exit_code == 0
    assert temps(out_dir) == []
    assert pl.read_parquet(out).height == 60


def test_score_help_is_documented() -> None:
    result = runner.invoke(app, ["score", "--help"])
    assert result.exit_code == 0
    for flag in ("--model", "--threshold", "--top-k", "--as-of", "--fail-on-drift", "--json"):
        assert flag in result.stdout


def test_log_format_json_writes_one_event_line(tmp_path: Path) -> None:
    args = ["score", str(INPUT), "-o", str(tmp_path / "s.csv"), "--model", str(RUN)]
    result = runner.invoke(app, [*args, "--log-format", "json"])
    assert result.exit_code == 0
    (line,) = result.stderr.splitlines()
    event = json.loads(line)
    assert event["event"] == "scored"
    assert event["rows_scored"] == 60
    quiet = runner.invoke(app, [*args, "--quiet"])
    assert quiet.exit_code == 0
    assert quiet.stderr == ""


def test_dash_writes_the_csv_list_to_stdout(tmp_path: Path) -> None:
    result = score(INPUT, "-o", "-", "--top-k", "3", "--as-of", "2024-01-07")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("rank,id,scored_at,conversion_probability,priority")
    assert len(lines) == 4
    refused = score(INPUT, "-o", "-", "--json")
    assert refused.exit_code == 2
    assert "--json" in refused.stderr


def test_a_closed_output_pipe_ends_the_command_cleanly(tmp_path: Path) -> None:
    # `hubscore score ... -o - | head`: the reader goes away before the list is written.
    command = [sys.executable, "-m", "hubscore", "score", str(INPUT), "-o", "-"]
    json_summary = [*command[:-2], "-o", str(tmp_path / "s.csv"), "--json"]
    for args in ([*command, "-q"], json_summary):
        with subprocess.Popen(
            [*args, "--model", str(RUN)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            process.stdout.close()  # before anything is written: every write meets a closed pipe
            stderr = process.stderr.read().decode()
            assert process.wait(timeout=120) == 0, stderr
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr
