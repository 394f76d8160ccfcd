"""One driver per session: a Redis lock taken with ``SET NX PX``, renewed by a thread, and a
fence that keeps a driver that lost it from writing.

Two processes running the same LangGraph thread would both run its nodes; nothing in
LangGraph prevents it, so ``play`` and ``resume`` hold this lock while they drive.

A lock can be lost without its holder dying: a driver stopped longer than the TTL (SIGSTOP,
a closed laptop lid) wakes up after another ``resume`` took the session over. So:

* :class:`SessionLock` knows when it may have lost the lock. The renewal thread marks it
  lost when a renewal finds another token in the key, or when more than the TTL has passed
  since the last renewal that succeeded (a stopped process cannot renew; the first look
  after it resumes sees the time that passed). ``lock.check()`` raises :class:`LockLost`.
  The clock is ``CLOCK_BOOTTIME`` where there is one: unlike ``CLOCK_MONOTONIC`` it keeps
  counting while the machine sleeps.
* :class:`Fence` is what the session's writers consult, so a stale driver cannot write even
  in the moment before it notices: the event append checks the token inside its Lua script
  (atomic), the checkpointer checks it just before each write.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid

from ttrpg import defaults
from ttrpg.constants import SESSION_LOCK
from ttrpg.exceptions import LockLost, SessionLocked
from ttrpg.process import pid_alive

_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


_TAKE_OVER = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
              "return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return false")

_CLOCK = getattr(time, "CLOCK_BOOTTIME", None)


def _now() -> float:
    """Seconds on a clock that never goes back and, on Linux, keeps counting during suspend."""
    return time.clock_gettime(_CLOCK) if _CLOCK is not None else time.monotonic()


def _holder_of(value) -> tuple[str, str]:
    """(host, pid) from a lock value, reduced to harmless characters: the value comes from
    Redis, where anyone with write access may have put markup or terminal escapes."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
    host, _, rest = text.partition(":")
    pid = rest.partition(":")[0]
    return (re.sub(r"[^A-Za-z0-9._-]", "?", host)[:64] or "?", pid if pid.isdigit() else "?")


def lost_error(session_id: str, holder) -> LockLost:
    """The one line a driver that lost its lock stops with."""
    if holder:
        host, pid = _holder_of(holder)
        return LockLost(f"Session {session_id} was taken over by another driver ({host}, pid {pid}) while this one "
                        f"was stopped; this process stops without writing. Continue with `ttrpg resume {session_id}` "
                        "if needed.", session_id=session_id, holder=f"{host}:{pid}")
    return LockLost(f"Session {session_id}'s lock expired while this driver was stopped or cut off from Redis; this "
                    f"process stops without writing. Continue with `ttrpg resume {session_id}` if needed.",
                    session_id=session_id)


def parse_holder(raw: bytes) -> tuple[str, int | None]:
    """``(host, pid)`` of a lock value ``host:pid:token`` (pid None when it is not a number)."""
    host, _, rest = raw.decode(errors="replace").partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None


def dead_here(host: str, pid: int) -> bool:
    """The holder is a process of this host that no longer exists (kill -9): its lock is stale."""
    return host == socket.gethostname() and not pid_alive(pid)


