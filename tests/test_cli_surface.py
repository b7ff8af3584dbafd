"""What a new user meets first: help that shows every default, and errors naming their source."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.cli_help import COMMAND_ORDER

runner = CliRunner()
WIDE = {"COLUMNS": "250"}  # one option per line: no wrapping inside the help table
GOLDEN_RUN = Path(__file__).parent / "golden" / "basic" / "run"
NO_DEFAULT = {
    "--as-of",
    "--threshold",
    "--top-k",
    "--fail-on-drift",
    "--config",
    "--since",
    "--until",
}
"""Options that are off unless given: no default to show."""


def commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    """Return every command (group commands too) with the argv that reaches it."""
    root = typer.main.get_command(app)
    found = []
    with typer.Context(root) as ctx:
        for name in root.list_commands(ctx):  # type: ignore[attr-defined]
            command = root.get_command(ctx, name)  # type: ignore[attr-defined]
            subcommands = getattr(command, "commands", None)
            if subcommands is None:
                found.append(([name], command))
            else:
                found += [([name, sub], cmd) for sub, cmd in subcommands.items()]
    return found


def help_lines(argv: list[str]) -> list[str]:
    result = runner.invoke(app, [*argv, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def option_line(lines: list[str], flag: str) -> str:
    # The option's own row: the flag first in its box, not another option's help naming it.
    (line,) = [line for line in lines if re.match(rf"^[│\s*]*{re.escape(flag)}(\s|,)", line)]
    return line


@pytest.mark.parametrize("argv", [argv for argv, _ in commands()], ids=" ".join)
def test_help_shows_every_default(argv: list[str]) -> None:
    (command,) = [cmd for path, cmd in commands() if path == argv]
    lines = help_lines(argv)
    for param in command.params:
        if not isinstance(param, TyperOption) or param.is_flag or param.required:
            continue
        if param.hidden:  # a deprecated spelling, out of the help
            continue
        if param.opts[0] in NO_DEFAULT:
            continue
        shown = param.show_default
        default = f"({shown})" if isinstance(shown, str) else getattr(param.default, "value", None)
        default = param.default if default is None else default
        assert f"[default: {default}]" in option_line(lines, param.opts[0]), param.opts[0]


@pytest.mark.parametrize("argv", [[], *(argv for argv, _ in commands())], ids=" ".join)
def test_flags_show_no_type_placeholder(argv: list[str]) -> None:
    lines = help_lines(argv)
    assert "<bool>" not in "\n".join(lines)
    assert option_line(lines, "--help").split("--help")[1].split()[0] == "Show"


def test_commands_are_listed_in_the_order_a_user_meets_them() -> None:
    text = "\n".join(help_lines([]))
    positions = [text.index(f" {name} ") for name in COMMAND_ORDER]
    assert positions == sorted(positions)


def test_a_bad_flag_value_names_the_flag() -> None:
    result = runner.invoke(app, ["train", "--model", "catboost"])
    assert result.exit_code == 2
    assert "set by flag --model" in result.stderr
    assert "expected one of 'logreg'" in result.stderr


def test_a_bad_environment_value_names_the_variable() -> None:
    env = {"HUBSCORE_FEATURES_LOOKBACK_DAYS": "abc"}
    result = runner.invoke(app, ["build-features"], env=env)
    assert result.exit_code == 2
    assert "set by environment variable HUBSCORE_FEATURES_LOOKBACK_DAYS" in result.stderr


def test_a_bad_file_value_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("features:\n  horizon_days: 0\n")
    result = runner.invoke(app, ["build-features", "--config", str(config)])
    assert result.exit_code == 2
    assert "features.horizon_days is 0" in result.stderr
    assert f"set in config file {config}" in result.stderr


def test_a_missing_data_dir_says_the_folder_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    result = runner.invoke(app, ["build-features", "--data-dir", str(missing)])
    assert result.exit_code == 3
    assert f"the input folder {missing} does not exist" in result.stderr
    assert "customers.csv" not in result.stderr


def test_a_missing_score_input_exits_3(tmp_path: Path) -> None:
    missing = tmp_path / "features.parquet"
    argv = ["score", str(missing), "-o", str(tmp_path / "out.csv"), "--model", str(GOLDEN_RUN)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 3, result.output
    assert f"input {missing} does not exist" in result.stderr


def test_a_csv_input_warns_once_that_windows_are_unchecked(tmp_path: Path) -> None:
    features = tmp_path / "input.csv"
    pl.read_parquet(GOLDEN_RUN.parent / "input.parquet").write_csv(features)
    argv = ["score", str(features), "-o", str(tmp_path / "out.csv"), "--model", str(GOLDEN_RUN)]
    result = runner.invoke(app, argv, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("windows not checked") == 1
