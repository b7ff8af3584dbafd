"""How training tells its caller where it is: a small callback object passed down the stack.

`train_and_export` takes a `Progress` and hands it to each level that knows something: the
run (which family of how many), each family (which step), the search (which trial of how
many) and the cross-validation (which fold). `SILENT` ignores every call, so each level runs
with or without a caller watching; a front end implements the four methods it shows.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Training's progress callbacks."""

    def family(self, name: str, index: int, count: int) -> None:
        """Family `name` starts: the `index`-th (from 1) of `count`."""

    def step(self, text: str) -> None:
        """The current family starts a step, e.g. "refit on every labelled row"."""

    def trial(self, number: int, total: int) -> None:
        """Search trial `number` (from 1) of at most `total` starts; 1 of 1 with the search off."""

    def fold(self, number: int, total: int) -> None:
        """Cross-validation fold `number` (from 1) of `total` of the current trial is done."""


class Silent:
    """A `Progress` that shows nothing."""

    def family(self, name: str, index: int, count: int) -> None:
        """Ignore it."""

    def step(self, text: str) -> None:
        """Ignore it."""

    def trial(self, number: int, total: int) -> None:
        """Ignore it."""

    def fold(self, number: int, total: int) -> None:
        """Ignore it."""


SILENT: Progress = Silent()
"""The default of every training function that takes a `Progress`."""
