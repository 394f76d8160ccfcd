"""``ttrpg worker``: run one RQ worker that serves AI-player jobs (any number, any machine)."""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
from enum import Enum

import typer


class WorkerClass(str, Enum):
    forkserver = "forkserver"
    warm = "warm"
    spawn = "spawn"
    fork = "fork"
    simple = "simple"


def worker(
    queues: list[str] = typer.Option(None, "--queues", "-q", metavar="QUEUE",
                                     help="Queue to serve; repeat for several (default: $TTRPG_QUEUE or 'ttrpg')."),
    burst: bool = typer.Option(False, "--burst", help="Run the jobs already queued, then exit."),
    worker_class: WorkerClass = typer.Option(
        None, "--worker-class", "-w", case_sensitive=False, show_default=False,
        help=("How jobs are isolated, and what it costs per job (dispatch = enqueue to job running). "
              "forkserver (default): a fresh child per job, forked from a clean template process that has "
              "the job module and openai imported and never runs a job: ~10 ms dispatch, also when jobs come "
              "back-to-back. "
              "warm: a fresh interpreter per job, spawned ahead of time with the job module and "
              "openai imported: ~10 ms dispatch when it is ready, ~0.5 s when jobs come back-to-back. "
              "spawn: a fresh interpreter started when the job arrives: ~0.15 s plus the job's imports "
              "(openai ~0.5 s) per job. "
              "fork: a fork of the worker, which preloads the job module: ~15 ms; jobs inherit its state. "
              "simple: jobs run inside the worker process: ~3 ms; no isolation between jobs. "
              "Default: $TTRPG_WORKER_CLASS or forkserver.")),
    name: str = typer.Option(None, "--name", help="Worker name as RQ shows it (default: $TTRPG_WORKER_NAME or a random id)."),
) -> None:
    """Run an RQ worker for ttrpg's AI-player jobs until SIGTERM/Ctrl+C.

    The first SIGTERM or Ctrl+C finishes the job in flight and exits 0; a second one kills it.
    Only ttrpg's own job functions are executed; jobs naming anything else are refused.
    Reads TTRPG_REDIS_URL (default: the embedded Redis), TTRPG_QUEUE (comma-separated for
    several), TTRPG_WORKER_CLASS, TTRPG_WORKER_NAME, OPENAI_API_KEY, OPENAI_BASE_URL,
    TTRPG_MODEL and TTRPG_WARM_SPAWN (0 = spawn each horse only when its job arrives).
    """
    from ttrpg.fleet.run import run_worker
    from ttrpg.settings import get_settings

    settings = get_settings()
    if not queues:
        queues = [q.strip() for q in settings.queue.split(",") if q.strip()]
    cls = worker_class.value if worker_class else settings.worker_class
    code = run_worker(queues, worker_class=cls, burst=burst, name=name or settings.worker_name, settings=settings)
    raise typer.Exit(code)
