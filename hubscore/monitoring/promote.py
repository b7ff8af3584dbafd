"""`hubscore promote` and `hubscore rollback`: move `models/latest` on evidence, and back.

A challenger is promoted only when its precision@k over the champion, on the mature weeks both
were scored (the champion's lists and the challenger's `score --shadow` lists), is above zero
with its whole 90% paired interval; `--force` with a reason promotes without that. Both hold the
lock `train` holds and log the move in `models/promotions.jsonl` (`hubscore.core.promotions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from hubscore.core import atomic
from hubscore.core.artifacts import read_manifest
from hubscore.core.errors import ArtifactError, ConfigError, HubscoreError, PromotionRefusedError
from hubscore.core.ledger import current_lists, model_sha256, read_entries
from hubscore.core.promotions import (
    LATEST,
    Move,
    champion_history,
    latest_target,
    move_latest,
    read_log,
)
from hubscore.monitoring.alerts import MIN_LISTS
from hubscore.monitoring.lists import load_list
from hubscore.monitoring.outcomes import known_until, read_outcomes
from hubscore.monitoring.pooled import mature, paired_difference


@dataclass(frozen=True)
class PromoteRequest:
    """What to promote, where the evidence is, and an override with its reason."""

    run_dir: Path
    models_dir: Path
    ledger: Path
    data_dir: Path
    k: int = 50
    known_until: date | None = None
    min_lists: int = MIN_LISTS
    force: bool = False
    reason: str | None = None


def promote(request: PromoteRequest) -> Move:
    """Point `latest` at the challenger when the evidence allows (or forced); log the move."""
    if request.force and not (request.reason or "").strip():
        raise ConfigError(
            "--force promotes without evidence, so it needs --reason TEXT for the log",
            hint='pass --reason "why", e.g. --reason "the old model reads a retired feature"',
        )
    name = _run_name(request.run_dir, request.models_dir)
    with atomic.exclusive_lock(request.models_dir / LATEST):  # the lock `train` holds
        current = latest_target(request.models_dir)
        if current == name:
            raise ConfigError(f"{name} is already the champion (models/latest points at it)")
        try:
            evidence = _evidence(request, current, name)
        except HubscoreError as exc:
            if not request.force:
                raise
            evidence = {"k": request.k, "unavailable": exc.message}  # forced: logged as such
        if not request.force:
            _require_evidence(evidence, current, name, request.min_lists)
        return move_latest(
            request.models_dir,
            name,
            action="promote",
            evidence=evidence,
            reason=request.reason.strip() if request.force and request.reason else None,
        )


def rollback(models_dir: Path) -> Move:
    """Point `latest` back at the champion before the current one, as the log records it."""
    with atomic.exclusive_lock(models_dir / LATEST):
        history = champion_history(read_log(models_dir))
        current = latest_target(models_dir)
        if len(history) < 2:
            raise ConfigError(
                f"{models_dir}/promotions.jsonl records no champion before {current}",
                hint="promote a run folder by name instead: hubscore promote RUN_DIR --force",
            )
        previous = history[-2]
        read_manifest(models_dir / previous)  # still there and untampered, or exit 5
        evidence = {"rolled_back": current, "to_the_champion_before": previous}
        return move_latest(models_dir, previous, action="rollback", evidence=evidence)


def _run_name(run_dir: Path, models_dir: Path) -> str:
    """Return the run folder's name, refusing one outside `models_dir` or not a run folder."""
    if run_dir.resolve().parent != models_dir.resolve():
        raise ConfigError(
            f"{run_dir} is not a run folder in {models_dir}: latest points at a folder beside it",
            hint="pass a run folder inside --models-dir (or copy the whole run folder there)",
        )
    if run_dir.name == LATEST or run_dir.is_symlink():
        raise ConfigError(f"{run_dir} is a link, not a run folder", hint="name the run folder")
    read_manifest(run_dir)  # a tampered or broken folder is exit 5, before anything moves
    return run_dir.name


def _sha(run_dir: Path) -> str:
    return model_sha256(read_manifest(run_dir).to_json())


def _evidence(request: PromoteRequest, current: str | None, name: str) -> dict[str, Any]:
    """Return the paired comparison at k on the shared mature weeks (empty without one)."""
    if current is None:
        return {"k": request.k, "weeks": 0, "why": "no champion: models/latest points nowhere"}
    champion_dir = request.models_dir / current
    if not champion_dir.is_dir():
        raise ArtifactError(
            f"models/latest points at {current}, which is missing from {request.models_dir}",
            hint="restore it, or promote with --force --reason",
        )
    shas = {_sha(champion_dir): "a", _sha(request.run_dir): "b"}
    outcomes = read_outcomes(request.data_dir)
    until, source = known_until(outcomes, request.known_until)
    sides: dict[str, list[Any]] = {"a": [], "b": []}
    for entry, cutoff in current_lists(read_entries(request.ledger)):
        side = shas.get(entry.model_sha256)
        if side:
            sides[side].append(
                load_list(entry, cutoff, outcomes, known_until=until, depth=request.k)
            )
    at = paired_difference(mature(sides["a"]), mature(sides["b"]), request.k)
    return {
        "k": request.k,
        "champion": current,
        "challenger": name,
        "known_until": until.isoformat(),
        "known_until_source": source,
        "ledger": str(request.ledger),
        **at,
    }


def _require_evidence(
    evidence: dict[str, Any], current: str | None, name: str, min_lists: int
) -> None:
    k, weeks = evidence["k"], evidence["weeks"]
    if current is None:
        raise PromotionRefusedError(
            "there is no champion to compare with (models/latest points nowhere)",
            hint="train one (hubscore train), or promote with --force --reason",
        )
    if weeks < min_lists:
        raise PromotionRefusedError(
            f"{name} and {current} share {weeks} mature weeks in the ledger, fewer than the "
            f"{min_lists} a promotion needs",
            hint=f"score the weekly list with --shadow {name} until {min_lists} of its weeks "
            "have matured (or --force --reason)",
        )
    low, diff = evidence["difference_low"], evidence["difference"]
    if low is None or low <= 0:
        shown = "?" if low is None else f"{100 * low:+.1f}"
        raise PromotionRefusedError(
            f"{name} vs {current} at precision@{k} over {weeks} shared mature weeks: "
            f"{evidence['challenger_converted']} vs {evidence['champion_converted']} of "
            f"{evidence['listed']} listed converted, a difference of {100 * (diff or 0):+.1f} "
            f"pts whose 90% interval starts at {shown} pts: not above zero",
            hint="keep it in the shadow for more weeks, or promote with --force --reason",
        )
