"""Dead drivers: a driver job's heartbeat, and re-queueing the job of a driver that died.

A driver job plays sessions for a long time. If its machine dies (worker and work horse
SIGKILLed at once), RQ finds the job abandoned only 60-70 s after the worker's last
heartbeat (``job_monitoring_interval + 60`` is RQ's own margin), and only when something
sweeps its started-job registry. A batch does better: each running driver job renews a key
of its own every :data:`~ttrpg.defaults.BATCH_DRIVER_HEARTBEAT_S` with a TTL of
:data:`~ttrpg.defaults.BATCH_DRIVER_TTL_S`; the other drivers of the batch and ``ttrpg batch
run --wait`` / ``status`` look for a group whose job is still STARTED while its key is gone,
and re-queue that job the way RQ's registry cleanup does (``Job.retry``: the same job id, one
retry used). The next driver resumes each session from its checkpoint; the session lock
keeps it to one driver at a time, and sessions already completed are skipped.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from ttrpg import defaults
from ttrpg.batch import record


class Heartbeat:
    """Renews a driver group's alive key from a daemon thread, and runs ``also()`` now and then."""

    def __init__(self, redis, batch_id: str, group: int, also=None):
        self.redis, self.batch_id, self.group, self.also = redis, batch_id, group, also
        self.key = record.alive_key(batch_id, group)
        self.value = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"batch-heartbeat-g{group}", daemon=True)

    def beat(self) -> None:
        self.redis.set(self.key, self.value, px=int(defaults.BATCH_DRIVER_TTL_S * 1000))

    def _loop(self) -> None:
        next_also = time.monotonic() + defaults.BATCH_RESCUE_INTERVAL_S
        while not self._stop.wait(defaults.BATCH_DRIVER_HEARTBEAT_S):
            try:
                self.beat()
                if self.also and time.monotonic() >= next_also:
                    next_also = time.monotonic() + defaults.BATCH_RESCUE_INTERVAL_S
                    self.also()
            except Exception:  # Redis away for a moment: the next beat (or the TTL) decides
                continue

    def __enter__(self):
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.redis.delete(self.key)
        except Exception:
            pass


def rescue(redis, batch: dict) -> list[int]:
    """Re-queue the driver jobs of ``batch`` whose driver died; returns their group numbers.

    A group qualifies when its record says ``running``, its alive key is gone, and its RQ job
    is still STARTED (a queued, finished or failed job is left to RQ). A short ``NX`` key keeps
    two rescuers from re-queueing the same job twice.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import JobStatus
    from rq.registry import StartedJobRegistry

    from ttrpg.jobs.allowlist import AllowListedJob, job_queue

    if batch.get("cancelled"):
        return []
    batch_id = batch["batch_id"]
    running = {g: info for g, info in record.groups(redis, batch_id).items() if info.get("status") == "running"}
    if not running:
        return []
    pipe = redis.pipeline()
    for g in running:
        pipe.exists(record.alive_key(batch_id, g))
    dead = [g for g, alive in zip(running, pipe.execute()) if not alive]
    if not dead:
        return []
    queue = job_queue(batch["drivers_queue"], redis)
    rescued = []
    for g in dead:
        try:
            job = AllowListedJob.fetch(record.driver_job_id(batch_id, g), connection=redis,
                                       serializer=queue.serializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=True) != JobStatus.STARTED:
            continue
        if not redis.set(record.alive_key(batch_id, g) + ":rescue", "1", nx=True,
                         px=int(defaults.BATCH_DRIVER_TTL_S * 1000)):
            continue
        with redis.pipeline() as p:
            StartedJobRegistry(queue=queue, job_class=AllowListedJob).remove_executions(job, pipeline=p)
            if job.retries_left:
                job.retry(queue, p)
                status = "requeued"
            else:
                job.set_status(JobStatus.FAILED, pipeline=p)
                status = "dead"
            p.execute()
        info = running[g]
        record.set_group(redis, batch_id, g, status=status, rescued=int(info.get("rescued", 0)) + 1,
                         rescued_at=time.time())
        rescued.append(g)
    return rescued
