"""RQ workers for ttrpg: warm spawn, the job allow-list, local fleets and dispatch benchmarks.

**Warm spawn** (:class:`WarmSpawnWorker`, the default class). RQ's ``SpawnWorker`` starts a
fresh interpreter for every job (never a fork), but only once the job has been dequeued,
so every job waits for ``python`` to start and for its imports (``openai`` alone takes
0.4-1 s). The warm worker keeps that guarantee and removes the wait: it spawns the *next*
horse ahead of time (right after handing a job to the current one, and whenever it idles
without one), which imports :mod:`ttrpg.jobs` and ``openai`` and then blocks reading one
line from a pipe inherited from the worker. Dispatching a job only writes that
line (job id, execution id, queue name), closes the pipe and records the horse's pid: RQ's
own monitoring, job timeout, results, failures, retries and shutdown then work unchanged.

Lifetime rules of a horse (no orphans, ever):

* a *waiting* horse exits as soon as its pipe reports EOF: the worker stopped, crashed or
  was SIGKILLed (the kernel closes the worker's end). ``PR_SET_PDEATHSIG`` (SIGKILL) is set
  as well while it waits, and the worker kills it on every exit path it controls;
* a *running* horse behaves exactly as RQ's: it is in its own process group (a Ctrl+C on
  the terminal does not reach it) and it finishes its job even if its worker is SIGKILLed;
* a horse that died while waiting is noticed (``waitpid``) and replaced; a job that arrives
  before the pre-spawned horse has finished importing simply waits for it (plain-spawn speed
  at worst). A job is never lost to a missing horse: in the worst case it fails through
  RQ's normal "work-horse terminated unexpectedly" path (and its ``Retry`` re-queues it).

The horse's bootstrap code (with the Redis connection settings) is written into the pipe,
not put on the command line: a Redis password never appears in ``/proc/<pid>/cmdline``
(RQ's own ``SpawnWorker`` puts it there). ``ps -o pid,comm`` shows a waiting, ready horse
as ``ttrpg-ready`` and a horse running a job as ``ttrpg-horse``.

**Allow-list.** Every ttrpg worker class (warm, spawn, fork, simple) executes only the
functions named in :data:`ttrpg.jobs.ALLOWED`. Any other function named in a job (say
``os.getpid``) is refused *before its module is imported*; the job fails with a
``JobRefused`` error, is not retried, and the function is never called. Callbacks
(``on_success`` & co.) outside the allow-list are ignored the same way, RQ webhooks (HTTP
requests to any URL a job names, sent when it finishes or fails) are dropped when a job is
read, refused jobs included, and jobs are only ever read with RQ's JSON serializer (no
pickle from Redis). Where a job's LLM request (and the worker's API key) may go is decided
by the worker, not the job: see :func:`ttrpg.llm.endpoint_for_job`.

Dispatch overhead, enqueue → job running, measured with :func:`measure_dispatch` (2 cores,
embedded Redis, medians of 15, two runs): warm 6-11 ms, spawn 127-132 ms plus the job's own
imports (``openai`` ≈ 0.4-0.5 s, which warm and fork have preloaded), fork 10-14 ms, simple
3 ms (no isolation).
A waiting warm horse holds about 67 MB RSS; it is ready about 0.5 s after it was spawned.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis.exceptions
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker, SpawnWorker, Worker, WorkerStatus

from ttrpg import defaults
from ttrpg.exceptions import ConfigError, TTRPGError
from ttrpg.process import pid_alive

__all__ = [
    "AllowListedJob",
    "AllowListedForkWorker",
    "AllowListedSimpleWorker",
    "AllowListedSpawnWorker",
    "DISPATCH_COST",
    "HorseInfo",
    "JobRefused",
    "LocalFleet",
    "WORKER_CLASSES",
    "WarmSpawnWorker",
    "horses",
    "job_queue",
    "live_workers",
    "local_workers",
    "measure_dispatch",
    "run_worker",
]

log = logging.getLogger("rq.worker")

#: Modules a warm horse imports before its job arrives (a missing one is skipped).
HORSE_PRELOAD = ("ttrpg.jobs", "ttrpg.settings", "ttrpg.research.events", "ttrpg.llm", "openai")

#: Modules the parent of a fork or simple worker imports once, so that jobs do not.
PARENT_PRELOAD = HORSE_PRELOAD


#: What each worker class costs per job, for ``ttrpg worker --help`` and ``ttrpg bench``.
DISPATCH_COST = {
    "warm": "fresh interpreter per job, spawned ahead with openai imported: ~10 ms dispatch; ~65 MB held (default)",
    "spawn": "fresh interpreter per job, spawned when it arrives: ~0.15 s dispatch + the job's imports (openai ~0.5 s)",
    "fork": "fork of the worker, which preloads the job module and openai: ~15 ms; jobs inherit the parent's state",
    "simple": "jobs run inside the worker process: ~3 ms; no isolation, a crash or leak hits every later job",
}

#: ``argv[2]`` of every horse starts with this line; :func:`horses` finds them by it.
HORSE_MARKER = "# ttrpg-horse"
_COMM_READY = b"ttrpg-ready"
_COMM_RUNNING = b"ttrpg-horse"
_PARENT_PID_ENV = "TTRPG_WORKER_PARENT_PID"

_PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- allow-list


class JobRefused(Exception):
    """A job named a function (or callback) that ttrpg workers do not run."""


def refusal(job: Job) -> str | None:
    """Why ``job`` must not run, or None when it names an allow-listed function.

    Reads only the job's stored names: nothing is imported to decide.
    """
    from rq.exceptions import DeserializationError

    from ttrpg.jobs import ALLOWED

    try:
        name = job.func_name
        instance = job.instance
    except DeserializationError:
        return None  # RQ fails an unreadable job on its own
    if instance is not None:
        return f"refused: job {job.id} calls a method on an object; ttrpg workers run only {sorted(ALLOWED)}"
    if name not in ALLOWED:
        return f"refused: {name!r} is not a ttrpg job function; ttrpg workers run only {sorted(ALLOWED)}"
    return None


def _callback_allowed(name: str | None) -> bool:
    if not name:
        return True
    import ttrpg.jobs

    return name in getattr(ttrpg.jobs, "ALLOWED_CALLBACKS", frozenset())


class AllowListedJob(Job):
    """An RQ job that resolves its function only when it is in :data:`ttrpg.jobs.ALLOWED`.

    RQ resolves ``job.func`` with ``import_attribute`` (importing any module named in the
    job); this class checks the name first and raises :class:`JobRefused` instead. Callbacks
    not listed in ``ttrpg.jobs.ALLOWED_CALLBACKS`` (none by default) are treated as absent.
    Webhooks (rq 3's ``Job.webhooks``: a URL, method and headers per terminal status) are
    dropped when the job is read and never sent: ttrpg uses none, and a job written into Redis
    must not make a worker, or the DM's registry sweep, send requests where it likes.
    """

    def restore(self, raw_data):
        result = super().restore(raw_data)
        if getattr(self, "webhooks", None):
            log.warning("Job %s: ignoring %d webhook(s); ttrpg workers send none", self.id, len(self.webhooks))
            self.webhooks = []
        return result

    def send_webhooks(self, status, *, exc_string=None) -> None:
        """Never sends anything (see the class docstring)."""
        return None

    @property
    def func(self):
        reason = refusal(self)
        if reason:
            raise JobRefused(reason)
        return super().func

    def _checked_callback(self, kind: str):
        name = getattr(self, f"_{kind}_callback_name", None)
        if not _callback_allowed(name):
            log.warning("Job %s: ignoring %s callback %r, which is not allow-listed", self.id, kind, name)
            return None
        return getattr(Job, f"{kind}_callback").fget(self)

    @property
    def success_callback(self):
        return self._checked_callback("success")

    @property
    def failure_callback(self):
        return self._checked_callback("failure")

    @property
    def stopped_callback(self):
        return self._checked_callback("stopped")


def job_queue(name: str, connection) -> Queue:
    """The RQ queue ``name`` as ttrpg uses it: JSON serializer, allow-listed job class."""
    return Queue(name, connection=connection, serializer=JSONSerializer, job_class=AllowListedJob)


# --------------------------------------------------------------------------- small helpers


def _libc():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:  # pragma: no cover - non-Linux
        return None


def _set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)``: the kernel sends ``sig`` when our parent (thread) dies."""
    libc = _libc()
    if libc is None or not sys.platform.startswith("linux"):
        return False
    try:
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except Exception:  # pragma: no cover
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


#: Parent-side pipe ends of waiting horses. A forked child (RQ's scheduler) must not keep
#: them open, or a waiting horse would outlive its worker: they are closed after any fork.
_PARENT_FDS: set[int] = set()


def _close_parent_fds_in_child() -> None:
    for fd in list(_PARENT_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _PARENT_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_parent_fds_in_child)


# --------------------------------------------------------------------------- the horse's code

# Passed with ``python -c``: tiny and secret-free. It arms PR_SET_PDEATHSIG, then reads the
# real source (below, with the Redis settings) from the pipe and runs it.
_HORSE_BOOT = HORSE_MARKER + """ (see ttrpg.fleet): a fresh interpreter waiting for one job
import os, sys
try:
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    _libc.prctl(1, 9, 0, 0, 0)
except Exception:
    _libc = None
if os.getppid() != int(sys.argv[2]):
    os._exit(0)
_pipe = open(int(sys.argv[1]), 'rb')
_size = _pipe.readline()
if not _size:
    os._exit(0)
exec(compile(_pipe.read(int(_size)), '<ttrpg-horse>', 'exec'))
"""

# Preceded by assignments of _PATH, _PRELOAD, _PAYLOAD, _REDIS, _KEY, _SERIALIZER, _NAME, _LOG_LEVEL.
# After the "Recreate worker instance" part this is RQ 3.0's SpawnWorker horse, unchanged.
_HORSE_MAIN = """
import json, pickle
sys.path[:] = _PATH
for _module in _PRELOAD:
    try:
        __import__(_module)
    except ModuleNotFoundError as _exc:
        if _exc.name != _module:
            sys.stderr.write('ttrpg horse: could not preload %s: %r\\n' % (_module, _exc))
    except Exception as _exc:
        sys.stderr.write('ttrpg horse: could not preload %s: %r\\n' % (_module, _exc))
from redis import Redis
from rq.executions import Execution
worker_class, worker_attributes = pickle.loads(_PAYLOAD)
if _LOG_LEVEL:
    import logging
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter('%(asctime)s %(message)s', datefmt='%H:%M:%S'))
    _logger = logging.getLogger('rq')
    _logger.addHandler(_handler)
    _logger.setLevel(_LOG_LEVEL)
    _logger.propagate = False

def _prctl(option, value):
    if _libc is not None:
        try:
            _libc.prctl(option, value, 0, 0, 0)
        except Exception:
            pass

redis = Redis(**_REDIS)
try:
    redis.ping()  # connect now; redis-py reconnects by itself if Redis restarts meanwhile
except Exception:
    pass

_prctl(15, b'ttrpg-ready')
_line = _pipe.readline()
_pipe.close()
if not _line:
    os._exit(0)
_prctl(1, 0)
_prctl(15, b'ttrpg-horse')
_job = json.loads(_line)
os.environ['RQ_WORKER_ID'] = _NAME
os.environ['RQ_JOB_ID'] = _job['job']
os.environ['RQ_EXECUTION_ID'] = _job['execution']

worker = worker_class.find_by_key(
    _KEY,
    connection=redis,
    job_class=worker_attributes['job_class'],
    queue_class=worker_attributes['queue_class'],
    serializer=_SERIALIZER,
)
if not worker:
    sys.exit(1)
for name, value in worker_attributes.items():
    setattr(worker, name, value)

job = worker.job_class.fetch(_job['job'], connection=worker.connection, serializer=worker.serializer)
queue = worker.queue_class(
    _job['queue'],
    connection=worker.connection,
    job_class=worker.job_class,
    serializer=worker.serializer,
    death_penalty_class=worker.death_penalty_class,
)
execution = Execution.fetch(_job['execution'], job.id, connection=worker.connection)
execution._job = job
worker.execution = execution

worker.main_work_horse(job, queue)
"""


@dataclass
class _Horse:
    pid: int
    fd: int | None
    spawned_at: float
    broken: bool = False


# --------------------------------------------------------------------------- worker classes


class _DyingScheduler(RQScheduler):
    """RQ's scheduler process, which also stops (SIGTERM) when its worker dies.

    RQ forks it from the worker and nothing ends it if the worker is SIGKILLed.
    """

    def start(self):
        self._ttrpg_parent = os.getpid()
        return super().start()

    def work(self):
        _set_parent_death_signal(signal.SIGTERM)
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
        from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

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
        wait = 1.0
        while True:
            try:
                return super().check_for_suspension(burst)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                if self._stop_requested:
                    return None
                self.log.error("Worker %s: Redis unavailable (%s); retrying in %.0f s", self.name, exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, defaults.REDIS_RETRY_MAX_S)

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
        self._waiting_horse: _Horse | None = None
        self._horse_owner: int | None = None
        self.warm_dispatches = 0
        self.cold_dispatches = 0

    def bootstrap(self, *args, **kwargs):
        self._horse_owner = os.getpid()
        super().bootstrap(*args, **kwargs)

    # -- spawning -------------------------------------------------------------------------
    def _horse_source(self, preload: tuple[str, ...]) -> bytes:
        """The horse's code, with this worker's settings (RQ's SpawnWorker recipe)."""
        from redis import SSLConnection
        from rq.connections import get_connection_kwargs

        redis_kwargs = get_connection_kwargs(self.connection)
        if "path" in redis_kwargs:
            redis_kwargs["unix_socket_path"] = redis_kwargs.pop("path")
        if issubclass(self.connection.connection_pool.connection_class, SSLConnection):
            redis_kwargs["ssl"] = True
        redis_kwargs.pop("retry", None)
        redis_kwargs.pop("driver_info", None)
        preamble = (
            f"_PATH = {sys.path!r}\n_PRELOAD = {tuple(preload)!r}\n_PAYLOAD = {self._dump_worker_config()!r}\n"
            f"_REDIS = {redis_kwargs!r}\n_KEY = {self.key!r}\n_SERIALIZER = {self._serializer_arg!r}\n"
            f"_NAME = {self.name!r}\n_LOG_LEVEL = {logging.getLogger('rq').level!r}\n"
        )
        return (preamble + _HORSE_MAIN).encode()

    def _spawn_horse(self, preload: tuple[str, ...]) -> _Horse:
        read_fd, write_fd = os.pipe()
        try:
            os.set_inheritable(read_fd, True)
            argv = [sys.executable, "-c", _HORSE_BOOT, str(read_fd), str(os.getpid()), self.name]
            spawned_at = time.time()
            # setpgroup=0: own process group before any of its code runs, as RQ does
            pid = os.posix_spawn(sys.executable, argv, os.environ, setpgroup=0)
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        horse = _Horse(pid, write_fd, spawned_at)
        _PARENT_FDS.add(write_fd)
        source = self._horse_source(preload)
        try:
            _write_all(write_fd, b"%d\n" % len(source) + source)
        except BrokenPipeError:
            horse.broken = True
        return horse

    def _close_pipe(self, horse: _Horse) -> None:
        if horse.fd is not None:
            _PARENT_FDS.discard(horse.fd)
            with contextlib.suppress(OSError):
                os.close(horse.fd)
            horse.fd = None

    def _discard(self, horse: _Horse) -> None:
        """Stop and reap a horse that has no job (yet)."""
        self._close_pipe(horse)
        with contextlib.suppress(ProcessLookupError):
            os.kill(horse.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(horse.pid, 0)

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
        self._close_pipe(horse)
        if pid == 0:  # alive but its pipe broke
            self._discard(horse)
        self._waiting_horse = None
        return False

    def _ensure_waiting_horse(self) -> None:
        if not self.prespawn or self._horse_owner != os.getpid() or self._is_horse:
            return
        if self._stop_requested or self.horse_pid:
            return
        if self._waiting_horse_alive():
            return
        self._waiting_horse = self._spawn_horse(self.horse_preload)
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
        warm = horse is not None and _read_comm(horse.pid) == _COMM_READY
        for attempt in (1, 2):
            if horse is None:
                horse = self._spawn_horse(self.horse_preload)
            try:
                if horse.broken:
                    raise BrokenPipeError
                _write_all(horse.fd, line)  # type: ignore[arg-type]
                break
            except BrokenPipeError:
                if attempt == 2:
                    # Leave it to monitor_work_horse: it reaps the dead horse and fails
                    # (or, with Retry, re-queues) the job through RQ's usual path.
                    self.log.error("Worker %s: horse %s died before taking job %s", self.name, horse.pid, job.id)
                    break
                self.log.warning("Worker %s: horse %s died before taking job %s; spawning another",
                                 self.name, horse.pid, job.id)
                self._discard(horse)
                horse, warm = None, False
        self._close_pipe(horse)  # type: ignore[arg-type]
        self._horse_pid = horse.pid  # type: ignore[union-attr]
        self.procline(f"Spawned {horse.pid} at {time.time()}")  # type: ignore[union-attr]
        if self.prespawn and not self._stop_requested:
            # The next horse imports while this job runs: back-to-back jobs find it ready.
            try:
                self._waiting_horse = self._spawn_horse(self.horse_preload)
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
            self._discard(horse)

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
DEFAULT_WORKER_CLASS = "warm"


# --------------------------------------------------------------------------- horses in /proc


@dataclass(frozen=True)
class HorseInfo:
    """A ttrpg horse process as ``/proc`` shows it."""

    pid: int
    ppid: int
    worker: str
    state: str  # "starting" (importing), "ready" (waiting for a job), "running", "zombie"
    rss_kb: int | None


def _read_comm(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip()
    except OSError:
        return b""


def horses(worker_name: str | None = None) -> list[HorseInfo]:
    """Every ttrpg horse process on this machine (of one worker, by name, if given)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if len(argv) < 6 or argv[1] != b"-c" or not argv[2].startswith(HORSE_MARKER.encode()):
                continue
            name = argv[5].decode(errors="replace")
            if worker_name is not None and name != worker_name:
                continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2:].split()
            status, ppid = fields[0].decode(), int(fields[1])
            rss = None
            with open(f"/proc/{pid}/status", "rb") as f:
                for raw in f:
                    if raw.startswith(b"VmRSS:"):
                        rss = int(raw.split()[1])
            comm = _read_comm(pid)
        except (OSError, ValueError, IndexError):
            continue
        if status == "Z":
            state = "zombie"
        elif comm == _COMM_READY:
            state = "ready"
        elif comm == _COMM_RUNNING:
            state = "running"
        else:
            state = "starting"
        found.append(HorseInfo(pid, ppid, name, state, rss))
    return found


# --------------------------------------------------------------------------- running a worker


def _worker_connection(settings):
    from ttrpg.backend.connection import get_redis

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


def _die_with_parent_from_env() -> None:
    """Workers started by :func:`local_workers` get SIGTERM (warm shutdown) when it dies."""
    raw = os.environ.get(_PARENT_PID_ENV)
    if not raw or not raw.isdigit():
        return
    os.environ.pop(_PARENT_PID_ENV, None)  # not for the horses
    _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != int(raw):
        raise SystemExit(0)


def _wait_for_redis(connection, stop: dict) -> bool:
    """Ping until Redis answers (True) or a signal asks us to stop (False)."""
    wait = 1.0
    while not stop["requested"]:
        try:
            connection.ping()
            return True
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            log.error("Redis unavailable (%s); retrying in %.0f s", exc, wait)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not stop["requested"]:
            time.sleep(0.2)
        wait = min(wait * 2, defaults.REDIS_RETRY_MAX_S)
    return False


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
    from ttrpg.settings import get_settings

    settings = settings or get_settings()
    try:
        cls = WORKER_CLASSES[worker_class]
    except KeyError:
        raise ConfigError(f"Unknown worker class {worker_class!r}.",
                          hint=f"Use one of: {', '.join(WORKER_CLASSES)}.") from None
    queue_names = list(queues or [settings.queue])
    _die_with_parent_from_env()
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
            if not _wait_for_redis(connection, stop):
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


# --------------------------------------------------------------------------- fleets


@dataclass
class LocalFleet:
    """Worker processes started by :func:`local_workers`."""

    procs: list[subprocess.Popen]
    names: list[str]
    queues: list[str]
    worker_class: str
    log_paths: list[Path] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def _child_env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env["TTRPG_HOME"] = str(settings.home)
    for key in ("TTRPG_REDIS_URL", "REDIS_URL"):
        env.pop(key, None)
    if settings.redis_url:
        env["TTRPG_REDIS_URL"] = settings.redis_url
    env["TTRPG_QUEUE"] = settings.queue
    env["TTRPG_WARM_SPAWN"] = "1" if settings.warm_spawn else "0"
    allowed = ",".join(getattr(settings, "allowed_base_urls", ()) or ())
    for key, value in (("OPENAI_BASE_URL", settings.openai_base_url), ("OPENAI_API_KEY", settings.openai_api_key),
                       ("TTRPG_MODEL", settings.model), ("TTRPG_ALLOWED_BASE_URLS", allowed)):
        if value:
            env[key] = value
    env[_PARENT_PID_ENV] = str(os.getpid())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _registered_names(client, queue_names: list[str]) -> set[str]:
    """Names of workers registered on *every* one of ``queue_names`` (no Worker objects built)."""
    from rq import worker_registration

    prefix = Worker.redis_worker_namespace_prefix
    sets = []
    for q in queue_names:
        keys = worker_registration.get_keys(queue=Queue(q, connection=client), connection=client)
        sets.append({k[len(prefix):] if k.startswith(prefix) else k for k in map(_text, keys)})
    return set.intersection(*sets) if sets else set()


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _monitor_client(settings):
    from ttrpg.backend.connection import get_redis

    # A client of its own: building rq Worker objects rewrites a pool's socket_timeout.
    return get_redis(settings, socket_timeout=defaults.REDIS_MONITOR_SOCKET_TIMEOUT_S)


def _stop_procs(procs: list[subprocess.Popen], grace: float) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)  # warm shutdown: finish the current job
    deadline = time.monotonic() + grace
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.0, deadline - time.monotonic()))
    late = [p for p in procs if p.poll() is None]
    for p in late:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)  # second signal: cold shutdown, kills the horse
    deadline = time.monotonic() + 5.0
    for p in late:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextlib.contextmanager
def local_workers(n: int, queues: list[str] | None = None, worker_class: str = DEFAULT_WORKER_CLASS, settings=None,
                  *, ready_timeout: float = 30.0, grace: float = 10.0, log_dir: Path | None = None):
    """Start ``n`` ``python -m ttrpg worker`` processes, wait until they serve, stop them on exit.

    The workers are our children in our process group (a Ctrl+C reaches them too) and get
    SIGTERM from the kernel if we die (``PR_SET_PDEATHSIG``; call this from the main thread
    or a thread that outlives the block). On exit: SIGTERM (the job in flight finishes),
    after ``grace`` seconds a second SIGTERM (cold shutdown), then SIGKILL. Each worker's
    log goes to ``log_dir`` (default ``$TTRPG_HOME/logs``) and is removed when it exits 0.
    Yields a :class:`LocalFleet`.
    """
    from ttrpg.backend.connection import redis_url
    from ttrpg.settings import get_settings

    settings = settings or get_settings()
    if worker_class not in WORKER_CLASSES:
        raise ConfigError(f"Unknown worker class {worker_class!r}.", hint=f"Use one of: {', '.join(WORKER_CLASSES)}.")
    queue_names = list(queues or [settings.queue])
    redis_url(settings)  # start the embedded server once, before n workers race to
    log_dir = Path(log_dir or Path(settings.home) / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = _child_env(settings)
    tag = uuid.uuid4().hex[:8]
    fleet = LocalFleet([], [], queue_names, worker_class)
    monitor = _monitor_client(settings)
    try:
        for i in range(n):
            name = f"local-{os.getpid()}-{tag}-{i}"
            path = log_dir / f"worker-{name}.log"
            args = [sys.executable, "-m", "ttrpg", "worker", "--worker-class", worker_class, "--name", name]
            for q in queue_names:
                args += ["--queues", q]
            with open(path, "wb") as out:
                proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=False, close_fds=True)
            fleet.procs.append(proc)
            fleet.names.append(name)
            fleet.log_paths.append(path)
        deadline = time.monotonic() + ready_timeout
        while True:
            for proc, path in zip(fleet.procs, fleet.log_paths):
                if proc.poll() is not None:
                    tail = path.read_text(errors="replace")[-800:] if path.exists() else ""
                    raise TTRPGError(f"A local worker exited with code {proc.returncode} before serving "
                                     f"{', '.join(queue_names)}:\n{tail}", hint=f"See {path}.")
            if set(fleet.names) <= _registered_names(monitor, queue_names):
                break
            if time.monotonic() > deadline:
                raise TTRPGError(f"Local workers did not register within {ready_timeout:.0f} s.",
                                 hint=f"See the logs in {log_dir}.")
            time.sleep(0.05)
        yield fleet
    finally:
        _stop_procs(fleet.procs, grace)
        monitor.close()
        for proc, path in zip(fleet.procs, fleet.log_paths):
            if proc.returncode == 0:
                with contextlib.suppress(OSError):
                    path.unlink()


def _orphaned_local(name: str) -> bool:
    """A ``local-<parent pid>-...`` worker whose parent (the session that started it) is gone."""
    parts = name.split("-")
    return len(parts) > 2 and parts[0] == "local" and parts[1].isdigit() and not pid_alive(int(parts[1]))


def live_workers(queue_names: list[str] | None = None, settings=None) -> list[dict]:
    """Workers that currently serve any of ``queue_names`` (default: the configured queue).

    A worker counts while its RQ registration has not expired; one on this host whose pid
    is gone is left out at once. ``play``/``demo`` start local workers only when this is empty.
    """
    from ttrpg.settings import get_settings

    settings = settings or get_settings()
    queue_names = list(queue_names or [settings.queue])
    import socket

    hostname = socket.gethostname()
    client = _monitor_client(settings)
    try:
        seen: dict[str, dict] = {}
        for q in queue_names:
            for w in Worker.all(queue=Queue(q, connection=client, serializer=JSONSerializer)):
                if w.name in seen:
                    continue
                if w.hostname == hostname and w.pid and not pid_alive(w.pid):
                    continue
                if w.hostname == hostname and _orphaned_local(w.name):
                    continue  # a dead session's local worker, finishing its job before it exits
                seen[w.name] = {
                    "name": w.name, "hostname": w.hostname, "pid": w.pid, "state": str(w.get_state()),
                    "queues": w.queue_names(),
                    "last_heartbeat": w.last_heartbeat.isoformat() if w.last_heartbeat else None,
                    "birth": w.birth_date.isoformat() if w.birth_date else None,
                }
        return list(seen.values())
    finally:
        client.close()


# --------------------------------------------------------------------------- measuring


def _percentile(sorted_values: list[float], p: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    k = (len(sorted_values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _run_probe(queue: Queue, timeout: float = 60.0) -> tuple[float, dict, float]:
    """Enqueue probe(); return (enqueue time, its result, time the result was seen)."""
    from rq.results import Result

    enqueued = time.time()
    job = queue.enqueue("ttrpg.jobs.probe", result_ttl=300, failure_ttl=300)
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


def measure_dispatch(worker_class: str = DEFAULT_WORKER_CLASS, n: int = 15, settings=None) -> dict:
    """Dispatch overhead of one worker of ``worker_class``: enqueue → job running, in ms.

    Starts one local worker on a private queue, runs a warm-up job, then ``n`` ``probe()``
    jobs one after another (for the warm class, each once the next horse is ready, which
    is the steady state of an idle worker). Returns ``median_ms``, ``p10_ms``, ``p90_ms``,
    ``min_ms``, ``max_ms`` (probe's ``started_at`` minus the enqueue time), ``result_ms``
    (median enqueue → result seen), and for the warm class ``horse_ready_ms`` (median time
    from a job's result to the next horse being ready) and ``horse_rss_kb`` (a waiting
    horse's resident memory).
    """
    from ttrpg.backend.connection import get_redis
    from ttrpg.settings import get_settings

    settings = settings or get_settings()
    queue_name = f"bench-{uuid.uuid4().hex[:10]}"
    client = get_redis(settings)
    queue = job_queue(queue_name, client)
    warm = worker_class == "warm" and settings.warm_spawn
    dispatch, result_ms, ready_ms, rss = [], [], [], []
    try:
        with local_workers(1, [queue_name], worker_class, settings) as fleet:
            name = fleet.names[0]
            _run_probe(queue)  # warm-up: first horse, imports, connections
            for _ in range(n):
                if warm:
                    t_done = time.time()
                    horse = _wait_ready_horse(name)
                    if horse is not None:
                        ready_ms.append((time.time() - t_done) * 1000)
                        if horse.rss_kb:
                            rss.append(horse.rss_kb)
                else:
                    time.sleep(0.05)
                enqueued, value, seen = _run_probe(queue)
                dispatch.append((value["started_at"] - enqueued) * 1000)
                result_ms.append((seen - enqueued) * 1000)
    finally:
        with contextlib.suppress(Exception):
            queue.delete(delete_jobs=True)
        client.close()
    ordered = sorted(dispatch)
    out = {
        "worker_class": worker_class, "n": n,
        "median_ms": round(statistics.median(ordered), 1),
        "p10_ms": round(_percentile(ordered, 0.10), 1),
        "p90_ms": round(_percentile(ordered, 0.90), 1),
        "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1),
        "result_ms": round(statistics.median(result_ms), 1),
    }
    if warm:
        out["horse_ready_ms"] = round(statistics.median(ready_ms), 1) if ready_ms else None
        out["horse_rss_kb"] = int(statistics.median(rss)) if rss else None
    return out
