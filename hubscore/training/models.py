"""The four model families: build them from config, fit them, and make their trees float32-exact.

Every model is fitted on exactly the float32 matrix `encoding.encode` gives the scorer.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import polars as pl
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from hubscore.core.config import ClassWeight, Config, ModelName
from hubscore.core.contract import LABEL
from hubscore.core.errors import ConfigError, ValidationError, first_line
from hubscore.engine import encoding
from hubscore.training import encoders, evaluate
from hubscore.training.dataset import (
    FeatureFile,
    Ints,
    Matrix,
    Split,
    Vector,
    check_unseen,
    labels,
    take,
    week_codes,
    weights_of,
)

# Extra LightGBM keywords accepted beside its constructor's (it passes **kwargs to the core).
_LGBM_EXTRA = {"scale_pos_weight", "is_unbalance", "max_bin", "extra_trees", "path_smooth"}
# The forest's own key beside scikit-learn's: the rows one tree may draw (see `_cap_tree_rows`).
_FOREST_EXTRA = {"max_rows_per_tree"}
_FIXED = {"n_jobs", "random_state", "seed", "deterministic", "verbose", "verbosity"}


BOOSTERS = ("xgboost", "lightgbm")


_INTEGER_SIZES = {"min_child_samples", "min_samples_leaf", "min_samples_split", "num_leaves"}


def resolve_sizes(params: Mapping[str, Any], positives: int) -> dict[str, Any]:
    """Turn `{per_positive: x}` values into x times the positive training rows (at least 1).

    Leaf sizes that count rows mean different things at 400 and at 40,000 positives; relative
    to the positives they mean the same on a small file and a large one.
    """
    resolved = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            size = float(value["per_positive"]) * max(positives, 1)
            value = max(1, round(size)) if key in _INTEGER_SIZES else max(size, 1e-3)
        resolved[key] = value
    return resolved


def _cap_tree_rows(params: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """Draw at most `max_rows_per_tree` rows per tree, with leaves shrunk in proportion.

    A tree's cost grows with the rows it draws: a share of a 1M-row training side is hours of
    CPU in the search alone, and past some tens of thousands of rows per tree the forest ranks
    no better (the averaging over trees, not a tree's size, is what a forest lives on). The
    leaf sizes are counts of drawn rows, so they shrink by the same factor and the trees keep
    the shape the share would give them.
    """
    resolved = dict(params)
    cap = resolved.pop("max_rows_per_tree", None)
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise ValueError(f"max_rows_per_tree must be a whole number of rows, not {cap!r}")
    if resolved.get("bootstrap") is False:  # every tree reads every row: nothing to cap
        return resolved
    share = resolved.get("max_samples")
    drawn = rows if share is None else share * rows if isinstance(share, float) else share
    if cap is None or drawn <= cap:
        return resolved
    factor = cap / drawn
    resolved["max_samples"] = int(cap)
    for key in ("min_samples_leaf", "min_samples_split"):
        value = resolved.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            resolved[key] = max(1 if key == "min_samples_leaf" else 2, round(value * factor))
    return resolved


def _estimator_params(name: ModelName, params: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """Return the keyword arguments the library's estimator takes for `params` on `rows`."""
    return _cap_tree_rows(params, rows) if name == "random_forest" else dict(params)


@dataclass
class Model:
    """One model family behind fit / predict_proba / feature_importance."""

    name: ModelName
    estimator: Any
    params: dict[str, Any] = field(default_factory=dict)
    class_weight: ClassWeight = "none"

    def fit(self, x: Matrix, y: npt.NDArray[np.int64], *, weights: Vector | None = None) -> Model:
        """Fit on the encoded matrix; bad hyperparameters raise ConfigError.

        Args:
            weights: per-row sample weights (negatives kept 1 in m weigh m), or None.
        """
        self._weigh_classes(y, weights)
        sizes = resolve_sizes(self.params, int(y.sum()))
        self.estimator.set_params(**_estimator_params(self.name, sizes, rows=len(y)))
        self._refuse_missing(x)
        try:
            with warnings.catch_warnings():
                # newton-cholesky meeting a near-singular Hessian (a weakly penalised trial on
                # collinear statistics) finishes with lbfgs and says so on stderr: a solver's
                # detail, not the user's, and the fit is still complete.
                warnings.filterwarnings("ignore", "The inner solver of NewtonCholeskySolver")
                self.estimator.fit(x, y, **({} if weights is None else {"sample_weight": weights}))
        except (ValueError, TypeError, xgb.core.XGBoostError, lgb.basic.LightGBMError) as exc:
            raise ConfigError(
                f"models.{self.name}: training rejected the hyperparameters: {first_line(exc)}",
                hint=f"fix models.{self.name} in your --config file",
            ) from None
        if self.name == "random_forest":
            # Parallel predict sums tree votes in thread order: last-bit noise between runs.
            self.estimator.set_params(n_jobs=1)
        return self

    def _refuse_missing(self, x: Matrix) -> None:
        """Refuse NaN for logistic regression, the one family that cannot read it (a data or
        encoding problem, not a hyperparameter one)."""
        if self.name != "logreg":
            return
        columns = np.flatnonzero(np.isnan(x).any(axis=0))
        if columns.size:
            raise ValidationError(
                f"the encoded training matrix has missing values in {columns.size} columns "
                f"(positions {', '.join(map(str, columns[:5].tolist()))}); logistic regression "
                "cannot read missing values",
                hint="set encoding.missing_values: impute (or auto) for logreg",
            )

    def _weigh_classes(self, y: npt.NDArray[np.int64], weights: Vector | None) -> None:
        """Weight positives per `training.class_weight`, unless the hyperparameters do.

        The ratio is of the classes' weights, so negatives read 1 in m count m times each.
        """
        w = np.ones(len(y)) if weights is None else weights
        positives = max(float(w[y == 1].sum()), 1.0)
        ratio = float(w[y == 0].sum()) / positives
        weight = {"none": 1.0, "sqrt": math.sqrt(ratio), "balanced": ratio}[self.class_weight]
        if self.name in BOOSTERS:
            if "scale_pos_weight" not in self.params:
                self.estimator.set_params(scale_pos_weight=weight)
        elif "class_weight" not in self.params:
            self.estimator.set_params(class_weight=None if weight == 1.0 else {0: 1.0, 1: weight})

    def predict_proba(self, x: Matrix) -> Vector:
        """Return the positive-class probability of each row (float64)."""
        return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=np.float64)

    def feature_importance(self) -> Vector:
        """Return one non-negative importance per encoded column (|coef| for logreg)."""
        if self.name == "logreg":
            return np.abs(np.asarray(self.estimator.coef_[0], dtype=np.float64))
        return np.asarray(self.estimator.feature_importances_, dtype=np.float64)


