"""The monitor's alerts for cron, and the minimum of data below which it refuses to raise them.

Three kinds (`--fail-on` picks which make `hubscore monitor` exit `ALERT_EXIT_CODE`):

- `precision`: the champion's pooled realised precision@k over its mature lists is below the
  lower end of its promise (its own test weeks' 90% interval);
- `calibration`: over its last N mature lists, realised conversions among the top k fall
  outside the 90% band a calibrated model's probabilities give (Σp ± 1.645·sqrt(Σp(1-p)));
- `challenger`: a challenger's paired precision@k difference over the champion is above zero
  with its whole 90% interval (a candidate for `hubscore promote`).

None is raised on fewer than `min_lists` mature lists (default `MIN_LISTS`), nor calibration
on fewer than `MIN_EXPECTED` expected conversions (the band is a normal approximation): the
check is reported as not evaluated, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

KINDS = ("precision", "calibration", "challenger")
DEFAULT_FAIL_ON = ("precision", "calibration")
MIN_LISTS = 4
MIN_EXPECTED = 5.0


def _check(kind: str, model: str, k: int, *, fired: bool | None, message: str) -> dict[str, Any]:
    """One check: fired True/False, or None when the data are too few to evaluate it."""
    return {
        "kind": kind,
        "model_version": model,
        "k": k,
        "evaluated": fired is not None,
        "fired": bool(fired),
        "message": message,
    }


def precision_check(model: str, k: int, at: dict[str, Any], min_lists: int) -> dict[str, Any]:
    """Compare the pooled realised precision@k with the promise's interval."""
    pooled, promise = at["pooled"], at["promise"]
    if promise is None or promise.get("precision_low") is None:
        return _check("precision", model, k, fired=None, message=f"no promise at k={k}")
    if pooled["lists"] < min_lists:
        message = f"{pooled['lists']} mature lists, fewer than the {min_lists} an alert needs"
        return _check("precision", model, k, fired=None, message=message)
    realised, low, high = pooled["precision"], promise["precision_low"], promise["precision_high"]
    fired = realised < low
    verb = "below" if fired else "not below"
    message = (
        f"pooled realised precision@{k} {realised:.3f} over {pooled['lists']} mature lists "
        f"({pooled['converted']} of {pooled['listed']} listed converted) is {verb} the promise's "
        f"interval {low:.3f}-{high:.3f} (test weeks: {promise['precision']:.3f})"
    )
    return _check("precision", model, k, fired=fired, message=message)


def calibration_check(
    model: str, k: int, last: dict[str, Any], *, window: int, min_lists: int
) -> dict[str, Any]:
    """Compare realised with expected conversions over the last `window` mature lists."""
    need = max(window, min_lists)
    if last["lists"] < need:
        message = f"{last['lists']} mature lists, fewer than the {need} this check needs"
        return _check("calibration", model, k, fired=None, message=message)
    if last["expected"] < MIN_EXPECTED:
        message = (
            f"{last['expected']:.1f} conversions expected over the last {last['lists']} lists, "
            f"fewer than {MIN_EXPECTED:g}: too few for the band"
        )
        return _check("calibration", model, k, fired=None, message=message)
    realised, low, high = last["realised"], last["expected_low"], last["expected_high"]
    fired = not low <= realised <= high
    verb = "outside" if fired else "inside"
    message = (
        f"over the last {last['lists']} mature lists {realised} of the top {k} converted; the "
        f"probabilities expected {last['expected']:.1f} (90% band {low:.1f}-{high:.1f}): "
        f"realised/expected {last['realised_over_expected']:.2f}, {verb} the band"
    )
    return _check("calibration", model, k, fired=fired, message=message)


def challenger_check(
    champion: str, pair: dict[str, Any], k: int, *, min_lists: int
) -> dict[str, Any]:
    """Tell whether a challenger beats the champion at k on their shared mature weeks."""
    challenger, at = pair["challenger"], pair["at_k"][str(k)]
    if at["weeks"] < min_lists:
        message = (
            f"{challenger} vs {champion}: {at['weeks']} shared mature weeks, fewer than the "
            f"{min_lists} a comparison needs"
        )
        return _check("challenger", challenger, k, fired=None, message=message)
    low, high = at["difference_low"], at["difference_high"]
    fired = low is not None and low > 0
    message = (
        f"{challenger} minus {champion} precision@{k} over {at['weeks']} shared mature weeks: "
        f"{at['difference']:+.3f} (90% interval {_num(low)} to {_num(high)})"
        + ("; promote it with hubscore promote" if fired else "")
    )
    return _check("challenger", challenger, k, fired=fired, message=message)


def failing(checks: Sequence[dict[str, Any]], fail_on: Sequence[str]) -> list[dict[str, Any]]:
    """Return the fired checks of the kinds that fail the run."""
    return [c for c in checks if c["fired"] and c["kind"] in fail_on]


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:+.3f}"
