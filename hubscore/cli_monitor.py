"""The `monitor`, `promote` and `rollback` commands (registered on the app by `cli.py`).

Thin like the rest of the CLI: parse, call one function of `hubscore.monitoring`, render.
MLflow aliases follow a move only when tracking is on (tracking.uri, or the `mlflow.db` that
`train --track` keeps in the models folder); only then is the training stack's tracking loaded.

No `from __future__ import annotations` here: Typer resolves every command's annotations on
each start, and evaluating them as strings cost 11 ms of every run (measured).
"""

from pathlib import Path
from typing import Annotated, Any

import typer

from hubscore.cli_help import config_default
from hubscore.cli_render import stderr, stdout
from hubscore.core.config import Config
from hubscore.core.errors import ALERT_EXIT_CODE, ConfigError, PromotionRefusedError

LedgerOption = Annotated[
    Path | None,
    typer.Option(
        help="The ledger `score` records into.", show_default=config_default("scoring.ledger_dir")
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Folder with the newest customers (and noncustomers) files.",
        show_default=config_default("data.dir"),
    ),
]
ModelsDirOption = Annotated[
    Path | None,
    typer.Option(help="Folder of run folders.", show_default=config_default("data.models_dir")),
]
KnownUntilOption = Annotated[
    str | None,
    typer.Option(
        help="Conversions are known up to this day (YYYY-MM-DD).",
        show_default="the newest CLOSEDATE or usage week in the files",
    ),
]
MinListsOption = Annotated[
    int,
    typer.Option(
        min=1, help="Fewest mature lists (shared weeks, to compare) an alert or promotion needs."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="YAML config overriding the packaged default.", envvar="HUBSCORE_CONFIG"
    ),
]


def parse_ks(value: str) -> tuple[int, ...]:
    """Parse `--k 50,100`."""
    try:
        ks = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"--k {value!r} is not a list of list sizes, e.g. 50,100"
        ) from None
    if not ks or min(ks) < 1:
        raise typer.BadParameter(f"--k {value!r}: list sizes are whole numbers of 1 or more")
    return tuple(dict.fromkeys(ks))


def parse_fail_on(value: str) -> tuple[str, ...]:
    """Parse `--fail-on precision,calibration` (or `none`)."""
    from hubscore.monitoring.alerts import KINDS

    kinds = tuple(part.strip() for part in value.split(",") if part.strip())
    if kinds == ("none",):
        return ()
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise typer.BadParameter(f"--fail-on {value!r}: use none or some of {', '.join(KINDS)}")
    return kinds


def monitor(
    ledger: LedgerOption = None,
    data_dir: DataDirOption = None,
    k: Annotated[str, typer.Option("--k", help="List sizes, comma-separated.")] = "50,100",
    known_until: KnownUntilOption = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json", help="Write the versioned JSON document (- : stdout).", show_default="none"
        ),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML page.", show_default="none"),
    ] = None,
    fail_on: Annotated[
        str, typer.Option(help="Alerts that exit 9: precision, calibration, challenger, or none.")
    ] = "precision,calibration",
    min_lists: MinListsOption = 4,
    last: Annotated[int, typer.Option(min=1, help="Mature lists the calibration check reads.")] = 4,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No tables on stderr.")] = False,
    config: ConfigOption = None,
) -> None:
    """Did the lists convert? Realised precision per list and model against the promise."""
    from hubscore.cli import handle_errors, parse_date, resolve_config
    from hubscore.monitoring.alerts import failing
    from hubscore.monitoring.render import report_renderable
    from hubscore.monitoring.report import MonitorRequest, run_monitor, save_outputs

    ks, kinds, until = parse_ks(k), parse_fail_on(fail_on), parse_date(known_until)
    with handle_errors():
        cfg = resolve_config(config, **{"scoring.ledger_dir": ledger, "data.dir": data_dir})
        request = MonitorRequest(_ledger(cfg), cfg.data.dir, ks, until, min_lists, last)
        doc = run_monitor(request)
        save_outputs(doc, json_path=json_path, html_path=html_path)
    if not quiet:
        stderr.print(report_renderable(doc))
    fired = failing(doc["checks"], kinds)
    if fired:
        stderr.print(
            f"[bold red]monitor:[/] {len(fired)} alerts fail the run (--fail-on {fail_on})"
        )
        raise typer.Exit(ALERT_EXIT_CODE)


