"""ttrpg's RQ worker classes: allow-listed, Redis-outage tolerant, the fork server and warm spawn.

**Fork server** (:class:`ForkServerWorker`, the default class). Every job runs in a process
that has run no other job and inherited nothing from the worker or from earlier jobs, and
starts within milliseconds even when jobs arrive back-to-back: the worker spawns one clean
*template* interpreter (:mod:`ttrpg.fleet.forkserver`) that imports the job functions and
``openai``, does their lazy set-up once (:func:`ttrpg.fleet.horse.warm_up`) and never runs a
job; it keeps one forked child ready, and a job is one line to that child.

**Warm spawn** (:class:`WarmSpawnWorker`). RQ's ``SpawnWorker`` starts a fresh interpreter
for every job (never a fork), but only once the job has been dequeued, so every job waits
for ``python`` to start and for its imports (``openai`` alone takes 0.4-1 s). The warm
worker spawns the *next* horse (:mod:`ttrpg.fleet.horse`) ahead of time, which imports the
job functions and ``openai`` and then waits for its job. It is as fast as the fork server
when its horse is ready, but a horse needs about 0.5 s after each job: jobs that follow each
other within milliseconds (the phases of a turn) wait for it. A horse that died while
waiting is noticed and replaced; a job is never lost to a missing horse: in the worst case
it fails through RQ's normal "work-horse terminated unexpectedly" path (and its ``Retry``
re-queues it).

Every class (forkserver, warm, spawn, fork, simple) runs only allow-listed jobs
(:mod:`ttrpg.jobs.allowlist`), and waits out a Redis outage instead of quitting. What each
costs is measured by ``ttrpg bench`` (figures in the README).
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
from ttrpg.fleet.forkserver import Template, TemplateGone, start_template, wait_pidfd
from ttrpg.fleet.horse import (
    HORSE_PRELOAD,
    Horse,
    close_pipe,
    discard,
    is_ready,
    spawn_horse,
    warm_up,
    write_all,
)
from ttrpg.jobs.allowlist import AllowListedJob, refusal
from ttrpg.process import set_parent_death_signal

__all__ = ["AllowListedForkWorker", "AllowListedSimpleWorker", "AllowListedSpawnWorker", "DEFAULT_WORKER_CLASS",
           "DISPATCH_COST", "ForkServerWorker", "WORKER_CLASSES", "WarmSpawnWorker"]

#: Modules the parent of a fork or simple worker imports once, so that jobs do not.
PARENT_PRELOAD = HORSE_PRELOAD


#: What each worker class costs per job, for ``ttrpg worker --help`` and ``ttrpg bench``.
DISPATCH_COST = {
    "forkserver": "fresh child per job, forked from a clean template that never runs jobs: ~10 ms, also back-to-back "
                  "(default)",
    "warm": "fresh interpreter per job, spawned ahead with openai imported: ~10 ms, but ~0.5 s when jobs come "
            "back-to-back",
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
        # RQ installs its SIGTERM/SIGINT handlers only once its scheduler has started; until
        # then a stop request (a fleet stopped right after it started) would kill the worker
        # with the signal instead of letting it deregister and exit 0.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._stop_before_work)
        for module in self.parent_preload:
            try:
                __import__(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    self.log.warning("Worker %s: could not preload %s: %r", self.name, module, exc)
            except Exception as exc:  # the job's own import will report it properly
                self.log.warning("Worker %s: could not preload %s: %r", self.name, module, exc)
        if self.parent_preload:
            try:
                warm_up()
            except Exception as exc:
                self.log.warning("Worker %s: warm-up failed (jobs start slower): %r", self.name, exc)
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

    def _stop_before_work(self, signum, frame):
        """Stop request before RQ's loop runs: its first check of ``_stop_requested`` ends it."""
        self.stop_was_requested = True
        self._stop_requested = True

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
        """Called in the worker (not the horse) after every plain heartbeat."""
        if self._state == WorkerStatus.IDLE:
            self._keep_ready()

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        self._keep_ready()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def _keep_ready(self) -> None:
        """Hook: prepare, while idle, what the next job's process needs (a waiting horse, a template)."""

    def _hand_off_line(self, job, queue) -> bytes:
        """RQ's horse environment, set here as RQ's SpawnWorker does, and the one line that names
        the job to a process waiting for it (job id, execution id, queue)."""
        os.environ["RQ_WORKER_ID"] = self.name
        os.environ["RQ_JOB_ID"] = job.id
        os.environ["RQ_EXECUTION_ID"] = self.execution.id  # type: ignore[attr-defined]
        return (json.dumps({"job": job.id, "execution": self.execution.id,  # type: ignore[attr-defined]
                            "queue": queue.name}) + "\n").encode()


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

    def _keep_ready(self) -> None:
        self._ensure_waiting_horse()

    # -- dispatch -------------------------------------------------------------------------
    def fork_work_horse(self, job, queue):
        """Hand the job to the waiting horse (or spawn one now): one line on a pipe."""
        line = self._hand_off_line(job, queue)

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


