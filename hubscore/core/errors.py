"""The HubscoreError tree: every failure a user can fix, with a stable exit code.

The library raises these; only `cli.py` turns them into a message and an exit code.
Messages say what failed, expected vs actual, then a `hint:` line with the next step.
"""

from __future__ import annotations


class HubscoreError(Exception):
    """A failure the user can fix; `exit_code` is stable and documented in the README."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}\nhint: {hint}" if hint else message)


class ConfigError(HubscoreError):
    """A configuration file, environment variable or flag is unknown or has a bad value."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None, key: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key
        """The dotted config key at fault, so the loader can name where its value came from."""


class ValidationError(HubscoreError):
    """Input data failed validation (bad rows over the reject budget, unparseable files)."""

    exit_code = 3


class SchemaError(HubscoreError):
    """An input file lacks required columns or has columns of the wrong type."""

    exit_code = 4


class ArtifactError(HubscoreError):
    """A run folder is missing, tampered with, or of an unknown format version."""

    exit_code = 5


class LockHeldError(HubscoreError):
    """Another run holds the lock on the same output."""

    exit_code = 6


class LeakageError(HubscoreError):
    """A model would be scored on rows it was fitted on: a bug, refused before any metric."""

    exit_code = 1


class DriftError(HubscoreError):
    """Input feature distributions drifted past the allowed population stability index."""

    exit_code = 7


class PromotionRefusedError(HubscoreError):
    """`hubscore promote`: the ledger does not show the challenger beating the champion."""

    exit_code = 10


ALERT_EXIT_CODE = 9
"""`hubscore monitor`: an alert of a kind `--fail-on` names fired (the outputs are written)."""


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


INTERRUPTED_EXIT_CODE = 130
"""Exit code after Ctrl-C or SIGTERM, as shells report a SIGINT death (128 + 2)."""
