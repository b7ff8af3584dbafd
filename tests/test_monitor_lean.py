"""The monitor runs on a cron host beside the scorer: it loads no training stack, nor the scorer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hubscore.cli import app

GOLDEN = Path(__file__).parent / "golden"
BANNED = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "skl2onnx",
    "onnxmltools",
    "onnx",
    "onnxruntime",  # the monitor reads the ledger; it never scores
    "duckdb",
    "pandas",
    "scipy",
    "matplotlib",
    "mlflow",
    "fastapi",
    "uvicorn",
    "pyspark",
    "hubscore.training",
    "hubscore.features",
    "hubscore.serving",
    "hubscore.engine",
    "hubscore.spark",
    "hubscore.dev",
)

PROBE = """
import json, sys
from typer.testing import CliRunner
import hubscore.cli
result = CliRunner().invoke(hubscore.cli.app, sys.argv[2:])
banned = sys.argv[1].split(",")
loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in banned))
print(json.dumps({"exit_code": result.exit_code, "loaded": loaded, "stderr": result.stderr}))
"""


def probe(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(BANNED), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_monitor_and_rollback_load_no_training_stack_and_no_scorer(tmp_path: Path) -> None:
    ledger, data = tmp_path / "ledger", tmp_path / "data"
    args = ["score", str(GOLDEN / "xgboost" / "input.parquet"), "-o", str(tmp_path / "a.csv")]
    args += ["--model", str(GOLDEN / "xgboost" / "run"), "--ledger", str(ledger), "-q"]
    assert CliRunner().invoke(app, [*args, "--as-of", "2024-01-07"]).exit_code == 0
    data.mkdir()
    (data / "customers.csv").write_text("id,CLOSEDATE\n100001,2024-01-20\n")
    html = tmp_path / "m.html"
    report = probe(
        "monitor", "--ledger", str(ledger), "--data-dir", str(data), "--html", str(html),
        "--known-until", "2024-03-01",
    )  # fmt: skip
    assert report["loaded"] == [] and report["exit_code"] == 0, report
    assert html.is_file()
    report = probe("rollback", "--models-dir", str(tmp_path / "models"))
    assert report["loaded"] == [] and report["exit_code"] == 2, report  # nothing to roll back