class ForkServerWorker(_TTRPGWorkerMixin, Worker):
    """Every job in a fresh process, started within milliseconds even back-to-back.

    The worker spawns one *template* (:mod:`ttrpg.fleet.forkserver`): a fresh interpreter
    that imports the job functions and ``openai``, never runs a job and never connects to
    Redis, and keeps one forked child ready. A job is one line to the template; the ready
    child runs it in its own process group and the template forks the next one (about
    3 ms), so a job that follows another finds a child waiting. RQ's own monitoring, job
    timeout, results, retries and warm/cold shutdown work unchanged; only waiting for the
    horse goes through the template, which reports each child's exit status.

    A template that dies is replaced (at once if a job is waiting: the job then waits for
    the new template's imports, about 0.5 s, and is not lost); a horse it leaves running
    finishes its job and the worker waits on the horse's pidfd.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._template: Template | None = None
        self._template_owner: int | None = None
        self._horse_pidfd: int | None = None
        self.templates_started = 0

    #: The horse rebuilds the worker from this, as RQ's SpawnWorker horse does.
    _dump_worker_config = SpawnWorker._dump_worker_config

    def bootstrap(self, *args, **kwargs):
        self._template_owner = os.getpid()
        self._dump_worker_config()  # fail at start, not at the first job, if it cannot be pickled
        super().bootstrap(*args, **kwargs)

    # -- the template ---------------------------------------------------------------------
    def _live_template(self) -> Template | None:
        template = self._template
        if template is None:
            return None
        reason = template.exit_reason()
        if reason is None:
            return template
        self.log.warning("Worker %s: template %s died (%s); starting another", self.name, template.pid, reason)
        template.stop()
        self._template = None
        return None

    def _ensure_template(self) -> Template | None:
        if self._template_owner != os.getpid() or self._is_horse or self._stop_requested:
            return self._template
        template = self._live_template()
        if template is None:
            template = self._template = start_template(self, HORSE_PRELOAD)
            self.templates_started += 1
            self.log.debug("Worker %s: started template %s", self.name, template.pid)
        return template

    def _keep_ready(self) -> None:
        self._ensure_template()

    # -- dispatch and monitoring ----------------------------------------------------------
    def fork_work_horse(self, job, queue):
        """Hand the job to the template's ready child: one line on a pipe, one line back."""
        line = self._hand_off_line(job, queue)
        pid = 0
        for attempt in (1, 2):
            template = self._ensure_template()
            if template is None:
                break
            try:
                pid = template.dispatch(line, defaults.TEMPLATE_START_TIMEOUT_S)
                break
            except TemplateGone as exc:
                self.log.warning("Worker %s: template %s lost job %s before starting it (%s)%s", self.name,
                                 template.pid, job.id, exc, "; starting another" if attempt == 1 else "")
                template.stop()
                self._template = None
        if not pid:
            # monitor_work_horse then fails the job (with Retry: re-queues it) through RQ's usual path.
            self.log.error("Worker %s: no template could start job %s", self.name, job.id)
        self._horse_pid = pid
        self._horse_pidfd = None
        if pid:
            with contextlib.suppress(OSError):  # gone already: its exit message is on the way
                self._horse_pidfd = os.pidfd_open(pid)
            self.procline(f"Forked {pid} at {time.time()}")

    def wait_for_horse(self):
        pid = self._horse_pid
        if not pid:
            return None, None, None
        template = self._template
        if template is not None:
            try:
                status = template.wait_exit(pid)
                self._close_horse_pidfd()
                return pid, status, None
            except TemplateGone:
                self.log.warning("Worker %s: template %s died while horse %s ran; waiting for the horse",
                                 self.name, template.pid, pid)
                template.stop()
                self._template = None
        wait_pidfd(pid, self._horse_pidfd)
        self._close_horse_pidfd()
        return pid, None, None

    def _close_horse_pidfd(self) -> None:
        if self._horse_pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._horse_pidfd)
            self._horse_pidfd = None

    def kill_horse(self, sig=signal.SIGKILL):
        if self.horse_pid:  # never killpg(getpgid(0)): that is the worker's own group
            super().kill_horse(sig)

    def teardown(self):
        template, self._template = self._template, None
        if template is not None and self._template_owner == os.getpid():
            template.stop()
        super().teardown()


WORKER_CLASSES: dict[str, type] = {
    "forkserver": ForkServerWorker,
    "warm": WarmSpawnWorker,
    "spawn": AllowListedSpawnWorker,
    "fork": AllowListedForkWorker,
    "simple": AllowListedSimpleWorker,
}
DEFAULT_WORKER_CLASS = defaults.WORKER_CLASS
