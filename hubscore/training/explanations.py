"""Write explain.npz at export and hold the scorer's contributions to the native model's.

Covers come from the native model, matched to `model.onnx`'s nodes by walking both trees
from the root together (the converters renumber nodes): XGBoost's per-node hessian sum
(`cover`; onnxmltools 1.16 writes no `nodes_hitrates` for classifiers), LightGBM's
`internal_count`/`leaf_count` (its converter writes 1.0 for every hit rate), scikit-learn's
`weighted_n_node_samples`. Logistic regression stores the training mean of every column.

The gate: on held-out rows, base value + sum of contributions must equal the scorer model's
margin (computed in float64 from the same arrays) within 1e-5 for every family; that margin
must equal the native one, and each contribution XGBoost's `pred_contribs` / LightGBM's
`pred_contrib`, within 1e-4; otherwise the run is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import xgboost as xgb

from hubscore.core.artifacts import MODEL_FILE
from hubscore.core.errors import ArtifactError
from hubscore.engine import encoding, explain
from hubscore.engine.onnx_graph import ml_operators
from hubscore.engine.scorer import load_scorer
from hubscore.engine.treeshap import LEAF, Ensemble, ensemble_from_attributes

ADDITIVITY_TOLERANCE = 1e-5
PARITY_TOLERANCE = 1e-4
GATE_ROWS = 2000
"""Held-out rows the gate explains (evenly spaced): exact TreeSHAP is costlier than scoring."""
THRESHOLD_ULPS = 2  # float32 steps between a native threshold and the ONNX one
_BARE_INFINITY = re.compile(r"(?<=: )(-?)inf\b")


@dataclass(frozen=True)
class NativeTree:
    """One native tree as arrays indexed by its own node ids."""

    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float64]
    cover: npt.NDArray[np.float64]


def write_explain_file(
    stage: Path,
    estimator: Any,
    kind: str,
    x_train: npt.NDArray[Any] | None = None,
    *,
    means: npt.NDArray[np.float64] | None = None,
) -> None:
    """Write explain.npz for a staged run whose model.onnx is already written.

    Args:
        x_train: the encoded training matrix; only logreg reads it (its column means).
        means: those means already computed (`column_means`), instead of `x_train`.
    """
    path = stage / explain.EXPLAIN_FILE
    if kind == "logreg":
        if means is None and x_train is None:
            raise ValueError("logreg explanations need the training matrix or its means")
        if means is None:
            means = np.asarray(x_train, dtype=np.float64).mean(axis=0)
        explain.write_explain_file(path, means=means)
        return
    (op,) = [o for o in ml_operators(stage / MODEL_FILE) if o.op_type in explain.TREE_OPERATORS]
    nodes = len(op.attributes["nodes_treeids"])
    ensemble = ensemble_from_attributes(op.attributes, np.ones(nodes))
    explain.write_explain_file(path, covers=align_covers(ensemble, native_trees(estimator, kind)))


MEANS_BATCH_ROWS = 131_072


def column_means(
    frame: pl.DataFrame, spec: encoding.EncoderSpec, weights: npt.NDArray[np.float64] | None
) -> npt.NDArray[np.float64]:
    """The encoded training matrix's column means (weighted as the fit was), a slice at a time:
    the whole matrix in float64 would be the run's peak memory on a large file."""
    sums = np.zeros(len(spec.output_names))
    total = 0.0
    for start in range(0, frame.height, MEANS_BATCH_ROWS):
        x = encoding.encode(frame.slice(start, MEANS_BATCH_ROWS), spec).astype(np.float64)
        w = None if weights is None else weights[start : start + MEANS_BATCH_ROWS]
        sums += x.sum(axis=0) if w is None else w @ x
        total += x.shape[0] if w is None else float(w.sum())
    return sums / max(total, 1.0)


def native_trees(estimator: Any, kind: str) -> list[NativeTree]:
    """Return the estimator's trees in the order its ONNX conversion lists them."""
    if kind == "xgboost":
        # The dump writes infinite split conditions as bare inf, which JSON spells Infinity.
        dumps = (_BARE_INFINITY.sub(r"\1Infinity", t) for t in _xgboost_dumps(estimator))
        return [_xgboost_tree(json.loads(t)) for t in dumps]
    if kind == "lightgbm":
        return [
            _lightgbm_tree(t["tree_structure"])
            for t in estimator.booster_.dump_model()["tree_info"]
        ]
    return [_sklearn_tree(tree.tree_) for tree in estimator.estimators_]


