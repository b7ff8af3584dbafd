"""Locations given on the command line: a local path, or a URI only the Spark engine opens."""

from __future__ import annotations

import re
from pathlib import Path

from hubscore.core.errors import ConfigError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
"""A scheme of two letters or more, then `:/`: `s3a://b/x`, `file:///x`; never `C:/x`."""


def is_uri(location: str) -> bool:
    """Tell whether a location is a URI (`s3a://`, `hdfs://`, `file:///`, ...)."""
    return bool(_URI.match(location))


def local_path(location: str, *, flag: str) -> Path:
    """Return a local path, refusing a URI: `pathlib` would mangle `s3a://b/x` to `s3a:/b/x`."""
    if is_uri(location):
        raise ConfigError(
            f"{flag} {location} is a URI; URIs need --engine spark",
            hint="pass --engine spark (the spark extra), or a local path",
        )
    return Path(location)
