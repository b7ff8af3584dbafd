"""`run_monitor`: the ledger's lists joined with the newest files, as one versioned document.

The document (`REPORT_FORMAT`, `REPORT_VERSION`) is what `--json` writes and what the table
and the HTML page render: per list, per model (pooled, against its promise), champion vs each
challenger, the control group's uplift, the checks behind the alerts, and notes on what the
data cannot tell. Every figure carries the counts it rests on.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hubscore._version import __version__
from hubscore.core.atomic import atomic_file
from hubscore.core.errors import ValidationError
from hubscore.core.ledger import CHAMPION, SHADOW, current_lists, read_entries
from hubscore.monitoring import alerts
from hubscore.monitoring.lists import IMMATURE, MATURE, MATURING, ListResult, load_list
from hubscore.monitoring.notes import data_notes
from hubscore.monitoring.outcomes import known_until, read_outcomes
from hubscore.monitoring.pooled import (
    calibration,
    mature,
    paired_difference,
    pooled_precision,
    pooled_uplift,
    promise_at,
)
from hubscore.monitoring.stats import LEVEL

REPORT_FORMAT = "hubscore-monitor"
REPORT_VERSION = 1
"""Bump when a key of the document changes meaning; adding keys keeps the version."""


@dataclass(frozen=True)
class MonitorRequest:
    """What to monitor: the ledger, the newest files, list sizes and the alerts' minimums."""

    ledger: Path
    data_dir: Path
    ks: tuple[int, ...] = (50, 100)
    known_until: date | None = None
    min_lists: int = alerts.MIN_LISTS
    last: int = alerts.MIN_LISTS
    """The calibration check's window: the last N mature lists."""


def run_monitor(request: MonitorRequest) -> dict[str, Any]:
    """Return the monitor's document for every list in the ledger."""
    entries = read_entries(request.ledger)
    if not entries:
        raise ValidationError(
            f"the ledger {request.ledger} holds no lists",
            hint="hubscore score records every run there (--ledger DIR, scoring.ledger_dir); "
            "pass --ledger to the folder it wrote",
        )
    outcomes = read_outcomes(request.data_dir)
    until, source = known_until(outcomes, request.known_until)
    results = [
        load_list(entry, cutoff, outcomes, known_until=until, depth=max(request.ks))
        for entry, cutoff in current_lists(entries)
    ]
    models, pairs = _models_and_pairs(results, request)
    checks = _checks(models, pairs, request)
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "hubscore_version": __version__,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ledger": str(request.ledger),
        "known_until": until.isoformat(),
        "known_until_source": source,
        "files": [vars(f) for f in outcomes.files],
        "ks": list(request.ks),
        "interval_level": LEVEL,
        "min_lists": request.min_lists,
        "calibration_window": request.last,
        "counts": _counts(results),
        "lists": [_list(r, request.ks) for r in results],
        "models": models,
        "comparisons": pairs,
        "checks": checks,
        "alerts": [c for c in checks if c["fired"]],
        "notes": data_notes(outcomes, results, until=until, source=source, request=request),
    }


