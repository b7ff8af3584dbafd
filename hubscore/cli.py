"""The `hubscore` command line: a thin layer that parses, calls the library, and renders.

Heavy stages (DuckDB SQL, training, export) are imported inside their command bodies so
that `hubscore score` starts fast and never loads the training stack.

No `from __future__ import annotations` here: Typer resolves every command's annotations on
each start, and evaluating them as strings cost 11 ms of every run (measured).
"""

import contextlib
import gc
from collections.abc import Iterator
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape

from hubscore import cli_monitor
from hubscore._version import __version__
from hubscore.cli_help import HelpGroup, config_default
from hubscore.cli_render import (
    LogFormat,
    TrainingDisplay,
    leaderboard_table,
    progress_bar,
    render_summary,
    stderr,
    stdout,
)
from hubscore.core.atomic import signals_handled
from hubscore.core.config import Config, load_config
from hubscore.core.display import cell
from hubscore.core.errors import INTERRUPTED_EXIT_CODE, ConfigError, HubscoreError
from hubscore.core.locations import is_uri, local_path

app = typer.Typer(
    cls=HelpGroup,
    help="Score free-tier companies by their likelihood to convert into paying customers.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="YAML config overriding the packaged default.", envvar="HUBSCORE_CONFIG"
    ),
]


_collection_held = False


def run() -> None:
    """Run the `hubscore` command line (its console script, and `python -m hubscore`).

    Start-up loads NumPy, Polars, pyarrow and onnxruntime: objects that live until exit, which
    the garbage collector would scan over and over while they load, and once more at exit.
    So collection waits until the command starts (`handle_errors`), and what is alive then
    is frozen, never scanned again; at exit, everything is. A one-row `score` took 0.54 s
    with the collector on throughout, 0.42 s so (bench_score.py's cold start).
    """
    global _collection_held
    _collection_held = True
    gc.disable()
    try:
        app(prog_name="hubscore")
    finally:
        gc.freeze()


def _collect_from_here() -> None:
    """Resume the collection `run` held off, leaving out everything loaded until now."""
    global _collection_held
    if _collection_held:
        _collection_held = False
        gc.freeze()
        gc.enable()


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn a HubscoreError into `error: ...` on stderr and its documented exit code.

    Every command enters it once its own modules are loaded: collection resumes there.
    """
    _collect_from_here()
    try:
        yield
    except HubscoreError as exc:
        # Escaped: messages quote values like local[2] or hubscore[spark], not Rich markup.
        stderr.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            stderr.print(f"hint: {escape(exc.hint)}", highlight=False)
        raise typer.Exit(exc.exit_code) from None


def parse_date(value: str | None) -> date | None:
    """Parse a YYYY-MM-DD flag value."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


FLAGS_NAMED_OTHERWISE = {"data.dir": "--data-dir", "data.build_dir": "--out"}
"""Flags whose name is not `--` plus the config key's last part, for error messages."""


def deprecated(spelling: str, instead: str) -> None:
    """Warn on stderr that an old spelling still works but will go."""
    stderr.print(f"[yellow]warning:[/] {spelling} is deprecated; use {instead}", highlight=False)


def resolve_config(path: Path | None, **overrides: object) -> Config:
    """Load the config with command-line overrides (dotted keys, None = not given)."""
    flags = {
        key: FLAGS_NAMED_OTHERWISE.get(key, "--" + key.split(".")[-1].replace("_", "-"))
        for key in overrides
    }
    return load_config(path, overrides=overrides, flags=flags)


