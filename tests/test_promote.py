"""`hubscore promote`, `rollback` and models/promotions.jsonl: every move of latest, logged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from hubscore.cli import app
from hubscore.core import atomic
from hubscore.core.ledger import LAYOUT_DIR
from hubscore.core.promotions import (
    PROMOTIONS_FILE,
    champion_history,
    latest_target,
    move_latest,
    read_log,
)
from hubscore.training.runs import update_latest

GOLDEN = Path(__file__).parent / "golden"
INPUT = GOLDEN / "xgboost" / "input.parquet"
CUTOFFS = [date(2024, 1, 7) + timedelta(weeks=w) for w in range(5)]
A, B = "hubscore_20240101_000000", "hubscore_20240102_000000"  # champion, challenger
runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run folders A (golden xgboost, latest) and B (golden lightgbm), five weeks in a ledger."""
    root = tmp_path_factory.mktemp("promote")
    models = root / "models"
    shutil.copytree(GOLDEN / "xgboost" / "run", models / A)
    shutil.copytree(GOLDEN / "lightgbm" / "run", models / B)
    for cutoff in CUTOFFS:
        args = ["score", str(INPUT), "-o", str(root / "list.csv"), "--model", str(models / A)]
        args += ["--shadow", str(models / B), "--ledger", str(root / "ledger"), "--top-k", "10"]
        result = runner.invoke(app, [*args, "--as-of", cutoff.isoformat(), "-q"])
        assert result.exit_code == 0, result.output
    return root


def models_dir(setup: Path, tmp_path: Path) -> Path:
    """A fresh copy of the models folder with latest at A (set by a logged train move)."""
    models = tmp_path / "models"
    shutil.copytree(setup / "models", models, symlinks=True)
    with atomic.exclusive_lock(models / "latest"):
        update_latest(models, A)
    return models


def top10(setup: Path, name: str) -> list[int]:
    path = next((setup / "ledger" / LAYOUT_DIR).glob(f"{CUTOFFS[0]}__golden-{name}*.parquet"))
    return pl.read_parquet(path).filter("listed")["id"].to_list()


def data_where(setup: Path, tmp_path: Path, *, winner: str) -> Path:
    """Customers files where the companies only `winner` lists convert in every week."""
    loser = "lightgbm" if winner == "xgboost" else "xgboost"
    only = [i for i in top10(setup, winner) if i not in top10(setup, loser)]
    data = tmp_path / "data"
    data.mkdir()
    # Within the horizon of all five lists: after the last cutoff (02-04), by 02-06.
    rows = [f"2024-02-0{5 + n % 2},{i}" for n, i in enumerate(only)]
    (data / "customers.csv").write_text("CLOSEDATE,id\n" + "\n".join(rows) + "\n")
    return data


def promote(setup: Path, models: Path, data: Path, *args: str) -> Result:
    argv = ["promote", str(models / B), "--models-dir", str(models), "--data-dir", str(data)]
    argv += ["--ledger", str(setup / "ledger"), "--k", "10", "--known-until", "2024-03-31"]
    return runner.invoke(app, [*argv, *args])


