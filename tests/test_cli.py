"""The command line: help for every command, and build-features / sample-data end to end."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import typer
from inputs import FIRST_MONDAY, weekly, write_inputs
from typer.testing import CliRunner

from hubscore import __version__
from hubscore.cli import app

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands  # a click Group: every command by name


def test_the_documented_commands_are_the_app_s_commands() -> None:
    assert set(COMMANDS) == {
        "sample-data",
        "build-features",
        "train",
        "score",
        "monitor",
        "promote",
        "rollback",
        "serve",
        "runs",
    }


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str) -> None:
    summary = (COMMANDS[command].help or "").strip().splitlines()
    assert summary, f"{command} has no help text"
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert " ".join(summary[0].split()) in " ".join(result.output.split())  # Rich wraps lines
    subcommands = getattr(COMMANDS[command], "commands", None)  # `runs` is a group
    for cmd in [COMMANDS[command], *(subcommands or {}).values()]:
        options = [p for p in cmd.params if p.param_type_name == "option"]
        assert options or subcommands, f"{command} has no options"
        assert all(p.help for p in options), f"{command} {cmd.name} has an option without help"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_sample_data_then_build_features(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "build"
    sample = runner.invoke(
        app,
        ["sample-data", "--out", str(data), "--companies", "400", "--weeks", "40"],
        catch_exceptions=False,
    )
    assert sample.exit_code == 0
    assert sorted(p.name for p in data.iterdir()) == [
        "customers.csv",
        "noncustomers.csv",
        "usage_actions.csv",
    ]
    built = runner.invoke(
        app,
        ["build-features", "--data-dir", str(data), "--out", str(out)],
        catch_exceptions=False,
    )
    assert built.exit_code == 0
    assert built.stdout.strip().endswith("features.parquet"), "the output path goes to stdout"
    assert "Missing firmographics by label" in built.stderr
    assert pl.read_parquet(out / "features.parquet")["label"].sum() > 0
    assert json.loads((out / "quality.json").read_text())["files"]["customers"]["rows"] > 0


def test_build_features_as_of_and_flags_reach_the_config(tmp_path: Path) -> None:
    data = write_inputs(
        tmp_path,
        customers=[{"CLOSEDATE": "2024-01-02", "MRR": 1, "id": 1}],
        noncustomers=[{"id": 2, "EMPLOYEE_RANGE": "1"}],
        usage=weekly(2, 20),
    )
    as_of = "2025-05-11"
    result = runner.invoke(
        app,
        [
            "build-features",
            "--data-dir",
            str(data),
            "--out",
            str(tmp_path / "b"),
            "--as-of",
            as_of,
            "--lookback-days",
            "56",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    features = pl.read_parquet(tmp_path / "b" / "features.parquet")
    assert features["cutoff"].to_list() == [FIRST_MONDAY.replace(month=5, day=11)]
    assert features["days_active"].item() == 56, "8 active weeks in a 56-day look-back"


def test_missing_column_exits_4_with_file_and_column(tmp_path: Path) -> None:
    data = write_inputs(
        tmp_path, customers=[{"CLOSEDATE": "2024-01-02", "id": 1}], noncustomers=[{"id": 2}]
    )
    text = (data / "usage_actions.csv").read_text().replace("ACTIONS_EMAIL", "EMAILS")
    (data / "usage_actions.csv").write_text(text + "1,2025-01-06 00:00:00.000,0,0,0,0,0,0,0,0\n")
    result = runner.invoke(app, ["build-features", "--data-dir", str(data)])
    assert result.exit_code == 4
    assert "usage_actions.csv is missing required column ACTIONS_EMAIL" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output


def test_bad_rows_over_budget_exit_3(tmp_path: Path) -> None:
    rows = weekly(2, 10)
    rows[3] = {**rows[3], "ACTIONS_EMAIL": -4}
    data = write_inputs(
        tmp_path,
        customers=[{"CLOSEDATE": "2024-01-02", "id": 1}],
        noncustomers=[{"id": 2}],
        usage=rows,
    )
    result = runner.invoke(
        app, ["build-features", "--data-dir", str(data), "--out", str(tmp_path / "b")]
    )
    assert result.exit_code == 3
    assert "ACTIONS_EMAIL: negative" in result.stderr
    assert not (tmp_path / "b").exists()


def test_bad_config_value_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("features:\n  horizon_days: -1\n")
    result = runner.invoke(app, ["build-features", "--config", str(config)])
    assert result.exit_code == 2
    assert "features.horizon_days is -1" in result.stderr


def test_bad_date_flag_exits_2() -> None:
    result = runner.invoke(app, ["build-features", "--as-of", "next sunday"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["build-features", "--data-dir", "s3a://bucket/raw"], "--data-dir s3a://bucket/raw"),
        (["build-features", "--out", "hdfs://nn/build"], "--out hdfs://nn/build"),
        (["score", "gs://b/features.parquet", "-o", "s.parquet"], "INPUT gs://b/features.parquet"),
        (["score", "f.parquet", "-o", "abfss://c@a.dfs.core.windows.net/s.parquet"], "--output"),
    ],
)
def test_the_local_engine_refuses_a_uri_by_name(tmp_path: Path, args: list[str], flag: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert flag in result.stderr and "URIs need --engine spark" in result.stderr
    assert "Traceback" not in result.output
