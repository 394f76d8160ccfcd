"""ttrpg's RQ worker classes: allow-listed, Redis-outage tolerant, and the warm spawn worker.

**Warm spawn** (:class:`WarmSpawnWorker`, the default class). RQ's ``SpawnWorker`` starts a
fresh interpreter for every job (never a fork), but only once the job has been dequeued,
so every job waits for ``python`` to start and for its imports (``openai`` alone takes
0.4-1 s). The warm worker keeps that guarantee and removes the wait: it spawns the *next*
horse (:mod:`ttrpg.fleet.horse`) ahead of time (right after handing a job to the current
one, and whenever it idles without one), which imports the job functions and ``openai``
and then waits for its job. Dispatching a job only writes one line to the horse's pipe,
closes it and records the horse's pid: RQ's own monitoring, job timeout, results,
failures, retries and shutdown then work unchanged.

A horse that died while waiting is noticed (``waitpid``) and replaced; a job that arrives
before the pre-spawned horse has finished importing simply waits for it (plain-spawn speed
at worst). A job is never lost to a missing horse: in the worst case it fails through RQ's
normal "work-horse terminated unexpectedly" path (and its ``Retry`` re-queues it).

Every class (warm, spawn, fork, simple) runs only allow-listed jobs
(:mod:`ttrpg.jobs.allowlist`), and waits out a Redis outage instead of quitting.

Dispatch overhead, enqueue → job running, measured with :func:`ttrpg.fleet.bench.measure_dispatch`
(2 cores, embedded Redis, medians of 15, two runs): warm 6-11 ms, spawn 127-132 ms plus the
job's own imports (``openai`` ≈ 0.4-0.5 s, which warm and fork have preloaded), fork
10-14 ms, simple 3 ms (no isolation).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import redis.exceptions
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker, SpawnWorker, Worker, WorkerStatus

from ttrpg import defaults
from ttrpg.backend.connection import when_redis_is_up
from ttrpg.fleet.horse import (
    HORSE_PRELOAD,
    Horse,
    close_pipe,
    discard,
    is_ready,
    spawn_horse,
    write_all,
)
from ttrpg.jobs.allowlist import AllowListedJob, refusal
from ttrpg.process import set_parent_death_signal

__all__ = ["AllowListedForkWorker", "AllowListedSimpleWorker", "AllowListedSpawnWorker", "DEFAULT_WORKER_CLASS",
           "DISPATCH_COST", "WORKER_CLASSES", "WarmSpawnWorker"]

#: Modules the parent of a fork or simple worker imports once, so that jobs do not.
PARENT_PRELOAD = HORSE_PRELOAD


#: What each worker class costs per job, for ``ttrpg worker --help`` and ``ttrpg bench``.
DISPATCH_COST = {
    "warm": "fresh interpreter per job, spawned ahead with openai imported: ~10 ms dispatch; ~65 MB held (default)",
    "spawn": "fresh interpreter per job, spawned when it arrives: ~0.15 s dispatch + the job's imports (openai ~0.5 s)",
    "fork": "fork of the worker, which preloads the job module and openai: ~15 ms; jobs inherit the parent's state",
    "simple": "jobs run inside the worker process: ~3 ms; no isolation, a crash or leak hits every later job",
}


class _DyingScheduler(RQScheduler):
    """RQ's scheduler process, which also stops (SIGTERM) when its worker dies.

    RQ forks it from the worker and nothing ends it if the worker is SIGKILLed.
    """

    def start(self):
        self._ttrpg_parent = os.getpid()
        return super().start()

    def work(self):
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != getattr(self, "_ttrpg_parent", os.getppid()):
            return
        super().work()


class _TTRPGWorkerMixin:
    """Allow-list, preloading, Redis-outage tolerance and stop bookkeeping for every class."""

    job_class = AllowListedJob
    parent_preload: tuple[str, ...] = ()
    #: Longest wait between reconnection attempts while Redis is down (RQ: 60 s).
    max_connection_wait_time = defaults.REDIS_RETRY_MAX_S

    #: Set when a SIGINT/SIGTERM asked this worker to stop (``run_worker`` then exits 0).
    stop_was_requested = False

    # -- allow-list: the job fails (not retried) before anything named in it is imported
    def perform_job(self, job, queue, execution):
        if refusal(job):
            job.retries_left = 0
        return super().perform_job(job, queue, execution)

    def bootstrap(self, *args, **kwargs):
        for module in self.parent_preload:
            try:
                __import__(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    self.log.warning("Worker %s: could not preload %s: %r", self.name, module, exc)
            except Exception as exc:  # the job's own import will report it properly
                self.log.warning("Worker %s: could not preload %s: %r", self.name, module, exc)
        super().bootstrap(*args, **kwargs)

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None):
        self.scheduler = _DyingScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format or DEFAULT_LOGGING_DATE_FORMAT,
            log_format=log_format or DEFAULT_LOGGING_FORMAT,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()

    def request_stop(self, signum, frame):
        self.stop_was_requested = True
        super().request_stop(signum, frame)

    # -- Redis outages: RQ's work loop quits on most Redis errors outside the dequeue; wait instead
    def check_for_suspension(self, burst):
        return when_redis_is_up(
            lambda: super(_TTRPGWorkerMixin, self).check_for_suspension(burst),
            should_stop=lambda: self._stop_requested,
            on_wait=lambda exc, wait: self.log.error("Worker %s: Redis unavailable (%s); retrying in %.0f s",
                                                     self.name, exc, wait))

    def run_maintenance_tasks(self):
        try:
            super().run_maintenance_tasks()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self.log.warning("Worker %s: maintenance skipped, Redis unavailable: %s", self.name, exc)

    def maintain_heartbeats(self, job, execution):
        try:
            super().maintain_heartbeats(job, execution)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self.log.warning("Worker %s: heartbeat failed, Redis unavailable: %s", self.name, exc)

    def set_state(self, state, pipeline=None):
        if pipeline is not None or self._is_horse:
            return super().set_state(state, pipeline)
        try:
            super().set_state(state, pipeline)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self.log.warning("Worker %s: could not record state %s, Redis unavailable: %s", self.name, state, exc)

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is not None or self._is_horse:
            return super().heartbeat(timeout, pipeline)
        try:
            super().heartbeat(timeout, pipeline)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            # RQ's loop quits on this outside its dequeue; the dequeue that follows backs off.
            self.log.warning("Worker %s: heartbeat failed, Redis unavailable: %s", self.name, exc)
        finally:
            self._after_idle_heartbeat()

    def _after_idle_heartbeat(self) -> None:
        """Hook: called in the worker (not the horse) after every plain heartbeat."""


class AllowListedSimpleWorker(_TTRPGWorkerMixin, SimpleWorker):
    """RQ's ``SimpleWorker`` (jobs run inside the worker process) with the allow-list."""

    parent_preload = PARENT_PRELOAD


