"""`monitor --html`: one self-contained page (inline CSS and SVG, no scripts, no network).

Written for the sales lead as much as the data scientist: a headline in words, then per list
size a chart of each week's realised precision against the promise band and the conversions
the model expected, then the tables behind them. Every sentence is built from the document's
numbers; nothing about a model is written in advance.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from hubscore.monitoring.render import interval, pct, status_text

WIDTH, HEIGHT = 880, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 58
BLUE, GREEN, GREY = "#1f5fa8", "#2e8b57", "#777777"

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 940px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.sub { color: #666; margin-top: 0; } .headline { font-size: 1.1rem; background: #f3f6fa;
       padding: .8rem 1rem; border-left: 4px solid #1f5fa8; }
.alert { background: #fdecea; border-left: 4px solid #c0392b; padding: .5rem 1rem; }
.ok { background: #eef7f0; border-left: 4px solid #2e8b57; padding: .5rem 1rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; display: block;
        overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th { background: #f5f5f5; } td { white-space: nowrap; }
td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: .9rem; } svg text { font-size: 11px; fill: #333; }
"""


def write_page(doc: dict[str, Any]) -> str:
    """Return the whole page for the monitor's document."""
    champion = next(m for m in doc["models"] if m["champion"])
    lists = [item for item in doc["lists"] if item["role"] == "champion"]
    body = [
        "<h1>Did the weekly lists convert?</h1>",
        f'<p class="sub">Conversions known until {_e(doc["known_until"])} '
        f"({_e(doc['known_until_source'])}); generated {_e(doc['generated_at'])} by hubscore "
        f"{_e(doc['hubscore_version'])}. Intervals are 90%.</p>",
        *_alerts(doc),
    ]
    for k in doc["ks"]:
        body.append(f"<h2>Top {k} of each weekly list</h2>")
        body.append(f'<p class="headline">{_e(headline(champion, lists, k))}</p>')
        body.append(chart(lists, champion["at_k"][str(k)]["promise"], k))
    body += _tables(doc, lists)
    body.append("<h2>What the data cannot tell</h2><ul>")
    body += [f'<li class="note">{_e(note)}</li>' for note in doc["notes"]]
    body.append("</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>hubscore monitor</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def headline(model: dict[str, Any], lists: Sequence[dict[str, Any]], k: int) -> str:
    """Return the headline sentence for list size k, from the computed figures only."""
    at = model["at_k"][str(k)]
    pooled, promise = at["pooled"], at["promise"]
    name = model["model_version"]
    if not pooled["lists"]:
        text = f"No list of {name} has matured yet, so no conversion of its top {k} is known."
    else:
        text = (
            f"Over the {pooled['lists']} weekly lists whose {_days(lists)} days are over, "
            f"{pooled['converted']} of the {pooled['listed']} companies ranked in the top {k} "
            f"converted: {pct(pooled['precision'])} "
            f"{interval(pooled['precision_low'], pooled['precision_high'])}."
        )
    if promise:
        text += (
            f" On its test weeks the model ({name}) found {pct(promise['precision'])} "
            f"{interval(promise['precision_low'], promise['precision_high'])}."
        )
    maturing = [item for item in lists if item["status"] == "maturing"]
    if maturing:
        so_far = sum(item["at_k"][str(k)]["converted"] or 0 for item in maturing)
        text += f" {len(maturing)} newer lists are still maturing ({so_far} converted so far)."
    return text


def _alerts(doc: dict[str, Any]) -> list[str]:
    if not doc["alerts"]:
        evaluated = sum(c["evaluated"] for c in doc["checks"])
        return [
            f'<p class="ok">No alert ({evaluated} of {len(doc["checks"])} checks evaluated).</p>'
        ]
    return [
        f'<p class="alert">Alert ({_e(a["kind"])}): {_e(a["message"])}</p>' for a in doc["alerts"]
    ]


def _scale(values: Sequence[float]) -> tuple[float, float]:
    """Return the y axis' top and tick step: whole percents, at most 8 ticks."""
    top = max([v for v in values if v is not None] or [0.01]) * 1.1
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25) if top / s <= 8)
    return step * max(1, -int(-top // step)), step


def chart(lists: Sequence[dict[str, Any]], promise: dict[str, Any] | None, k: int) -> str:
    """Return the SVG chart: weekly realised precision@k, the promise band, expected."""
    points = [(item, item["at_k"][str(k)]) for item in lists]
    expected = [at["expected"] / at["listed"] if at["listed"] else 0.0 for _, at in points]
    highs = [at.get("precision_high") or at.get("precision") or 0.0 for _, at in points]
    band = [promise["precision_high"], promise["precision"]] if promise else []
    top, tick = _scale([*expected, *highs, *band])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(points), 1)

    def x(i: int) -> float:
        return LEFT + step * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, top) / top)

    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="weekly precision">']
    for i in range(round(top / tick) + 1):  # grid and y labels
        v = tick * i
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{pct(v, 0)}</text>'
        )
    if promise and promise.get("precision_low") is not None:
        lo, hi, mid = promise["precision_low"], promise["precision_high"], promise["precision"]
        parts.append(
            f'<rect x="{LEFT}" width="{plot_w}" y="{y(hi):.1f}" height="{y(lo) - y(hi):.1f}" '
            f'fill="{GREEN}" fill-opacity="0.13"/>'
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(mid):.1f}" y2="{y(mid):.1f}" '
            f'stroke="{GREEN}" stroke-dasharray="5,4"/>'
        )
    path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(expected))
    parts.append(f'<polyline points="{path}" fill="none" stroke="{GREY}" stroke-width="1.5"/>')
    for i, (item, at) in enumerate(points):
        parts += _point(x(i), y, item, at, expected[i])
        if len(points) <= 20 or i % 2 == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                f"{_e(item['cutoff'][5:])}</text>"
            )
    parts.append(_legend(k, promise))
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 8}">week of the list (cutoff); dots: share of the top {k}'
        f" that converted within {_days(lists)} days</text></svg>"
    )
    return "".join(parts)


