"""The `hubscore` command line: a thin layer that parses, calls the library, and renders.

Heavy stages (DuckDB SQL, training, export) are imported inside their command bodies so
that `hubscore score` starts fast and never loads the training stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hubscore import __version__
from hubscore.config import Config, load_config
from hubscore.errors import HubscoreError

app = typer.Typer(
    help="Score free-tier companies by their likelihood to convert into paying customers.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
stderr = Console(stderr=True)
stdout = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="YAML config overriding the packaged default.", envvar="HUBSCORE_CONFIG"
    ),
]


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn a HubscoreError into `error: ...` on stderr and its documented exit code."""
    try:
        yield
    except HubscoreError as exc:
        stderr.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            stderr.print(f"hint: {exc.hint}", highlight=False)
        raise typer.Exit(exc.exit_code) from None


def parse_date(value: str | None) -> date | None:
    """Parse a YYYY-MM-DD flag value."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def resolve_config(path: Path | None, **overrides: object) -> Config:
    """Load the config with command-line overrides (dotted keys, None = not given)."""
    return load_config(path, overrides=overrides)


def version_callback(value: bool) -> None:
    if value:
        stdout.print(f"hubscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Build point-in-time features, train and export models, and score companies."""
