"""The named-block SQL loader and the packaged SQL files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from hubscore.core.errors import HubscoreError
from hubscore.features import sql

ROOT = Path(__file__).parent.parent


def test_every_packaged_block_loads_with_a_doc_and_one_statement() -> None:
    queries = sql.load_queries()
    assert {"check_usage", "dedupe_customers", "write_features", "usage_profile"} <= set(queries)
    for query in queries.values():
        assert query.doc, query.location
        assert ";" not in query.text, f"{query.location} holds more than one statement"


def test_lint_refuses_sql_built_from_python_strings(tmp_path: Path) -> None:
    # The risk is Python formatting values into SQL, not the .sql files: ruff's S608 (in
    # `just lint`) finds it; this proves the rule is on for our code.
    module = tmp_path / "stage.py"
    module.write_text('def q(con, x):\n    return con.execute(f"select * from t where id = {x}")\n')
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml"),
         "--no-cache", str(module)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "S608" in done.stdout


def write_sql(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stage.sql"
    path.write_text(text)
    return path


def test_parse_gives_name_doc_text_and_line(tmp_path: Path) -> None:
    path = write_sql(tmp_path, "-- header\n\n-- name: pick\n-- Pick one.\nselect $x as x;\n")
    query = sql.parse_queries(path)["pick"]
    assert (query.doc, query.text, query.line) == ("Pick one.", "select $x as x", 3)
    assert query.location == "sql/stage.sql:3 (pick)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: a\nselect 1\n", "no `--` doc line"),
        ("-- name: a\n-- Doc.\n", "is empty"),
        ("-- name: a\n-- Doc.\nselect 1\n-- name: a\n-- Doc.\nselect 2\n", "duplicate"),
    ],
)
def test_malformed_blocks_are_rejected(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(HubscoreError, match=problem):
        sql.parse_queries(write_sql(tmp_path, text))


def test_run_binds_parameters() -> None:
    with duckdb.connect(":memory:") as con:
        con.execute(
            "create table companies as select * from (values "
            "(1, date '2025-03-05'), (2, null), (3, date '2025-01-01')) t(id, closedate)"
        )
        con.execute("create table usage as select 1 as id, date '2025-01-12' as week_end")
        sql.run(con, "first_usage_macro")
        sql.run(con, "spine_as_of", {"as_of": "2025-02-01", "eligibility": "file_start"})
        rows = con.execute("select id, cutoff::varchar from spine order by id").fetchall()
    assert rows == [(1, "2025-02-01"), (2, "2025-02-01")]


def test_a_failing_block_is_named_with_its_file_and_line() -> None:
    with duckdb.connect(":memory:") as con, pytest.raises(sql.SqlRunError) as failure:
        sql.run(con, "usage_profile")
    assert re.match(r"sql/quality\.sql:\d+ \(usage_profile\) failed: ", str(failure.value))
    assert failure.value.exit_code == 1  # a missing table is a bug in our SQL, not bad data
    assert "a bug in hubscore" in str(failure.value)


def test_an_output_that_cannot_be_written_exits_3_not_as_a_bug(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with duckdb.connect(":memory:") as con, pytest.raises(sql.SqlRunError) as failure:
        con.execute("create table rejects as select 1 as source_file, 1 as row_number")
        sql.run(con, "write_rejects", {"out": blocked / "rejects.parquet"})
    assert failure.value.exit_code == 3
    assert "write_rejects" in str(failure.value)


def test_an_extra_parameter_is_an_error() -> None:
    with duckdb.connect(":memory:") as con:
        con.execute("create table spine as select 1 as id, 1 as label")
        assert sql.run(con, "spine_positives").fetchall() == [(1,)]
        with pytest.raises(sql.SqlRunError, match="count mismatch"):
            sql.run(con, "spine_positives", {"typo": 1})


def test_an_error_while_the_rows_stream_is_named_like_any_other() -> None:
    with duckdb.connect(":memory:") as con:
        con.execute(
            "create view raw_batch as select (case when i < 200000 then i::varchar "
            "else error('boom') end) as id from range(1000000) t(i)"
        )
        _, batches = sql.stream(con, "partition_keys", None, batch_rows=1000)
        assert next(batches).num_rows == 1000  # the failure comes after rows were read
        with pytest.raises(sql.SqlRunError) as failure:
            for _ in batches:
                pass
    assert "(partition_keys) failed: " in str(failure.value) and "boom" in str(failure.value)
    assert failure.value.exit_code == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Out of Memory Error: could not allocate block", 3),
        ("IO Error: disk full", 3),
        ("Invalid Input Error: boom", 1),
    ],
)
def test_a_streamed_memory_or_disk_failure_exits_3(message: str, code: int) -> None:
    # Arrow's stream reader re-raises DuckDB's errors as OSError with DuckDB's text.
    assert sql.SqlRunError(sql.query("spine_cutoff_rows"), OSError(message)).exit_code == code