def _point(
    cx: float, y: Any, item: dict[str, Any], at: dict[str, Any], expected: float
) -> list[str]:
    out = [f'<circle cx="{cx:.1f}" cy="{y(expected):.1f}" r="2.5" fill="{GREY}"/>']
    if at.get("precision") is None:
        return out
    tip = (
        f"{item['cutoff']}: {at['converted']} of {at['listed']} converted "
        f"({status_text(item)}); the model expected {at['expected']:.1f}"
    )
    if item["status"] == "mature" and at.get("precision_low") is not None:
        out.append(
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(at["precision_low"]):.1f}" '
            f'y2="{y(at["precision_high"]):.1f}" stroke="{BLUE}" stroke-opacity="0.5"/>'
        )
    fill = BLUE if item["status"] == "mature" else "white"
    out.append(
        f'<circle cx="{cx:.1f}" cy="{y(at["precision"]):.1f}" r="5" fill="{fill}" '
        f'stroke="{BLUE}" stroke-width="2"><title>{_e(tip)}</title></circle>'
    )
    return out


def _legend(k: int, promise: dict[str, Any] | None) -> str:
    items = [
        f'<circle cx="{LEFT + 6}" cy="16" r="5" fill="{BLUE}"/><text x="{LEFT + 16}" y="20">'
        "realised (horizon over; bar: 90% interval)</text>",
        f'<circle cx="{LEFT + 286}" cy="16" r="5" fill="white" stroke="{BLUE}" stroke-width="2"/>'
        f'<text x="{LEFT + 296}" y="20">so far (maturing)</text>',
        f'<line x1="{LEFT + 420}" x2="{LEFT + 440}" y1="16" y2="16" stroke="{GREY}"/>'
        f'<text x="{LEFT + 446}" y="20">expected by the model</text>',
    ]
    if promise:
        items.append(
            f'<rect x="{LEFT + 600}" y="10" width="20" height="12" fill="{GREEN}" '
            f'fill-opacity="0.25"/><text x="{LEFT + 626}" y="20">promised (test weeks)</text>'
        )
    return "".join(items)