def version_callback(value: bool) -> None:
    if value:
        stdout.print(f"hubscore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Build point-in-time features, train and export models, and score companies."""


class Engine(StrEnum):
    """Where build-features and score run: this machine, or Spark (the `spark` extra)."""

    local = "local"
    spark = "spark"


class SparkLogLevel(StrEnum):
    """Spark's own log level; ERROR keeps the JVM's output off stderr."""

    ERROR = "ERROR"
    WARN = "WARN"
    INFO = "INFO"
    DEBUG = "DEBUG"


EngineOption = Annotated[Engine, typer.Option(help="local (DuckDB / onnxruntime here) or spark.")]
MasterOption = Annotated[
    str, typer.Option(help="Spark master URL, for --engine spark (e.g. spark://host:7077).")
]
SparkLogOption = Annotated[
    SparkLogLevel, typer.Option(help="Spark's log level, for --engine spark.")
]


@app.command("sample-data")
def sample_data(
    out: Annotated[
        Path, typer.Option(help="Folder to write the three CSV (or Parquet) files to.")
    ] = Path("data"),
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed writes the same bytes.")
    ] = 42,
    companies: Annotated[int, typer.Option(min=10, help="Companies in total.")] = 5200,
    weeks: Annotated[int, typer.Option(min=8, help="Weeks of usage history.")] = 78,
    parquet: Annotated[bool, typer.Option("--parquet", help="Write Parquet, streamed.")] = False,
    activity: Annotated[float, typer.Option(min=0.01, help="Usage rows multiplier.")] = 1.0,
) -> None:
    """Write a deterministic sample of customers, noncustomers and usage as messy as real files."""
    from hubscore.dev.sample import generate_sample

    with handle_errors():
        summary = generate_sample(
            out,
            seed=seed,
            companies=companies,
            weeks=weeks,
            fmt="parquet" if parquet else "csv",
            activity=activity,
        )
    stderr.print(
        f"wrote {summary.customers:,} customers, {summary.noncustomers:,} noncustomers, "
        f"{summary.usage_rows:,} usage rows"
    )
    for path in summary.paths:
        stdout.print(str(path), highlight=False, soft_wrap=True)


@app.command("build-features")
def build_features(
    data_dir: Annotated[
        str | None,
        typer.Option(
            help="Folder of the raw inputs (a URI with --engine spark).",
            show_default=config_default("data.dir"),
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="Output folder (a URI with --engine spark); with --as-of: data.scoring_dir.",
            show_default=config_default("data.build_dir"),
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="converted_within (weekly snapshots) or is_customer.",
            show_default=config_default("features.target"),
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Build the scoring input at this date (YYYY-MM-DD), unlabelled."),
    ] = None,
    horizon_days: Annotated[
        int | None,
        typer.Option(
            help="Label horizon in days.", show_default=config_default("features.horizon_days")
        ),
    ] = None,
    lookback_days: Annotated[
        int | None,
        typer.Option(
            help="Usage look-back window in days.",
            show_default=config_default("features.lookback_days"),
        ),
    ] = None,
    warmup_days: Annotated[
        int | None,
        typer.Option(
            help="History before the first weekly cutoff (at most the look-back).",
            show_default=config_default("features.warmup_days"),
        ),
    ] = None,
    max_reject_rate: Annotated[
        float | None,
        typer.Option(
            help="Fail when a file has a larger share of bad rows.",
            show_default=config_default("features.max_reject_rate"),
        ),
    ] = None,
    known_until: Annotated[
        str | None,
        typer.Option(
            help="Last day CLOSEDATE is known for (YYYY-MM-DD); no label looks past it.",
            show_default="derived from the files",
        ),
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="DuckDB's budget: auto (25% of RAM), 40% or 4GB; spills beside --out past it.",
            show_default=config_default("features.memory_limit"),
        ),
    ] = None,
    config: ConfigOption = None,
    engine: EngineOption = Engine.local,
    master: MasterOption = "local[2]",
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Hash partitions of company id, for --engine spark.",
            show_default="4 x the cores",
        ),
    ] = None,
    log_level: SparkLogOption = SparkLogLevel.ERROR,
) -> None:
    """Validate, deduplicate and profile the inputs, then write point-in-time features."""
    from hubscore.features.build import BuildRequest
    from hubscore.features.build import build_features as run_build
    from hubscore.features.quality import render_quality

    with handle_errors():
        spark = engine is Engine.spark
        cfg = resolve_config(
            config,
            **{
                "data.dir": local_location(data_dir, flag="--data-dir", spark=spark),
                "data.build_dir": local_location(out, flag="--out", spark=spark),
                "features.target": target,
                "features.horizon_days": horizon_days,
                "features.lookback_days": lookback_days,
                "features.warmup_days": warmup_days,
                "features.max_reject_rate": max_reject_rate,
                "features.known_until": parse_date(known_until),
                "features.memory_limit": memory_limit,
            },
        )
        day = parse_date(as_of)
        # A scoring input never lands on the training features unless --out says so.
        out_dir = cfg.data.scoring_build_dir if day and out is None else cfg.data.build_dir
        request = BuildRequest(cfg.data.dir, out_dir, cfg.features, day)
        if spark:
            from hubscore.spark.session import require_pyspark

            require_pyspark()  # before the engine's own imports, which need it
            from hubscore.spark.build import run_build_spark

            built = run_build_spark(
                request,
                master=master,
                partitions=partitions,
                log_level=log_level.value,
                data_dir=data_dir if data_dir and is_uri(data_dir) else None,
                out_dir=out if out and is_uri(out) else None,
            )
            quality, features_path = built.quality, built.features_path
        else:
            result = run_build(request)
            quality, features_path = result.quality, str(result.features_path)
    render_quality(quality, stderr)
    stdout.print(features_path, highlight=False, soft_wrap=True)


