"""Check a feature input against a run folder: columns by name, lossless casts, unique keys,
the feature windows. The scorer conforms every batch with `conform` before encoding it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from hubscore.core.artifacts import Manifest
from hubscore.core.contract import BUILD_HINT, FEATURES_VERSION_KEY, KEY_COLUMNS, METADATA_KEYS
from hubscore.core.errors import ArtifactError, SchemaError, ValidationError

ID, CUTOFF = KEY_COLUMNS

_DTYPE_CLASSES: tuple[type[pl.DataType], ...] = (
    pl.Float64,
    pl.Float32,
    pl.Int64,
    pl.Int32,
    pl.Int16,
    pl.Int8,
    pl.UInt64,
    pl.UInt32,
    pl.UInt16,
    pl.UInt8,
    pl.Boolean,
    pl.String,
    pl.Date,
)
_DTYPES: dict[str, pl.DataType] = {cls.__name__.lower(): cls() for cls in _DTYPE_CLASSES} | {
    "utf8": pl.String(),
    "str": pl.String(),
    "bool": pl.Boolean(),
    "double": pl.Float64(),
}


WINDOW_KEYS = tuple(key for key in METADATA_KEYS if key != "hubscore_version")
"""What the scorer compares key by key; the version is compared by `check_features_version`."""


def parse_dtype(name: str) -> pl.DataType:
    """Map a manifest dtype name ("Float64", "String", ...) to a Polars dtype."""
    try:
        return _DTYPES[name.lower()]
    except KeyError:
        raise ArtifactError(
            f"manifest feature dtype {name!r} is unknown; known: {', '.join(sorted(_DTYPES))}",
            hint="score with the hubscore version that trained the model",
        ) from None


def conform(df: pl.DataFrame, features: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Return key columns then features in model order, cast losslessly; extras are dropped."""
    if dict(df.schema) == {ID: pl.Int64(), **features}:  # already conformed (API requests)
        _cast_key(df.get_column(ID), [])  # still refuse null ids
        return df
    by_lower: dict[str, list[str]] = {}
    for column in df.columns:
        by_lower.setdefault(column.lower(), []).append(column)
    wanted = [ID, *features]
    matches = {name: _find_column(name, df.columns, by_lower) for name in wanted}
    found = {name: column for name, column in matches.items() if column is not None}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise SchemaError(
            f"model expects {len(features)} feature columns and {ID}, the input lacks "
            f"{len(missing)}; missing: " + ", ".join(missing),
            hint=BUILD_HINT,
        )
    cutoff = _find_column(CUTOFF, df.columns, by_lower)
    problems: list[str] = []
    columns = [_cast_key(df.get_column(found[ID]).alias(ID), problems)]
    if cutoff:
        columns.append(df.get_column(cutoff).alias(CUTOFF))
    columns += [
        _cast_lossless(df.get_column(found[n]).alias(n), dtype, problems)
        for n, dtype in features.items()
    ]
    if problems:
        raise SchemaError(
            "input columns have types the model cannot take without loss: " + "; ".join(problems),
            hint=BUILD_HINT,
        )
    return pl.DataFrame(columns)


def _find_column(
    name: str, columns: Sequence[str], by_lower: Mapping[str, list[str]]
) -> str | None:
    """Match by exact name, else by a unique case-insensitive name (exports vary in case)."""
    if name in columns:
        return name
    candidates = by_lower.get(name.lower(), [])
    return candidates[0] if len(candidates) == 1 else None


def _cast_key(column: pl.Series, problems: list[str]) -> pl.Series:
    out = _cast_lossless(column, pl.Int64(), problems)
    if out.null_count():
        raise ValidationError(
            f"{out.null_count()} input rows have no {ID}; every row needs one",
            hint="drop or fix those rows in the input",
        )
    return out


def _cast_lossless(column: pl.Series, dtype: pl.DataType, problems: list[str]) -> pl.Series:
    """Cast when no value can change; otherwise record the column in `problems`."""
    source = column.dtype
    if source == dtype:
        return column
    if source == pl.Null or _widens(source, dtype):
        return column.cast(dtype)
    if dtype.is_integer() and (source.is_integer() or source.is_float() or source == pl.Boolean):
        cast = column.cast(dtype, strict=False)
        # Lossless means every non-null value survives the round trip unchanged.
        if cast.null_count() == column.null_count() and (cast.cast(source) == column).all():
            return cast
    problems.append(f"{column.name} is {source}, expected {dtype}")
    return column