def _xgboost_dumps(estimator: Any) -> list[str]:
    dumps: list[str] = estimator.get_booster().get_dump(dump_format="json", with_stats=True)
    return dumps


def _xgboost_tree(root: dict[str, Any]) -> NativeTree:
    nodes: dict[int, dict[str, Any]] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        nodes[int(node["nodeid"])] = node
        stack.extend(node.get("children", []))
    tree = _empty_tree(max(nodes) + 1)
    for i, node in nodes.items():
        tree.cover[i] = node["cover"]
        if "children" in node:
            tree.left[i], tree.right[i] = node["yes"], node["no"]
            tree.feature[i] = int(str(node["split"]).removeprefix("f"))
            tree.threshold[i] = node["split_condition"]
    return tree


def _lightgbm_tree(root: dict[str, Any]) -> NativeTree:
    flat: list[dict[str, Any]] = []
    links: list[tuple[int, bool]] = []
    stack = [(root, -1, False)]
    while stack:
        node, parent, is_left = stack.pop()
        index = len(flat)
        flat.append(node)
        links.append((parent, is_left))
        if "split_index" in node:
            stack.append((node["right_child"], index, False))
            stack.append((node["left_child"], index, True))
    tree = _empty_tree(len(flat))
    for i, (node, (parent, on_left)) in enumerate(zip(flat, links, strict=True)):
        if parent >= 0:
            (tree.left if on_left else tree.right)[parent] = i
        split = "split_index" in node
        tree.cover[i] = node["internal_count"] if split else node.get("leaf_count", 0)
        if split:
            tree.feature[i] = node["split_feature"]
            tree.threshold[i] = node["threshold"]
    return tree


def _sklearn_tree(tree: Any) -> NativeTree:
    return NativeTree(
        left=np.asarray(tree.children_left, dtype=np.int64),
        right=np.asarray(tree.children_right, dtype=np.int64),
        feature=np.where(tree.children_left >= 0, tree.feature, -1).astype(np.int64),
        threshold=np.asarray(tree.threshold, dtype=np.float64),
        cover=np.asarray(tree.weighted_n_node_samples, dtype=np.float64),
    )


def _empty_tree(size: int) -> NativeTree:
    return NativeTree(
        left=np.full(size, -1, dtype=np.int64),
        right=np.full(size, -1, dtype=np.int64),
        feature=np.full(size, -1, dtype=np.int64),
        threshold=np.zeros(size, dtype=np.float64),
        cover=np.zeros(size, dtype=np.float64),
    )


def align_covers(ensemble: Ensemble, trees: list[NativeTree]) -> npt.NDArray[np.float64]:
    """Return each ONNX node's native cover; refuse trees whose shapes or splits differ."""
    if len(trees) != ensemble.roots.size:
        raise _mismatch(f"{len(trees)} native trees, {ensemble.roots.size} in ONNX")
    cover = np.zeros(ensemble.feature.size, dtype=np.float64)
    for number, (root, tree) in enumerate(zip(ensemble.roots.tolist(), trees, strict=True)):
        stack = [(root, 0)]
        while stack:
            node, native = stack.pop()
            cover[node] = tree.cover[native]
            onnx_leaf = ensemble.mode[node] == LEAF
            if onnx_leaf != (tree.left[native] < 0) or (
                not onnx_leaf and not _same_split(ensemble, node, tree, native)
            ):
                raise _mismatch(f"tree {number} differs at native node {native}")
            if not onnx_leaf:
                stack.append((int(ensemble.true_child[node]), int(tree.left[native])))
                stack.append((int(ensemble.false_child[node]), int(tree.right[native])))
    if np.any(cover <= 0):
        raise _mismatch(f"{int((cover <= 0).sum())} nodes have no training cover")
    return cover


