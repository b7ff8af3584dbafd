"""`score`'s side of the ledger: record every scored row, mark the control group, score shadows.

`score_file` (and the Spark engine) call `mark_holdout` on the list before writing it and
`record_run` once the list is written (`score_file` in two halves: `stage_run` encodes the file
while the list is written, `record_staged` puts it in the ledger after); the layout is
`hubscore.core.ledger`'s. Shadows are the same input scored with challenger run folders into
the ledger only (`score --shadow`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from hubscore._version import __version__
from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.errors import ConfigError
from hubscore.core.ledger import (
    CHAMPION,
    SHADOW,
    Holdout,
    LedgerEntry,
    check_ledger_folder,
    cutoff_counts,
    encode_entry,
    hold_flags,
    model_sha256,
    now_iso,
    promise_of,
    write_encoded_entry,
)
from hubscore.engine.scorer import CUTOFF, HOLD, ID, RANK, Scorer

if TYPE_CHECKING:
    from hubscore.serving.batch import ScoreSummary


@dataclass(frozen=True)
class LedgerRequest:
    """Where `score` records its run, in which role, and the control group it marks."""

    folder: Path
    role: str = CHAMPION
    holdout: Holdout | None = None


def ledger_request(
    folder: Path | None,
    *,
    holdout: tuple[float | None, int],
    top_k: int | None,
    shadows: int,
    source: str,
) -> LedgerRequest | None:
    """Return where `score` records its run, refusing what cannot work without scoring.

    Args:
        holdout: the control group's share (None: none) and seed.
        shadows: how many --shadow run folders were given (they score into the ledger only).
        source: what set the folder, for messages (`--ledger`, `scoring.ledger_dir`).
    """
    share, seed = holdout
    if folder is None:
        needs = "--holdout-share (the control group)" if share else "--shadow" if shadows else ""
        if needs:
            raise ConfigError(
                f"{needs} is measured from the ledger, and this run keeps none",
                hint="drop --no-ledger (or set scoring.ledger_dir)",
            )
        return None
    if share and not top_k:
        raise ConfigError(
            "--holdout-share holds out a share of the list: it needs --top-k",
            hint="pass --top-k K, the list the team calls",
        )
    check_ledger_folder(folder, source=source)
    return LedgerRequest(folder, holdout=Holdout(share, seed) if share else None)


def scorer_sha256(scorer: Scorer) -> str:
    """Return the identity of the scorer's model (the sha256 of its manifest)."""
    return model_sha256(scorer.manifest.to_json())


def list_cutoffs(frame: pl.DataFrame, scored_at: datetime) -> pl.Series:
    """Return each row's cutoff: its `cutoff` column, else the day it was scored at."""
    if CUTOFF in frame.columns:
        return frame.get_column(CUTOFF).cast(pl.Date)
    return pl.repeat(scored_at.date(), frame.height, dtype=pl.Date, eager=True).alias(CUTOFF)


def mark_holdout(
    listed: pl.DataFrame, ledger: LedgerRequest | None, *, scored_at: datetime
) -> pl.DataFrame:
    """Add `hold` (the control group: listed, not to be called) when one is asked for."""
    if ledger is None or ledger.holdout is None:
        return listed
    cutoffs = list_cutoffs(listed, scored_at).to_list()
    flags = hold_flags(listed.get_column(ID).to_list(), cutoffs, ledger.holdout)
    return listed.with_columns(pl.Series(HOLD, flags, dtype=pl.Boolean))


def ledger_rows(
    ranked: pl.DataFrame,
    scorer: Scorer,
    ledger: LedgerRequest,
    *,
    top_k: int | None,
    scored_at: datetime,
) -> pl.DataFrame:
    """Return every scored row in the ledger's columns (see `hubscore.core.ledger`)."""
    cutoff = list_cutoffs(ranked, scored_at)
    rows = ranked.with_columns(
        cutoff,
        (pl.col(RANK) <= top_k if top_k else pl.lit(True)).alias("listed"),
        pl.lit(False).alias(HOLD),
        pl.lit(scorer.manifest.model_version).alias("model_version"),
        pl.lit(scorer_sha256(scorer)).alias("model_sha256"),
        pl.lit(ledger.role).alias("role"),
        pl.lit(scored_at).alias("scored_at"),
    )
    if not _in_cutoff_rank_order(rows):  # `score_file`'s ranked rows are: no sorted copy
        rows = rows.sort([CUTOFF, RANK])
    if ledger.holdout is not None:
        listed = mark_holdout(rows.filter("listed").drop(HOLD), ledger, scored_at=scored_at)
        flags = listed.select(ID, CUTOFF, pl.col(HOLD).alias("_held"))
        rows = (
            rows.join(flags, on=[ID, CUTOFF], how="left", maintain_order="left")
            .with_columns(pl.col("_held").fill_null(False).alias(HOLD))
            .drop("_held")
        )
    return rows


def record_run(
    ledger: LedgerRequest | None,
    summary: ScoreSummary,
    ranked: pl.DataFrame | None,
    *,
    scorer: Scorer,
    top_k: int | None,
    scored_at: datetime,
) -> ScoreSummary:
    """Write the run's ledger file (after its list); return the summary saying where.

    Args:
        ranked: every scored row: id, cutoff (when the input has it), probability, rank and
            priority; None only without a ledger.
    """
    if ledger is None or ranked is None:
        return summary
    paths = (summary.input, summary.output)
    staged = stage_run(ledger, ranked, scorer=scorer, top_k=top_k, scored_at=scored_at, paths=paths)
    return record_staged(staged, summary)


