"""Load named SQL blocks from `sql/*.sql` and run them on DuckDB with bound parameters.

A block is `-- name: <name>`, then one or more `--` doc lines, then exactly one statement.
Values, paths included, are always bound as `$name` parameters: no SQL is built from strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from hubscore.core.errors import HubscoreError, ValidationError, first_line

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Query:
    """One named statement from a `.sql` file, with where it came from."""

    name: str
    doc: str
    text: str
    path: Path
    line: int

    @property
    def location(self) -> str:
        """Return `sql/<file>:<line> (<name>)` for error messages."""
        return f"sql/{self.path.name}:{self.line} ({self.name})"


class SqlFileError(HubscoreError):
    """A `.sql` file in the package is malformed (a bug in hubscore, not in the data)."""


def sql_dir() -> Path:
    """Return the folder of the packaged SQL files (`sql/` in a checkout)."""
    packaged = Path(str(resources.files("hubscore.features").joinpath("_sql")))
    if packaged.is_dir():
        return packaged
    # An editable install (a checkout) has no packaged copy: the wheel force-includes sql/.
    return Path(__file__).resolve().parents[2] / "sql"


def parse_queries(path: Path) -> dict[str, Query]:
    """Parse one `.sql` file's named blocks, rejecting empty, duplicate or undocumented ones."""
    queries: dict[str, Query] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if _NAME.match(line)]
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        match = _NAME.match(lines[start])
        assert match is not None
        name = match["name"]
        body = lines[start + 1 : end]
        doc_lines = [ln for ln in _leading_comments(body)]
        text = "\n".join(body[len(doc_lines) :]).strip().rstrip(";").strip()
        where = f"{path.name}:{start + 1} ({name})"
        if name in queries:
            raise SqlFileError(f"duplicate SQL block name at {where}")
        if not doc_lines:
            raise SqlFileError(f"SQL block at {where} has no `--` doc line")
        if not text:
            raise SqlFileError(f"SQL block at {where} is empty")
        doc = " ".join(ln.lstrip("-").strip() for ln in doc_lines)
        queries[name] = Query(name, doc, text, path, start + 1)
    return queries


def _leading_comments(body: list[str]) -> list[str]:
    doc: list[str] = []
    for line in body:
        if not line.startswith("--"):
            break
        doc.append(line)
    return doc


@cache
def load_queries() -> dict[str, Query]:
    """Return every named block of every packaged `.sql` file."""
    queries: dict[str, Query] = {}
    for path in sorted(sql_dir().glob("*.sql")):
        for name, query in parse_queries(path).items():
            if name in queries:
                raise SqlFileError(f"SQL block {name} is defined twice: {query.location}")
            queries[name] = query
    return queries


def query(name: str) -> Query:
    """Return the named block."""
    return load_queries()[name]


def run(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Execute the named block with bound parameters; DuckDB errors name the block."""
    block = query(name)
    # DuckDB binds str, not Path: paths are the one kind of value every stage passes.
    bound = {k: str(v) if isinstance(v, Path) else v for k, v in (params or {}).items()}
    try:
        return con.execute(block.text, bound)
    except duckdb.Error as exc:
        raise SqlRunError(block, exc) from exc


def stream(
    con: duckdb.DuckDBPyConnection,
    name: str,
    params: Mapping[str, Any] | None,
    batch_rows: int,
) -> tuple[Any, Iterator[Any]]:
    """Run the named query; return its Arrow schema and its record batches as they come.

    A relation, not a DB-API cursor: its Arrow reader needs no extra copy of the rows. DuckDB
    errors while the batches are read (memory, disk) name the block, as `run`'s do.
    """
    block = query(name)
    bound = {k: str(v) if isinstance(v, Path) else v for k, v in (params or {}).items()}
    try:
        reader = con.sql(block.text, params=bound).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise SqlRunError(block, exc) from exc
    return reader.schema, _batches(block, reader)


def _batches(block: Query, reader: Any) -> Iterator[Any]:
    try:
        yield from reader
    except (duckdb.Error, OSError) as exc:  # Arrow's reader re-raises DuckDB's as OSError
        raise SqlRunError(block, exc) from exc


def register_layout(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[str]) -> None:
    """Expose `columns`, in order and without rows, as the view `name` (for unions by name)."""
    nulls = [duckdb.ConstantExpression(None).alias(column) for column in columns]
    empty = con.values([None]).filter(duckdb.ConstantExpression(False))
    con.register(name, empty.select(*nulls))


def fetch_dicts(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run the named block and return its rows as dicts."""
    cursor = run(con, name, params)
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


# Failures of the machine, not of hubscore's SQL: a file that cannot be read or written, a
# full disk (DuckDB spills past its memory limit), memory. Every other DuckDB error on our
# blocks is a bug in them: the data reach the SQL typed and checked.
_MACHINE_ERRORS = (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.PermissionException)
# The same, re-raised by Arrow's stream reader as OSError "<DuckDB's kind>: <message>".
_MACHINE_MESSAGES = ("IO Error", "Out of Memory Error", "Permission Error")


class SqlRunError(HubscoreError):
    """DuckDB failed on a named block: exit 1 (a bug in hubscore's SQL), or 3 for I/O and memory."""

    exit_code = 1

    def __init__(self, block: Query, exc: Exception) -> None:
        self.block = block
        self.cause = exc
        if isinstance(exc, _MACHINE_ERRORS) or _names_the_machine(exc):
            self.exit_code = ValidationError.exit_code
            hint = "check the input and output paths, free disk space and memory"
        else:
            hint = "this is a bug in hubscore: report it with the command that failed"
        super().__init__(f"{block.location} failed: {first_line(exc)}", hint=hint)


def _names_the_machine(exc: Exception) -> bool:
    """Whether a stream's OSError carries DuckDB's I/O, memory or permission error."""
    if not isinstance(exc, OSError) or isinstance(exc, duckdb.Error):
        return False
    return str(exc).startswith(_MACHINE_MESSAGES)
