"""Frozen configuration read from YAML, environment variables and flags.

Precedence, lowest first: the packaged default, `--config FILE`, `HUBSCORE_<SECTION>_<KEY>`
environment variables, command-line flags. Unknown keys and bad values raise `ConfigError`
naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from hubscore.core.decoding import decode
from hubscore.core.errors import ConfigError

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Target = Literal["converted_within", "is_customer"]
ModelName = Literal["logreg", "random_forest", "xgboost", "lightgbm"]
ClassWeight = Literal["none", "sqrt", "balanced"]
MODEL_NAMES: tuple[ModelName, ...] = typing.get_args(ModelName)
ENV_PREFIX = "HUBSCORE_"
AUTO_MEMORY_SHARE = 0.25
"""`features.memory_limit: auto`: a quarter of the machine's memory (or of its cgroup's limit)."""
MIN_MEMORY_BYTES = 64 * 10**6
_MEMORY = re.compile(r"^(?P<number>\d+(\.\d+)?)\s*(?P<unit>%|[KMGT]i?B)$", re.IGNORECASE)
_UNITS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def memory_budget(text: str) -> float | int | None:
    """Read `features.memory_limit`: a share of the machine's memory (float), bytes (int), or
    None when it is no budget. `4GB` is 4*10^9 bytes and `4GiB` 4*2^30, as DuckDB reads them."""
    if text.strip().lower() == "auto":
        return AUTO_MEMORY_SHARE
    match = _MEMORY.match(text.strip())
    if match is None:
        return None
    number, unit = float(match["number"]), match["unit"].lower()
    if unit == "%":
        return number / 100 if 0 < number <= 100 else None
    base = 2 ** (10 * "kmgt".index(unit[0]) + 10) if "i" in unit else _UNITS[unit[0]]
    size = int(number * base)
    return size if size >= MIN_MEMORY_BYTES else None


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "hubscore"
    description: str = ""


@dataclass(frozen=True)
class TrackingConfig:
    uri: str | None = None


@dataclass(frozen=True)
class DataConfig:
    dir: Path = Path("data")
    build_dir: Path = Path("data/build")
    scoring_dir: Path | None = None
    """Where `build-features --as-of` writes without --out; None: `<build_dir>/scoring`."""
    models_dir: Path = Path("models")

    @property
    def training_features(self) -> Path:
        """Return the training features `build-features` writes (what `train` reads)."""
        return self.build_dir / "features.parquet"

    @property
    def scoring_build_dir(self) -> Path:
        """Return the scoring input's folder: never the training features' own folder."""
        return self.scoring_dir or self.build_dir / "scoring"


@dataclass(frozen=True)
class FeaturesConfig:
    target: Target = "converted_within"
    horizon_days: int = 30
    lookback_days: int = 91
    recent_days: int = 28
    warmup_days: int = 28
    """History the first weekly cutoff needs (at most the look-back): a shorter warm-up adds
    early cutoffs whose windows are partly before the files start (see weeks_observed)."""
    eligibility: Literal["file_start", "first_usage"] = "file_start"
    max_reject_rate: float = 0.01
    known_until: date | None = None
    """The last day the files know conversions (CLOSEDATE) for; None: derived from the files."""
    memory_limit: str = "auto"
    """DuckDB's memory budget: `auto` (a share of the machine's memory), `40%` or `4GB`."""

    def __post_init__(self) -> None:
        _require(self.horizon_days >= 1, "features.horizon_days", self.horizon_days, ">= 1")
        _require(self.lookback_days >= 7, "features.lookback_days", self.lookback_days, ">= 7")
        _require(self.warmup_days >= 7, "features.warmup_days", self.warmup_days, ">= 7")
        _require(
            7 <= self.recent_days <= self.lookback_days // 2,
            "features.recent_days",
            self.recent_days,
            "between 7 and half of lookback_days (trend compares two recent windows)",
        )
        _require(
            0.0 <= self.max_reject_rate <= 1.0,
            "features.max_reject_rate",
            self.max_reject_rate,
            "a share between 0 and 1",
        )
        _require(
            memory_budget(self.memory_limit) is not None,
            "features.memory_limit",
            self.memory_limit,
            "auto, a share of the machine's memory from 1% to 100% (e.g. 40%), or a size of "
            "at least 64MB (e.g. 4GB)",
        )


@dataclass(frozen=True)
class SearchConfig:
    trials: int = 10
    timeout_s: float | None = None
    metric: str = "pr_auc"
    min_positive_companies: int = 100

    def __post_init__(self) -> None:
        _require(self.trials >= 0, "training.search.trials", self.trials, ">= 0 (0: off)")
        _require(
            self.min_positive_companies >= 1,
            "training.search.min_positive_companies",
            self.min_positive_companies,
            ">= 1",
        )
        if self.timeout_s is not None:
            _require(self.timeout_s > 0, "training.search.timeout_s", self.timeout_s, "> 0")


@dataclass(frozen=True)
class TrainingConfig:
    model: ModelName | Literal["all"] = "xgboost"
    test_size: float = 0.25
    cv_folds: int = 3
    random_seed: int = 42
    decision_threshold: float | Literal["capacity", "f_beta"] = "capacity"
    f_beta: float = 0.5
    top_k: tuple[int, ...] = (25, 50, 100)
    weekly_capacity: int = 50
    priority_shares: tuple[float, ...] = (0.01, 0.05, 0.2)
    """Cumulative shares of a week's free companies that end the very high, high and medium
    priority tiers (the rest: low); turned into probability bounds on the test weeks."""
    leaderboard_metric: str = "precision_at_50"
    threads: int = 1
    class_weight: ClassWeight = "none"
    refit: Literal["all", "train_side"] = "all"
    max_rows: int = 1_000_000
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        _require(self.threads >= 1, "training.threads", self.threads, ">= 1")
        _require(self.max_rows >= 1000, "training.max_rows", self.max_rows, ">= 1000")
        _require(0.0 < self.test_size < 1.0, "training.test_size", self.test_size, "in (0, 1)")
        _require(self.cv_folds >= 2, "training.cv_folds", self.cv_folds, ">= 2")
        _require(self.f_beta > 0, "training.f_beta", self.f_beta, "> 0")
        _require(
            self.weekly_capacity >= 1, "training.weekly_capacity", self.weekly_capacity, ">= 1"
        )
        _require(all(k >= 1 for k in self.top_k), "training.top_k", self.top_k, "positive")
        if not isinstance(self.decision_threshold, str):
            _require(
                0.0 < self.decision_threshold < 1.0,
                "training.decision_threshold",
                self.decision_threshold,
                "a probability in (0, 1), 'capacity' or 'f_beta'",
            )
        q = self.priority_shares
        _require(
            len(q) == 3 and all(0 < a < b <= 1 for a, b in zip(q, (*q[1:], 1.0), strict=True)),
            "training.priority_shares",
            q,
            "three increasing shares in (0, 1), e.g. [0.01, 0.05, 0.2]",
        )


@dataclass(frozen=True)
class EncodingConfig:
    industry: Literal["auto", "onehot", "frequency", "missing_flag", "drop"] = "auto"
    industry_min_frequency: int = 10
    missing_values: Literal["auto", "native", "impute"] = "auto"
    missing_flags: Literal["auto", "pattern", "column", "none"] = "auto"
    missing_strategy: Literal["auto", "median", "mean", "mode", "zero", "constant"] = "auto"
    missing_constant: float = 0.0
    scaling: Literal["standard", "minmax", "robust", "none"] = "standard"

    def __post_init__(self) -> None:
        _require(
            self.industry_min_frequency >= 1,
            "encoding.industry_min_frequency",
            self.industry_min_frequency,
            ">= 1",
        )


@dataclass(frozen=True)
class ScoringConfig:
    batch_size: int = 65536
    threads: int = 1
    fail_on_drift: float | None = None
    drift_allowances: Mapping[str, float] = field(default_factory=dict)
    ledger_dir: Path | None = Path("data/ledger")
    """Where `score` records every list for `hubscore monitor`; None keeps no ledger."""
    holdout_share: float | None = None
    holdout_seed: int = 0

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "scoring.batch_size", self.batch_size, ">= 1")
        if self.holdout_share is not None:
            _require(
                0.0 < self.holdout_share < 1.0,
                "scoring.holdout_share",
                self.holdout_share,
                "a share in (0, 1), or null for no control group",
            )
        _require(self.threads >= 0, "scoring.threads", self.threads, ">= 0 (0: onnxruntime picks)")
        if self.fail_on_drift is not None:
            _require(self.fail_on_drift > 0, "scoring.fail_on_drift", self.fail_on_drift, "> 0")
        for name, allowed in self.drift_allowances.items():
            _require(
                isinstance(allowed, int | float) and not isinstance(allowed, bool) and allowed > 0,
                f"scoring.drift_allowances.{name}",
                allowed,
                "a PSI > 0",
            )


@dataclass(frozen=True)
class Config:
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    # Hyperparameters are passed to the libraries as they are; the trainers reject bad ones.
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Per family: hyperparameter (or `encoding.<key>`) -> {low, high, log, int, per_positive}
    # or {choices: [...]}, sampled by `hubscore.training.search`.
    search_space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved configuration as plain YAML-ready data."""
        plain: dict[str, Any] = _plain(dataclasses.asdict(self))
        return plain