@dataclass(frozen=True)
class Choice:
    """A family's hyperparameters and encoding overrides, as config or the search gave them."""

    model: dict[str, Any]
    encoding: dict[str, Any] = field(default_factory=dict)

    def config(self, name: ModelName, config: Config) -> Config:
        """Return `config` with these hyperparameters and encoding options in force."""
        models = {**config.models, name: self.model}
        return replace(config, models=models, encoding=replace(config.encoding, **self.encoding))


Fold = evaluate.Fold


@dataclass(frozen=True, kw_only=True)  # many fields: positional construction would mix them up
class Trained:
    """A family evaluated on the held-out side and fitted for export, with what both need."""

    name: ModelName
    model: Model
    """The fit on the training side: what the held-out metrics describe."""
    spec: encoding.EncoderSpec
    split: Split
    folds: list[Fold]
    test: pl.DataFrame
    x_test: Matrix
    y_test: Ints
    p_test: Vector
    train_frame: pl.DataFrame
    choice: Choice


def make_model(name: ModelName, config: Config) -> Model:
    """Build an unfitted model from `config.models[name]`, seeds and threads fixed."""
    params = dict(config.models.get(name, {}))
    seed = config.training.random_seed
    fixed_set = sorted(set(params) & _FIXED)
    if fixed_set:
        raise ConfigError(
            f"config key models.{name}.{fixed_set[0]} is fixed by hubscore for reproducibility",
            hint="set training.random_seed or training.threads instead",
        )
    base, extra = _defaults(name, seed, threads=config.training.threads)
    unknown = sorted(set(params) - set(base.get_params()) - extra)
    if unknown:
        raise ConfigError(
            f"unknown hyperparameter models.{name}.{unknown[0]}",
            hint=f"known: {', '.join(sorted(set(base.get_params()) - _FIXED))}",
        )
    try:
        checked = resolve_sizes(params, positives=100)  # values checked, sizes when fitted
        base.set_params(**_estimator_params(name, checked, rows=100))
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"models.{name}: {exc}", hint=f"fix models.{name}") from None
    return Model(name, base, params, config.training.class_weight)


def _defaults(name: ModelName, seed: int, *, threads: int) -> tuple[Any, set[str]]:
    """Return the estimator with hubscore's defaults and the extra keys it accepts.

    Threads are fixed per run (`training.threads`): a fixed count gives identical models. The
    forest fits on every core: scikit-learn seeds each tree before the threads start, so its
    trees are the same on any count (only its parallel predict differs, and `fit` turns it off).
    """
    if name == "logreg":
        return LogisticRegression(random_state=seed), set()
    if name == "random_forest":
        cores = len(os.sched_getaffinity(0))  # the cores this process may use, not the host's
        forest = RandomForestClassifier(random_state=seed, n_jobs=max(threads, cores))
        return forest, _FOREST_EXTRA
    if name == "xgboost":
        booster = xgb.XGBClassifier(
            tree_method="hist", random_state=seed, n_jobs=threads, eval_metric="logloss"
        )
        return booster, set()
    lightgbm = lgb.LGBMClassifier(
        random_state=seed,
        n_jobs=threads,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        importance_type="gain",
    )
    return lightgbm, _LGBM_EXTRA


