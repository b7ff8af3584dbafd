"""The trips a user met on the command line (issue 18, item 8), each closed.

- `build-features --as-of` without `--out` wrote the scoring input over the training features;
- `train --features` defaulted to a fixed path, whatever `data.build_dir` or `--config` said;
- nested config keys could not be set from the environment;
- `score --as-of` only stamped `scored_at` while `build-features --as-of` picks the data date;
- `--out` was the build folder in one command and the models folder in another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from inputs import weekly, write_inputs
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core.config import load_config

runner = CliRunner()
GOLDEN = Path(__file__).parent / "golden" / "basic"


def config_file(tmp_path: Path, data: Path) -> Path:
    """A config that puts every folder under tmp_path (nothing lands in the checkout)."""
    path = tmp_path / "hubscore.yaml"
    build, models = tmp_path / "work" / "build", tmp_path / "work" / "models"
    path.write_text(f"data:\n  dir: {data}\n  build_dir: {build}\n  models_dir: {models}\n")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_features_as_of_without_out_leaves_the_training_features_alone(
    tmp_path: Path,
) -> None:
    data = write_inputs(
        tmp_path / "raw",
        customers=[{"CLOSEDATE": "2025-05-14", "MRR": 1, "id": 1}],
        noncustomers=[{"id": 2, "EMPLOYEE_RANGE": "1"}],
        usage=[*weekly(1, 18), *weekly(2, 30)],
    )
    config = config_file(tmp_path, data)
    training = runner.invoke(app, ["build-features", "--config", str(config)])
    assert training.exit_code == 0, training.stderr
    build = tmp_path / "work" / "build"
    before = digest(build / "features.parquet")

    scoring = runner.invoke(
        app, ["build-features", "--config", str(config), "--as-of", "2025-06-01"]
    )
    assert scoring.exit_code == 0, scoring.stderr
    assert digest(build / "features.parquet") == before
    assert "label" in pl.read_parquet(build / "features.parquet").columns
    written = Path(scoring.stdout.strip())
    assert written == build / "scoring" / "features.parquet"
    assert "label" not in pl.read_parquet(written).columns


def test_train_reads_the_features_of_the_configured_build_folder(tmp_path: Path) -> None:
    config = config_file(tmp_path, tmp_path / "raw")
    result = runner.invoke(app, ["train", "--config", str(config), "--search", "off"])
    assert result.exit_code != 0
    expected = tmp_path / "work" / "build" / "features.parquet"
    assert str(expected) in " ".join(result.stderr.split()), result.stderr
    assert "data/build/features.parquet" not in result.stderr


def test_nested_config_keys_are_set_from_the_environment() -> None:
    env = {"HUBSCORE_TRAINING_SEARCH_TRIALS": "3", "HUBSCORE_TRAINING_SEARCH_TIMEOUT_S": "60"}
    search = load_config(environ=env).training.search
    assert (search.trials, search.timeout_s) == (3, 60.0)
    assert load_config(environ={}).training.search.trials == 10, "the packaged default"


def test_a_bad_nested_environment_value_names_the_variable() -> None:
    env = {"HUBSCORE_TRAINING_SEARCH_TRIALS": "many"}
    result = runner.invoke(app, ["train", "--search", "on"], env=env)
    assert result.exit_code == 2
    assert "training.search.trials" in result.stderr
    assert "HUBSCORE_TRAINING_SEARCH_TRIALS" in result.stderr


def scoring_input(tmp_path: Path, as_of: str) -> Path:
    """The golden input as build-features --as-of writes it: with its date in the metadata."""
    table = pq.read_table(GOLDEN / "input.parquet")
    metadata = {**(table.schema.metadata or {}), b"as_of": as_of.encode()}
    path = tmp_path / "input.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def score(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["score", *args, "--model", str(GOLDEN / "run"), "--json"])
    return result.exit_code, result.stdout, result.stderr


def test_score_stamps_scored_at_from_scored_at(tmp_path: Path) -> None:
    source, out = scoring_input(tmp_path, "2026-11-29"), tmp_path / "scores.parquet"
    code, stdout, stderr = score(str(source), "-o", str(out), "--scored-at", "2026-11-30")
    assert code == 0, stderr
    assert "deprecated" not in stderr
    stamps = pl.read_parquet(out)["scored_at"].unique().to_list()
    assert [s.isoformat() for s in stamps] == [json.loads(stdout)["scored_at"]]
    assert json.loads(stdout)["scored_at"].startswith("2026-11-30")


def test_score_as_of_still_stamps_with_a_warning_when_it_matches_the_input(tmp_path: Path) -> None:
    source, out = scoring_input(tmp_path, "2026-11-29"), tmp_path / "scores.parquet"
    code, stdout, stderr = score(str(source), "-o", str(out), "--as-of", "2026-11-29")
    assert code == 0, stderr
    assert "score --as-of is deprecated" in stderr and "--scored-at" in stderr
    assert json.loads(stdout)["scored_at"].startswith("2026-11-29")


def test_score_as_of_refuses_a_date_the_input_was_not_built_at(tmp_path: Path) -> None:
    source, out = scoring_input(tmp_path, "2026-11-29"), tmp_path / "scores.parquet"
    code, _, stderr = score(str(source), "-o", str(out), "--as-of", "2026-12-06")
    assert code == 2
    text = " ".join(stderr.split())
    assert "holds the companies as of 2026-11-29" in text
    assert "build-features --as-of 2026-12-06" in text
    assert not out.exists()


def test_train_takes_models_dir_and_still_takes_out_with_a_warning(
    tmp_path: Path, features_file: Path
) -> None:
    for flag in ("--models-dir", "--out"):
        models = tmp_path / flag.strip("-")
        args = ["train", "--features", str(features_file), "--model", "logreg", "--search", "off"]
        result = runner.invoke(app, [*args, flag, str(models)])
        assert result.exit_code == 0, result.stderr
        assert Path(result.stdout.strip().splitlines()[-1]).parent == models
        assert ("deprecated" in result.stderr) == (flag == "--out")
