"""The work horse of the spawn and warm workers: its code, how it starts, how to find it.

A horse is a fresh interpreter started with ``python -c`` and a tiny, secret-free bootstrap
(:data:`HORSE_MARKER` first, so :func:`horses` can find it). The bootstrap reads the real
code, with the worker's Redis settings, from a pipe inherited from the worker: a Redis
password never appears in ``/proc/<pid>/cmdline`` (RQ's own ``SpawnWorker`` puts it there).
A warm horse then imports :data:`HORSE_PRELOAD` and blocks reading one line from that pipe:
its job (job id, execution id, queue name). ``ps -o pid,comm`` shows a waiting, ready horse
as ``ttrpg-ready`` and a horse running a job as ``ttrpg-horse``.

Lifetime rules (no orphans, ever):

* a *waiting* horse exits as soon as its pipe reports EOF: the worker stopped, crashed or
  was SIGKILLed (the kernel closes the worker's end). ``PR_SET_PDEATHSIG`` (SIGKILL) is set
  as well while it waits, and the worker kills it (:func:`discard`) on every exit path it controls;
* a *running* horse behaves exactly as RQ's: it is in its own process group (a Ctrl+C on
  the terminal does not reach it) and it finishes its job even if its worker is SIGKILLed.

A waiting warm horse holds about 67 MB RSS; it is ready about 0.5 s after it was spawned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass

from redis import SSLConnection
from rq.connections import get_connection_kwargs

from ttrpg.process import PF_EXITING, proc_stat, read_comm

__all__ = ["HORSE_MARKER", "HORSE_PRELOAD", "Horse", "HorseInfo", "close_pipe", "discard", "horses", "is_ready",
           "spawn_horse", "write_all"]

#: Modules a warm horse imports before its job arrives (a missing one is skipped).
HORSE_PRELOAD = ("ttrpg.jobs.functions", "ttrpg.settings", "ttrpg.research.events", "ttrpg.llm.client", "openai")

#: Called (module, function) by a fork server's template once the preloads are imported, before
#: any job exists: the lazy set-up of a first LLM request, done once for all its children (a warm
#: horse does not: it would spend about a second of CPU on it for its one job).
HORSE_WARM_UP = ("ttrpg.fleet.horse", "warm_up")

#: ``argv[2]`` of every horse starts with this line; :func:`horses` finds them by it.
HORSE_MARKER = "# ttrpg-horse"
_COMM_READY = b"ttrpg-ready"
_COMM_RUNNING = b"ttrpg-horse"
COMM_TEMPLATE = b"ttrpg-template"


# Passed with ``python -c``: tiny and secret-free. It arms PR_SET_PDEATHSIG, then reads the
# real source (below, with the Redis settings) from the pipe and runs it.
_HORSE_BOOT = HORSE_MARKER + """ (see ttrpg.fleet.horse): a fresh interpreter waiting for one job
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
# Imports the preloads, rebuilds the worker's settings and defines _prctl and _find_worker. Shared by the warm
# horse (below) and the fork server's template (ttrpg.fleet.forkserver).
HORSE_SETUP = """
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
if _WARM_UP:
    try:
        __import__(_WARM_UP[0], fromlist=['_']).__dict__[_WARM_UP[1]]()
    except Exception as _exc:
        sys.stderr.write('ttrpg horse: warm-up failed (jobs start slower): %r\\n' % (_exc,))
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import parse_job_id
try:
    import redis.driver_info
    # No driver info: redis-py otherwise reads its own version from the package metadata on disk
    # for every client it builds (about 5 ms and 500 page faults in each forked child) and sends two
    # CLIENT SETINFO round trips on every connection, which a one-job process does not need.
    _REDIS = {**_REDIS, 'driver_info': None}
except ImportError:  # an older redis-py: no driver info, no CLIENT SETINFO
    pass
# Configuration only, never connected here: a fork server's children inherit it from their template
# (redis-py gives each process a fresh connection pool) instead of each building its own.
_CLIENT = Redis(**_REDIS)
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

def _find_worker(connection):
    return worker_class.find_by_key(
        _KEY,
        connection=connection,
        job_class=worker_attributes['job_class'],
        queue_class=worker_attributes['queue_class'],
        serializer=_SERIALIZER,
    )
"""

