"""TreeSHAP over ONNX arrays: brute-force Shapley values, and the native libraries' own."""

from __future__ import annotations

import importlib
import itertools
import math
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnxruntime as ort
import pytest
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier

from hubscore.engine import treeshap
from hubscore.engine.onnx_graph import ml_operators
from hubscore.engine.treeshap import LEAF, MODES, Ensemble, TreeExplainer
from hubscore.training import export, models
from hubscore.training.explanations import align_covers, native_trees

N_FEATURES = 4
COMPARE = (np.less_equal, np.less, np.greater_equal, np.greater, np.equal, np.not_equal)


# --- a brute-force reference: Algorithm 1's conditional expectations, Shapley by subsets ---


def takes_true(e: Ensemble, node: int, x: np.ndarray) -> bool:
    value = np.float32(x[e.feature[node]])
    if math.isnan(value):
        return bool(e.missing_true[node] or e.mode[node] == MODES.index("BRANCH_NEQ"))
    return bool(COMPARE[e.mode[node]](value, e.threshold[node]))


def expectation(e: Ensemble, node: int, x: np.ndarray, known: frozenset[int]) -> float:
    if e.mode[node] == LEAF:
        return float(e.leaf_value[node])
    yes, no = int(e.true_child[node]), int(e.false_child[node])
    if int(e.feature[node]) in known:
        return expectation(e, yes if takes_true(e, node, x) else no, x, known)
    weighted = expectation(e, yes, x, known) * e.cover[yes]
    weighted += expectation(e, no, x, known) * e.cover[no]
    return float(weighted / e.cover[node])


def brute_force(e: Ensemble, x: np.ndarray) -> np.ndarray:
    def value(known: frozenset[int]) -> float:
        return e.base + sum(expectation(e, int(r), x, known) for r in e.roots)

    phi = np.zeros(N_FEATURES + 1)
    for i in range(N_FEATURES):
        others = [j for j in range(N_FEATURES) if j != i]
        for size in range(N_FEATURES):
            weight = math.factorial(size) * math.factorial(N_FEATURES - size - 1)
            weight /= math.factorial(N_FEATURES)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi[i] += weight * (value(s | {i}) - value(s))
    phi[-1] = value(frozenset())
    return phi


# --- random ensembles: every split mode, missing directions, single-leaf trees ---------------


@st.composite
def ensembles(draw: st.DrawFn) -> Ensemble:
    columns: dict[str, list[Any]] = {k: [] for k in ("f", "t", "m", "yes", "no", "miss", "v", "c")}
    thresholds = st.sampled_from([-1.0, 0.0, 0.5, 2.0])

    def grow(depth: int) -> int:
        me = len(columns["f"])
        for key in columns:
            columns[key].append(0)
        if depth == 0 or (draw(st.booleans()) and depth < 3):
            columns["m"][me] = LEAF
            columns["v"][me] = draw(st.floats(-2, 2, allow_nan=False))
            columns["c"][me] = draw(st.integers(1, 50))
            columns["yes"][me] = columns["no"][me] = -1
            return int(columns["c"][me])
        columns["f"][me] = draw(st.integers(0, N_FEATURES - 1))
        columns["t"][me] = draw(thresholds)
        columns["m"][me] = draw(st.integers(0, LEAF - 1))
        columns["miss"][me] = draw(st.booleans())
        columns["yes"][me] = len(columns["f"])
        cover = grow(depth - 1)
        columns["no"][me] = len(columns["f"])
        cover += grow(depth - 1)
        columns["c"][me] = cover
        return cover

    roots = []
    for _ in range(draw(st.integers(1, 3))):
        roots.append(len(columns["f"]))
        grow(draw(st.integers(0, 3)))
    return Ensemble(
        feature=np.asarray(columns["f"], dtype=np.int64),
        threshold=np.asarray(columns["t"], dtype=np.float32),
        mode=np.asarray(columns["m"], dtype=np.int8),
        true_child=np.asarray(columns["yes"], dtype=np.int64),
        false_child=np.asarray(columns["no"], dtype=np.int64),
        missing_true=np.asarray(columns["miss"], dtype=bool),
        leaf_value=np.asarray(columns["v"], dtype=np.float64),
        cover=np.asarray(columns["c"], dtype=np.float64),
        roots=np.asarray(roots, dtype=np.int64),
        base=draw(st.floats(-1, 1)),
    )


