"""Configuration: packaged default, file, environment and flags, in that order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubscore.core.config import load_config
from hubscore.core.errors import ConfigError


def test_the_packaged_default_loads() -> None:
    config = load_config(environ={})
    assert config.features.target == "converted_within"
    assert config.features.horizon_days == 30
    assert config.training.top_k == (25, 50, 100)
    assert set(config.models) == {"logreg", "random_forest", "xgboost", "lightgbm"}


def test_file_then_environment_then_flags_override(tmp_path: Path) -> None:
    path = tmp_path / "hubscore.yaml"
    path.write_text("features:\n  horizon_days: 14\n  lookback_days: 56\n")
    env = {"HUBSCORE_FEATURES_LOOKBACK_DAYS": "70", "HUBSCORE_TRAINING_MODEL": "lightgbm"}
    config = load_config(path, environ=env, overrides={"features.horizon_days": 21})
    assert config.features.horizon_days == 21
    assert config.features.lookback_days == 70
    assert config.training.model == "lightgbm"


def test_a_flag_that_was_not_given_keeps_the_file_value(tmp_path: Path) -> None:
    path = tmp_path / "hubscore.yaml"
    path.write_text("features:\n  horizon_days: 14\n")
    config = load_config(path, environ={}, overrides={"features.horizon_days": None})
    assert config.features.horizon_days == 14


def test_hyperparameters_merge_with_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "hubscore.yaml"
    path.write_text("models:\n  xgboost:\n    max_depth: 6\n")
    xgboost = load_config(path, environ={}).models["xgboost"]
    assert xgboost["max_depth"] == 6
    assert xgboost["n_estimators"] == 200  # the packaged default, kept


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("features:\n  lookbak_days: 10\n", "config: unknown key features.lookbak_days"),
        ("featurez:\n  horizon_days: 10\n", "config: unknown key featurez"),
        (
            "features:\n  horizon_days: soon\n",
            "key features.horizon_days: expected int, got str (the value is 'soon')",
        ),
        ("features:\n  horizon_days: 0\n", "features.horizon_days is 0, expected >= 1"),
        (
            "training:\n  model: svm\n",
            "key training.model: expected one of 'logreg', 'random_forest', 'xgboost', "
            "'lightgbm', 'all' (the value is 'svm')",
        ),
        ("training:\n  decision_threshold: 2\n", "training.decision_threshold is 2.0"),
        (
            "training:\n  decision_threshold: high\n",
            "key training.decision_threshold: expected float or one of 'capacity', 'f_beta'",
        ),
        ("training:\n  threads: true\n", "key training.threads: expected int, got bool"),
        ("training:\n  top_k: [25, x]\n", "key training.top_k[1]: expected int, got str"),
        ("data:\n  dir: 5\n", "key data.dir: expected Path, got int"),
        ("features: [1, 2]\n", "section 'features' must be a mapping"),
        ("features:\n  horizon_days: [\n", "is not valid YAML"),
    ],
)
def test_bad_keys_and_values_name_the_key(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "hubscore.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, environ={})


def test_a_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"features\.horizon_days"):
        load_config(environ={"HUBSCORE_FEATURES_HORIZON_DAYS": "x"})


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_the_resolved_config_round_trips_to_plain_data() -> None:
    plain = load_config(environ={}).to_dict()
    assert plain["data"]["dir"] == "data"
    assert plain["training"]["top_k"] == [25, 50, 100]