# Before its job exists, a waiting horse connects and reads its worker's record (RQ's
# SpawnWorker horse does this after the job arrived: one Redis round trip and some parsing
# less on the way to the job). Best effort: if Redis is away, HORSE_JOB does it later.
HORSE_PREPARE = """
redis = _CLIENT
worker = None
try:
    redis.ping()  # connect now; redis-py reconnects by itself if Redis restarts meanwhile
    worker = _find_worker(redis)
except Exception:
    worker = None
"""

# Runs the job named by ``_line`` (one JSON line: job id, execution id, queue) in this process,
# with the Redis client ``redis``. This is RQ 3.0's SpawnWorker horse, except that it reads the
# job and the execution in one round trip instead of two.
HORSE_JOB = """
_prctl(1, 0)
_prctl(15, b'ttrpg-horse')
_job = json.loads(_line)
os.environ['RQ_WORKER_ID'] = _NAME
os.environ['RQ_JOB_ID'] = _job['job']
os.environ['RQ_EXECUTION_ID'] = _job['execution']

if not worker:
    worker = _find_worker(redis)
if not worker:
    sys.exit(1)
for name, value in worker_attributes.items():
    setattr(worker, name, value)

# Job.fetch and Execution.fetch, in one round trip: both hashes through one pipeline, then the
# classes' own restore() (the allow-listed job class checks the job there).
job = worker.job_class(parse_job_id(_job['job']), connection=worker.connection, serializer=worker.serializer)
execution = Execution(_job['execution'], job.id, connection=worker.connection)
with worker.connection.pipeline(transaction=False) as _pipe:
    _pipe.hgetall(job.key)
    _pipe.hgetall(execution.key)
    _job_hash, _execution_hash = _pipe.execute()
if not _job_hash:
    raise NoSuchJobError('No such job: %s' % job.key)
if not _execution_hash:
    raise ValueError('Execution %s not found in Redis' % execution.id)
job.restore(_job_hash)
execution.restore(_execution_hash)
queue = worker.queue_class(
    _job['queue'],
    connection=worker.connection,
    job_class=worker.job_class,
    serializer=worker.serializer,
    death_penalty_class=worker.death_penalty_class,
)
execution._job = job
worker.execution = execution

worker.main_work_horse(job, queue)
"""

# The warm horse: connect, say ready, wait for one job line on the pipe, run it.
_HORSE_MAIN = HORSE_SETUP + HORSE_PREPARE + """
_prctl(15, b'ttrpg-ready')
_line = _pipe.readline()
_pipe.close()
if not _line:
    os._exit(0)
""" + HORSE_JOB


@dataclass
class Horse:
    """A horse this worker spawned; ``fd`` is the worker's end of its pipe until the job is sent."""

    pid: int
    fd: int | None
    spawned_at: float
    broken: bool = False


#: Parent-side pipe ends of waiting horses (and of fork-server templates). A forked child (RQ's scheduler) must not keep
#: them open, or a waiting horse would outlive its worker: they are closed after any fork.
PARENT_FDS: set[int] = set()


def _close_parent_fds_in_child() -> None:
    for fd in list(PARENT_FDS):
        with contextlib.suppress(OSError):
            os.close(fd)
    PARENT_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_parent_fds_in_child)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def horse_source(worker, preload: tuple[str, ...], main: str = _HORSE_MAIN, extra: dict | None = None,
                 warm_up: bool = False) -> bytes:
    """The horse's code (``main``), with ``worker``'s settings (RQ's SpawnWorker recipe).

    ``extra`` adds plain-data assignments to the preamble (e.g. the fork server's pipe fds).
    """
    redis_kwargs = get_connection_kwargs(worker.connection)
    if "path" in redis_kwargs:
        redis_kwargs["unix_socket_path"] = redis_kwargs.pop("path")
    if issubclass(worker.connection.connection_pool.connection_class, SSLConnection):
        redis_kwargs["ssl"] = True
    redis_kwargs.pop("retry", None)
    redis_kwargs.pop("driver_info", None)
    preamble = (
        f"_PATH = {sys.path!r}\n_PRELOAD = {tuple(preload)!r}\n_PAYLOAD = {worker._dump_worker_config()!r}\n"
        f"_REDIS = {redis_kwargs!r}\n_KEY = {worker.key!r}\n_SERIALIZER = {worker._serializer_arg!r}\n"
        f"_NAME = {worker.name!r}\n_LOG_LEVEL = {logging.getLogger('rq').level!r}\n"
        f"_WARM_UP = {HORSE_WARM_UP if warm_up else None!r}\n"
    ) + "".join(f"{name} = {value!r}\n" for name, value in (extra or {}).items())
    return (preamble + main).encode()


