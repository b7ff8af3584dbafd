"""Convert a trained model to ONNX and verify it through the scorer (the verification gate).

The gate scores the held-out rows with `load_scorer` on the staged run folder (JSON encoders +
onnxruntime, the scorer's own code path) and compares them with the native model.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import polars as pl
from lightgbm import LGBMClassifier
from onnx import helper
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.ensemble import RandomForestClassifier
from xgboost import XGBClassifier

from hubscore._version import __version__
from hubscore.core.errors import ArtifactError
from hubscore.engine.calibration import calibrate
from hubscore.engine.scorer import load_scorer

INPUT = "input"
OUTPUT = "probability"
MAX_DELTA = 1e-5
OPSET = {"": 17, "ai.onnx.ml": 3}  # fixed, so a converter upgrade cannot change the bytes
LIBRARIES: tuple[str, ...] = ("polars", "numpy", "scikit-learn", "xgboost", "lightgbm", "onnx")
LIBRARIES += ("skl2onnx", "onnxmltools", "onnxruntime", "matplotlib", "pyarrow")
_CONVERTERS_READY = False


def register_converters() -> None:
    """Register the onnxmltools converters for XGBoost and LightGBM with skl2onnx (once)."""
    global _CONVERTERS_READY
    if _CONVERTERS_READY:
        return
    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for cls, alias, converter in (
        (XGBClassifier, "XGBoostXGBClassifier", convert_xgboost),
        (LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm),
    ):
        update_registered_converter(
            cls, alias, calculate_linear_classifier_output_shapes, converter, options=options
        )
    _CONVERTERS_READY = True


def to_onnx(estimator: Any, n_features: int) -> bytes:
    """Convert a fitted classifier to ONNX with one output: P(positive), float32, shape (n,)."""
    register_converters()
    proto = convert_sklearn(
        estimator,
        name="hubscore",
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=OPSET,
    )
    if isinstance(estimator, RandomForestClassifier):
        _route_forest_missing_values(proto, estimator)
    serialized: bytes = _positive_output(proto).SerializeToString()
    return serialized


def _route_forest_missing_values(proto: onnx.ModelProto, forest: RandomForestClassifier) -> None:
    """Write each split's learned missing-value direction into the ONNX trees.

    skl2onnx 1.20 converts a forest with every `nodes_missing_value_tracks_true` at 0, so NaN
    would always take the false branch; scikit-learn routes NaN by `missing_go_to_left`, and
    a `BRANCH_LEQ` node's true branch is the left child.
    """
    ensemble = next(n for n in proto.graph.node if n.op_type.startswith("TreeEnsemble"))
    attributes = {a.name: a for a in ensemble.attribute}
    trees, nodes = attributes["nodes_treeids"].ints, attributes["nodes_nodeids"].ints
    left = [tree.tree_.missing_go_to_left for tree in forest.estimators_]
    tracks = [int(left[t][n]) for t, n in zip(trees, nodes, strict=True)]
    del attributes["nodes_missing_value_tracks_true"].ints[:]
    attributes["nodes_missing_value_tracks_true"].ints.extend(tracks)


def _positive_output(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Replace the label and [P(0), P(1)] outputs with the P(1) column alone."""
    graph = proto.graph
    probabilities = next(o.name for o in graph.output if o.type.tensor_type.elem_type == 1)
    index = helper.make_tensor("positive_index", onnx.TensorProto.INT64, [], [1])
    graph.initializer.append(index)
    graph.node.append(
        helper.make_node(
            "Gather", [probabilities, "positive_index"], [OUTPUT], axis=1, name="positive"
        )
    )
    out = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [None])
    del graph.output[:]
    graph.output.append(out)
    _prune(graph)
    graph.name = "hubscore"
    proto.doc_string = ""
    onnx.checker.check_model(proto)
    return proto


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers that no output depends on (the label branch)."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    nodes = list(reversed(kept))
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def verify_export(
    run_dir: Path,
    frame: pl.DataFrame,
    native: np.ndarray,
    *,
    threshold: float,
    names: Sequence[str],
) -> dict[str, Any]:
    """Score `frame` with the scorer on `run_dir` and compare with the native model.

    Args:
        native: the native model's own probabilities, before calibration. The tolerance is on
            the model's output, what the export can change; the calibration that follows is
            the same NumPy code on both sides. Flips compare both calibrated, the native one
            rounded to float32 (what a scorer reports), at `threshold`.
    """
    scorer = load_scorer(run_dir, threads=1)
    onnx_raw = scorer.model_output(scorer.encode(frame.select(names))).astype(np.float64)
    delta = np.abs(onnx_raw - native)
    onnx_p = calibrate(onnx_raw, scorer.spec.calibration).astype(np.float64)
    native32 = calibrate(native, scorer.spec.calibration).astype(np.float64)
    flips = int(((onnx_p >= threshold) != (native32 >= threshold)).sum())
    result = {
        "rows": int(frame.height),
        "max_abs_delta": float(delta.max()) if delta.size else 0.0,
        "mean_abs_delta": float(delta.mean()) if delta.size else 0.0,
        "label_flips": flips,
        "tolerance": MAX_DELTA,
        "threshold": threshold,
    }
    if result["max_abs_delta"] > MAX_DELTA or flips:
        raise ArtifactError(
            f"the exported model disagrees with the trained one on {frame.height} held-out rows: "
            f"max |Δp| {result['max_abs_delta']:.3g} (allowed {MAX_DELTA:g}), "
            f"{flips} label flips at threshold {threshold:.4g}; no model was written",
            hint="report it with the converter versions in this message: "
            + ", ".join(f"{n} {_version(n)}" for n in ("skl2onnx", "onnxmltools", "onnxruntime")),
        )
    return result


def save_native(estimator: Any, kind: str, run_dir: Path) -> str | None:
    """Save the native model in its own safe text format (never pickle); return its name."""
    if kind == "xgboost":
        estimator.get_booster().save_model(str(run_dir / "model.xgb.json"))
        return "model.xgb.json"
    if kind == "lightgbm":
        (run_dir / "model.lgb.txt").write_text(estimator.booster_.model_to_string())
        return "model.lgb.txt"
    return None


def library_versions() -> dict[str, str]:
    """Return the versions of hubscore, Python and every library a run depends on."""
    found = {name: _version(name) for name in LIBRARIES}
    return {"hubscore": __version__, "python": platform.python_version(), **found}


def _version(name: str) -> str:
    try:
        return version(name)
    except Exception:  # importlib raises PackageNotFoundError; any failure is "unknown"
        return "unknown"