def promote(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="The challenger's run folder.")
    ],
    models_dir: ModelsDirOption = None,
    ledger: LedgerOption = None,
    data_dir: DataDirOption = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k",
            min=1,
            help="The list size compared.",
            show_default=config_default("training.weekly_capacity"),
        ),
    ] = None,
    known_until: KnownUntilOption = None,
    min_lists: MinListsOption = 4,
    force: Annotated[bool, typer.Option("--force", help="Promote without the evidence.")] = False,
    reason: Annotated[
        str | None,
        typer.Option(help="Why, for the log (needed with --force).", show_default="none"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Make RUN_DIR the champion (models/latest) if it beat the champion on the same weeks."""
    from hubscore.cli import handle_errors, parse_date, resolve_config
    from hubscore.monitoring.promote import PromoteRequest
    from hubscore.monitoring.promote import promote as promote_run

    until = parse_date(known_until)
    with handle_errors():
        cfg = resolve_config(
            config,
            **{"data.models_dir": models_dir, "scoring.ledger_dir": ledger, "data.dir": data_dir},
        )
        request = PromoteRequest(
            run_dir,
            cfg.data.models_dir,
            _ledger(cfg),
            cfg.data.dir,
            k=k or cfg.training.weekly_capacity,
            known_until=until,
            min_lists=min_lists,
            force=force,
            reason=reason,
        )
        try:
            move = promote_run(request)
        except PromotionRefusedError:
            _follow(cfg, run_dir.name, "challenger")  # evaluated, kept in the shadow
            raise
        _follow(cfg, move.to, "champion")
    _render_move(move.to_json(), cfg)


def rollback(models_dir: ModelsDirOption = None, config: ConfigOption = None) -> None:
    """Point models/latest back at the champion before the current one."""
    from hubscore.cli import handle_errors, resolve_config
    from hubscore.monitoring.promote import rollback as rollback_run

    with handle_errors():
        cfg = resolve_config(config, **{"data.models_dir": models_dir})
        move = rollback_run(cfg.data.models_dir)
        _follow(cfg, move.to, "champion")
    _render_move(move.to_json(), cfg)


def _ledger(cfg: Config) -> Path:
    if cfg.scoring.ledger_dir is None:
        raise ConfigError(
            "no ledger folder: scoring.ledger_dir is null",
            hint="pass --ledger DIR, the folder hubscore score records into",
        )
    return cfg.scoring.ledger_dir


def _follow(cfg: Config, run_name: str, alias: str) -> None:
    """Move the MLflow alias with `latest` when tracking is on (the training stack's tracking)."""
    local = cfg.data.models_dir / "mlflow.db"
    if not cfg.tracking.uri and not local.is_file():
        return
    from hubscore.training.tracking import set_alias

    uri = cfg.tracking.uri or f"sqlite:///{local.resolve()}"
    if set_alias(run_name, alias, uri=uri, experiment=cfg.experiment.name) is None:
        stderr.print(f"note: {run_name} was never tracked; MLflow alias {alias} not moved")


def _render_move(line: str, cfg: Config) -> None:
    import json

    move: dict[str, Any] = json.loads(line)
    stderr.print(
        f"{move['action']}: models/latest -> {move['to']} (was {move['from'] or 'nothing'}); "
        f"logged in {cfg.data.models_dir / 'promotions.jsonl'}",
        highlight=False,
    )
    evidence = move.get("evidence") or {}
    if evidence.get("difference") is not None:
        stderr.print(
            f"evidence: precision@{evidence['k']} over {evidence['weeks']} shared mature weeks, "
            f"{evidence['challenger_converted']} vs {evidence['champion_converted']} of "
            f"{evidence['listed']} converted: {100 * evidence['difference']:+.1f} pts "
            f"(90% interval {100 * (evidence['difference_low'] or 0):+.1f} to "
            f"{100 * (evidence['difference_high'] or 0):+.1f})",
            highlight=False,
        )
    if move.get("reason"):
        stderr.print(f"reason: {move['reason']}", highlight=False)
    stdout.print(str(cfg.data.models_dir / move["to"]), highlight=False, soft_wrap=True)