def _tables(doc: dict[str, Any], lists: Sequence[dict[str, Any]]) -> list[str]:
    ks = doc["ks"]
    head = "".join(f"<th>converted@{k}</th><th>precision@{k}</th><th>expected@{k}</th>" for k in ks)
    rows = []
    for item in lists:
        cells = [item["cutoff"], item["model_version"], status_text(item), str(item["scored"])]
        for k in ks:
            at = item["at_k"][str(k)]
            got = "?" if at["converted"] is None else str(at["converted"])
            cells += [
                f"{got}/{at['listed']}",
                f"{pct(at['precision'])} "
                f"{interval(at.get('precision_low'), at.get('precision_high'))}",
                f"{at['expected']:.1f}",
            ]
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out = [
        "<h2>Every list of the champion</h2><table><tr><th>cutoff</th><th>model</th>"
        f"<th>status</th><th>scored</th>{head}</tr>",
        *rows,
        "</table>",
    ]
    out += _models(doc)
    out += _comparisons(doc)
    return out


def _days(lists: Sequence[dict[str, Any]]) -> int:
    return int(lists[0]["horizon_days"]) if lists else 30


def _models(doc: dict[str, Any]) -> list[str]:
    out = [
        "<h2>Each model: mature lists pooled against its promise</h2><table><tr><th>model</th>"
        "<th>role</th><th>k</th><th>mature lists</th><th>converted</th><th>realised</th>"
        "<th>promised (test weeks)</th><th>control group: called vs held</th></tr>"
    ]
    for model in doc["models"]:
        up = model["uplift"]
        held = (
            f"{pct(up['called_rate'])} vs {pct(up['held_rate'])} ({up['called']} / {up['held']} "
            f"companies): {_points(up['uplift'], up['uplift_low'], up['uplift_high'])}"
            if up and up["uplift"] is not None
            else "-"
        )
        for k in doc["ks"]:
            at = model["at_k"][str(k)]
            pooled, promise = at["pooled"], at["promise"]
            cells = [
                model["model_version"],
                "champion" if model["champion"] else "/".join(model["roles"]),
                str(k),
                str(pooled["lists"]),
                f"{pooled['converted']}/{pooled['listed']}",
                f"{pct(pooled['precision'])} "
                f"{interval(pooled['precision_low'], pooled['precision_high'])}",
                "-"
                if promise is None
                else f"{pct(promise['precision'])} "
                f"{interval(promise['precision_low'], promise['precision_high'])}",
                held,
            ]
            out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def _comparisons(doc: dict[str, Any]) -> list[str]:
    if not doc["comparisons"]:
        return []
    out = [
        "<h2>Champion vs challengers (same weeks)</h2><table><tr><th>challenger</th><th>k</th>"
        "<th>weeks</th><th>champion converted</th><th>challenger converted</th>"
        "<th>difference (90%)</th></tr>"
    ]
    for pair in doc["comparisons"]:
        for k in doc["ks"]:
            at = pair["at_k"][str(k)]
            points = _points(at["difference"], at["difference_low"], at["difference_high"])
            cells = [
                pair["challenger"],
                str(k),
                str(at["weeks"]),
                f"{at['champion_converted']}/{at['listed']}",
                f"{at['challenger_converted']}/{at['listed']}",
                points,
            ]
            out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return out


def _e(value: object) -> str:
    return html.escape(str(value))


def _points(value: float | None, low: float | None, high: float | None) -> str:
    """Return a difference of shares in percentage points, with its interval."""
    if value is None:
        return "-"
    band = "" if low is None or high is None else f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"{100 * value:+.1f} pts{band}"
