"""Choose a family's hyperparameters only where the folds can tell them apart.

Trial 0 is exactly the config's parameters (`models.<family>`): fitted on the expanding-window
folds of the training side (`dataset.cv_folds`) and measured by `training.search.metric`, the
mean over folds. The search then runs only when the folds hold at least
`training.search.min_positive_companies` converting companies (with the real files' few
converters, no trial can be told from noise, and the search would only pick a lucky one). Its
trials come from a sampler that suits the budget (scrambled Sobol points for small budgets,
where TPE's random start-up would be all there is; TPE beyond), and a trial replaces the
config's parameters only when its paired difference over the same folds is above zero with
90% confidence (`evidence`: companies resampled, the same draws for every trial). The same
data, config and seed choose the same parameters.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from hubscore.core.config import Config, ModelName
from hubscore.core.errors import ConfigError
from hubscore.training import dataset, encoders, evidence, models
from hubscore.training.progress import SILENT, Progress

PRUNE_AFTER_TRIALS = 4
"""Sampled trials that always run to the end before the median rule may prune later ones."""
SOBOL_BELOW = 32
"""Budgets under this many sampled trials use quasi-random Sobol points: TPE starts with 10
random ones, so a 10-trial TPE search is random search."""
ENCODING_PREFIX = "encoding."


@dataclass
class Searched:
    """The chosen parameters, their out-of-fold predictions and every trial's record."""

    choice: models.Choice
    folds: list[models.Fold]
    best: dict[str, Any]
    """The chosen trial's record: parameters, fold metric and its difference to trial 0."""
    measured: evidence.Measured | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def choose_params(
    name: ModelName,
    ff: dataset.FeatureFile,
    config: Config,
    folds: dataset.Folds,
    *,
    progress: Progress = SILENT,
) -> Searched:
    """Evaluate the config's parameters on the folds; search only where the folds can carry it.

    Args:
        progress: told each trial as it starts and each fold as it ends.
    """
    settings = config.training.search
    evidence.check_metric(settings.metric)
    space = dict(config.search_space.get(name, {}))
    base = models.Choice(dict(config.models.get(name, {})))
    fold_evidence = _fold_evidence(ff, folds, config)
    power = fold_evidence.power() if fold_evidence else {"folds": 0}
    reason = _why_not(settings.trials, space, power, config)
    progress.trial(1, 1 if reason else settings.trials)
    anchor = _evaluate(
        name, ff, folds, config, base, number=0, evidence_of=fold_evidence, progress=progress
    )
    if reason:
        anchor.summary = {"trials": 1, "ran": False, "chosen_by": reason, "power": power}
        _describe_anchor(anchor)
        return anchor
    assert fold_evidence is not None  # _why_not refuses a search without folds
    return _search(
        name, ff, folds, config, anchor, fold_evidence, space=space, power=power, progress=progress
    )


def _fold_evidence(
    ff: dataset.FeatureFile, folds: dataset.Folds, config: Config
) -> evidence.FoldEvidence | None:
    if not folds.rows:
        return None
    y = dataset.labels(ff.frame)
    days = dataset.week_codes(ff.frame)
    ids = ff.frame.get_column(dataset.ID).cast(int).to_numpy()
    weights = dataset.weights_of(ff.frame)
    return evidence.FoldEvidence.of(
        [y[val] for _, val in folds.rows],
        [days[val] for _, val in folds.rows],
        [ids[val] for _, val in folds.rows],
        seed=config.training.random_seed,
        row_weights=None if weights is None else [weights[val] for _, val in folds.rows],
    )


def _why_not(
    trials: int, space: Mapping[str, Any], power: Mapping[str, Any], config: Config
) -> str:
    """Return why the search does not run, or "" when it does."""
    if trials <= 1 or not space:
        return "the config's parameters (search off)"
    if int(power["folds"]) < 2:
        return (
            f"the config's parameters: {power['folds']} usable cross-validation folds, "
            "too few to compare trials on"
        )
    need = config.training.search.min_positive_companies
    have = int(power["positive_companies_in_all"])
    if have < need:
        return (
            f"the config's parameters: the folds' validation weeks hold {have} converting "
            f"companies, fewer than training.search.min_positive_companies ({need}); no trial "
            "could be told from noise"
        )
    return ""


def _search(
    name: ModelName,
    ff: dataset.FeatureFile,
    folds: dataset.Folds,
    config: Config,
    anchor: Searched,
    fold_evidence: evidence.FoldEvidence,
    *,
    space: Mapping[str, Any],
    power: dict[str, Any],
    progress: Progress,
) -> Searched:
    """Sample trials 1.. and keep the one that beats trial 0 beyond noise, if any."""
    settings = config.training.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS)
    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(settings.trials - 1, config), pruner=pruner
    )
    chosen, records = anchor, [anchor]
    started = time.monotonic()

    def objective(trial: optuna.Trial) -> float:
        nonlocal chosen
        progress.trial(trial.number + 2, settings.trials)
        sampled = {key: _suggest(trial, key, spec) for key, spec in sorted(space.items())}
        record = _evaluate(
            name, ff, folds, config, _choice(anchor.choice.model, sampled),
            number=trial.number + 1, evidence_of=fold_evidence, trial=trial, progress=progress,
        )  # fmt: skip
        assert record.measured is not None and anchor.measured is not None
        record.best |= {"versus_trial_0": record.measured.versus(anchor.measured)}
        records.append(record)
        if _better(record, chosen):
            chosen.folds = [] if chosen is not anchor else chosen.folds
            chosen = record
        elif record is not anchor:
            record.folds = []  # out-of-fold predictions are large: keep the chosen's only
        return record.measured.value

    study.optimize(objective, n_trials=settings.trials - 1, timeout=settings.timeout_s)
    _describe_anchor(anchor)
    chosen.trials = [r.best for r in records]
    chosen.summary = {
        "trials": len(records),
        "ran": True,
        "pruned": len(study.trials) - (len(records) - 1),
        "space": dict(space),
        "sampler": type(study.sampler).__name__,
        "chosen_by": _chosen_by(chosen, settings.metric),
        "power": power,
        "stopped_by_timeout": len(study.trials) < settings.trials - 1,
        "seconds": round(time.monotonic() - started, 1),
    }
    return chosen