def spawn_horse(worker, preload: tuple[str, ...], main: str = _HORSE_MAIN, extra: dict | None = None,
                pass_fds: tuple[int, ...] = (), warm_up: bool = False) -> Horse:
    """Start a horse for ``worker`` and write its code into its pipe; it then waits for its job.

    ``main``, ``extra`` and ``pass_fds`` (made inheritable for the child only) let the fork
    server start its template through the same secret-free bootstrap.
    """
    read_fd, write_fd = os.pipe()
    try:
        for fd in (read_fd, *pass_fds):
            os.set_inheritable(fd, True)
        argv = [sys.executable, "-c", _HORSE_BOOT, str(read_fd), str(os.getpid()), worker.name]
        spawned_at = time.time()
        # setpgroup=0: own process group before any of its code runs, as RQ does
        pid = os.posix_spawn(sys.executable, argv, os.environ, setpgroup=0)
    except BaseException:
        os.close(write_fd)
        raise
    finally:
        os.close(read_fd)
        for fd in pass_fds:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
    horse = Horse(pid, write_fd, spawned_at)
    PARENT_FDS.add(write_fd)
    source = horse_source(worker, preload, main, extra, warm_up)
    try:
        write_all(write_fd, b"%d\n" % len(source) + source)
    except BrokenPipeError:
        horse.broken = True
    return horse


def close_pipe(horse: Horse) -> None:
    if horse.fd is not None:
        PARENT_FDS.discard(horse.fd)
        with contextlib.suppress(OSError):
            os.close(horse.fd)
        horse.fd = None


def discard(horse: Horse) -> None:
    """Stop and reap a horse that has no job (yet)."""
    close_pipe(horse)
    with contextlib.suppress(ProcessLookupError):
        os.kill(horse.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(horse.pid, 0)


def is_ready(pid: int) -> bool:
    """True when the horse has imported its preloads and waits for its job."""
    return read_comm(pid) == _COMM_READY


def warm_up() -> None:
    """Do once, before any job, the lazy set-up every job would otherwise repeat (~50 ms each).

    RQ parses every timestamp it reads with ``strptime``, whose first call imports
    ``_strptime`` and compiles its patterns (about 20 ms); the first LLM request sets up
    openai, httpx and the offline model (:func:`ttrpg.llm.client.warm_up`). No Redis,
    network or secret is involved.
    """
    from rq.utils import now, utcformat, utcparse

    utcparse(utcformat(now()))
    from ttrpg.llm.client import warm_up as warm_up_llm

    warm_up_llm()


# --------------------------------------------------------------------------- horses in /proc


@dataclass(frozen=True)
class HorseInfo:
    """A ttrpg horse process as ``/proc`` shows it."""

    pid: int
    ppid: int
    worker: str
    # "starting" (importing), "template" (fork server), "ready" (waiting for a job), "running",
    # "exiting" (its job is over; the kernel is tearing it down), "zombie"
    state: str
    rss_kb: int | None


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
            st = proc_stat(pid)
            if st is None:
                continue
            status, ppid, flags = st
            rss = None
            with open(f"/proc/{pid}/status", "rb") as f:
                for raw in f:
                    if raw.startswith(b"VmRSS:"):
                        rss = int(raw.split()[1])
            comm = read_comm(pid)
        except (OSError, ValueError, IndexError):
            continue
        if status == "Z":
            state = "zombie"
        elif flags & PF_EXITING:
            state = "exiting"  # a horse that reported its end tears down at the lowest priority
        elif comm == _COMM_READY:
            state = "ready"
        elif comm == _COMM_RUNNING:
            state = "running"
        elif comm == COMM_TEMPLATE:
            state = "template"
        else:
            state = "starting"
        found.append(HorseInfo(pid, ppid, name, state, rss))
    return found
