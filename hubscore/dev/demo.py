"""What `just demo` prints at the end, and the README blocks made from the same text.

`just demo` ends with `python -m hubscore.dev.demo`: the call list's first rows as a caller
reads them (rank, id, probability, tier, basis, reasons) and how often each priority tier
converted on the test weeks. `just readme` runs it with `--write README.md`, which replaces
the text between each `<!-- demo:NAME -->` and `<!-- /demo:NAME -->` marker pair with the
same text, so the README shows what the demo printed and cannot go stale by hand.

    uv run python -m hubscore.dev.demo [--rows 10] [--write README.md]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

CALL_LIST = Path("data/build/call_list.csv")
LATEST = Path("models/latest")
MARKER = re.compile(
    r"(<!-- demo:(?P<name>[a-z-]+) -->\n)(.*?)(<!-- /demo:(?P=name) -->)", re.DOTALL
)


def call_list_text(path: Path, *, rows: int) -> str:
    """Return the first `rows` companies of a call list CSV, one block each."""
    listed = pl.read_csv(path, infer_schema_length=None).sort("rank").head(rows)
    blocks = []
    for row in listed.iter_rows(named=True):
        head = f"#{row['rank']:<3} id {row['id']:<6} p {row['conversion_probability']:.3f}"
        lines = [f"{head}  {row['priority']}, {row.get('basis') or 'not explained'}"]
        lines += [f"     + {row[k]}" for k in ("reason_1", "reason_2", "reason_3") if row.get(k)]
        lines += [f"     - {row['reason_against']}"] if row.get("reason_against") else []
        blocks.append("\n".join(lines))
    return "\n".join(blocks) + "\n"


def tiers_text(metrics: Mapping[str, Any]) -> str:
    """Return how often each priority tier converted on the test weeks, as a text table."""
    tiers = metrics.get("priority_tiers")
    if not isinstance(tiers, Mapping):
        return "(this run folder has no tier outcomes: retrain with this hubscore)\n"
    header = (
        "tier",
        "share of a week",
        "company-weeks",
        "converted",
        "rate",
        "90% interval",
        "lift",
    )
    table: list[Sequence[str]] = [header]
    previous = 0.0
    for row in tiers["tiers"]:
        low, high = row["interval"] or (float("nan"), float("nan"))
        table.append(
            (
                row["priority"],
                f"{_pct(previous)}-{_pct(row['top_share'])}",
                f"{row['rows']:,}",
                f"{row['converted']:,}",
                _pct(row["conversion_rate"]),
                f"{_pct(low)}-{_pct(high)}",
                f"{row['lift']:.1f}x" if row.get("lift") is not None else "",
            )
        )
        previous = row["top_share"]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    order = "monotone" if tiers["monotone"] else "NOT monotone"
    weeks = len(metrics.get("test_weekly", []))
    model = metrics.get("model", "?")
    lines.append(f"({model}, {weeks} test weeks, base rate {_pct(tiers['base_rate'])}; {order})")
    return "\n".join(lines) + "\n"


def _pct(share: float) -> str:
    value = 100 * share
    digits = 1 if value >= 1 or value == 0 else 2 if value >= 0.1 else 3
    return f"{value:.{digits}f}%"


def blocks(call_list: Path, run: Path, *, rows: int) -> dict[str, str]:
    """Return the demo's printed blocks by README marker name."""
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    return {
        "call-list": call_list_text(call_list, rows=rows),
        "tiers": tiers_text(metrics),
    }


def write_blocks(readme: Path, texts: Mapping[str, str]) -> list[str]:
    """Replace each marked block of `readme` with its text in a code fence; return the names."""
    source = readme.read_text(encoding="utf-8")
    done: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in texts:
            return match[0]
        done.append(name)
        return f"{match[1]}```\n{texts[name]}```\n{match[4]}"

    readme.write_text(MARKER.sub(replace, source), encoding="utf-8")
    return done


def main(argv: Sequence[str] | None = None) -> None:
    """Print the demo's call list and tier outcomes, or write them into the README."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--call-list", type=Path, default=CALL_LIST)
    parser.add_argument("--run", type=Path, default=LATEST)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--write", type=Path, help="a README whose demo blocks to rewrite")
    args = parser.parse_args(argv)
    texts = blocks(args.call_list, args.run, rows=args.rows)
    if args.write:
        names = write_blocks(args.write, texts)
        print(f"rewrote {', '.join(names) or 'no'} demo blocks in {args.write}")
        return
    print(f"The call list ({args.call_list}), first {args.rows} rows:\n")
    print(texts["call-list"])
    print("How often each priority tier converted on the test weeks:\n")
    print(texts["tiers"])


if __name__ == "__main__":
    main()