# values that land on the thresholds, either side of them, and missing
VALUES = st.sampled_from([-1.0, 0.0, 0.5, 2.0, 0.49999997, 2.0000002, -5.0, 9.0, math.nan])


@settings(max_examples=150, deadline=None)
@given(ensembles(), st.lists(st.lists(VALUES, min_size=4, max_size=4), min_size=1, max_size=6))
def test_equals_brute_force_shapley_values_of_the_path_dependent_game(e, rows) -> None:
    x = np.asarray(rows, dtype=np.float32)
    explainer = TreeExplainer(e, N_FEATURES)
    got = explainer.contributions(x)
    expected = np.stack([brute_force(e, row) for row in x])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    everything = frozenset(range(N_FEATURES))
    margin = [e.base + sum(expectation(e, int(r), row, everything) for r in e.roots) for row in x]
    np.testing.assert_allclose(explainer.margin(x), margin, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), margin, rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(ensembles(), st.lists(st.lists(VALUES, min_size=4, max_size=4), min_size=1, max_size=6))
def test_long_paths_evaluated_on_rows_equal_the_tables(e, rows) -> None:
    x = np.asarray(rows, dtype=np.float32)
    tabulated = TreeExplainer(e, N_FEATURES).contributions(x)
    saved, treeshap.TABLE_BITS = treeshap.TABLE_BITS, 0
    try:
        direct = TreeExplainer(e, N_FEATURES).contributions(x)
    finally:
        treeshap.TABLE_BITS = saved
    np.testing.assert_allclose(direct, tabulated, rtol=1e-12, atol=1e-12)


# --- parity with the libraries' own TreeSHAP on their ONNX conversions -----------------------


