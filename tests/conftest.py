import pytest

# --- training fixtures (owner: training/export) --------------------------------------------
from conftest_train import features_file, trained_artifact  # noqa: F401

# --- end training fixtures ------------------------------------------------------------------


# --- ledger (owner: monitoring) -------------------------------------------------------------
@pytest.fixture(autouse=True)
def _ledger_in_tmp(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `score` records its list (default data/ledger): keep tests' lists out of the repo."""
    monkeypatch.setenv("HUBSCORE_SCORING_LEDGER_DIR", str(tmp_path_factory.mktemp("ledger")))


# --- end ledger -----------------------------------------------------------------------------
