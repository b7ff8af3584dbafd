# --- training fixtures (owner: training/export) --------------------------------------------
from conftest_train import features_file, trained_artifact  # noqa: F401
# --- end training fixtures ------------------------------------------------------------------
