"""Typed decoding of parsed JSON and YAML into hubscore's dataclasses, with msgspec.

The dataclasses stay the one statement of each layout (add a field there, nothing here):
msgspec checks every value against its annotation, nested dataclasses and Literals included.
msgspec rather than pydantic: its import keeps the scorer's cold start small.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hubscore.core.errors import HubscoreError

T = TypeVar("T")

_WHERE = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.(?P<key>[^.\[]+)|\[(?P<index>\d+|\.\.\.)\]")
_MISSING = object()


def decode(raw: object, cls: type[T], *, source: str, error: type[HubscoreError], hint: str) -> T:
    """Return `raw` as a `cls`, or raise `error` naming `source`, the key, expected and actual."""
    _refuse_unknown_keys(raw, cls, source=source, error=error, hint=hint)
    try:
        return msgspec.convert(raw, cls, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        failure = error(f"{source}: {describe(exc, raw, cls)}", hint=hint)
        raise _at(failure, _path_of(exc)) from None


def _path_of(exc: msgspec.ValidationError) -> str | None:
    match = _WHERE.match(str(exc))
    path = match["path"] if match else None
    return path.lstrip(".") if path else None


def _at(failure: HubscoreError, key: str | None) -> HubscoreError:
    """Record the dotted key at fault on the error (config names where that value came from)."""
    failure.key = key  # type: ignore[attr-defined]
    return failure


def describe(exc: msgspec.ValidationError, raw: object, cls: type[Any]) -> str:
    """Turn msgspec's message into `key a.b[0]: expected float, got str (the value is 'x')`."""
    match = _WHERE.match(str(exc))
    assert match is not None  # the pattern matches any text
    problem = match["problem"].replace("`", "").replace("Expected", "expected")
    problem = problem.replace("Invalid RFC3339 encoded date", "expected a YYYY-MM-DD date")
    path = match["path"]
    if path is None:
        return problem
    if problem.startswith("Invalid enum value"):
        problem = f"expected {_allowed(cls, path)}"
    actual = _lookup(raw, path)
    shown = "" if actual is _MISSING else f" (the value is {actual!r})"
    return f"key {path.lstrip('.')}: {problem}{shown}"


def _allowed(cls: Any, path: str) -> str:
    """Describe what the annotation at `path` of `cls` allows: `float or 'auto'`."""
    hint = cls
    for step in _STEP.finditer(path):
        if step["key"] is None or not dataclasses.is_dataclass(hint):
            return "another value"
        hint = typing.get_type_hints(hint).get(step["key"])
    options = typing.get_args(hint) if typing.get_origin(hint) is not typing.Literal else (hint,)
    literal = [o for o in options if typing.get_origin(o) is typing.Literal]
    choices = [repr(v) for o in literal for v in typing.get_args(o)]
    others = [getattr(o, "__name__", str(o)) for o in options if o not in literal]
    return " or ".join([*others, f"one of {', '.join(choices)}"])


def _lookup(raw: object, path: str) -> object:
    value = raw
    for step in _STEP.finditer(path):
        if step["key"] is not None and isinstance(value, dict):
            value = value.get(step["key"], _MISSING)
        elif step["index"] not in (None, "...") and isinstance(value, list):
            index = int(step["index"])
            value = value[index] if index < len(value) else _MISSING
        else:
            return _MISSING
    return value


def _refuse_unknown_keys(
    raw: object,
    cls: type[Any],
    *,
    source: str,
    error: type[HubscoreError],
    hint: str,
    prefix: str = "",
) -> None:
    # msgspec ignores unknown keys of dataclasses; a misspelt key must not pass silently.
    if not (dataclasses.is_dataclass(cls) and isinstance(raw, dict)):
        return
    fields = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        failure = error(
            f"{source}: unknown key {prefix}{unknown[0]} (known keys here: "
            f"{', '.join(sorted(fields))})",
            hint=hint,
        )
        raise _at(failure, f"{prefix}{unknown[0]}")
    for name, value in raw.items():
        nested = fields[name]
        if dataclasses.is_dataclass(nested) and isinstance(nested, type):
            _refuse_unknown_keys(
                value, nested, source=source, error=error, hint=hint, prefix=f"{prefix}{name}."
            )


def _decode_path(cls: type[Any], value: Any) -> Any:
    if cls is Path and isinstance(value, str | Path):  # YAML gives str, flags give Path
        return Path(value)
    raise TypeError(f"Expected `{cls.__name__}`, got `{type(value).__name__}`")
