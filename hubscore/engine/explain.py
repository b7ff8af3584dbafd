"""Exact per-row contributions of a run folder's model, computed in the lean scorer.

For every family, base value + the sum of a row's contributions = the model's own output
before any calibration (its "margin"), in the space `model.onnx`'s post-transform names:
log-odds for xgboost, lightgbm and logreg (LOGISTIC), probability for random_forest (NONE).

- Trees: exact path-dependent TreeSHAP (`treeshap.py`) over the tree arrays read out of
  `model.onnx` itself, weighted by per-node covers the ONNX file does not hold.
- Logistic regression: coefficient x (x - training mean) in the encoded (scaled) space, the
  exact linear attribution; the coefficients are read from `model.onnx`.

`explain.npz` holds what the ONNX file lacks, as plain NumPy arrays (read with
`allow_pickle=False`, so it cannot run code), and is hashed in the manifest like every file:

    version  int64[1]     EXPLAIN_VERSION
    covers   float64[n]   tree families: training cover of every node of the ONNX tree
                          ensemble, in its attribute order (XGBoost: hessian sum; LightGBM:
                          row count; scikit-learn: weighted_n_node_samples)
    means    float64[m]   logreg: the training rows' mean of every model column
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hubscore.core.artifacts import EXPLAIN_FILE as EXPLAIN_FILE
from hubscore.core.artifacts import MODEL_FILE
from hubscore.core.errors import ArtifactError
from hubscore.engine.onnx_graph import Operator, ml_operators
from hubscore.engine.treeshap import TreeExplainer, ensemble_from_attributes

EXPLAIN_VERSION = 1
"""Version of explain.npz's layout; bump it when an old file would be read differently."""
TREE_OPERATORS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
SPACES = {"LOGISTIC": "log-odds", "NONE": "probability"}
RETRAIN_HINT = "retrain with this hubscore version to get reasons, or score with --no-explain"

Floats = npt.NDArray[np.float64]


class Explainer(Protocol):
    """What the scorer asks of an explainer."""

    space: str
    """The output space contributions add up in: "log-odds" or "probability"."""

    def contributions(self, x: npt.NDArray[np.float32]) -> Floats:
        """Return (rows, columns + 1): each model column's contribution, then the base value."""
        ...

    def margin(self, x: npt.NDArray[np.float32]) -> Floats:
        """Return the model's own output before its link, in float64: what contributions add to."""
        ...


class LinearExplainer:
    """coefficient x (x - training mean): exact for a linear margin."""

    def __init__(self, coefficients: Floats, intercept: float, means: Floats, space: str) -> None:
        self.coefficients = coefficients
        self.intercept = intercept
        self.means = means
        self.base = float(intercept + coefficients @ means)
        self.space = space

    def contributions(self, x: npt.NDArray[np.float32]) -> Floats:
        """Return (rows, columns + 1): each model column's contribution, then the base value."""
        phi = (np.asarray(x, dtype=np.float64) - self.means) * self.coefficients
        return np.hstack([phi, np.full((phi.shape[0], 1), self.base)])

    def margin(self, x: npt.NDArray[np.float32]) -> Floats:
        """Return the model's own output before its link, in float64: what contributions add to."""
        return np.asarray(x, dtype=np.float64) @ self.coefficients + self.intercept


class EnsembleExplainer:
    """TreeSHAP over the ONNX tree ensemble, in its post-transform's space."""

    def __init__(self, trees: TreeExplainer, space: str) -> None:
        self.trees = trees
        self.space = space

    def contributions(self, x: npt.NDArray[np.float32]) -> Floats:
        """Return (rows, columns + 1): each model column's contribution, then the base value."""
        return self.trees.contributions(x)

    def margin(self, x: npt.NDArray[np.float32]) -> Floats:
        """Return the model's own output before its link, in float64: what contributions add to."""
        return self.trees.margin(x)


