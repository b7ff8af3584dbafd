"""How `hubscore --help` reads (commands in the order a user meets them, flags without a
type), and how a command ends when the reader of its stdout goes away (`| head`): cleanly.

Typer labels every option with its type, flags too (`--json <bool>` reads as if it took a
value), and lists commands in definition order. `HelpGroup` fixes both for every command of
the group it is the class of. Options whose default comes from the config show the packaged
default with `config_default`, so `[default: ...]` is never hand-written in a help string
(Rich takes a hand-written one for markup and drops it).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from typer._click import Command, Context, Parameter  # Typer vendors its own click
from typer.core import TyperGroup, TyperOption

from hubscore.core.config import load_config

COMMAND_ORDER = (
    "sample-data",
    "build-features",
    "train",
    "score",
    "monitor",
    "promote",
    "rollback",
    "serve",
    "runs",
)


class HelpGroup(TyperGroup):
    """A command group listing commands in `COMMAND_ORDER`, its flags shown without a type;
    a command whose stdout pipe closes exits 0 (click would exit 1, our "unexpected bug")."""

    def invoke(self, ctx: Context) -> Any:
        """Run the command; a closed stdout (`hubscore score ... | head`) is no error."""
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # Point stdout at /dev/null so the interpreter's last flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)

    def list_commands(self, ctx: Context) -> list[str]:
        """Return the commands in the order a user meets them, then any others."""
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def get_params(self, ctx: Context) -> list[Parameter]:
        """Return the group's own options (--version, --help), flags without a type."""
        params: list[Parameter] = super().get_params(ctx)
        hide_flag_types(params)
        return params

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """Return a command whose flags (its --help included) show no type."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            hide_flag_types(command.get_params(ctx))
        return command


def hide_flag_types(params: Iterable[Any]) -> None:
    """Give flags an empty metavar: Typer would label them `<bool>`."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


@functools.cache
def _packaged_config() -> dict[str, Any]:
    config: dict[str, Any] = load_config(None, environ={}).to_dict()
    return config


def config_default(dotted: str) -> str:
    """Return the packaged default of a config key as help shows it, e.g. `data/build`."""
    section, key = dotted.split(".", 1)
    value = _packaged_config()[section][key]
    return _shown(value)


def _shown(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(map(str, value))
    return str(value)