def messy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(size=(n, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.25] = np.nan
    x[rng.random(x.shape) < 0.02] = np.float32(1e30)  # 3e38 makes XGBoost split at inf,
    # and onnxmltools then fails to parse its own JSON dump (a converter limitation)
    signal = np.nan_to_num(x[:, 0], nan=-1.0) + np.log1p(np.nan_to_num(x[:, 1])) - np.isnan(x[:, 2])
    return x, (signal + rng.normal(size=n) > 1.2).astype(np.int64)


def explainer_for(estimator: Any, kind: str, tmp_path: Path) -> tuple[TreeExplainer, Any]:
    if kind in ("lightgbm", "random_forest"):
        models.round_thresholds_down(models.Model(kind, estimator))
    path = tmp_path / "model.onnx"
    path.write_bytes(export.to_onnx(estimator, 6))
    (op,) = [o for o in ml_operators(path) if o.op_type.startswith("TreeEnsemble")]
    nodes = len(op.attributes["nodes_treeids"])
    shape = treeshap.ensemble_from_attributes(op.attributes, np.ones(nodes))
    covers = align_covers(shape, native_trees(estimator, kind))
    e = treeshap.ensemble_from_attributes(op.attributes, covers)
    return TreeExplainer(e, 6), ort.InferenceSession(str(path))


def on_thresholds(e: Ensemble, x: np.ndarray) -> np.ndarray:
    """Put every third row exactly on a split threshold of the model."""
    x = x.copy()
    branches = np.flatnonzero(e.mode != LEAF)
    for i, row in enumerate(range(0, len(x), 3)):
        node = branches[(i * 7) % branches.size]
        x[row, e.feature[node]] = e.threshold[node]
    return x


def ort_probability(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    return np.asarray(session.run([export.OUTPUT], {export.INPUT: x})[0], dtype=np.float64)


@pytest.mark.slow
def test_xgboost_contributions_equal_pred_contribs(tmp_path: Path) -> None:
    x, y = messy(3000, 0)
    model = xgb.XGBClassifier(n_estimators=60, max_depth=4, n_jobs=1, random_state=0).fit(x, y)
    explainer, session = explainer_for(model, "xgboost", tmp_path)
    rows = on_thresholds(explainer.ensemble, messy(400, 1)[0])
    phi = explainer.contributions(rows)
    native = model.get_booster().predict(xgb.DMatrix(rows), pred_contribs=True)
    np.testing.assert_allclose(phi, native, rtol=0, atol=1e-4)
    margin = model.get_booster().predict(xgb.DMatrix(rows), output_margin=True)
    np.testing.assert_allclose(phi.sum(axis=1), margin, rtol=0, atol=1e-5)
    p = 1 / (1 + np.exp(-phi.sum(axis=1)))
    np.testing.assert_allclose(p, ort_probability(session, rows), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_lightgbm_contributions_equal_pred_contrib(tmp_path: Path) -> None:
    x, y = messy(3000, 2)
    params = {"num_leaves": 7, "min_child_samples": 50, "subsample": 0.8, "subsample_freq": 1}
    model = lgb.LGBMClassifier(n_estimators=60, verbose=-1, n_jobs=1, **params).fit(x, y)
    explainer, session = explainer_for(model, "lightgbm", tmp_path)
    rows = on_thresholds(explainer.ensemble, messy(400, 3)[0])
    phi = explainer.contributions(rows)
    native = model.booster_.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(phi, native, rtol=0, atol=1e-4)
    np.testing.assert_allclose(
        phi.sum(axis=1), model.booster_.predict(rows, raw_score=True), rtol=0, atol=1e-5
    )
    p = 1 / (1 + np.exp(-phi.sum(axis=1)))
    np.testing.assert_allclose(p, ort_probability(session, rows), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_random_forest_contributions_equal_shap_tree_explainer(tmp_path: Path) -> None:
    x, y = messy(3000, 4)
    x = np.nan_to_num(x, nan=-1.0)  # scikit-learn's forest sees encoded (imputed) values
    forest = RandomForestClassifier(
        n_estimators=30, max_depth=8, min_samples_leaf=20, max_samples=0.3, random_state=0
    ).fit(x, y)
    explainer, session = explainer_for(forest, "random_forest", tmp_path)
    rows = on_thresholds(explainer.ensemble, np.nan_to_num(messy(300, 5)[0], nan=-1.0))
    phi = explainer.contributions(rows)
    with warnings.catch_warnings():  # shap 0.51 uses a matplotlib API that warns at import
        warnings.simplefilter("ignore")
        shap = importlib.import_module("shap")
    reference = shap.TreeExplainer(forest)
    values = np.asarray(reference.shap_values(rows, check_additivity=False))[..., 1]
    np.testing.assert_allclose(phi[:, :-1], values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(phi[:, -1], reference.expected_value[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(phi.sum(axis=1), ort_probability(session, rows), atol=1e-6)


@pytest.mark.slow
def test_single_leaf_trees_only_move_the_base_value(tmp_path: Path) -> None:
    x, y = messy(500, 6)
    model = xgb.XGBClassifier(n_estimators=4, max_depth=3, gamma=1e9, n_jobs=1).fit(x, y)
    explainer, _ = explainer_for(model, "xgboost", tmp_path)
    assert np.all(explainer.ensemble.mode == LEAF)
    phi = explainer.contributions(x[:20])
    np.testing.assert_array_equal(phi[:, :-1], 0.0)
    native = model.get_booster().predict(xgb.DMatrix(x[:20]), pred_contribs=True)
    np.testing.assert_allclose(phi, native, atol=1e-6)