def _models_and_pairs(
    results: Sequence[ListResult], request: MonitorRequest
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return each model's pooled figures, and the champion against each shadowed model."""
    by_model: dict[str, list[ListResult]] = {}
    for result in results:
        by_model.setdefault(result.entry.model_sha256, []).append(result)
    champion = _champion(results)
    models = [
        _model(sha, lists, request, champion=sha == champion) for sha, lists in by_model.items()
    ]
    pairs = [
        _pair(by_model[champion], lists, request.ks)
        for sha, lists in by_model.items()
        if sha != champion and any(r.entry.role == SHADOW for r in lists)
    ]
    return models, pairs


def _champion(results: Sequence[ListResult]) -> str:
    """Return the model of the newest champion list (the model the team calls from now)."""
    champions = [r for r in results if r.entry.role == CHAMPION] or list(results)
    newest = max(champions, key=lambda r: (r.cutoff, r.entry.recorded_at))
    return newest.entry.model_sha256


def _counts(results: Sequence[ListResult]) -> dict[str, int]:
    return {
        status: sum(r.status == status for r in results) for status in (MATURE, MATURING, IMMATURE)
    }


def _list(result: ListResult, ks: Sequence[int]) -> dict[str, Any]:
    entry = result.entry
    return {
        "cutoff": result.cutoff.isoformat(),
        "model_version": entry.model_version,
        "model_sha256": entry.model_sha256,
        "role": entry.role,
        "status": result.status,
        "horizon_days": result.horizon,
        "horizon_end": _day(result, result.horizon),
        "days_known": result.days_known,
        "days_left": result.horizon - result.days_known,
        "scored": result.scored,
        "top_k": entry.top_k,
        "converters": None if result.status == IMMATURE else result.converters,
        "closed_before_cutoff": result.closed_before,
        "missing_from_files": result.missing,
        "scored_at": entry.scored_at,
        "ledger_file": entry.path,
        "at_k": {str(k): result.at(k) for k in ks},
        "uplift": result.uplift(),
    }


def _day(result: ListResult, days: int) -> str:
    return date.fromordinal(result.cutoff.toordinal() + days).isoformat()


def _model(
    sha: str, lists: Sequence[ListResult], request: MonitorRequest, *, champion: bool
) -> dict[str, Any]:
    entry = max(lists, key=lambda r: r.entry.recorded_at).entry
    done = mature(lists)
    last = done[-request.last :]
    roles = sorted({r.entry.role for r in lists})
    return {
        "model_version": entry.model_version,
        "model_sha256": sha,
        "model_kind": entry.model_kind,
        "run_dir": entry.run_dir,
        "champion": champion,
        "roles": roles,
        "lists": _counts(lists),
        "first_cutoff": min(r.cutoff for r in lists).isoformat(),
        "last_cutoff": max(r.cutoff for r in lists).isoformat(),
        "at_k": {
            str(k): {
                "pooled": pooled_precision(done, k),
                "promise": promise_at(entry.promise, k),
                "last": {"lists": len(last), **calibration(last, k)},
            }
            for k in request.ks
        },
        "uplift": pooled_uplift(lists),
    }


def _pair(
    champion: Sequence[ListResult], challenger: Sequence[ListResult], ks: Sequence[int]
) -> dict[str, Any]:
    a, b = mature(champion), mature(challenger)
    return {
        "champion": champion[0].entry.model_version,
        "champion_sha256": champion[0].entry.model_sha256,
        "challenger": challenger[0].entry.model_version,
        "challenger_sha256": challenger[0].entry.model_sha256,
        "at_k": {str(k): paired_difference(a, b, k) for k in ks},
    }


def _checks(
    models: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]], request: MonitorRequest
) -> list[dict[str, Any]]:
    champion = next(m for m in models if m["champion"])
    name, found = champion["model_version"], []
    for k in request.ks:
        at = champion["at_k"][str(k)]
        found.append(alerts.precision_check(name, k, at, request.min_lists))
        found.append(
            alerts.calibration_check(
                name, k, at["last"], window=request.last, min_lists=request.min_lists
            )
        )
        found += [alerts.challenger_check(name, p, k, min_lists=request.min_lists) for p in pairs]
    return found


def save_outputs(doc: dict[str, Any], *, json_path: Path | None, html_path: Path | None) -> None:
    """Write the document as JSON and the page as HTML, each atomically (`-` JSON: stdout)."""
    from hubscore.monitoring.page import write_page

    text = json.dumps(_finite(doc), indent=2, sort_keys=True, allow_nan=False) + "\n"
    if json_path is not None and str(json_path) == "-":
        sys.stdout.write(text)
    elif json_path is not None:
        _write(json_path, text)
    if html_path is not None:
        _write(html_path, write_page(doc))


def _write(path: Path, text: str) -> None:
    with atomic_file(path) as temp:
        temp.write_text(text, encoding="utf-8")


def _finite(value: Any) -> Any:
    """Return the document with NaN and infinities as null (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