def _better(record: Searched, chosen: Searched) -> bool:
    """A trial beats trial 0 beyond noise, and beats the chosen one by its point difference."""
    versus = record.best["versus_trial_0"]
    if not versus["beyond_noise"]:
        return False
    current = chosen.best.get("versus_trial_0", {"difference": 0.0})
    return bool(versus["difference"] > current["difference"])


def _chosen_by(chosen: Searched, metric: str) -> str:
    if chosen.best["trial"] == 0:
        return (
            f"the config's parameters: no trial's paired difference in {metric} over the "
            "folds was above zero with 90% confidence"
        )
    versus = chosen.best["versus_trial_0"]
    low, high = versus["interval"]  # a chosen trial was beyond noise: it has an interval
    return (
        f"trial {chosen.best['trial']}: {metric} {versus['difference']:+.4f} against the "
        f"config's parameters on the same folds (90% interval {low:+.4f} to {high:+.4f})"
    )


def _describe_anchor(anchor: Searched) -> None:
    anchor.best |= {"versus_trial_0": {"difference": 0.0, "interval": [0.0, 0.0]}}


def make_sampler(budget: int, config: Config) -> optuna.samplers.BaseSampler:
    """Return Sobol points for a small budget, TPE for a larger one (both seeded)."""
    seed = config.training.random_seed
    if budget < SOBOL_BELOW:
        with warnings.catch_warnings():  # "experimental" since optuna 3.0; stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(
                qmc_type="sobol",
                scramble=True,
                seed=seed,
                independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                warn_independent_sampling=False,
                warn_asynchronous_seeding=False,
            )
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _evaluate(
    name: ModelName,
    ff: dataset.FeatureFile,
    folds: dataset.Folds,
    config: Config,
    choice: models.Choice,
    *,
    number: int,
    evidence_of: evidence.FoldEvidence | None,
    trial: optuna.Trial | None = None,
    progress: Progress = SILENT,
) -> Searched:
    """Cross-validate one choice and measure it on the folds (with its resamples).

    Args:
        trial: the search's trial, told each fold's metric so a poor one is pruned early.
        progress: told each fold as it ends.
    """
    metric = config.training.search.metric

    def report(number: int, fold: models.Fold) -> None:
        progress.fold(number + 1, len(folds.rows))
        if trial is None:
            return
        trial.report(evidence.fold_value(metric, fold.y, fold.p, fold.weeks, fold.weights), number)
        if trial.should_prune():
            raise optuna.TrialPruned

    predictions = models.cross_validate(
        name, ff, folds.rows, choice.config(name, config), on_fold=report
    )
    measured = None
    if evidence_of is not None:
        measured = evidence.measure(evidence_of, [f[1] for f in predictions], metric)
    row: dict[str, Any] = {
        "trial": number,
        "params": {**choice.model, **{ENCODING_PREFIX + k: v for k, v in choice.encoding.items()}},
        "metric": metric,
        "metric_value": None if measured is None or np.isnan(measured.value) else measured.value,
        "metric_interval": None if measured is None else measured.interval(),
        "standard_error": None if measured is None else measured.standard_error(),
    }
    return Searched(choice, predictions, row, measured, [row])


def _choice(base: Mapping[str, Any], sampled: Mapping[str, Any]) -> models.Choice:
    model = {**base, **{k: v for k, v in sampled.items() if not k.startswith(ENCODING_PREFIX)}}
    encoding = {
        k.removeprefix(ENCODING_PREFIX): v
        for k, v in sampled.items()
        if k.startswith(ENCODING_PREFIX)
    }
    return models.Choice(model, encoding)


def _suggest(trial: optuna.Trial, key: str, spec: Any) -> Any:
    """Sample one value from `{low, high, log, int, per_positive}` or `{choices: [...]}`."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"config key search.*.{key} must be a mapping, got {spec!r}")
    if "choices" in spec:
        return trial.suggest_categorical(key, list(spec["choices"]))
    try:
        low, high = spec["low"], spec["high"]
    except KeyError:
        raise ConfigError(
            f"config key search.*.{key} needs low and high (or choices)",
            hint="e.g. {low: 0.01, high: 0.3, log: true}",
        ) from None
    log = bool(spec.get("log", False))
    if spec.get("int", False):
        value: Any = trial.suggest_int(key, int(low), int(high), log=log)
    else:
        value = trial.suggest_float(key, float(low), float(high), log=log)
    return {"per_positive": value} if spec.get("per_positive", False) else value


def config_values(name: ModelName, config: Config) -> dict[str, Any]:
    """Return the value trial 0 uses for every searched key: the config's own, `auto`
    encodings resolved as the family resolves them (a size as its `per_positive` share)."""
    resolved = encoders.choose_encoding(config.encoding, linear=name == "logreg")
    flags = "pattern" if resolved.per_pattern else ("column" if resolved.flags else "none")
    current = {
        **config.models.get(name, {}),
        ENCODING_PREFIX + "industry": resolved.industry,
        ENCODING_PREFIX + "missing_flags": flags,
    }
    values = {}
    for key in config.search_space.get(name, {}):
        value = current.get(key)
        values[key] = value.get("per_positive") if isinstance(value, Mapping) else value
    return values
