"""Running one ttrpg worker in this process: ``ttrpg worker`` and ``workers/run_worker.py``.

:func:`run_worker` builds a worker of the chosen class (:mod:`ttrpg.fleet.workers`), logs
to stderr, and keeps its loop going across Redis outages.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
import uuid

import redis.exceptions
from rq.serializers import JSONSerializer

from ttrpg import defaults
from ttrpg.backend.connection import get_redis, when_redis_is_up
from ttrpg.exceptions import ConfigError
from ttrpg.fleet.local import die_with_parent_from_env
from ttrpg.fleet.workers import DEFAULT_WORKER_CLASS, WORKER_CLASSES, WarmSpawnWorker
from ttrpg.jobs.allowlist import AllowListedJob
from ttrpg.settings import get_settings

__all__ = ["run_worker"]

log = logging.getLogger("rq.worker")


def _worker_connection(settings):
    ttl = defaults.WORKER_TTL_S
    # RQ's own value for a worker client: the blocking dequeue (ttl - 15 s) plus 10 s
    return get_redis(settings, socket_timeout=float(max(1, ttl - 15) + 10))


def _setup_logging(level: str = "INFO") -> None:
    """RQ logs to stdout by default; ttrpg keeps stdout for data, so worker logs go to stderr."""
    logger = logging.getLogger("rq")
    if not any(getattr(h, "_ttrpg", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
        handler._ttrpg = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    for name in ("rq.worker", "rq.job", "rq.scheduler"):
        logging.getLogger(name).setLevel(level)


def run_worker(queues: list[str] | None = None, *, worker_class: str = DEFAULT_WORKER_CLASS, burst: bool = False,
               name: str | None = None, settings=None) -> int:
    """Run one ttrpg worker in this process until it is asked to stop; return an exit code.

    JSON serializer, allow-listed jobs, scheduler on (scheduled ``Retry`` runs), worker TTL
    and maintenance interval from :mod:`ttrpg.defaults`. The first SIGTERM/SIGINT finishes
    the current job and exits 0; a second one kills the job (cold shutdown). If the worker
    loop quits because Redis went away, it waits for Redis and starts again; any other
    failure that keeps recurring exits 1.

    The horse (spawn and warm classes) connects with the worker's own connection settings
    (unix socket path, TLS, password), which reach it through a pipe, never its command line.
    """
    settings = settings or get_settings()
    try:
        cls = WORKER_CLASSES[worker_class]
    except KeyError:
        raise ConfigError(f"Unknown worker class {worker_class!r}.",
                          hint=f"Use one of: {', '.join(WORKER_CLASSES)}.") from None
    queue_names = list(queues or [settings.queue])
    die_with_parent_from_env()
    _setup_logging()

    extra = {"warm_spawn": settings.warm_spawn} if cls is WarmSpawnWorker else {}
    restarts: list[float] = []
    stop = {"requested": False}
    while True:
        connection = _worker_connection(settings)
        try:
            worker = cls(queue_names, connection=connection, name=name, serializer=JSONSerializer,
                         job_class=AllowListedJob, worker_ttl=defaults.WORKER_TTL_S,
                         maintenance_interval=defaults.WORKER_MAINTENANCE_INTERVAL_S,
                         job_monitoring_interval=defaults.JOB_MONITORING_INTERVAL_S, **extra)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            worker = None
        if worker is not None:
            try:
                worker.work(burst=burst, with_scheduler=True)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.error("Worker %s: lost Redis: %s", worker.name, exc)
            except Exception:
                log.exception("Worker %s: the worker loop failed", worker.name)
            if burst or worker.stop_was_requested:
                return 0
        # The loop quit without being asked to: wait for Redis, clean up, start again.
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 300] + [now]
        if len(restarts) > 10:
            log.error("Worker quit 10 times in 5 minutes; giving up")
            return 1
        previous = {sig: signal.signal(sig, lambda *_: stop.__setitem__("requested", True))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if not when_redis_is_up(connection.ping, should_stop=lambda: stop["requested"], on_wait=_log_outage):
                return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if worker is not None:
            try:
                worker.teardown()  # deregister (RQ's own teardown may have failed without Redis)
            except Exception:
                if name:
                    name = f"{name}-{uuid.uuid4().hex[:4]}"  # the old registration still blocks the name
        log.warning("Restarting the worker loop")


def _log_outage(exc: BaseException, wait_s: float) -> None:
    log.error("Redis unavailable (%s); retrying in %.0f s", exc, wait_s)
