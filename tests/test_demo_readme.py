"""The README shows what `just demo` printed: the same text, copied by `just readme`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from hubscore.dev import demo

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_has_a_block_for_each_thing_the_demo_prints() -> None:
    text = README.read_text(encoding="utf-8")
    for name in ("call-list", "tiers"):
        assert f"<!-- demo:{name} -->\n```\n" in text
        assert f"```\n<!-- /demo:{name} -->" in text


def test_the_readme_call_list_is_in_the_demos_own_format() -> None:
    block = README.read_text(encoding="utf-8").split("<!-- demo:call-list -->\n```\n")[1]
    lines = block.split("```")[0].splitlines()
    assert lines, "run `just demo` then `just readme`"
    assert lines[0].startswith("#1 ") and " p 0." in lines[0]
    assert all(line.startswith(("#", "     + ", "     - ")) for line in lines)


def test_the_call_list_is_printed_as_a_caller_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "call_list.csv"
    pl.DataFrame(
        {
            "rank": [2, 1],
            "id": [7, 3863],
            "conversion_probability": [0.1, 0.39284],
            "priority": ["high", "very high"],
            "reason_1": ["more deal activity", "new activity"],
            "reason_2": [None, "51 to 200 employees"],
            "reason_3": [None, None],
            "reason_against": [None, "has not used email in the last 13 weeks"],
            "basis": ["usage", "usage"],
        }
    ).write_csv(path)
    assert demo.call_list_text(path, rows=1) == (
        "#1   id 3863   p 0.393  very high, usage\n"
        "     + new activity\n"
        "     + 51 to 200 employees\n"
        "     - has not used email in the last 13 weeks\n"
    )


def test_write_blocks_replaces_only_the_marked_text_and_twice_is_once(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- demo:tiers -->\nold\n<!-- /demo:tiers -->\nb\n")
    assert demo.write_blocks(readme, {"tiers": "new\n", "unused": "x\n"}) == ["tiers"]
    once = readme.read_text()
    assert once == "a\n<!-- demo:tiers -->\n```\nnew\n```\n<!-- /demo:tiers -->\nb\n"
    demo.write_blocks(readme, {"tiers": "new\n"})
    assert readme.read_text() == once


def test_the_tier_table_says_rates_intervals_lift_and_order() -> None:
    tiers = [
        {"priority": p, "top_share": s, "rows": 10, "converted": c, "conversion_rate": r,
         "interval": [r / 2, r * 2], "lift": r / 0.01}
        for p, s, c, r in (("very high", 0.01, 3, 0.3), ("high", 0.05, 1, 0.1),
                           ("medium", 0.2, 0, 0.0), ("low", 1.0, 0, 0.0))
    ]  # fmt: skip
    text = demo.tiers_text(
        {"model": "lightgbm", "test_weekly": [{}] * 16,
         "priority_tiers": {"tiers": tiers, "monotone": True, "base_rate": 0.01}}
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split() == [
        "tier", "share", "of", "a", "week", "company-weeks", "converted", "rate",
        "90%", "interval", "lift",
    ]  # fmt: skip
    assert lines[1].split() == [
        "very",
        "high",
        "0.0%-1.0%",
        "10",
        "3",
        "30.0%",
        "15.0%-60.0%",
        "30.0x",
    ]
    assert lines[-1] == "(lightgbm, 16 test weeks, base rate 1.0%; monotone)"