def _same_split(ensemble: Ensemble, node: int, tree: NativeTree, native: int) -> bool:
    onnx_threshold = float(ensemble.threshold[node])
    with np.errstate(over="ignore"):  # LightGBM splits missing vs the rest at ~1e308: inf
        native_threshold = float(np.float32(tree.threshold[native]))
    step = float(np.spacing(np.float32(max(abs(onnx_threshold), abs(native_threshold)))))
    close = onnx_threshold == native_threshold or (
        abs(onnx_threshold - native_threshold) <= THRESHOLD_ULPS * step
    )
    return bool(ensemble.feature[node] == tree.feature[native] and close)


def _mismatch(what: str) -> ArtifactError:
    return ArtifactError(
        f"model.onnx and the native model disagree for explanations: {what}; no model was written",
        hint="report it with the converter versions (skl2onnx, onnxmltools)",
    )


def verify_explanations(
    stage: Path, estimator: Any, kind: str, x_test: npt.NDArray[np.float32]
) -> dict[str, Any]:
    """Explain held-out rows through the scorer and compare with the native model."""
    rows = np.unique(np.linspace(0, len(x_test) - 1, min(GATE_ROWS, len(x_test))).astype(int))
    x = np.ascontiguousarray(x_test[rows]) if len(x_test) else x_test
    explainer = load_scorer(stage, threads=1).explainer()
    phi = explainer.contributions(x)
    margin = explainer.margin(x)
    # The scorer's model in float64 (XGBoost's own margin is float32: ~1e-6 off at 200 trees).
    additivity = np.abs(phi.sum(axis=1) - margin)
    native_gap = np.abs(margin - native_margin(estimator, kind, x))
    native = native_contributions(estimator, kind, x)
    parity = np.abs(phi - native) if native is not None else None
    worst_sum = float(additivity.max()) if additivity.size else 0.0
    worst_margin = float(native_gap.max()) if native_gap.size else 0.0
    worst_native = float(parity.max()) if parity is not None and parity.size else None
    result: dict[str, Any] = {
        "rows": len(x),
        "space": explainer.space,
        "max_additivity_delta": worst_sum,
        "additivity_tolerance": ADDITIVITY_TOLERANCE,
        "max_native_margin_delta": worst_margin,
        "max_native_delta": worst_native,
        "native_tolerance": PARITY_TOLERANCE,
        "native": {"xgboost": "pred_contribs", "lightgbm": "pred_contrib"}.get(kind),
    }
    worst = max(worst_margin, worst_native or 0.0)
    if worst_sum > ADDITIVITY_TOLERANCE or worst > PARITY_TOLERANCE:
        raise ArtifactError(
            f"the scorer's explanations disagree with the trained model on {len(x)} held-out "
            f"rows: base value + contributions vs margin max |Δ| {worst_sum:.3g} (allowed "
            f"{ADDITIVITY_TOLERANCE:g}); margin vs native max |Δ| {worst_margin:.3g}, "
            f"contributions vs native max |Δ| {worst_native} (allowed {PARITY_TOLERANCE:g}); "
            "no model was written",
            hint="report it with the converter versions (skl2onnx, onnxmltools, xgboost, lightgbm)",
        )
    return result


def native_margin(estimator: Any, kind: str, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Return the native model's output before its link: log-odds, or RF's probability."""
    if kind == "xgboost":
        margin = estimator.get_booster().predict(xgb.DMatrix(x), output_margin=True)
    elif kind == "lightgbm":
        margin = estimator.booster_.predict(x, raw_score=True)
    elif kind == "logreg":
        margin = estimator.decision_function(x)
    else:
        margin = estimator.predict_proba(x)[:, 1]
    return np.asarray(margin, dtype=np.float64).reshape(-1)


def native_contributions(
    estimator: Any, kind: str, x: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64] | None:
    """Return XGBoost's or LightGBM's own TreeSHAP (columns + bias); None for other families."""
    if kind == "xgboost":
        values = estimator.get_booster().predict(xgb.DMatrix(x), pred_contribs=True)
    elif kind == "lightgbm":
        values = estimator.booster_.predict(x, pred_contrib=True)
    else:
        return None
    return np.asarray(values, dtype=np.float64)