def local_location(location: str | None, *, flag: str, spark: bool) -> Path | None:
    """Return a flag's local path for the config; a URI is the Spark engine's alone (None)."""
    if location is None or (spark and is_uri(location)):
        return None
    return local_path(location, flag=flag)


@app.command()
def score(
    input_path: Annotated[
        str,
        typer.Argument(
            # No exists=True: Typer would exit 2; a missing input is exit 3, as documented.
            metavar="INPUT",
            help="Features from build-features (.parquet or .csv; a URI with --engine spark).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Scores (.parquet or .csv; - for CSV on stdout; a URI with --engine spark).",
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            help="Run folder.", show_default=f"{config_default('data.models_dir')}/latest"
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Override the model's threshold.")
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(min=1, help="Write only the top K (per cutoff): the call list.")
    ] = None,
    scored_at: Annotated[
        str | None,
        typer.Option(
            help="YYYY-MM-DD: the scored_at stamp (reproducible output); the data date is "
            "build-features --as-of's.",
            show_default="now",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(hidden=True, help="Deprecated spelling of --scored-at."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Rows per batch.", show_default=config_default("scoring.batch_size")
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=0, help="onnxruntime threads.", show_default=config_default("scoring.threads")
        ),
    ] = None,
    fail_on_drift: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Exit 7 if a feature's PSI exceeds this (per-feature limits: "
            "scoring.drift_allowances).",
        ),
    ] = None,
    explain: Annotated[
        int | None,
        typer.Option(
            min=0, help="Explain the top N (per cutoff).", show_default="the --top-k list"
        ),
    ] = None,
    no_explain: Annotated[bool, typer.Option("--no-explain", help="Write no reasons.")] = False,
    ledger: Annotated[
        Path | None,
        typer.Option(
            help="Record every scored row there for `hubscore monitor`.",
            show_default=config_default("scoring.ledger_dir"),
        ),
    ] = None,
    no_ledger: Annotated[
        bool, typer.Option("--no-ledger", help="Record nothing in the ledger.")
    ] = False,
    shadow: Annotated[
        list[Path] | None,
        typer.Option(
            help="Also score with this challenger run folder, into the ledger only (repeatable).",
            show_default="none",
        ),
    ] = None,
    holdout_share: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Mark this share of each --top-k list `hold` (a control group: not to call).",
            show_default=config_default("scoring.holdout_share"),
        ),
    ] = None,
    holdout_seed: Annotated[
        int | None,
        typer.Option(
            help="Which companies are held (same seed, same companies).",
            show_default=config_default("scoring.holdout_seed"),
        ),
    ] = None,
    all_columns: Annotated[
        bool,
        typer.Option(
            "--all-columns",
            help="CSV gets every column (contributions too), not only the caller's.",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Summary as JSON on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
    log_format: Annotated[LogFormat, typer.Option(help="stderr log format.")] = LogFormat.text,
    config: ConfigOption = None,
    engine: EngineOption = Engine.local,
    master: MasterOption = "local[2]",
    log_level: SparkLogOption = SparkLogLevel.ERROR,
) -> None:
    """Score companies into a ranked list of likely converters (atomic, locked, streaming)."""
    from hubscore.engine.scorer import load_scorer
    from hubscore.serving.batch import score_file
    from hubscore.serving.ledger import check_shadows, ledger_request, score_shadows, with_shadows

    day = parse_date(scored_at)
    with handle_errors(), handle_interrupts():
        if as_of is not None:
            day = _deprecated_as_of(parse_date(as_of), day, input_path)
        if output == "-" and json_output:
            raise ConfigError("-o - writes the list to stdout, where --json would go too")
        cfg = resolve_config(
            config,
            **{
                "scoring.batch_size": batch_size,
                "scoring.threads": threads,
                "scoring.fail_on_drift": fail_on_drift,
                "scoring.ledger_dir": ledger,
                "scoring.holdout_share": holdout_share,
                "scoring.holdout_seed": holdout_seed,
            },
        )
        run_dir = model or cfg.data.models_dir / "latest"
        recorded = ledger_request(
            None if no_ledger else cfg.scoring.ledger_dir,
            holdout=(cfg.scoring.holdout_share, cfg.scoring.holdout_seed),
            top_k=top_k,
            shadows=len(shadow or []),
            source="--ledger" if ledger else "scoring.ledger_dir",
        )
        challengers = [load_scorer(path, threads=cfg.scoring.threads) for path in shadow or []]
        if challengers:  # verified before the list is scored, and never the champion itself
            champion = load_scorer(run_dir, threads=cfg.scoring.threads)
            challengers = check_shadows(champion, challengers)
        if engine is Engine.spark:
            from hubscore.spark.session import require_pyspark

            require_pyspark()  # before the engine's own imports, which need it
            from hubscore.spark.ledger import score_shadows_spark
            from hubscore.spark.score import score_path_spark

            summary = score_path_spark(
                input_path,
                output,
                run_dir=run_dir,
                master=master,
                log_level=log_level.value,
                threshold=threshold,
                top_k=top_k,
                as_of=day,
                batch_size=cfg.scoring.batch_size,
                threads=cfg.scoring.threads,
                fail_on_drift=cfg.scoring.fail_on_drift,
                drift_allowances=cfg.scoring.drift_allowances,
                explain=0 if no_explain else explain,
                ledger=recorded,
            )
            if recorded and challengers:
                summary = with_shadows(
                    summary,
                    score_shadows_spark(
                        input_path,
                        output,
                        [path for c in challengers if (path := c.run_dir)],
                        recorded,
                        master=master,
                        log_level=log_level.value,
                        top_k=top_k,
                        as_of=day,
                        batch_size=cfg.scoring.batch_size,
                        threads=cfg.scoring.threads,
                    ),
                )
        else:
            source = local_path(input_path, flag="INPUT")
            target = local_path(output, flag="--output")
            scorer = load_scorer(run_dir, threads=cfg.scoring.threads)
            with progress_bar(enabled=not quiet and stderr.is_terminal) as on_progress:
                summary = score_file(
                    source,
                    target,
                    scorer=scorer,
                    threshold=threshold,
                    top_k=top_k,
                    as_of=day,
                    batch_size=cfg.scoring.batch_size,
                    fail_on_drift=cfg.scoring.fail_on_drift,
                    drift_allowances=cfg.scoring.drift_allowances,
                    on_progress=on_progress,
                    explain=0 if no_explain else explain,
                    all_columns=all_columns,
                    ledger=recorded,
                )
            if recorded and challengers:
                summary = with_shadows(
                    summary,
                    score_shadows(
                        source,
                        challengers,
                        recorded,
                        top_k=top_k,
                        as_of=day,
                        batch_size=cfg.scoring.batch_size,
                    ),
                )
    render_summary(summary.to_dict(), as_json=json_output, quiet=quiet, log_format=log_format)


def _deprecated_as_of(as_of: date | None, scored_at: date | None, input_path: str) -> date | None:
    """Accept `score --as-of` as the old spelling of --scored-at, unless it says otherwise.

    It never picked the data, as build-features --as-of does: a date other than the one the
    input was built at is refused rather than stamped on rows it does not describe.
    """
    from hubscore.core.datasets import recorded_as_of
    from hubscore.core.errors import ConfigError

    deprecated("score --as-of", "--scored-at (score stamps rows; it never picks the data date)")
    built = None if is_uri(input_path) else recorded_as_of(Path(input_path))
    if scored_at is not None and scored_at != as_of:
        raise ConfigError(
            f"--as-of {as_of} and --scored-at {scored_at} disagree",
            hint="pass --scored-at only",
        )
    if built is not None and as_of != built:
        raise ConfigError(
            f"score --as-of {as_of} only stamps scored_at, but {input_path} holds the "
            f"companies as of {built} (build-features --as-of {built})",
            hint=f"to score {as_of}, build that input: hubscore build-features --as-of {as_of}; "
            "to stamp another date, pass --scored-at",
        )
    return as_of


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, as hubscore's handler raises it.

    Not KeyboardInterrupt itself: when that very type ends Python code that a C extension runs
    through `PyRun_*` (train's export step met one), CPython remembers an "unhandled" Ctrl-C
    and kills the process by SIGINT at exit, after we handled it and chose 130 (7 stops in 30
    before this class). A subclass is caught by every `except KeyboardInterrupt` and never
    remembered.
    """


@contextlib.contextmanager
def handle_interrupts(
    message: str = "interrupted; the previous output is unchanged",
) -> Iterator[None]:
    """Exit 130 on Ctrl-C or SIGTERM after cleanup (finally blocks remove temp files)."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    try:
        with signals_handled(raise_interrupt):
            yield
    except BaseException as exc:
        if not _is_an_interrupt(exc):
            raise
        stderr.print(f"[bold red]error:[/] {escape(message)}")
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None


def _is_an_interrupt(exc: BaseException) -> bool:
    """Whether `exc` is an interrupt, or an error an interrupt caused: a signal that lands
    while a C extension initialises comes back as the extension's own error (pybind11's
    modules: ImportError "initialization failed", the interrupt as its cause; train met one
    importing matplotlib). The chain is followed as a traceback shows it."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return False


class SearchMode(StrEnum):
    """Whether `train` searches hyperparameters."""

    on = "on"
    off = "off"


@app.command()
def train(
    features: Annotated[
        Path | None,
        typer.Option(
            help="Feature Parquet written by build-features.",
            show_default=f"{config_default('data.build_dir')}/features.parquet",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="logreg, random_forest, xgboost, lightgbm or all.",
            show_default=config_default("training.model"),
        ),
    ] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for run folders.", show_default=config_default("data.models_dir")
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(hidden=True, help="Deprecated spelling of --models-dir.")
    ] = None,
    config: ConfigOption = None,
    track: Annotated[
        bool, typer.Option("--track", help="Log runs to MLflow (tracking.uri, else OUT/mlflow.db).")
    ] = False,
    search: Annotated[
        SearchMode | None,
        typer.Option(
            help="on: choose hyperparameters on the time folds (training.search); off: the "
            "config's models section as it is.",
            show_default="on, with training.search.trials",
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Train on cutoffs from this date (YYYY-MM-DD) on.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Train on cutoffs up to this date (YYYY-MM-DD).")
    ] = None,
) -> None:
    """Train, evaluate and export models; print each run folder on stdout, the best last."""
    window = {"since": parse_date(since), "until": parse_date(until)}
    if out is not None:  # --out is the build folder in build-features: one name, one meaning
        deprecated("train --out", "--models-dir")
    stopped = "interrupted; no run folder was written and models/latest is unchanged"
    with handle_errors(), handle_interrupts(stopped):
        overrides: dict[str, Any] = {"training.model": model}
        overrides["data.models_dir"] = models_dir or out
        if search is SearchMode.off:
            overrides["training.search"] = {"trials": 0}
        cfg = resolve_config(config, **overrides)
        from hubscore.training.runs import (  # heavy: after the config check
            leaderboard,
            train_and_export,
        )

        source = features or cfg.data.training_features
        with TrainingDisplay(live=stderr.is_terminal) as progress:
            results = train_and_export(
                source, cfg, out_dir=cfg.data.models_dir, track=track, progress=progress, **window
            )
    ranked = leaderboard(results, cfg.training.leaderboard_metric)
    stderr.print(leaderboard_table(ranked, cfg.training.leaderboard_metric, cfg.training.top_k))
    for result in reversed(ranked):
        print(result.run_dir)


@app.command()
def serve(
    model: Annotated[
        Path | None,
        typer.Option(
            help="Run folder.", show_default=f"{config_default('data.models_dir')}/latest"
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; loopback unless you mean it.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Most companies per /predict call (413 above).")
    ] = 10_000,
    config: ConfigOption = None,
) -> None:
    """Serve predictions over HTTP; set HUBSCORE_API_TOKEN to require a bearer token."""
    with handle_errors():
        cfg = resolve_config(config)
        try:  # the serve extra (fastapi, uvicorn) is optional: say how to get it
            from hubscore.serving.api import serve as run_server
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"hubscore serve needs {exc.name}, which is not installed",
                hint="install the serve extra: pip install 'hubscore[serve]'",
            ) from None
        run_server(
            model or cfg.data.models_dir / "latest",
            host=host,
            port=port,
            workers=workers,
            max_batch=max_batch,
            threads=cfg.scoring.threads,
        )


# Did the lists convert, and which model makes them: hubscore.cli_monitor.
app.command()(cli_monitor.monitor)
app.command()(cli_monitor.promote)
app.command()(cli_monitor.rollback)

runs_app = typer.Typer(
    cls=HelpGroup,
    help="List run folders, or prune old ones; the run models/latest points at is always kept.",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")
ModelsDirOption = Annotated[
    Path | None,
    typer.Option(help="Folder of run folders.", show_default=config_default("data.models_dir")),
]


@runs_app.command("list")
def runs_list(models_dir: ModelsDirOption = None, config: ConfigOption = None) -> None:
    """List run folders, newest first, with their test metric; `*` marks models/latest."""
    from hubscore.core.run_folders import list_runs

    with handle_errors():
        cfg = resolve_config(config, **{"data.models_dir": models_dir})
    metric = cfg.training.leaderboard_metric
    rows = [("", "run", "model", "created", metric)]  # plain columns: scripts split them
    for run in list_runs(cfg.data.models_dir):
        latest = "*" if run.is_latest else "-"
        rows.append(
            (latest, run.name, run.model_kind, run.created_at, cell(run.metrics.get(metric)))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@runs_app.command("prune")
def runs_prune(
    keep: Annotated[int, typer.Option(min=0, help="Run folders to keep, newest first.")],
    models_dir: ModelsDirOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would go; delete nothing.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Delete all but the newest KEEP run folders; never the one models/latest points at."""
    from hubscore.core.run_folders import prune_runs

    with handle_errors():
        cfg = resolve_config(config, **{"data.models_dir": models_dir})
        removed = prune_runs(cfg.data.models_dir, keep=keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    stderr.print(f"{verb} {len(removed)} run folders; kept the newest {keep} and latest")
    for run in removed:
        print(run.path)
