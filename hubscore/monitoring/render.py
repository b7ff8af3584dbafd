"""The monitor's document as Rich tables (stderr) and plain lines for checks and notes."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def pct(value: float | None, digits: int = 1) -> str:
    """Return a share as a percentage, `-` for none."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def interval(low: float | None, high: float | None) -> str:
    """Return `[low-high]` in percent, empty when unknown."""
    return "" if low is None or high is None else f"[{pct(low)}-{pct(high)}]"


def status_text(item: dict[str, Any]) -> str:
    """Return `mature`, `maturing (12 d left)` or `immature`."""
    if item["status"] == "maturing":
        return f"maturing ({item['days_left']} d left)"
    return str(item["status"])


def lists_table(doc: dict[str, Any]) -> Table:
    """Return one row per champion list: maturity and, per k, realised vs expected."""
    table = Table(
        title=f"lists (conversions known until {doc['known_until']})", title_justify="left"
    )
    for name in ("cutoff", "model", "status", "scored"):
        table.add_column(name, no_wrap=True)
    for k in doc["ks"]:
        table.add_column(f"converted@{k}", justify="right")
        table.add_column(f"precision@{k} (90%)", no_wrap=True)
        table.add_column(f"expected@{k}", justify="right")
    held = any(item["uplift"] for item in doc["lists"])
    if held:
        table.add_column("called / held converted", no_wrap=True)
    for item in doc["lists"]:
        if item["role"] != "champion":
            continue
        row = [item["cutoff"], item["model_version"], status_text(item), str(item["scored"])]
        for k in doc["ks"]:
            at = item["at_k"][str(k)]
            if at["converted"] is None:
                row += [f"?/{at['listed']}", "-", f"{at['expected']:.1f}"]
                continue
            so_far = " so far" if item["status"] == "maturing" else ""
            row += [
                f"{at['converted']}/{at['listed']}",
                f"{pct(at['precision'])} {interval(at['precision_low'], at['precision_high'])}"
                + so_far,
                f"{at['expected_so_far']:.1f}" + (f" of {at['expected']:.1f}" if so_far else ""),
            ]
        if held:
            up = item["uplift"]
            row.append(
                "-"
                if not up
                else f"{up['called']['converted']}/{up['called']['companies']} vs "
                f"{up['held']['converted']}/{up['held']['companies']}"
            )
        table.add_row(*row)
    return table


def models_table(doc: dict[str, Any]) -> Table:
    """Return one row per model and k: pooled realised precision against its promise."""
    window = doc["calibration_window"]
    table = Table(
        title="models: mature lists pooled (intervals resample companies)", title_justify="left"
    )
    for name in ("model", "role", "k", "mature lists", "converted/listed", "realised (90%)"):
        table.add_column(name, no_wrap=True)
    for name in ("promised (test weeks)", f"last {window}: realised vs expected"):
        table.add_column(name, no_wrap=True)
    for model in doc["models"]:
        role = "champion" if model["champion"] else "/".join(model["roles"])
        for k in doc["ks"]:
            at = model["at_k"][str(k)]
            pooled, promise, last = at["pooled"], at["promise"], at["last"]
            promised = (
                "none in the run folder"
                if promise is None
                else f"{pct(promise['precision'])} "
                f"{interval(promise['precision_low'], promise['precision_high'])} "
                f"({promise['weeks']} weeks, {promise['positives']} positives)"
            )
            table.add_row(
                model["model_version"],
                role,
                str(k),
                str(pooled["lists"]),
                f"{pooled['converted']}/{pooled['listed']} ({pooled['converting_companies']} cos)",
                f"{pct(pooled['precision'])} "
                f"{interval(pooled['precision_low'], pooled['precision_high'])}",
                promised,
                f"{last['realised']} vs {last['expected']:.1f} "
                f"[{last['expected_low']:.1f}-{last['expected_high']:.1f}] ({last['lists']} lists)",
            )
    return table


def comparisons_table(doc: dict[str, Any]) -> Table:
    """Return champion vs each challenger, paired on their shared mature weeks."""
    table = Table(
        title="champion vs challengers (same mature weeks; paired intervals)", title_justify="left"
    )
    for name in (
        "challenger",
        "k",
        "weeks",
        "champion",
        "challenger converted",
        "difference (90%)",
    ):
        table.add_column(name, no_wrap=True)
    for pair in doc["comparisons"]:
        for k in doc["ks"]:
            at = pair["at_k"][str(k)]
            diff = at["difference"]
            table.add_row(
                pair["challenger"],
                str(k),
                str(at["weeks"]),
                f"{at['champion_converted']}/{at['listed']} ({pair['champion']})",
                f"{at['challenger_converted']}/{at['listed']}",
                "-"
                if diff is None
                else f"{100 * diff:+.1f} pts [{_pts(at['difference_low'])}, "
                f"{_pts(at['difference_high'])}]",
            )
    return table


def _pts(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:+.1f}"


def uplift_lines(doc: dict[str, Any]) -> list[str]:
    """Return the control group's pooled uplift, one line per model that held companies out."""
    lines = []
    for model in doc["models"]:
        up = model["uplift"]
        if up:
            lines.append(
                f"control group ({model['model_version']}, {up['lists']} mature lists): called "
                f"{up['called_converted']}/{up['called']} converted ({pct(up['called_rate'])}), "
                f"held {up['held_converted']}/{up['held']} ({pct(up['held_rate'])}): uplift "
                f"{_pts(up['uplift'])} pts [{_pts(up['uplift_low'])}, {_pts(up['uplift_high'])}]"
            )
    return lines


def report_renderable(doc: dict[str, Any]) -> Group:
    """Return everything the monitor prints on stderr."""
    parts: list[Any] = [lists_table(doc), models_table(doc)]
    if doc["comparisons"]:
        parts.append(comparisons_table(doc))
    parts += [Text(line) for line in uplift_lines(doc)]
    for check in doc["checks"]:
        if check["fired"]:
            parts.append(Text(f"alert ({check['kind']}): {check['message']}", style="bold red"))
        elif not check["evaluated"]:
            parts.append(
                Text(f"not evaluated ({check['kind']}, k={check['k']}): {check['message']}")
            )
    parts += [Text(f"note: {note}") for note in doc["notes"]]
    return Group(*parts)