class AllowListedForkWorker(_TTRPGWorkerMixin, Worker):
    """RQ's fork ``Worker`` with the allow-list; the parent preloads the job module and openai."""

    parent_preload = PARENT_PRELOAD


class AllowListedSpawnWorker(_TTRPGWorkerMixin, SpawnWorker):
    """RQ's ``SpawnWorker`` semantics with the allow-list: a fresh interpreter per job,
    spawned when the job arrives.

    Differs from RQ's only in how the horse gets its code: through a pipe instead of the
    command line, so a Redis password never shows in ``/proc/<pid>/cmdline``.
    """

    #: Spawn the next horse before its job arrives (see :class:`WarmSpawnWorker`).
    prespawn = False
    #: Modules a horse imports before reading its job.
    horse_preload: tuple[str, ...] = ()

    def __init__(self, *args, warm_spawn: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if warm_spawn is not None:
            self.prespawn = bool(warm_spawn)
        self._waiting_horse: Horse | None = None
        self._horse_owner: int | None = None
        self.warm_dispatches = 0
        self.cold_dispatches = 0

    def bootstrap(self, *args, **kwargs):
        self._horse_owner = os.getpid()
        super().bootstrap(*args, **kwargs)

    # -- spawning -------------------------------------------------------------------------
    def _waiting_horse_alive(self) -> bool:
        horse = self._waiting_horse
        if horse is None:
            return False
        try:
            pid, status = os.waitpid(horse.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = horse.pid, None
        if pid == 0 and not horse.broken:
            return True
        reason = "its pipe broke"
        if pid and status is not None:
            code = os.waitstatus_to_exitcode(status)
            reason = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        self.log.warning("Worker %s: waiting horse %s died (%s); replacing it", self.name, horse.pid, reason)
        close_pipe(horse)
        if pid == 0:  # alive but its pipe broke
            discard(horse)
        self._waiting_horse = None
        return False

    def _ensure_waiting_horse(self) -> None:
        if not self.prespawn or self._horse_owner != os.getpid() or self._is_horse:
            return
        if self._stop_requested or self.horse_pid:
            return
        if self._waiting_horse_alive():
            return
        self._waiting_horse = spawn_horse(self, self.horse_preload)
        self.log.debug("Worker %s: pre-spawned horse %s", self.name, self._waiting_horse.pid)

    def _after_idle_heartbeat(self) -> None:
        if self._state == WorkerStatus.IDLE:
            self._ensure_waiting_horse()

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        self._ensure_waiting_horse()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    # -- dispatch -------------------------------------------------------------------------
    def fork_work_horse(self, job, queue):
        """Hand the job to the waiting horse (or spawn one now): one line on a pipe."""
        os.environ["RQ_WORKER_ID"] = self.name
        os.environ["RQ_JOB_ID"] = job.id
        os.environ["RQ_EXECUTION_ID"] = self.execution.id  # type: ignore[union-attr]
        line = (json.dumps({"job": job.id, "execution": self.execution.id, "queue": queue.name}) + "\n").encode()

        horse = self._waiting_horse if self._waiting_horse_alive() else None
        self._waiting_horse = None
        warm = horse is not None and is_ready(horse.pid)
        for attempt in (1, 2):
            if horse is None:
                horse = spawn_horse(self, self.horse_preload)
            try:
                if horse.broken:
                    raise BrokenPipeError
                write_all(horse.fd, line)  # type: ignore[arg-type]
                break
            except BrokenPipeError:
                if attempt == 2:
                    # Leave it to monitor_work_horse: it reaps the dead horse and fails
                    # (or, with Retry, re-queues) the job through RQ's usual path.
                    self.log.error("Worker %s: horse %s died before taking job %s", self.name, horse.pid, job.id)
                    break
                self.log.warning("Worker %s: horse %s died before taking job %s; spawning another",
                                 self.name, horse.pid, job.id)
                discard(horse)
                horse, warm = None, False
        close_pipe(horse)  # type: ignore[arg-type]
        self._horse_pid = horse.pid  # type: ignore[union-attr]
        self.procline(f"Spawned {horse.pid} at {time.time()}")  # type: ignore[union-attr]
        if self.prespawn and not self._stop_requested:
            # The next horse imports while this job runs: back-to-back jobs find it ready.
            try:
                self._waiting_horse = spawn_horse(self, self.horse_preload)
            except OSError as exc:
                self.log.warning("Worker %s: could not pre-spawn the next horse: %s", self.name, exc)
        if self.prespawn:
            if warm:
                self.warm_dispatches += 1
            else:
                self.cold_dispatches += 1
                self.log.info("Worker %s: no ready horse for job %s; it waits for a fresh interpreter",
                              self.name, job.id)
            with contextlib.suppress(redis.exceptions.RedisError):
                self.connection.hincrby(self.key, "ttrpg_warm_dispatches" if warm else "ttrpg_cold_dispatches", 1)

    # -- shutdown -------------------------------------------------------------------------
    def _drop_waiting_horse(self) -> None:
        horse, self._waiting_horse = self._waiting_horse, None
        if horse is not None and self._horse_owner == os.getpid():
            discard(horse)

    def teardown(self):
        self._drop_waiting_horse()
        super().teardown()


class WarmSpawnWorker(AllowListedSpawnWorker):
    """SpawnWorker isolation at fork speed: the next horse is spawned before its job exists.

    It is spawned as soon as the previous job has been handed over (so it imports while
    that job runs: back-to-back jobs find it ready), and again whenever the worker idles
    without one (e.g. it was killed). An idle worker holds one waiting interpreter; a busy
    one holds two (the running and the waiting horse).

    Each job still runs in a fresh interpreter that has run no other job (never a fork).
    ``warm_spawn=False`` (``TTRPG_WARM_SPAWN=0``) turns pre-spawning off: the worker then
    behaves as :class:`AllowListedSpawnWorker` (plain spawn, no preloads).
    """

    prespawn = True

    @property
    def horse_preload(self) -> tuple[str, ...]:  # type: ignore[override]
        return HORSE_PRELOAD if self.prespawn else ()


WORKER_CLASSES: dict[str, type] = {
    "warm": WarmSpawnWorker,
    "spawn": AllowListedSpawnWorker,
    "fork": AllowListedForkWorker,
    "simple": AllowListedSimpleWorker,
}
DEFAULT_WORKER_CLASS = defaults.WORKER_CLASS