def _widens(source: pl.DataType, target: pl.DataType) -> bool:
    if target.is_float():
        return source.is_numeric() or source == pl.Boolean
    if target == pl.String:
        return source in (pl.Categorical,) or isinstance(source, pl.Enum) or source.is_integer()
    return False


def key_columns(df: pl.DataFrame) -> list[str]:
    """Return the row key: `id`, or (`id`, `cutoff`) when the input has a cutoff column."""
    return [ID, CUTOFF] if CUTOFF in df.columns else [ID]


def check_unique_keys(df: pl.DataFrame) -> None:
    """Refuse input where two rows share a key: a company scored twice would skew the list."""
    if df.height < 2:
        return
    keys = key_columns(df)
    if not _may_repeat(df, keys):
        return
    dupes = df.select(keys).filter(pl.struct(keys).is_duplicated())
    if dupes.height:
        first = dupes.unique(maintain_order=True).head(5).rows()
        shown = ", ".join(str(row[0] if len(row) == 1 else row) for row in first)
        raise ValidationError(
            f"{dupes.height} input rows share their {'/'.join(keys)} key with another row; "
            f"first: {shown}",
            hint="each company must appear once (once per cutoff); deduplicate the input",
        )


def _may_repeat(df: pl.DataFrame, keys: list[str]) -> bool:
    """Return whether some key may repeat: False proves none does."""
    # Sort and compare neighbours: on 10M rows a hash of every key costs ~3x the memory.
    ids = df.get_column(ID)
    if keys == [ID] and ids.dtype.is_integer() and not ids.null_count():
        # NumPy for the common key: a Polars query's fixed cost is a fifth of an API request.
        values = np.sort(ids.to_numpy())
        return bool((values[1:] == values[:-1]).any())
    ordered = df.select(keys).sort(keys)
    repeats = pl.all_horizontal(pl.col(k) == pl.col(k).shift(1) for k in keys).any()
    return bool(ordered.select(repeats).item())


def check_input(metadata: Mapping[str, str], manifest: Manifest) -> list[str]:
    """Refuse an input whose features mean something else than the model's (their version, or
    their windows); return warnings for what a file without hubscore's metadata leaves
    unchecked."""
    if metadata:
        check_features_version(metadata, manifest)
    return check_windows(metadata, manifest)


def check_features_version(metadata: Mapping[str, str], manifest: Manifest) -> None:
    """Refuse an input built with another meaning of the features than the model was trained on.

    The compatible range is one `FEATURES_VERSION`, whichever hubscore built the file. A file
    and a run folder from before the version existed are compared by hubscore version, as
    `train` compares its input; when only one side carries a version, the meanings cannot be
    compared and the input is refused.
    """
    built = metadata.get(FEATURES_VERSION_KEY)
    trained = manifest.target.get(FEATURES_VERSION_KEY)
    if built is not None and trained is not None:
        if str(built) == str(trained):
            return
        problem = f"features version {built}, the model was trained on version {trained}"
    elif built is None and trained is None:
        version = metadata.get("hubscore_version")
        if version is None or version == manifest.hubscore_version:
            return
        problem = (
            f"hubscore {version} without a features version; the model was trained by "
            f"hubscore {manifest.hubscore_version}"
        )
    elif built is None:
        problem = f"hubscore {metadata.get('hubscore_version', '?')} before features versions"
        problem += f"; the model was trained on features version {trained}"
    else:
        problem = f"features version {built}; the model's run folder predates features versions"
    raise SchemaError(
        f"the input's features may mean something else than the model's: it was built by {problem}",
        hint="rebuild the input with this hubscore (build-features --as-of DATE), or score with "
        "a model trained on features of the same version",
    )


def check_windows(metadata: Mapping[str, str], manifest: Manifest) -> list[str]:
    """Refuse an input built with other feature windows; return warnings for unchecked ones."""
    unchecked = [key for key in WINDOW_KEYS if key not in metadata]
    differ = [
        f"{key}={metadata[key]} (model: {manifest.target[key]})"
        for key in WINDOW_KEYS
        if key in metadata and key in manifest.target and metadata[key] != str(manifest.target[key])
    ]
    if differ:
        raise SchemaError(
            "the input was built with other feature windows than the model: " + ", ".join(differ),
            hint="rebuild the input with hubscore build-features --as-of DATE "
            "using the model's windows, or score with a model trained on these windows",
        )
    if unchecked:
        return [f"input carries no {', '.join(unchecked)} metadata; feature windows not checked"]
    return []