def write_explain_file(
    path: Path, *, covers: Floats | None = None, means: Floats | None = None
) -> None:
    """Write explain.npz: the covers (trees) or column means (logreg), plain arrays only."""
    arrays = {"version": np.asarray([EXPLAIN_VERSION], dtype=np.int64)}
    if covers is not None:
        arrays["covers"] = np.asarray(covers, dtype=np.float64)
    if means is not None:
        arrays["means"] = np.asarray(means, dtype=np.float64)
    with path.open("wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)


def load_explainer(run_dir: Path, *, model_file: str, n_columns: int) -> Explainer:
    """Build the explainer of a verified run folder; old folders get a clear ArtifactError."""
    path = run_dir / EXPLAIN_FILE
    if not path.is_file():
        raise missing_explain_file(path)
    return explainer_from_bytes(
        (run_dir / model_file).read_bytes(), path.read_bytes(), n_columns, source=run_dir
    )


def explainer_from_bytes(
    model: bytes, explain_file: bytes, n_columns: int, *, source: Path
) -> Explainer:
    """Build an explainer from `model.onnx` and `explain.npz` bytes read (and verified) once.

    Args:
        source: the run folder the bytes came from, for messages.
    """
    arrays = parse_explain_file(explain_file, source / EXPLAIN_FILE)
    operators = ml_operators(model, source / MODEL_FILE)
    trees = [op for op in operators if op.op_type in TREE_OPERATORS]
    linear = [op for op in operators if op.op_type == "LinearClassifier"]
    if len(trees) == 1 and "covers" in arrays:
        return _tree_explainer(trees[0], arrays["covers"], n_columns, source)
    if len(linear) == 1 and "means" in arrays:
        return _linear_explainer(linear[0], arrays["means"], n_columns, source)
    found = ", ".join(op.op_type for op in operators) or "none"
    raise ArtifactError(
        f"{source / MODEL_FILE} cannot be explained with {EXPLAIN_FILE} "
        f"(arrays: {', '.join(sorted(arrays))}); its ML operators: {found}",
        hint=RETRAIN_HINT,
    )


def missing_explain_file(path: Path) -> ArtifactError:
    """Return the error for a run folder without explain.npz (written before explanations)."""
    return ArtifactError(
        f"{path} is missing: this run folder was written before explanations existed, "
        "so it scores but cannot give reasons",
        hint=RETRAIN_HINT,
    )


def read_explain_file(path: Path) -> dict[str, Floats]:
    """Read explain.npz without pickle; refuse a missing file or another layout version."""
    if not path.is_file():
        raise missing_explain_file(path)
    return parse_explain_file(path.read_bytes(), path)


def parse_explain_file(data: bytes, path: Path) -> dict[str, Floats]:
    """Parse explain.npz bytes without pickle; refuse another layout version."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            arrays = {name: np.asarray(loaded[name]) for name in loaded.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(
            f"{path} is not a readable explain file: {exc}", hint=RETRAIN_HINT
        ) from None
    version = arrays.pop("version", np.zeros(1)).tolist()
    if version != [EXPLAIN_VERSION]:
        raise ArtifactError(
            f"{path} has version {version}, this hubscore reads [{EXPLAIN_VERSION}]",
            hint=RETRAIN_HINT,
        )
    return {name: value.astype(np.float64) for name, value in arrays.items()}


def _space(op: Operator, run_dir: Path) -> str:
    transform = str(op.attributes.get("post_transform", "NONE"))
    if transform not in SPACES:
        raise ArtifactError(
            f"{run_dir} model's {op.op_type} has post_transform {transform}; "
            f"explanations know {', '.join(SPACES)}",
            hint=RETRAIN_HINT,
        )
    return SPACES[transform]


def _tree_explainer(op: Operator, covers: Floats, n_columns: int, run_dir: Path) -> Explainer:
    nodes = len(op.attributes.get("nodes_treeids", []))
    if covers.size != nodes:
        raise ArtifactError(
            f"{run_dir / EXPLAIN_FILE} holds {covers.size} covers, the model has {nodes} nodes",
            hint=RETRAIN_HINT,
        )
    ensemble = ensemble_from_attributes(op.attributes, covers)
    return EnsembleExplainer(TreeExplainer(ensemble, n_columns), _space(op, run_dir))


def _linear_explainer(op: Operator, means: Floats, n_columns: int, run_dir: Path) -> Explainer:
    weights = np.asarray(op.attributes["coefficients"], dtype=np.float32).astype(np.float64)
    intercepts = np.asarray(op.attributes["intercepts"], dtype=np.float32).astype(np.float64)
    rows = weights.reshape(-1, n_columns) if weights.size % max(n_columns, 1) == 0 else None
    if rows is None or means.size != n_columns:
        raise ArtifactError(
            f"{run_dir} linear model has {weights.size} coefficients and {means.size} means "
            f"for {n_columns} columns",
            hint=RETRAIN_HINT,
        )
    # Binary models list [class 0, class 1]: the positive class's margin is the last row.
    return LinearExplainer(rows[-1], float(intercepts[-1]), means, _space(op, run_dir))


def to_probability(margin: Floats, space: str) -> Floats:
    """Map a margin (base value + contributions) to the model's probability."""
    if space == "log-odds":
        return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)
    return np.asarray(margin, dtype=np.float64)
