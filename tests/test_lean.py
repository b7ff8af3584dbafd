"""The scoring path never loads the training stack, and works where it is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from inputs import golden_copies

ROOT = Path(__file__).parent.parent
GOLDEN = ROOT / "tests" / "golden" / "basic"
BANNED = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "skl2onnx",
    "onnxmltools",
    "onnx",
    "duckdb",
    "joblib",  # pickle loaders; pyarrow itself imports cloudpickle when it is installed
    "dill",
    "pandas",
    "scipy",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "mlflow",
    "shap",
    "pydantic",  # typer 0.29 validates options with it: 60 ms of start-up (pinned <0.29)
    # Not "pickle": the standard library loads it for its own use (typer and rich import it);
    # the import-linter contracts forbid our own modules from importing it.
    "hubscore.training",
    "hubscore.features",
    "hubscore.serving.api",
    "hubscore.dev",
)

PROBE = """
import json, sys
from pathlib import Path
from typer.testing import CliRunner
import hubscore.cli, hubscore.engine.scorer
args = ["score", sys.argv[1], "-o", sys.argv[2], "--model", sys.argv[3], "-q", *sys.argv[5:]]
result = CliRunner().invoke(hubscore.cli.app, args)
banned = sys.argv[4].split(",")
loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in banned))
print(json.dumps({"exit_code": result.exit_code, "loaded": loaded}))
"""


@pytest.mark.parametrize(
    "copies", [1, 100], ids=["60 rows", "6,000 rows: text folded through Arrow dictionaries"]
)
def test_scoring_loads_no_training_stack(tmp_path: Path, copies: int) -> None:
    source = golden_copies(tmp_path, copies) if copies > 1 else GOLDEN / "input.parquet"
    out = tmp_path / "scores.parquet"
    args = [str(source), str(out), str(GOLDEN / "run"), ",".join(BANNED)]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"exit_code": 0, "loaded": []}
    assert pl.read_parquet(out).height == 60 * copies


def test_scoring_without_reasons_does_not_load_protobuf(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    args = [str(GOLDEN / "input.parquet"), str(out), str(GOLDEN / "run")]
    # protobuf's descriptors cost ~0.2 s at start-up; only explaining reads model.onnx with them
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "google.protobuf.descriptor_pb2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"exit_code": 0, "loaded": []}


COLLECTOR_PROBE = """
import gc, json, sys
from hubscore.cli import run
scorer_loaded = []  # at each automatic collection: were the scorer's modules loaded yet?
gc.callbacks.append(
    lambda phase, info: phase == "start"
    and scorer_loaded.append("hubscore.serving.batch" in sys.modules)
)
sys.argv = ["hubscore", "score", *sys.argv[1:]]
try:
    run()
except SystemExit as exc:
    exit_code = exc.code
print(json.dumps({
    "exit_code": exit_code,
    "while_loading": scorer_loaded.count(False),
    "while_scoring": scorer_loaded.count(True),
}))
"""


def test_the_command_line_collects_garbage_only_once_its_command_runs(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    args = [str(GOLDEN / "input.parquet"), "-o", str(out), "--model", str(GOLDEN / "run"), "-q"]
    done = subprocess.run(
        [sys.executable, "-c", COLLECTOR_PROBE, *args], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["exit_code"] == 0
    assert report["while_loading"] == 0  # NumPy, Polars, pyarrow, onnxruntime: never scanned
    assert report["while_scoring"] > 0  # and collection resumed for the command's own work


def test_explaining_loads_no_training_stack(tmp_path: Path) -> None:
    explained = ROOT / "tests" / "golden" / "xgboost"  # calibrated, explained: format 2
    out = tmp_path / "list.parquet"
    args = [str(explained / "input.parquet"), str(out), str(explained / "run"), ",".join(BANNED)]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "--top-k", "5"],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"exit_code": 0, "loaded": []}
    assert pl.read_parquet(out)["reason_1"].null_count() == 0


@pytest.mark.slow
def test_scores_golden_in_a_fresh_env_without_training_extra(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    requirements = tmp_path / "requirements.txt"
    # The locked runtime dependencies only: no extras, no dev group.
    exported = [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"]
    requirements.write_text(
        subprocess.run(
            exported, cwd=ROOT, env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    steps = [
        [uv, "venv", str(venv), "--python", sys.executable, "-q"],
        [uv, "pip", "install", "--python", str(python), "-q", "-r", str(requirements)],
        [uv, "pip", "install", "--python", str(python), "-q", "--no-deps", str(ROOT)],
    ]
    for step in steps:
        subprocess.run(step, cwd=tmp_path, env=env, check=True, capture_output=True)
    absent = subprocess.run([str(python), "-c", "import sklearn"], capture_output=True)
    assert absent.returncode != 0, "the fresh env must not have the training extra"
    out = tmp_path / "scores.parquet"
    args = [
        GOLDEN / "input.parquet",
        "-o",
        out,
        "--model",
        GOLDEN / "run",
        "--scored-at",
        "2024-01-07",
    ]
    subprocess.run([str(venv / "bin" / "hubscore"), "score", *map(str, args), "-q"], check=True)
    expected = pl.read_parquet(GOLDEN / "expected_scores.parquet").drop("native_probability")
    assert pl.read_parquet(out).equals(expected)