def load_config(
    path: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Config:
    """Resolve the configuration: default, then FILE, then environment, then `overrides`.

    Args:
        overrides: dotted keys from command-line flags, e.g. {"features.horizon_days": 14};
            None values are ignored (a flag that was not given).
        flags: the flag each override came from, e.g. {"training.model": "--model"}, so a
            bad value's error names what the user typed.
    """
    merged = copy.deepcopy(_packaged_default())
    sources: dict[str, str] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", hint="check the --config path")
        from_file = _read_yaml(path, str(path))
        _merge(merged, from_file, source=str(path))
        sources.update(dict.fromkeys(_dotted_keys(from_file), f"set in config file {path}"))
    from_env, variables = _env_overrides(os.environ if environ is None else environ)
    _merge(merged, from_env, source="env")
    sources.update({k: f"set by environment variable {name}" for k, name in variables.items()})
    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, key = dotted.split(".", 1)
            _merge(merged, {section: {key: value}}, source="flag")
            sources[dotted] = f"set by flag {(flags or {}).get(dotted, dotted)}"
    hint = f"fix it in {path or 'the packaged default'}, a HUBSCORE_* variable or the flag"
    try:
        config: Config = decode(merged, Config, source="config", error=ConfigError, hint=hint)
    except ConfigError as exc:
        source = _source_of(exc.key, sources)
        if source is None:  # a packaged default cannot be wrong; nothing to add
            raise
        raise ConfigError(f"{exc.message} ({source})", hint=exc.hint, key=exc.key) from None
    return config


def _source_of(key: str | None, sources: Mapping[str, str]) -> str | None:
    """Return where the value of `key` (or of the section entry holding it) was set."""
    parts = (key or "").split(".")
    for end in range(len(parts), 1, -1):
        found = sources.get(".".join(parts[:end]))
        if found:
            return found
    return None


def _dotted_keys(values: Mapping[str, Any]) -> list[str]:
    """Return `section.key` for every key of a two-level mapping (sections of keys)."""
    return [
        f"{section}.{key}"
        for section, keys in values.items()
        if isinstance(keys, Mapping)
        for key in keys
    ]


@functools.cache
def _packaged_default() -> dict[str, Any]:
    # Read once per process: help's defaults and the command's own config both start from it.
    return _read_yaml(resources.files("hubscore.core").joinpath("default_config.yaml"), "default")


def _safe_load(text: str) -> Any:
    """`yaml.safe_load`, through libyaml when the wheel has it: 1 ms, not 9, for the default."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def _read_yaml(source: Any, name: str) -> dict[str, Any]:
    try:
        data = _safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name} is not valid YAML: {exc}", hint="fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name} must be a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], extra: Mapping[str, Any], *, source: str) -> None:
    for section, values in extra.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: section {section!r} must be a mapping, got {values!r}")
        base.setdefault(section, {})
        if not isinstance(base[section], dict):
            base[section] = {}
        for key, value in values.items():
            if isinstance(value, Mapping) and isinstance(base[section].get(key), dict):
                base[section][key] = {**base[section][key], **value}
            else:
                base[section][key] = value


def _env_overrides(
    environ: Mapping[str, str],
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Map HUBSCORE_FEATURES_LOOKBACK_DAYS=28 to {"features": {"lookback_days": 28}}.

    A nested section's keys are reached the same way: HUBSCORE_TRAINING_SEARCH_TRIALS=5 sets
    training.search.trials. Also returns the variable that set each dotted key.
    """
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    found: dict[str, dict[str, Any]] = {}
    variables: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in sections or section in ("models", "search_space") or not key:
            continue
        path = [section, *_env_key_path(_section_class(section), key)]
        target = found
        for step in path[:-2]:
            target = target.setdefault(step, {})
        target.setdefault(path[-2], {})[path[-1]] = _safe_load(raw) if raw else None
        variables[".".join(path)] = name
    return found, variables


def _section_class(section: str) -> type[Any]:
    hints = typing.get_type_hints(Config)
    cls: type[Any] = hints[section]
    return cls


def _env_key_path(cls: type[Any], key: str) -> list[str]:
    """Split `search_trials` into the nested keys of `cls` it names (`search`, `trials`).

    A key no field matches stays whole, so the error names it as the user spelt it.
    """
    hints = typing.get_type_hints(cls)
    if key in hints:
        return [key]
    for name, hint in hints.items():
        if dataclasses.is_dataclass(hint) and key.startswith(name + "_"):
            return [name, *_env_key_path(hint, key[len(name) + 1 :])]  # type: ignore[arg-type]
    return [key]


def _require(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config key {key} is {value!r}, expected {expected}", key=key)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
