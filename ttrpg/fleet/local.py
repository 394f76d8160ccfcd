"""Worker processes on this machine: starting them for a session, and who serves a queue.

:func:`local_workers` starts ``python -m ttrpg worker`` children and stops them when its
block ends; each child dies with its parent (:func:`die_with_parent_from_env`).
:func:`live_workers` says which workers (any machine) serve a queue right now: ``play`` and
``demo`` start local workers only when there are none.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rq import worker_registration
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import Worker

from ttrpg.backend.connection import redis_url, text_of
from ttrpg.defaults import LOCAL_WORKERS_READY_TIMEOUT_S
from ttrpg.exceptions import ConfigError, TTRPGError
from ttrpg.fleet.monitor import monitor_client
from ttrpg.fleet.workers import DEFAULT_WORKER_CLASS, WORKER_CLASSES
from ttrpg.process import pid_alive, set_parent_death_signal
from ttrpg.settings import get_settings

__all__ = ["LocalFleet", "die_with_parent_from_env", "live_workers", "local_workers"]

#: Set in a local worker's environment: the pid of the process that started it.
PARENT_PID_ENV = "TTRPG_WORKER_PARENT_PID"


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


def child_env(settings) -> dict[str, str]:
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
    env[PARENT_PID_ENV] = str(os.getpid())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _registered_names(client, queue_names: list[str]) -> set[str]:
    """Names of workers registered on *every* one of ``queue_names`` (no Worker objects built)."""
    prefix = Worker.redis_worker_namespace_prefix
    sets = []
    for q in queue_names:
        keys = worker_registration.get_keys(queue=Queue(q, connection=client), connection=client)
        sets.append({k[len(prefix):] if k.startswith(prefix) else k for k in map(text_of, keys)})
    return set.intersection(*sets) if sets else set()


def die_with_parent_from_env() -> None:
    """Called by a worker: those started by :func:`local_workers` get SIGTERM (warm shutdown) when it dies."""
    raw = os.environ.get(PARENT_PID_ENV)
    if not raw or not raw.isdigit():
        return
    os.environ.pop(PARENT_PID_ENV, None)  # not for the horses
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != int(raw):
        raise SystemExit(0)


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
                  *, ready_timeout: float = LOCAL_WORKERS_READY_TIMEOUT_S, grace: float = 10.0,
                  log_dir: Path | None = None):
    """Start ``n`` ``python -m ttrpg worker`` processes, wait until they serve, stop them on exit.

    The workers are our children in our process group (a Ctrl+C reaches them too) and get
    SIGTERM from the kernel if we die (``PR_SET_PDEATHSIG``; call this from the main thread
    or a thread that outlives the block). On exit: SIGTERM (the job in flight finishes),
    after ``grace`` seconds a second SIGTERM (cold shutdown), then SIGKILL. Each worker's
    log goes to ``log_dir`` (default ``$TTRPG_HOME/logs``) and is removed when it exits 0.
    Yields a :class:`LocalFleet`.
    """
    settings = settings or get_settings()
    if worker_class not in WORKER_CLASSES:
        raise ConfigError(f"Unknown worker class {worker_class!r}.", hint=f"Use one of: {', '.join(WORKER_CLASSES)}.")
    queue_names = list(queues or [settings.queue])
    redis_url(settings)  # start the embedded server once, before n workers race to
    log_dir = Path(log_dir or Path(settings.home) / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(settings)
    tag = uuid.uuid4().hex[:8]
    fleet = LocalFleet([], [], queue_names, worker_class)
    monitor = monitor_client(settings)
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
    settings = settings or get_settings()
    queue_names = list(queue_names or [settings.queue])
    hostname = socket.gethostname()
    client = monitor_client(settings)
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
