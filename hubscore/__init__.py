"""hubscore: rank free-tier companies by their chance to convert within the horizon.

The public Python API is the scorer (loaded lazily, so `import hubscore` stays instant):

    >>> from hubscore import Predictor
    >>> predictor = Predictor.load(Path("models/latest"))
    >>> scores = predictor.score(companies)
    >>> reasons = predictor.explain(companies)  # reason_1..3, reason_against, basis, ...
"""

from __future__ import annotations

from typing import Any

from hubscore._version import __version__

__all__ = ["Predictor", "__version__", "load_scorer"]


def __getattr__(name: str) -> Any:
    if name in ("Predictor", "load_scorer"):
        from hubscore.engine import scorer

        return getattr(scorer, name)
    raise AttributeError(f"module 'hubscore' has no attribute {name!r}")
