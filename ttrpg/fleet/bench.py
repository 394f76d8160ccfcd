"""Dispatch benchmark: how long a job waits for a worker of each class (``ttrpg bench``)."""

from __future__ import annotations

import contextlib
import statistics
import time
import uuid

from rq.queue import Queue
from rq.results import Result

from ttrpg.backend.connection import get_redis
from ttrpg.exceptions import TTRPGError
from ttrpg.fleet.horse import HorseInfo, horses
from ttrpg.fleet.local import LocalFleet, local_workers
from ttrpg.fleet.workers import DEFAULT_WORKER_CLASS
from ttrpg.jobs.allowlist import job_queue
from ttrpg.process import memory_kb
from ttrpg.research.stats import percentile
from ttrpg.settings import get_settings

__all__ = ["idle_worker_memory", "measure_dispatch"]

PROBE = "ttrpg.jobs.functions.probe"


def _run_probe(queue: Queue, timeout: float = 60.0) -> tuple[float, dict, float]:
    """Enqueue probe(); return (enqueue time, its result, time the result was seen)."""
    enqueued = time.time()
    job = queue.enqueue(PROBE, result_ttl=300, failure_ttl=300)
    deadline = time.monotonic() + timeout
    while True:
        result = job.latest_result(timeout=max(1, int(min(5, deadline - time.monotonic()))))
        if result is not None:
            if result.type != Result.Type.SUCCESSFUL:
                raise TTRPGError(f"probe job failed: {result.exc_string}")
            return enqueued, result.return_value, time.time()
        if time.monotonic() > deadline:
            raise TTRPGError(f"probe job did not finish within {timeout:.0f} s")


def _wait_ready_horse(worker_name: str, timeout: float = 30.0) -> HorseInfo | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h in horses(worker_name):
            if h.state == "ready":
                return h
        time.sleep(0.005)
    return None


def idle_worker_memory(fleet: LocalFleet, index: int = 0) -> dict:
    """Memory held by one idle worker and the processes it keeps ready, in kB.

    ``processes`` gives each kind's resident memory (``worker``, ``template``, ``ready``: the
    fork server's ready children or the warm horse, summed); ``rss_kb`` sums them (pages
    shared between a template and its children counted once per process) and ``pss_kb`` their
    proportional share (shared pages counted once overall: what the machine really spends).
    """
    pids = [("worker", fleet.pids[index])]
    pids += [(h.state, h.pid) for h in horses(fleet.names[index]) if h.state in ("template", "ready")]
    found = [(kind, m) for kind, m in ((kind, memory_kb(pid)) for kind, pid in pids) if m]
    processes: dict[str, int] = {}
    for kind, m in found:
        processes[kind] = processes.get(kind, 0) + m["rss"]
    return {"processes": processes, "ready_processes": sum(1 for kind, _ in found if kind == "ready"),
            "rss_kb": sum(m["rss"] for _, m in found), "pss_kb": sum(m["pss"] for _, m in found)}


def _wait_idle(worker_class: str, name: str, timeout: float = 30.0) -> None:
    """Until the worker's ready process (warm horse, fork-server child) is waiting, if it keeps one."""
    if worker_class in ("warm", "forkserver"):
        _wait_ready_horse(name, timeout)


def measure_dispatch(worker_class: str = DEFAULT_WORKER_CLASS, n: int = 15, settings=None,
                     back_to_back: bool = False) -> dict:
    """Dispatch overhead of one worker of ``worker_class``: enqueue → job running, in ms.

    Starts one local worker on a private queue, runs a warm-up job, then ``n`` ``probe()``
    jobs one after another. By default each is enqueued once the worker is idle again (for
    the warm and forkserver classes, once the next horse is ready: the steady state of an
    idle worker). With ``back_to_back`` each is enqueued the moment the previous one's
    result is seen, as the phases of a turn follow each other: the worker is then still
    finishing the previous job, and the figure includes that.

    Returns ``median_ms``, ``p10_ms``, ``p90_ms``, ``min_ms``, ``max_ms`` (probe's
    ``started_at`` minus the enqueue time), ``result_ms`` (median enqueue → result seen),
    ``distinct_processes`` (how many processes ran the ``n`` jobs), ``idle_memory`` (see
    :func:`idle_worker_memory`), and for the warm class ``horse_ready_ms`` (median time from
    a job's result to the next horse being ready) and ``horse_rss_kb``.
    """
    settings = settings or get_settings()
    queue_name = f"bench-{uuid.uuid4().hex[:10]}"
    client = get_redis(settings)
    queue = job_queue(queue_name, client)
    warm = worker_class == "warm" and settings.warm_spawn
    dispatch, result_ms, ready_ms, rss, pids = [], [], [], [], set()
    try:
        with local_workers(1, [queue_name], worker_class, settings) as fleet:
            name = fleet.names[0]
            _run_probe(queue)  # warm-up: first horse, imports, connections
            _wait_idle(worker_class, name)
            time.sleep(0.3)
            idle = idle_worker_memory(fleet)
            for _ in range(n):
                if back_to_back:
                    pass
                elif warm:
                    t_done = time.time()
                    horse = _wait_ready_horse(name)
                    if horse is not None:
                        ready_ms.append((time.time() - t_done) * 1000)
                        if horse.rss_kb:
                            rss.append(horse.rss_kb)
                else:
                    _wait_idle(worker_class, name)
                    time.sleep(0.05)
                enqueued, value, seen = _run_probe(queue)
                dispatch.append((value["started_at"] - enqueued) * 1000)
                result_ms.append((seen - enqueued) * 1000)
                pids.add(value["pid"])
    finally:
        with contextlib.suppress(Exception):
            queue.delete(delete_jobs=True)
        client.close()
    ordered = sorted(dispatch)
    out = {
        "worker_class": worker_class, "n": n, "back_to_back": back_to_back,
        "median_ms": round(statistics.median(ordered), 1),
        "p10_ms": round(percentile(ordered, 0.10), 1),
        "p90_ms": round(percentile(ordered, 0.90), 1),
        "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1),
        "result_ms": round(statistics.median(result_ms), 1),
        "distinct_processes": len(pids),
        "idle_memory": idle,
    }
    if warm and not back_to_back:
        out["horse_ready_ms"] = round(statistics.median(ready_ms), 1) if ready_ms else None
        out["horse_rss_kb"] = int(statistics.median(rss)) if rss else None
    return out
