"""The run folder contract: `manifest.json` beside `model.onnx` and `encoders.json`.

A run folder is the only thing that crosses from training to scoring; nothing is pickled.
`export.py` writes it, `score.py` reads it through `read_manifest`, which checks the format
version and the sha256 of every listed file before anything is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubscore.core.decoding import decode
from hubscore.core.errors import ArtifactError

FORMAT_VERSION = 2
"""Version of the run-folder layout and of `manifest.json`.

Bump it when a reader of the previous version would misread a new folder: a renamed or
retyped manifest field, a new required file, a change of ONNX input/output layout or of the
encoder spec's meaning. Keep a reader and a golden folder (tests/golden/) for every old one.

2: encoders.json version 2 (NaN model inputs, flag groups, calibration); `fitted_on` and
`metrics_describe` say what was shipped and what the metrics describe.
"""
SUPPORTED_FORMAT_VERSIONS = (1, 2)

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
ENCODERS_FILE = "encoders.json"
EXPLAIN_FILE = "explain.npz"


@dataclass(frozen=True)
class Manifest:
    """What a run folder holds and how to feed its model."""

    model_version: str
    model_kind: str
    created_at: str
    hubscore_version: str
    features: list[dict[str, str]]
    """Input columns the scorer needs, in order: [{"name": ..., "dtype": ...}]."""
    onnx_input: str
    onnx_output: str
    files: dict[str, str]
    """sha256 of every file the scorer reads, by file name."""
    target: dict[str, Any]
    """target, horizon_days, lookback_days, recent_days: the windows the features used."""
    decision_threshold: float
    confidence_bands: dict[str, float]
    """Lower probability bounds of the "high" and "medium" bands; below "medium" is "low"."""
    priority_thresholds: dict[str, float] = field(default_factory=dict)
    """Lower probability bounds of the "very high", "high" and "medium" priority tiers (below:
    "low"); empty in older run folders, whose tiers are quartiles of each scored cutoff."""
    feature_distributions: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    fitted_on: dict[str, Any] = field(default_factory=dict)
    """The rows the shipped model was fitted on: refit mode, rows, positives, cutoffs."""
    metrics_describe: str = ""
    """What `metrics` were measured on (the evaluated fit, which may not be the shipped one)."""
    explanations: dict[str, Any] = field(default_factory=dict)
    """file, output space and gate deltas of the explanations; empty in older run folders."""
    format_version: int = FORMAT_VERSION

    @property
    def feature_names(self) -> list[str]:
        """Return the input column names in model order."""
        return [f["name"] for f in self.features]

    def to_json(self) -> str:
        """Serialise with sorted keys so identical runs give identical bytes."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(run_dir: Path, manifest: Manifest) -> Path:
    """Write `manifest.json` into `run_dir` (the folder is staged, so no temp file here)."""
    path = run_dir / MANIFEST
    path.write_text(manifest.to_json(), encoding="utf-8")
    return path


@dataclass(frozen=True)
class RunFolder:
    """A run folder read as one: its real path, its manifest and the verified bytes of the
    files a scorer parses, all from one read of each file."""

    path: Path
    """The real path `models/latest` (or any link) pointed at when the folder was read."""
    manifest: Manifest
    contents: dict[str, bytes]
    """The bytes of `model.onnx`, `encoders.json` and `explain.npz` (when present), each
    checked against its manifest sha256 when listed there."""

    def read(self, name: str) -> bytes:
        """Return a kept file's bytes; ArtifactError when the run folder has no such file."""
        if name not in self.contents:
            raise ArtifactError(f"{self.path / name} is missing", hint=RESTORE_HINT)
        return self.contents[name]


RESTORE_HINT = "restore the whole run folder"
KEPT_FILES = (MODEL_FILE, ENCODERS_FILE, EXPLAIN_FILE)
"""The files a scorer parses: read once, hashed and kept in memory (a few MB at most)."""


def read_run_folder(run_dir: Path, *, keep: tuple[str, ...] = KEPT_FILES) -> RunFolder:
    """Resolve `run_dir` once and read every file of it once: hash, verify, keep to parse.

    A link such as `models/latest` is followed once, so a `train` that moves it meanwhile
    cannot mix files of two runs: the manifest, the hashes and the kept bytes all come from
    the one real folder, and what is parsed is exactly what was hashed.
    """
    try:
        path = run_dir.resolve(strict=True)
    except OSError:
        raise ArtifactError(
            f"{run_dir} is not a hubscore run folder: it does not exist",
            hint="pass --model DIR pointing at a folder written by hubscore train",
        ) from None
    manifest = _parse_manifest(_read_bytes(path / MANIFEST, run_dir), path / MANIFEST)
    contents: dict[str, bytes] = {}
    for name in sorted(set(manifest.files) | set(keep)):
        file = path / name
        if name not in manifest.files:  # an older folder's unlisted file: kept, unverified
            if file.is_file():
                contents[name] = file.read_bytes()
            continue
        data, actual = _read_hashed(file, keep=name in keep)
        expected = manifest.files[name]
        if actual != expected:
            raise ArtifactError(
                f"{file} does not match its manifest: sha256 {actual[:12]}…, "
                f"expected {expected[:12]}…",
                hint="the file was changed or truncated; restore the run folder or retrain",
            )
        if data is not None:
            contents[name] = data
    return RunFolder(path, manifest, contents)


def read_manifest(run_dir: Path) -> Manifest:
    """Load and check a run folder's manifest and the sha256 of every file it lists."""
    return read_run_folder(run_dir, keep=()).manifest


def _read_bytes(path: Path, run_dir: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"{run_dir} is not a hubscore run folder: {MANIFEST} is missing",
            hint="pass --model DIR pointing at a folder written by hubscore train",
        ) from None


def _read_hashed(path: Path, *, keep: bool) -> tuple[bytes | None, str]:
    """Return (the bytes when `keep`, the sha256), reading the file once."""
    try:
        if keep:
            data = path.read_bytes()
            return data, hashlib.sha256(data).hexdigest()
        return None, sha256_file(path)
    except (FileNotFoundError, IsADirectoryError):
        raise ArtifactError(f"{path} is missing", hint=RESTORE_HINT) from None


def _parse_manifest(data: bytes, path: Path) -> Manifest:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{path} is not valid JSON: {exc}", hint="retrain or restore it"
        ) from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ArtifactError(
            f"{path} has format_version {version!r}; this hubscore reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))}",
            hint="score with the hubscore version that trained it, or retrain",
        )
    return _manifest_from_dict(raw, path)


def _manifest_from_dict(raw: dict[str, Any], path: Path) -> Manifest:
    return decode(
        raw,
        Manifest,
        source=str(path),
        error=ArtifactError,
        hint=f"this hubscore reads format_version {raw['format_version']} manifests as "
        "hubscore train writes them: restore the run folder or retrain",
    )