class SessionLock:
    """One driver per session: taken with ``SET NX PX``, renewed by a daemon thread.

    ``lost`` turns true (and stays true) once the lock may belong to someone else;
    ``check()`` raises :class:`LockLost` then. ``fence()`` gives the writers' fence.
    """

    def __init__(self, redis, session_id: str, ttl_ms: int = defaults.SESSION_LOCK_TTL_MS,
                 renew_s: float | None = None):
        self.redis, self.session_id, self.ttl_ms = redis, session_id, int(ttl_ms)
        self.renew_s = min(renew_s or defaults.SESSION_LOCK_RENEW_S, self.ttl_ms / 3000)
        self.key = SESSION_LOCK.format(session_id=session_id)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False
        self._last_ok = 0.0  # _now() when the last successful SET / renewal was sent
        self._lost = False
        self._lost_holder = None
        #: set (by the renewal thread, a failed fence or ``lost``) once the lock may be gone
        self.lost_event = threading.Event()

    # -- taking and releasing -----------------------------------------------------------------

    def acquire(self) -> None:
        sent = _now()
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms) and not self._take_over_dead_holder():
            host, pid = _holder_of(self.redis.get(self.key) or b"?")
            raise SessionLocked(f"Session {self.session_id!r} is open elsewhere (host {host}, pid {pid}).")
        self._last_ok, self._held, self._lost = sent, True, False
        self.lost_event.clear()
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lock-{self.session_id}", daemon=True)
        self._thread.start()

    def _take_over_dead_holder(self) -> bool:
        """A lock held by a process of this host that no longer exists (kill -9) is stale:
        take it at once instead of making the DM wait for it to expire."""
        holder = self.redis.get(self.key)
        if not holder:
            return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        host, pid = parse_holder(holder)
        if pid is None or not dead_here(host, pid):
            return False
        return bool(self.redis.eval(_TAKE_OVER, 1, self.key, holder, self.token, self.ttl_ms))

    def release(self) -> None:
        self._stop.set()
        self._held = False
        try:
            self.redis.eval(_RELEASE, 1, self.key, self.token)  # deletes the key only if it is still ours
        except Exception:
            pass

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    # -- keeping it, and knowing when it is gone ----------------------------------------------

    def _expired(self) -> bool:
        """True once more than the TTL has passed since the last renewal that succeeded was
        sent: from then on another process may hold the key."""
        return _now() - self._last_ok >= self.ttl_ms / 1000

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            if not self.renew_once():
                return

    def renew_once(self) -> bool:
        """One renewal (what the thread does every ``renew_s``); False once the lock is lost."""
        if self._lost:
            return False
        if self._expired():  # stopped (or cut off from Redis) past the TTL: never renew blindly
            self._mark_lost()
            return False
        sent = _now()
        try:
            renewed = self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms)
        except Exception:  # Redis briefly away: the next renewal, or the TTL, decides
            return True
        if not renewed:  # the key holds another token, or none: someone may drive now
            self._mark_lost()
            return False
        self._last_ok = sent
        return True

    def _mark_lost(self, holder=b"") -> None:
        """Mark the lock lost; ``holder`` is the key's value if known (read here if not)."""
        if not self._lost:
            if holder == b"":
                try:
                    holder = self.redis.get(self.key)
                except Exception:
                    holder = None
            self._lost_holder = holder if holder != self.token.encode() else None
            self._lost = True
            self.lost_event.set()

    @property
    def lost(self) -> bool:
        """True once this process may no longer hold the lock (checked without Redis)."""
        if self._held and not self._lost and self._expired():
            self._mark_lost()
        return self._lost

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock may be gone (no Redis round trip)."""
        if self.lost:
            raise lost_error(self.session_id, self._lost_holder)

    def fence(self) -> "Fence":
        """The fence the session's writers consult (events, checkpointer)."""
        return Fence(self.redis, self.key, self.token, session_id=self.session_id, lock=self)


class Fence:
    """Lets a write through only while the lock key still holds this driver's token.

    ``check()`` is a check-before-write (one ``GET``) for writers that cannot do better (the
    checkpointer); the event append passes ``key`` and ``token`` into its Lua script, which
    checks and appends atomically. With a ``lock``, its local ``lost`` flag is consulted
    first, and a failed check marks the lock lost.
    """

    def __init__(self, redis, key: str, token: str, *, session_id: str = "", lock: SessionLock | None = None):
        self.redis, self.key, self.token, self.session_id, self.lock = redis, key, token, session_id, lock
        self._token_b = token.encode()

    def check(self) -> None:
        if self.lock is not None:
            self.lock.check()
        holder = self.redis.get(self.key)
        if holder != self._token_b:
            raise self.lost(holder)

    def lost(self, holder=None) -> LockLost:
        """The :class:`LockLost` to raise (and the lock marked lost); ``holder``: the lock
        key's value if already read, else it is read here."""
        if holder is None:
            try:
                holder = self.redis.get(self.key)
            except Exception:
                holder = None
        if self.lock is not None:
            self.lock._mark_lost(holder)
            return lost_error(self.session_id, self.lock._lost_holder)
        return lost_error(self.session_id, holder if holder != self._token_b else None)
