"""`train --since/--until`: a slice of the timeline without rewriting the feature file, and a
refusal of a rewritten file whose hint says how to keep hubscore's metadata."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from hubscore.cli import app
from hubscore.core.errors import ConfigError, SchemaError, ValidationError
from hubscore.training import dataset

runner = CliRunner()


def cutoffs(features_file: Path) -> list[date]:
    return sorted(set(pl.read_parquet(features_file, columns=["cutoff"])["cutoff"].to_list()))


def test_since_and_until_keep_only_those_cutoffs(features_file: Path) -> None:
    weeks = cutoffs(features_file)
    ff = dataset.read_features(features_file, since=weeks[2], until=weeks[-3])
    kept = sorted(set(ff.frame.get_column("cutoff").to_list()))
    assert kept == weeks[2:-2]
    assert (ff.since, ff.until) == (weeks[2], weeks[-3])
    everything = dataset.read_features(features_file)
    assert ff.frame.height < everything.frame.height
    assert ff.fingerprint == everything.fingerprint  # the file itself was not rewritten


def test_an_empty_or_reversed_slice_is_refused(features_file: Path) -> None:
    weeks = cutoffs(features_file)
    with pytest.raises(ValidationError, match=r"no rows of .* have a cutoff from"):
        dataset.read_features(features_file, since=weeks[-1] + timedelta(days=7))
    with pytest.raises(ConfigError, match="is after --until"):
        dataset.read_features(features_file, since=weeks[5], until=weeks[1])


def test_the_refusal_hint_keeps_the_metadata_and_following_it_works(
    features_file: Path, tmp_path: Path
) -> None:
    weeks = cutoffs(features_file)
    some = pl.read_parquet(features_file).filter(pl.col("cutoff") >= weeks[4])
    plain = tmp_path / "plain.parquet"
    some.write_parquet(plain)  # what a data scientist does first: the metadata is lost
    with pytest.raises(SchemaError) as refused:
        dataset.read_features(plain)
    assert "--since DATE --until DATE" in (refused.value.hint or "")
    kept = tmp_path / "kept.parquet"
    some.write_parquet(kept, metadata=pl.read_parquet_metadata(features_file))  # as the hint says
    assert dataset.read_features(kept).frame.height == some.height


def test_train_flags_reach_the_slice(features_file: Path) -> None:
    weeks = cutoffs(features_file)
    argv = ["train", "--features", str(features_file), "--model", "logreg"]
    late = runner.invoke(app, [*argv, "--since", str(weeks[-1] + timedelta(days=1))])
    assert late.exit_code == 3, late.output
    assert f"its cutoffs run from {weeks[0]} to {weeks[-1]}" in late.stderr
    reversed_ = runner.invoke(app, [*argv, "--since", str(weeks[3]), "--until", str(weeks[1])])
    assert reversed_.exit_code == 2 and "is after --until" in reversed_.stderr
