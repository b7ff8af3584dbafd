"""The feature contract between `build-features`, `train` and `score`: names in order, dtypes.

`sql/features.sql` produces these columns; the encoders and the scorer consume them. Change
them together, and bump `artifacts.FORMAT_VERSION` when a run folder's inputs change.
"""

from __future__ import annotations

from collections.abc import Mapping

KEY_COLUMNS = ("id", "cutoff")
LABEL = "label"

USAGE_COLUMNS = (
    "ACTIONS_CRM_CONTACTS",
    "ACTIONS_CRM_COMPANIES",
    "ACTIONS_CRM_DEALS",
    "ACTIONS_EMAIL",
    "USERS_CRM_CONTACTS",
    "USERS_CRM_COMPANIES",
    "USERS_CRM_DEALS",
    "USERS_EMAIL",
)
USAGE_STATS = ("sum", "mean", "max", "std")

CATEGORICAL_FEATURES = ("EMPLOYEE_RANGE", "INDUSTRY")
FIRMOGRAPHIC_NUMERIC = ("ALEXA_RANK", "alexa_no_rank")
ACTIVITY_FEATURES = (
    "total_actions",
    "total_users",
    "actions_per_user",
    "days_active",
    "activity_frequency",
)
USAGE_STAT_FEATURES = tuple(f"{col}_{stat}" for col in USAGE_COLUMNS for stat in USAGE_STATS)
HISTORY_FEATURES = (
    "recency_days",
    "tenure_days",
    "actions_recent",
    "actions_prior",
    "trend_actions",
    "weeks_active_recent",
    "weeks_observed",
)
OBJECTS = ("CRM_CONTACTS", "CRM_COMPANIES", "CRM_DEALS", "EMAIL")
OBJECT_RECENCY_FEATURES = tuple(f"{obj}_recency_days" for obj in OBJECTS)
"""Days since each object was last used inside the look-back (issue 17: kept by the pooled
rolling-origin protocol on the real history, with the breadth and user features below)."""
BREADTH_FEATURES = ("peak_users_recent", "peak_users_prior", "trend_users", "objects_recent")
NUMERIC_FEATURES = (
    FIRMOGRAPHIC_NUMERIC
    + ACTIVITY_FEATURES
    + USAGE_STAT_FEATURES
    + HISTORY_FEATURES
    + OBJECT_RECENCY_FEATURES
    + BREADTH_FEATURES
)
RAW_FEATURES = CATEGORICAL_FEATURES + NUMERIC_FEATURES
"""Every column a model may read, in order. `id`, `cutoff`, `label` are never features."""

# Features whose missingness differs sharply between customers and free companies in the
# files we know; reports show the lift that survives without them (see DATA_CONTRACT.md).
MISSINGNESS_FLAGS = ("alexa_no_rank",)

EMPLOYEE_RANGES = (
    "1",
    "2 to 5",
    "6 to 10",
    "11 to 25",
    "26 to 50",
    "51 to 200",
    "201 to 1000",
    "1001 to 10000",
    "10,001 or more",
)
"""The known EMPLOYEE_RANGE buckets in ordinal order (1-9)."""

ALEXA_NO_RANK_SENTINEL = 16_000_001

DATA_ASSUMPTIONS = (
    "There is no sign-up date: a free-tier company is eligible from the start of the files "
    "unless eligibility is 'first_usage'.",
    "A usage row stamped Monday M covers M..M+6 and is known only from the end of M+6.",
    "A customer's features use only usage weeks that end before its CLOSEDATE.",
    "Firmographic missingness differs between customers and free companies; if fields were "
    "filled in after conversion, missingness flags leak the label (see missing_by_label).",
    "Companies that never used the product before converting can only be found by "
    "firmographics: recall has a ceiling (see usage.customers_without_usage_before_close).",
    "Positives are few and clustered (one company is positive at several consecutive "
    "cutoffs): small differences between models may be noise.",
)
"""What the files cannot tell: quality.json and the training report both state these."""

# Parquet key-value metadata that build-features writes and score checks against the model.
METADATA_KEYS = ("hubscore_version", "target", "horizon_days", "lookback_days", "recent_days")
FEATURES_VERSION = 2
"""The meaning of the features: bump it whenever a feature changes what it measures (its
definition, a cap, its units, a sentinel), even when no window changes. build-features stamps
it on every file (`features_version`), train records the training file's in the manifest's
`target`, and score refuses an input whose version differs from its model's: the compatible
range is exactly one version, whichever hubscore built the file.

1: up to the tenure cap (`tenure_days` uncapped); files and run folders written before the
stamp carry none. 2: `tenure_days` capped at the look-back window.
"""
FEATURES_VERSION_KEY = "features_version"
BUILD_HINT = (
    "build it with hubscore build-features --as-of DATE (a scoring input) or without --as-of "
    "(training features), from the same hubscore version"
)


def feature_file_metadata(raw: Mapping[bytes, bytes] | None) -> dict[str, str]:
    """Decode a feature file's Parquet key-value metadata, without Arrow's own `ARROW:` keys."""
    return {k.decode(): v.decode() for k, v in (raw or {}).items() if not k.startswith(b"ARROW:")}