@dataclass(frozen=True)
class StagedRun:
    """A run's ledger file, encoded and not yet in the ledger: `score_file` encodes it while
    the list is written, and records it once the list is."""

    ledger: LedgerRequest
    entry: LedgerEntry | None
    """None when no rows were scored: there is no list to record."""
    encoded: bytes = b""


def stage_run(
    ledger: LedgerRequest,
    ranked: pl.DataFrame,
    *,
    scorer: Scorer,
    top_k: int | None,
    scored_at: datetime,
    paths: tuple[str, str],
) -> StagedRun:
    """Encode the run's ledger file from its final ranked rows (see `record_run`).

    Args:
        paths: the run's input and its list (the output), as given.
    """
    if ranked.height == 0:
        return StagedRun(ledger, None)
    rows = ledger_rows(ranked, scorer, ledger, top_k=top_k, scored_at=scored_at)
    manifest = scorer.manifest
    entry = LedgerEntry(
        role=ledger.role,
        model_version=manifest.model_version,
        model_sha256=scorer_sha256(scorer),
        model_kind=manifest.model_kind,
        horizon_days=int(manifest.target.get("horizon_days", 30)),
        run_dir=str(scorer.run_dir.resolve()) if scorer.run_dir else None,
        input=_absolute(paths[0]),
        output=_absolute(paths[1]) if ledger.role == CHAMPION else "",
        rows=rows.height,
        top_k=top_k,
        cutoffs=cutoff_counts(rows),
        scored_at=scored_at.isoformat(),
        recorded_at=now_iso(),
        hubscore_version=__version__,
        holdout=None if ledger.holdout is None else vars(ledger.holdout),
        promise=promise_of(scorer.run_dir),
    )
    return StagedRun(ledger, entry, encode_entry(rows, entry))


def record_staged(staged: StagedRun, summary: ScoreSummary) -> ScoreSummary:
    """Write a staged ledger file into the ledger (after its list); return the summary
    saying where."""
    ledger, entry = staged.ledger, staged.entry
    if entry is None:
        return replace(summary, ledger={"skipped": "no rows were scored: no list to record"})
    try:
        path = write_encoded_entry(ledger.folder, staged.encoded, entry)
    except OSError as exc:  # a full disk, a folder made read-only since the check
        raise ConfigError(
            f"the list {summary.output} was written, but the ledger {ledger.folder} could not "
            f"record it: {exc.strerror or exc}",
            hint="free space or fix the folder's permissions and score again (the re-run "
            "replaces the list), or pass --no-ledger",
        ) from None
    held = sum(c["held"] for c in entry.cutoffs)
    facts = {"file": str(path), "role": ledger.role, "rows": entry.rows, "held": held}
    return replace(summary, ledger=facts)


def _in_cutoff_rank_order(rows: pl.DataFrame) -> bool:
    """Return whether rows run by cutoff, then rank (checked without copying them)."""
    step, rank_step = pl.col(CUTOFF).diff(), pl.col(RANK).diff()
    ordered = (step > 0) | ((step == 0) & (rank_step > 0))
    return bool(rows.select(ordered.slice(1).all(ignore_nulls=False)).item())  # null: unknown


def _absolute(location: str) -> str:
    return location if "://" in location else str(Path(location).resolve())


def check_shadows(champion: Scorer, shadows: Sequence[Scorer]) -> list[Scorer]:
    """Refuse a shadow that is the champion's own model; drop repeated shadows."""
    seen = {scorer_sha256(champion)}
    kept = []
    for shadow in shadows:
        sha = scorer_sha256(shadow)
        if sha == scorer_sha256(champion):
            raise ConfigError(
                f"--shadow {shadow.run_dir} is the model the list is scored with "
                f"({shadow.manifest.model_version})",
                hint="pass --shadow with a challenger's run folder, not the champion's",
            )
        if sha not in seen:
            seen.add(sha)
            kept.append(shadow)
    return kept


def score_shadows(
    input_path: Path,
    shadows: Sequence[Scorer],
    ledger: LedgerRequest,
    *,
    top_k: int | None,
    as_of: date | None,
    batch_size: int,
) -> list[dict[str, Any]]:
    """Score the input with each challenger into the ledger only (never into the list).

    Each goes through `score_file` like the champion (same ranks, tiers and scored_at), with
    its list written to a scratch folder inside the ledger and removed; a shadow neither
    explains, nor checks drift, nor holds out companies (only the called list has a control
    group).
    """
    from hubscore.serving.batch import score_file  # batch imports this module

    done = []
    shadow_ledger = LedgerRequest(ledger.folder, role=SHADOW)
    ledger.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ledger.folder, prefix=f".shadow{TEMP_MARKER}") as tmp:
        for shadow in shadows:
            summary = score_file(
                input_path,
                Path(tmp) / "shadow.parquet",
                scorer=shadow,
                top_k=top_k,
                as_of=as_of,
                batch_size=batch_size,
                explain=0,
                ledger=shadow_ledger,
            )
            done.append({"model_version": summary.model_version, **(summary.ledger or {})})
    return done


def with_shadows(summary: ScoreSummary, shadows: list[dict[str, Any]]) -> ScoreSummary:
    """Return the champion's summary with the shadows' ledger records beside its own."""
    if not shadows:
        return summary
    return replace(summary, ledger={**(summary.ledger or {}), "shadows": shadows})
