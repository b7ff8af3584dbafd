"""report.html as a page people read: numbers, tables for the quality profile, chart labels."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from hubscore.core.config import MODEL_NAMES
from hubscore.training import report

matplotlib.use("Agg")

QUALITY = {
    "assumptions": ["There is no sign-up date.", "x" * 300],
    "files": {
        "customers": {"path": "data/customers.csv", "rows": 325, "rejected": 0},
        "usage_actions": {"path": "data/usage_actions.csv", "rows": 25700, "rejected": 2},
    },
    "missing_by_label": [
        {"companies": "customers", "rows": 325, "EMPLOYEE_RANGE_missing": 8},
        {"companies": "noncustomers", "rows": 4675, "INDUSTRY_missing": 3742},
    ],
    "rejects": [],
    "spine": {"rows": 308729, "positives": 1112, "first_cutoff": "2025-08-31"},
}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (53262.666, "53,263"),  # was 5.326e+04
        (75278, "75,278"),
        (0.003938, "0.003938"),
        (0.8701413, "0.8701"),
        (7.302e-07, "7.302e-07"),
        (None, "—"),
        (True, "True"),
    ],
)
def test_numbers_read_as_numbers(value: object, shown: str) -> None:
    assert report._fmt(value) == shown


def test_the_quality_profile_is_tables_not_a_json_dump() -> None:
    html = report._html_quality(QUALITY)
    assert "<pre>" not in html and '"path":' not in html
    assert html.index("<h3>assumptions</h3>") == 0  # what the reader must know comes first
    assert "<li>There is no sign-up date.</li>" in html
    files = html.split("<h3>files</h3>")[1].split("<h3>")[0]
    assert re.search(r"<th></th><th>path</th><th>rows</th><th>rejected</th>", files)
    assert "<td class='n'>25,700</td>" in files
    by_label = html.split("<h3>missing_by_label</h3>")[1].split("<h3>")[0]
    # records with different keys share one header: the union, in order of appearance
    assert "<th>EMPLOYEE_RANGE_missing</th><th>INDUSTRY_missing</th>" in by_label
    assert "<td class='n'>308,729</td>" in html


def test_long_cells_wrap_instead_of_overflowing() -> None:
    assert "overflow-wrap:anywhere" in report.STYLE
    assert "<pre>" not in report._html_quality(QUALITY)


def test_sections_the_notes_refer_to_exist_by_name(tmp_path: Path) -> None:
    referenced = re.findall(r"section '([^']+)'", " ".join(report.ASSUMPTIONS))
    assert referenced, "the missingness note names the ablation section"
    assert "below" not in " ".join(report.ASSUMPTIONS)
    source = Path(report.__file__).read_text()
    assert all(f'"<h2>{name}</h2>"' in source for name in referenced)


def test_the_importance_axis_says_what_each_family_measures() -> None:
    assert set(report.IMPORTANCE_MEANINGS) == set(MODEL_NAMES)
    assert report.IMPORTANCE_MEANINGS["xgboost"].startswith("gain")
    assert report.IMPORTANCE_MEANINGS["lightgbm"].startswith("gain")
    assert "gain" not in report.IMPORTANCE_MEANINGS["random_forest"]


def test_confusion_counts_are_white_on_dark_cells() -> None:
    import matplotlib.pyplot as plt

    y = np.array([0] * 900 + [1] * 100)
    p = np.where(np.arange(1000) % 7 == 0, 0.9, 0.1)
    fig, ax = plt.subplots()
    report._plot_confusion(ax, y, p, 0.5)
    colors = {text.get_text(): text.get_color() for text in ax.texts}
    plt.close(fig)
    tn = f"{int(((y == 0) & (p < 0.5)).sum()):,}"
    assert colors.pop(tn) == "white"  # the largest cell is Blues' darkest
    assert set(colors.values()) == {"black"}