def log(models: Path) -> list[dict[str, Any]]:
    lines = (models / PROMOTIONS_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_train_logs_its_move_of_latest(trained_artifact: Any) -> None:
    models = trained_artifact.run_dir.parent
    (move,) = log(models)
    assert (move["action"], move["to"], move["from"]) == (
        "train",
        trained_artifact.run_dir.name,
        None,
    )
    assert move["evidence"]["test"]["roc_auc"] == pytest.approx(trained_artifact.test["roc_auc"])
    assert move["who"] and move["at"] and move["version"] == 1


def test_a_worse_challenger_is_refused_and_nothing_moves(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    before = (models / PROMOTIONS_FILE).read_bytes()
    result = promote(setup, models, data_where(setup, tmp_path, winner="xgboost"))
    assert result.exit_code == 10, result.output
    assert f"{B} vs {A} at precision@10 over 5 shared mature weeks" in result.stderr
    assert "not above zero" in result.stderr
    assert os.readlink(models / "latest") == A
    assert (models / PROMOTIONS_FILE).read_bytes() == before


def test_a_better_challenger_is_promoted_with_its_evidence(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    result = promote(setup, models, data_where(setup, tmp_path, winner="lightgbm"))
    assert result.exit_code == 0, result.output
    assert os.readlink(models / "latest") == B
    assert result.stdout.strip() == str(models / B)
    _train, move = log(models)
    assert (move["action"], move["from"], move["to"]) == ("promote", A, B)
    evidence = move["evidence"]
    assert evidence["k"] == 10 and evidence["weeks"] == 5 and evidence["champion_converted"] == 0
    assert evidence["difference_low"] > 0
    assert "evidence: precision@10 over 5 shared mature weeks" in result.stderr


def test_too_few_shared_weeks_are_refused(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    data = data_where(setup, tmp_path, winner="lightgbm")
    result = promote(setup, models, data, "--min-lists", "6")
    assert result.exit_code == 10
    assert "share 5 mature weeks in the ledger, fewer than the 6 a promotion needs" in result.stderr
    assert os.readlink(models / "latest") == A


def test_force_needs_a_reason_and_logs_it(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    data = data_where(setup, tmp_path, winner="xgboost")
    result = promote(setup, models, data, "--force")
    assert result.exit_code == 2
    assert "--force promotes without evidence, so it needs --reason TEXT" in result.stderr
    result = promote(setup, models, data, "--force", "--reason", "the sales team asked")
    assert result.exit_code == 0, result.output
    move = log(models)[-1]
    assert (move["to"], move["reason"]) == (B, "the sales team asked")
    assert move["evidence"]["difference"] < 0  # what the ledger said is kept beside the reason


def test_rollback_restores_the_previous_target_exactly(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    before = os.readlink(models / "latest")
    data = data_where(setup, tmp_path, winner="lightgbm")
    assert promote(setup, models, data).exit_code == 0
    result = runner.invoke(app, ["rollback", "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert os.readlink(models / "latest") == before
    assert [m["action"] for m in log(models)] == ["train", "promote", "rollback"]
    assert log(models)[-1]["evidence"] == {"rolled_back": B, "to_the_champion_before": A}
    again = runner.invoke(app, ["rollback", "--models-dir", str(models)])
    assert again.exit_code == 2
    assert "records no champion before" in again.stderr


def test_rollback_refuses_a_previous_champion_that_was_deleted(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    assert promote(setup, models, data_where(setup, tmp_path, winner="lightgbm")).exit_code == 0
    shutil.rmtree(models / A)
    result = runner.invoke(app, ["rollback", "--models-dir", str(models)])
    assert result.exit_code == 5
    assert os.readlink(models / "latest") == B


def test_promote_refuses_what_is_no_run_folder_in_models(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    data = data_where(setup, tmp_path, winner="lightgbm")
    argv = ["promote", str(GOLDEN / "lightgbm" / "run"), "--models-dir", str(models)]
    result = runner.invoke(app, [*argv, "--data-dir", str(data), "--ledger", str(setup / "ledger")])
    assert result.exit_code == 2
    assert "is not a run folder in" in result.stderr
    (models / B / "model.onnx").write_bytes(b"tampered")
    assert promote(setup, models, data).exit_code == 5
    assert os.readlink(models / "latest") == A


def test_promote_waits_for_no_one_while_train_holds_the_lock(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    data = data_where(setup, tmp_path, winner="lightgbm")
    with atomic.exclusive_lock(models / "latest"):
        result = promote(setup, models, data)
    assert result.exit_code == 6
    assert os.readlink(models / "latest") == A


KILLED = """
import os, signal, sys
from pathlib import Path
from hubscore.core import atomic, promotions

def die(link, target):  # after the log is written, before latest moves
    os.kill(os.getpid(), signal.SIGKILL)

promotions.atomic.replace_symlink = die
with atomic.exclusive_lock(Path(sys.argv[1]) / "latest"):
    promotions.move_latest(Path(sys.argv[1]), sys.argv[2], action="promote", reason="test")
"""


def test_a_killed_promote_leaves_latest_and_the_log_consistent(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    done = subprocess.run([sys.executable, "-c", KILLED, str(models), B], capture_output=True)
    assert done.returncode == -9  # SIGKILL between the two writes
    assert latest_target(models) == A
    moves = read_log(models)
    assert [(m.action, m.to, m.status) for m in moves] == [
        ("train", A, "done"),
        ("promote", B, "interrupted"),  # logged, never committed: latest did not move
    ]
    assert champion_history(moves) == [A]
    with atomic.exclusive_lock(models / "latest"):
        move_latest(models, B, action="promote", reason="again")
    assert latest_target(models) == B
    statuses = [(m["to"], m["status"]) for m in log(models)]
    assert statuses == [(A, "done"), (B, "interrupted"), (B, "done")]
    assert champion_history(read_log(models)) == [A, B]


def test_champion_history_is_a_stack_of_moves() -> None:
    from hubscore.core.promotions import Move

    def move(action: str, to: str, frm: str | None) -> Move:
        return Move(action=action, to=to, from_=frm, at="", who="")

    moves = [move("promote", "b", "a"), move("train", "c", "b"), move("rollback", "b", "c")]
    assert champion_history(moves) == ["a", "b"]  # latest was `a` before the log began


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_mlflow_aliases_follow_the_moves(
    trained_artifact: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    from hubscore.training import tracking

    monkeypatch.chdir(tmp_path)
    models = tmp_path / "models"
    first, second = models / A, models / B
    shutil.copytree(trained_artifact.run_dir, first)
    shutil.copytree(trained_artifact.run_dir, second)
    uri = f"sqlite:///{models / 'mlflow.db'}"
    ids = {p.name: tracking.log_run(p, uri=uri, experiment="hubscore") for p in (first, second)}
    assert tracking.set_alias(A, "champion", uri=uri, experiment="hubscore") == "1"
    with atomic.exclusive_lock(models / "latest"):
        update_latest(models, A)
    result = runner.invoke(
        app,
        ["promote", str(second), "--models-dir", str(models), "--force", "--reason", "test"],
    )
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_model_version_by_alias("hubscore", "champion").run_id == ids[B]
    assert runner.invoke(app, ["rollback", "--models-dir", str(models)]).exit_code == 0
    assert client.get_model_version_by_alias("hubscore", "champion").run_id == ids[A]


def test_prune_keeps_the_champion_rollback_returns_to(setup: Path, tmp_path: Path) -> None:
    models = models_dir(setup, tmp_path)
    shutil.copytree(models / A, models / "hubscore_20231201_000000")  # an older, unused run
    assert promote(setup, models, data_where(setup, tmp_path, winner="lightgbm")).exit_code == 0
    result = runner.invoke(app, ["runs", "prune", "--keep", "0", "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(models / "hubscore_20231201_000000")]
    assert (models / A).is_dir() and (models / B).is_dir()
    assert runner.invoke(app, ["rollback", "--models-dir", str(models)]).exit_code == 0
