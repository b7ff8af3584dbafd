"""What the data cannot tell: the notes every monitor output carries beside its figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from hubscore.core.ledger import SHADOW
from hubscore.monitoring.lists import IMMATURE, MATURE, MATURING, ListResult
from hubscore.monitoring.outcomes import Outcomes

if TYPE_CHECKING:
    from hubscore.monitoring.report import MonitorRequest

LATE_EXPORT_DAYS = 7


def data_notes(
    outcomes: Outcomes,
    results: Sequence[ListResult],
    *,
    until: date,
    source: str,
    request: MonitorRequest,
) -> list[str]:
    """Return one sentence per limit of the data, each with its counts."""
    notes = [f"conversions are counted up to {until} ({source})"]
    notes += _late_export(outcomes)
    notes += [
        f"{f.kind} file {f.path}: {f.unreadable} of {f.rows} rows have no readable id or date "
        "and were left out"
        for f in outcomes.files
        if f.unreadable
    ]
    notes += _listed_rows(outcomes, results, depth=max(request.ks))
    notes += _maturity(results, request.min_lists)
    if any(r.entry.role == SHADOW for r in results):
        notes.append(
            "the team called the champion's lists only: a challenger's companies were called only "
            "where the champion listed them too, so if calls make companies convert, the "
            "comparison favours the champion (a control group, score --holdout-share, measures "
            "what the calls add)"
        )
    return notes


def _late_export(outcomes: Outcomes) -> list[str]:
    close, usage = outcomes.newest_close, outcomes.newest_usage_end
    if close is None or usage is None or (usage - close).days <= LATE_EXPORT_DAYS:
        return []
    return [
        f"the newest CLOSEDATE ({close}) is {(usage - close).days} days older than the newest "
        f"usage week ({usage}): if the customers export is late, conversions after {close} are "
        f"missing and recent lists look worse than they are (--known-until {close} counts only "
        "what the customers file surely covers)"
    ]


def _listed_rows(outcomes: Outcomes, results: Sequence[ListResult], *, depth: int) -> list[str]:
    notes = []
    if outcomes.known is None:
        notes.append(
            "no noncustomers file: companies that left the files (deleted, merged) cannot be "
            "told from companies that did not convert"
        )
    missing = [r for r in results if r.missing]
    if missing:
        rows = sum(r.missing or 0 for r in missing)
        notes.append(
            f"{rows} rows ranked in the top {depth} of {len(missing)} lists are companies in "
            "neither company file (deleted or merged since): their outcome is unknown and "
            "counted as not converted"
        )
    early = [r for r in results if r.closed_before]
    if early:
        rows = sum(r.closed_before for r in early)
        notes.append(
            f"{rows} rows ranked in the top {depth} of {len(early)} lists had a CLOSEDATE at or "
            "before their list's cutoff (an input built from older files, or a CLOSEDATE entered "
            "late): counted as not converted"
        )
    return notes


def _maturity(results: Sequence[ListResult], min_lists: int) -> list[str]:
    notes = []
    maturing = sum(r.status == MATURING for r in results)
    immature = sum(r.status == IMMATURE for r in results)
    if maturing:
        notes.append(
            f"{maturing} lists are maturing: their figures count conversions so far (precision "
            "can only rise), against expected conversions scaled to the days known, as if "
            "conversions spread evenly over the horizon"
        )
    if immature:
        notes.append(f"{immature} lists are immature: nothing of their horizon is known yet")
    done = sum(r.status == MATURE for r in results)
    if done < min_lists:
        notes.append(
            f"{done} mature lists: no alert is raised on fewer than {min_lists} (--min-lists)"
        )
    return notes