def fit_family(
    name: ModelName,
    frame: pl.DataFrame,
    config: Config,
    *,
    missing_flags: bool = True,
) -> tuple[Model, encoding.EncoderSpec]:
    """Fit encoders and a model on `frame` (training rows only)."""
    spec = encoders.fit_encoders(
        frame, config.encoding, linear=name == "logreg", missing_flags=missing_flags
    )
    x, y = encoding.encode(frame, spec), labels(frame)
    model = make_model(name, config).fit(x, y, weights=weights_of(frame))
    return model, spec


def cross_validate(
    name: ModelName,
    ff: FeatureFile,
    folds: Sequence[tuple[Ints, Ints]],
    config: Config,
    *,
    on_fold: Callable[[int, Fold], None] | None = None,
) -> list[Fold]:
    """Fit on each expanding-window fold and predict its validation weeks.

    No fit ever sees its validation rows, not even to stop early: the tree count is the
    config's (a fixed budget), so out-of-fold predictions are honest for calibration and
    thresholds.

    Args:
        on_fold: sees each fold's predictions as they come (a search prunes poor trials).
    """
    out = []
    days = week_codes(ff.frame)
    for number, (fit_rows, val_rows) in enumerate(folds):
        check_unseen(fit_rows, val_rows, what=f"cross-validation fold {number + 1}")
        val = take(ff.frame, val_rows)
        model, spec = fit_family(name, take(ff.frame, fit_rows), config)
        p = model.predict_proba(encoding.encode(val, spec))
        fold = Fold(labels(val), p, days[val_rows], weights_of(val))
        out.append(fold)
        if on_fold is not None:
            on_fold(number, fold)
    return out


def train_family(
    name: ModelName,
    ff: FeatureFile,
    split: Split,
    config: Config,
    *,
    choice: Choice,
    folds: list[Fold],
) -> Trained:
    """Fit the chosen parameters on the whole training side and predict the test side."""
    config = choice.config(name, config)
    check_unseen(split.train, split.test, what="the held-out test side")
    train_frame = take(ff.frame, split.train)
    model, spec = fit_family(name, train_frame, config)
    round_thresholds_down(model)
    test = take(ff.frame, split.test)
    x_test = encoding.encode(test, spec)
    return Trained(
        name=name,
        model=model,
        spec=spec,
        split=split,
        folds=folds,
        test=test,
        x_test=x_test,
        y_test=test.get_column(LABEL).cast(pl.Int64).to_numpy(),
        p_test=model.predict_proba(x_test),
        train_frame=train_frame,
        choice=choice,
    )


def refit_all(
    name: ModelName, ff: FeatureFile, config: Config, *, choice: Choice
) -> tuple[Model, encoding.EncoderSpec]:
    """Fit the chosen parameters on every labelled row: the model that is shipped."""
    model, spec = fit_family(name, ff.frame, choice.config(name, config))
    round_thresholds_down(model)
    return model, spec


def round_thresholds_down(model: Model) -> None:
    """Round every split threshold down to a float32, so float32 ONNX trees match exactly.

    For a float32 x, `x <= t` holds exactly when `x <= t'` with t' = t rounded down to the
    nearest float32, so no native prediction on float32 inputs changes.
    """
    if model.name == "random_forest":
        for tree in model.estimator.estimators_:
            tree.tree_.threshold[:] = _down_to_float32(tree.tree_.threshold)
    elif model.name == "lightgbm":
        # LGBMClassifier has no public way to swap its booster, and onnxmltools converts
        # `booster_`: the rounded booster must live there. test_export's parity tests pin it.
        text = model.estimator.booster_.model_to_string()
        model.estimator._Booster = lgb.Booster(model_str=_round_lightgbm_text(text))


def _down_to_float32(values: Vector) -> Vector:
    f32 = values.astype(np.float32)
    over = f32.astype(np.float64) > values
    f32[over] = np.nextafter(f32[over], np.float32(-np.inf))
    return f32.astype(np.float64)


def _round_lightgbm_text(text: str) -> str:
    """Rewrite `threshold=` lines; drop `tree_sizes=`, whose byte counts would be stale."""
    lines = []
    for line in text.split("\n"):
        if line.startswith("tree_sizes="):
            continue
        if line.startswith("threshold="):
            values = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
            line = "threshold=" + " ".join(repr(float(v)) for v in _down_to_float32(values))
        lines.append(line)
    return "\n".join(lines)
