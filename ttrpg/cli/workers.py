"""``ttrpg workers`` (fleet status) and ``ttrpg workers failed [--requeue]``."""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
import typer

app = typer.Typer(
    help=("Show the worker fleet: every worker (any machine), what it runs, queue depths, "
          "retries waiting, started and failed jobs."),
    invoke_without_command=True,
    no_args_is_help=False,
)

_QUEUE_HELP = "Queue to show; repeat for several (default: $TTRPG_QUEUE plus every queue a worker serves)."


@app.callback(invoke_without_command=True)
def workers(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    queues: list[str] = typer.Option(None, "--queue", "-q", metavar="QUEUE", help=_QUEUE_HELP),
    all_queues: bool = typer.Option(False, "--all-queues", help="Also show every other queue RQ knows in this Redis."),
    limit: int = typer.Option(20, "--limit", min=0, metavar="N", help="Jobs listed per queue and kind (0: all)."),
) -> None:
    """Show every worker (state, current job, last heartbeat, jobs done/failed), queue depths,
    scheduled retries, started and failed jobs. Reads TTRPG_REDIS_URL and TTRPG_QUEUE."""
    if ctx.invoked_subcommand is not None:
        return
    from ttrpg.console import out, print_json
    from ttrpg.fleet.monitor import fleet_status

    info = fleet_status(None, queues or None, all_queues=all_queues, limit=limit)
    if json_out:
        print_json(info)
        return
    _print_status(info, out())


@app.command()
def failed(
    requeue: bool = typer.Option(False, "--requeue", help="Put every failed job back on its queue."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    queues: list[str] = typer.Option(None, "--queue", "-q", metavar="QUEUE", help=_QUEUE_HELP),
    all_queues: bool = typer.Option(False, "--all-queues", help="Every queue RQ knows in this Redis."),
) -> None:
    """List failed jobs with the last line of their error, newest first; --requeue retries them all."""
    from ttrpg.console import err, out, print_json
    from ttrpg.fleet.monitor import failed_jobs, requeue_failed_jobs

    if requeue:
        ids = requeue_failed_jobs(None, queues or None, all_queues=all_queues)
        if json_out:
            print_json({"requeued": len(ids), "job_ids": ids})
        else:
            err().print(f"Requeued {len(ids)} failed job(s).", markup=False)
        return
    rows = failed_jobs(None, queues or None, all_queues=all_queues)
    if json_out:
        print_json(rows)
        return
    if not rows:
        err().print("No failed jobs.", markup=False)
        return
    out().print(_failed_table(rows))


# --------------------------------------------------------------------------- rendering


def _short_time(iso) -> str:
    return str(iso)[11:19] if iso else "-"


def _print_status(info: dict, console) -> None:
    """The fleet as tables. Names, hosts, queues, job ids and error lines come from Redis
    (any machine, any writer): every cell is a cleaned ``Text``, never markup."""
    from rich.table import Table

    from ttrpg.console import cell, err

    workers = Table(title=cell(f"Workers ({info['redis']})"), title_justify="left")
    for col in ("name", "host", "pid", "state", "current job", "heartbeat", "done", "failed", "memory", "queues"):
        workers.add_column(col, overflow="fold")
    for w in info["workers"]:
        job = w["current_job"]
        state = w["state"] if w["alive"] else f"{w['state']} (gone?)"
        age = "-" if w["heartbeat_age_s"] is None else f"{w['heartbeat_age_s']:.0f} s ago"
        current = "-"
        if job:
            current = (f"{job['id']} ({job['running_s']:.0f} s)" if job.get("running_s") is not None
                       else job["id"])
        memory = f"{w['memory_pss_kb'] / 1024:.0f} MB" if w.get("memory_pss_kb") else "-"  # this machine only
        workers.add_row(*(cell(v) for v in (w["name"], w["hostname"], w["pid"], state, current, age,
                                             w["successful_job_count"], w["failed_job_count"], memory,
                                             ", ".join(map(str, w["queues"])))))
    console.print(workers)
    if not info["workers"]:
        err().print("No worker is registered: start some with `ttrpg worker` (see docs/fleet.md).", markup=False)

    queues = Table(title="Queues", title_justify="left")
    for col in ("queue", "queued", "started", "scheduled", "failed", "deferred", "finished", "workers"):
        queues.add_column(col, overflow="fold")
    for q in info["queues"]:
        queues.add_row(*(cell(q[k]) for k in ("name", "queued", "started", "scheduled", "failed", "deferred",
                                               "finished", "workers")))
    console.print(queues)

    if info["started"]:
        started = Table(title="Started jobs", title_justify="left")
        for col in ("job", "queue", "worker", "started (UTC)", "note"):
            started.add_column(col, overflow="fold")
        for j in info["started"]:
            started.add_row(*(cell(v) for v in (
                j["id"], j["queue"], j.get("worker"), _short_time(j.get("started_at")),
                "abandoned: re-queued at the next registry sweep" if j.get("abandoned") else "")))
        console.print(started)
    if info["scheduled"]:
        scheduled = Table(title="Scheduled (retries waiting)", title_justify="left")
        for col in ("job", "queue", "runs at (UTC)", "retries left"):
            scheduled.add_column(col, overflow="fold")
        for j in info["scheduled"]:
            scheduled.add_row(*(cell(v) for v in (j["id"], j["queue"], _short_time(j.get("scheduled_for")),
                                                   j.get("retries_left"))))
        console.print(scheduled)
    if info["failed"]:
        console.print(_failed_table(info["failed"]))


def _failed_table(rows: list[dict]):
    from rich.table import Table

    from ttrpg.console import cell

    table = Table(title="Failed jobs", title_justify="left")
    for col in ("job", "queue", "function", "ended (UTC)", "error"):
        table.add_column(col, overflow="fold")
    for j in rows:
        table.add_row(*(cell(v) for v in (j["id"], j["queue"], j.get("func") or "?", _short_time(j.get("ended_at")),
                                           j["error"])))
    return table
