"""`models/promotions.jsonl`: every move of `models/latest`, and the moves themselves.

Three commands move `latest`: `train` (to the best run it wrote), `promote` (to a challenger
that beat the champion, or with --force and a reason) and `rollback` (to the champion before).
Each appends one JSON line (`LOG_VERSION`): who, when, the action, from and to (run names),
the evidence and the reason. All three hold the lock `train` holds (`<models>/.latest.lock`).

A move is two writes: the log line first (the whole log rewritten to a temp file and renamed),
then the symlink (one atomic rename, the commit point). A move killed between them leaves a
last line whose `to` is not where `latest` points: readers treat it as interrupted, and the
next move marks it so (`"status": "interrupted"`), so the log and `latest` always agree on
which moves happened.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hubscore.core import atomic
from hubscore.core.errors import ArtifactError

PROMOTIONS_FILE = "promotions.jsonl"
LATEST = "latest"
LOG_VERSION = 1
ACTIONS = ("train", "promote", "rollback")
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Move:
    """One line of the log."""

    action: str
    to: str
    from_: str | None
    at: str
    who: str
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    status: str = "done"
    version: int = LOG_VERSION

    def to_json(self) -> str:
        """Return the JSON line (`from`, not `from_`)."""
        data = asdict(self)
        data["from"] = data.pop("from_")
        return json.dumps(data, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, line: str) -> Move:
        """Parse one log line."""
        data = json.loads(line)
        data["from_"] = data.pop("from", None)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def latest_target(models_dir: Path) -> str | None:
    """Return the run name `latest` points at (the symlink's own text), if any."""
    link = models_dir / LATEST
    return os.readlink(link) if link.is_symlink() else None


def read_log(models_dir: Path) -> list[Move]:
    """Return every logged move, oldest first; an interrupted last move is marked so."""
    path = models_dir / PROMOTIONS_FILE
    if not path.is_file():
        return []
    moves = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            moves.append(Move.from_json(line))
        except (ValueError, TypeError) as exc:
            raise ArtifactError(
                f"{path} line {number} is not a move: {exc}",
                hint="restore the file from a backup, or fix that line by hand",
            ) from None
    done = [m for m in moves if m.status != INTERRUPTED]
    if done and done[-1].to != latest_target(models_dir):
        last = moves.index(done[-1])
        moves[last] = Move(**{**asdict(done[-1]), "status": INTERRUPTED})
    return moves


def champion_history(moves: Sequence[Move]) -> list[str]:
    """Return the champions in order, a rollback popping the one it left (a stack)."""
    stack: list[str] = []
    for move in moves:
        if move.status == INTERRUPTED:
            continue
        if move.action == "rollback" and stack:
            stack.pop()
            if not stack or stack[-1] != move.to:
                stack.append(move.to)
        else:
            if not stack and move.from_:  # latest was set before the log began
                stack.append(move.from_)
            stack.append(move.to)
    return stack


def move_latest(
    models_dir: Path,
    name: str,
    *,
    action: str,
    evidence: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> Move:
    """Log the move, then point `latest` at run `name`; the caller holds the train lock."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    moves = read_log(models_dir)  # marks a move a kill interrupted
    move = Move(
        action=action,
        to=name,
        from_=latest_target(models_dir),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        who=_who(),
        evidence=dict(evidence or {}),
        reason=reason,
    )
    _write_log(models_dir, [*moves, move])
    atomic.replace_symlink(models_dir / LATEST, name)  # the commit point
    return move


def record_train_move(models_dir: Path, name: str) -> Move:
    """Point `latest` at the best run `train` wrote, logging its test metrics as evidence."""
    manifest = models_dir / name / "manifest.json"
    try:
        metrics = json.loads(manifest.read_text(encoding="utf-8")).get("metrics", {})
    except (OSError, ValueError):
        metrics = {}
    wanted = ("roc_auc", "pr_auc", "precision_at_", "recall_at_")
    test = {k: v for k, v in sorted(metrics.items()) if k.startswith(wanted)}
    evidence = {"by": "the leaderboard of hubscore train (test weeks)", "test": test}
    return move_latest(models_dir, name, action="train", evidence=evidence)


def _write_log(models_dir: Path, moves: Sequence[Move]) -> None:
    text = "".join(move.to_json() + "\n" for move in moves)
    path = models_dir / PROMOTIONS_FILE
    with atomic.atomic_file(path) as temp:
        temp.write_text(text, encoding="utf-8")
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())  # on disk before the symlink, the commit, moves


def _who() -> str:
    """Return user@host of the process making the move."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
