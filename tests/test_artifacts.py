"""A run folder is read as one: resolved once, every file read once, hashed and parsed from the
same bytes, so a `score` or `serve` overlapping a `train` that moves `models/latest` never
mixes two runs."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from hubscore.core.artifacts import (
    ENCODERS_FILE,
    EXPLAIN_FILE,
    MODEL_FILE,
    read_manifest,
    read_run_folder,
)
from hubscore.core.atomic import replace_symlink
from hubscore.core.errors import ArtifactError
from hubscore.engine.reasons import CONTRIBUTIONS
from hubscore.engine.scorer import load_scorer, scored_at_for

GOLDEN = Path(__file__).parent / "golden"
RUNS = ("xgboost", "lightgbm")  # two real run folders with explanations, one input schema
SCORED_AT = scored_at_for(date(2026, 11, 29))


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """`models/` holding copies of two golden run folders, `latest` pointing at the first."""
    for name in RUNS:
        shutil.copytree(GOLDEN / name / "run", tmp_path / name)
    (tmp_path / "latest").symlink_to(RUNS[0])
    return tmp_path


@pytest.fixture
def flips(models: Path) -> Iterator[list[int]]:
    """Move `latest` between the two runs as fast as `train` could, until the test ends;
    yield the count of moves so far."""
    stop, count = threading.Event(), [0]

    def flip() -> None:
        while not stop.is_set():
            replace_symlink(models / "latest", RUNS[count[0] % 2 - 1])
            count[0] += 1

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    yield count
    stop.set()
    thread.join(timeout=10)


def test_a_scorer_loaded_while_latest_moves_is_wholly_one_run(
    models: Path, flips: list[int]
) -> None:
    rows = pl.read_parquet(GOLDEN / RUNS[0] / "input.parquet")
    expected = {}
    for name in RUNS:
        scorer = load_scorer(models / name)
        expected[scorer.manifest.model_version] = (
            scorer.score(rows, scored_at=SCORED_AT),
            scorer.explain(rows.head(5)),
        )
    moved = flips[0]
    for _ in range(40):
        scorer = load_scorer(models / "latest")
        version = scorer.manifest.model_version
        scores, explained = expected[version]
        # Encoders, model and calibration of the run the manifest names: the same scores.
        assert scorer.score(rows, scored_at=SCORED_AT).equals(scores)
        # The explainer is built later, from the bytes read at load, not from `latest` now.
        assert scorer.explain(rows.head(5)).equals(explained)
        assert scorer.run_dir == (models / scorer.manifest.model_kind).resolve()
    assert flips[0] - moved > 100  # the link really moved all along


def test_the_link_is_resolved_once_to_the_real_folder(models: Path) -> None:
    folder = read_run_folder(models / "latest")
    assert folder.path == (models / RUNS[0]).resolve()
    replace_symlink(models / "latest", RUNS[1])
    # Everything the scorer parses was read already: moving the link changes nothing.
    assert folder.read(MODEL_FILE) == (models / RUNS[0] / MODEL_FILE).read_bytes()
    assert folder.read(EXPLAIN_FILE) == (models / RUNS[0] / EXPLAIN_FILE).read_bytes()
    assert folder.manifest == read_manifest(models / RUNS[0])


def test_the_parsed_bytes_are_the_hashed_bytes(models: Path) -> None:
    scorer = load_scorer(models / "latest")
    # Damaging the files after the load cannot reach the scorer: it holds what it verified.
    for name in (MODEL_FILE, EXPLAIN_FILE, ENCODERS_FILE):
        (models / RUNS[0] / name).write_bytes(b"damaged")
    rows = pl.read_parquet(GOLDEN / RUNS[0] / "input.parquet").head(3)
    contributions = scorer.explain(rows).get_column(CONTRIBUTIONS)
    assert contributions.null_count() == 0
    assert np.all(scorer.predict_proba(scorer.conform(rows)) > 0)
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_scorer(models / "latest")


@pytest.mark.parametrize("name", [MODEL_FILE, ENCODERS_FILE, EXPLAIN_FILE])
def test_a_missing_listed_file_is_named(models: Path, name: str) -> None:
    (models / RUNS[0] / name).unlink()
    with pytest.raises(ArtifactError, match=f"{RUNS[0]}/{name} is missing"):
        load_scorer(models / "latest")


def test_a_missing_folder_says_it_is_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is not a hubscore run folder: it does not exist"):
        read_run_folder(tmp_path / "models" / "latest")
