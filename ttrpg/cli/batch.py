"""``ttrpg batch run|status|report|cancel``: research runs of many seeded sessions without a person."""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Research batches: many seeded sessions played by autopilot DMs on the worker fleet, compared by condition.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_MATRIX_HELP = ("A JSON matrix: {\"models\": [\"offline\"], \"seeds\": \"1-10\", \"parties\": [\"default\", FILE], "
                "\"prompt_versions\": [\"1\"], \"turns\": 3, \"players\": 2, \"latency_ms\": [0, 1000], "
                "\"faults\": [\"\", \"rate_limit=0.2\"], \"dm\": [\"rules\"], \"dm_model\": null, "
                "\"sessions_per_driver\": 8, \"batch_id\": \"pilot-1\"}; flags replace the file's values.")


@app.command()
def run(
    matrix: Optional[Path] = typer.Option(None, "--matrix", help=_MATRIX_HELP),
    models: list[str] = typer.Option(None, "--models", help="Player model(s): offline or a model name; repeatable."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Replicates: 1-10, 1,2,5 or 1-3,9 (default 1)."),
    party: list[Path] = typer.Option(None, "--party", help="A characters.json; repeatable (default: the built-in crew)."),
    prompt_version: list[str] = typer.Option(
        None, "--prompt-version",
        help="Condition label(s) for the prompts; repeatable. The project has one set of prompts "
             "(PROMPT_VERSION in ttrpg/prompts/builders.py, recorded with the batch): this is a label only."),
    turns: Optional[int] = typer.Option(None, "--turns", help="Turns per session (default 3)."),
    players: Optional[int] = typer.Option(None, "--players", help="AI players per session, 1-4 (default: the party)."),
    latency: list[int] = typer.Option(None, "--latency", help="Offline model latency in ms; repeatable (a condition each)."),
    faults: list[str] = typer.Option(None, "--faults", help="Offline faults, e.g. rate_limit=0.2,server_error=0.1; repeatable."),
    dm: list[str] = typer.Option(None, "--dm", help="Autopilot DM: rules or llm; repeatable (default rules)."),
    dm_model: Optional[str] = typer.Option(None, "--dm-model", help="Model of the llm DM (offline or a name)."),
    batch_id: Optional[str] = typer.Option(None, "--batch", help="Batch id (default: a new one)."),
    per_driver: Optional[int] = typer.Option(None, "--sessions-per-driver", help="Sessions one driver job runs at once (default 8)."),
    local_workers: int = typer.Option(0, "--local-workers", help="Start N player workers and one driver worker per driver job "
                                      "here, and wait for the batch (a one-machine run)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the batch until it ends (live progress on stderr)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Create one session per matrix cell and enqueue session-driver jobs on the drivers queue.

    Drivers run on their own queue, <TTRPG_QUEUE>-drivers (ttrpg-drivers by default): serve it with
    `ttrpg worker --queues ttrpg-drivers`, apart from the player workers (`ttrpg worker`), or pass
    --local-workers N for a run on this machine. Bad matrices exit 2 with one line, nothing created.
    """
    from ttrpg.batch.run import submit
    from ttrpg.batch.spec import load_matrix
    from ttrpg.console import err, print_json, text

    flags = {"models": models, "seeds": seeds, "parties": [str(p) for p in party] if party else None,
             "prompt_versions": prompt_version, "turns": turns, "players": players,
             "latency_ms": list(latency) if latency else None, "faults": faults, "dm": dm, "dm_model": dm_model,
             "sessions_per_driver": per_driver, "batch_id": batch_id}
    spec = load_matrix(str(matrix) if matrix else None, flags)
    if local_workers < 0 or local_workers > 64:
        from ttrpg.exceptions import ConfigError

        raise ConfigError(f"--local-workers must be 0 to 64, got {local_workers}.")
    summary = submit(spec)
    err().print(text(f"batch {summary['batch_id']}: {summary['sessions']} sessions "
                     f"({summary['conditions']} conditions x {len(summary['seeds'])} seeds), "
                     f"{len(summary['driver_jobs'])} driver jobs on queue {summary['drivers_queue']}"))
    status = None
    if local_workers:
        status = _run_locally(summary, local_workers)
    elif wait:
        status = _follow(summary["batch_id"])
    if json_out:
        print_json({**summary, "status": status} if status else summary)
    elif not wait and not local_workers:
        typer.echo(summary["batch_id"])
    if status and status.get("failed"):
        raise typer.Exit(1)


def _follow(batch_id: str) -> dict:
    from ttrpg.backend.connection import get_redis
    from ttrpg.batch.status import watch
    from ttrpg.console import err

    return watch(get_redis(), batch_id, err())


def _run_locally(summary: dict, n: int) -> dict:
    from ttrpg import defaults
    from ttrpg.fleet.local import local_workers
    from ttrpg.settings import get_settings

    settings = get_settings()
    with local_workers(n, [summary["players_queue"]], defaults.WORKER_CLASS, settings):
        with local_workers(len(summary["driver_jobs"]), [summary["drivers_queue"]], defaults.WORKER_CLASS, settings):
            return _follow(summary["batch_id"])


@app.command()
def status(
    batch: str = typer.Argument(..., help="Batch id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    watch_: bool = typer.Option(False, "--watch", help="Live progress on stderr until the batch ends."),
) -> None:
    """Sessions done / running / queued / failed / cancelled, turns played, turns per minute, ETA, drivers."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.batch.status import batch_status, summary_line, watch
    from ttrpg.console import err, out, print_json, text

    redis = get_redis()
    info = watch(redis, batch, err()) if watch_ else batch_status(redis, batch)
    if json_out:
        print_json(info)
        return
    if watch_:
        return
    out().print(text(summary_line(info)))
    for d in info["drivers"]:
        out().print(text(f"  driver group {d['group']}: {d.get('status')} (runs {d.get('runs', 0)}, "
                         f"rescued {d.get('rescued', 0)}, {d.get('sessions')} sessions)"))
    for sid, error in info["failed_sessions"].items():
        out().print(text(f"  failed {sid}: {error}"))


@app.command()
def cancel(batch: str = typer.Argument(..., help="Batch id.")) -> None:
    """Stop a batch: queued driver jobs removed; running drivers stop their sessions at the next
    phase boundary and leave them paused (resumable)."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.batch.run import cancel as lib_cancel
    from ttrpg.console import err, text

    info = lib_cancel(get_redis(), batch)
    err().print(text(f"batch {info['batch_id']} cancelled: {len(info['removed_jobs'])} queued driver jobs removed, "
                     f"{len(info['running_jobs'])} running drivers stop at the next phase, "
                     f"{info['sessions_not_started']} sessions never started"))


@app.command()
def report(
    batch: str = typer.Argument(..., help="Batch id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    csv_out: bool = typer.Option(False, "--csv", help="Print CSV on stdout (one line per condition)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write an HTML page with SVG charts to this file."),
) -> None:
    """One row per condition (model x party x prompt version x DM x latency/faults; seeds are the
    replicates): validation failures by violation kind, retries by cause, tokens per turn by layer and
    phase, latency p50/p95, consensus states, dice outcomes, DM interventions, each with a 95 % bootstrap
    interval across seeds."""
    from rich.table import Table

    from ttrpg.backend.connection import get_redis
    from ttrpg.batch.report import batch_report, report_csv, report_html
    from ttrpg.cli.logs import write_out
    from ttrpg.console import cell, err, out, print_json, text

    rep = batch_report(get_redis(), batch)
    if html is not None:
        write_out(report_html(rep), html, "--html")
        err().print(text(f"wrote {html}"))
    if json_out:
        print_json(rep)
    elif csv_out:
        typer.echo(report_csv(rep), nl=False)
    elif html is None:
        headline = ("turns_completed", "validation.first_attempt_failure_rate", "retries_per_turn.all",
                    "tokens_per_turn.layer.player", "tokens_per_turn.layer.character", "latency_ms.p50",
                    "latency_ms.p95", "dm_interventions.all")
        table = Table(title=text(f"batch {rep['batch_id']}: {rep['completed']}/{rep['sessions']} sessions completed; "
                                 "mean [95% bootstrap interval over seeds]"))
        table.add_column(cell("figure"))
        for row in rep["conditions"]:
            table.add_column(cell(f"{row['label']} ({row['completed']}/{row['sessions']})"))
        from ttrpg.batch.report import _fmt

        for name in headline:
            table.add_row(cell(name), *(cell(_fmt(r["metrics"].get(name))) for r in rep["conditions"]))
        out().print(table)
