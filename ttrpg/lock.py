"""One driver per session: a Redis lock taken with ``SET NX PX`` and renewed by a thread.

Two processes running the same LangGraph thread would both run its nodes; nothing in
LangGraph prevents it, so ``play`` and ``resume`` hold this lock while they drive.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid

from ttrpg import defaults
from ttrpg.constants import SESSION_LOCK
from ttrpg.exceptions import SessionLocked
from ttrpg.process import pid_alive


_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


_TAKE_OVER = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
              "return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return false")


class SessionLock:
    """One driver per session: taken with ``SET NX PX``, renewed by a daemon thread."""

    def __init__(self, redis, session_id: str, ttl_ms: int = defaults.SESSION_LOCK_TTL_MS):
        self.redis, self.session_id, self.ttl_ms = redis, session_id, ttl_ms
        self.key = SESSION_LOCK.format(session_id=session_id)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms) and not self._take_over_dead_holder():
            holder = (self.redis.get(self.key) or b"?").decode()
            host, pid = (holder.split(":") + ["?", "?"])[:2]
            raise SessionLocked(f"Session {self.session_id!r} is open elsewhere (host {host}, pid {pid}).")
        self._thread = threading.Thread(target=self._renew, name=f"lock-{self.session_id}", daemon=True)
        self._thread.start()

    def _take_over_dead_holder(self) -> bool:
        """A lock held by a process of this host that no longer exists (kill -9) is stale:
        take it at once instead of making the DM wait for it to expire."""
        holder = self.redis.get(self.key)
        if not holder:
            return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        host, _, rest = holder.decode().partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or pid_alive(int(pid)):
            return False
        return bool(self.redis.eval(_TAKE_OVER, 1, self.key, holder, self.token, self.ttl_ms))

    def _renew(self) -> None:
        while not self._stop.wait(defaults.SESSION_LOCK_RENEW_S):
            try:
                self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)
            except Exception:  # Redis briefly away: the next renewal (or the TTL) decides
                pass

    def release(self) -> None:
        self._stop.set()
        try:
            self.redis.eval(_RELEASE, 1, self.key, self.token)
        except Exception:
            pass

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
