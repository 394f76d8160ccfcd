"""The session lock: renewal, knowing when it is lost, and fencing a driver that was stopped
(SIGSTOP: what a closed laptop lid does to a process) past its TTL while another took over.

The drivers here are real processes: a small driver-like loop (``DRIVER``) that holds the
lock and, until told to stop, emits events and runs a graph step (checkpoint puts) under it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ttrpg.exceptions import LockLost, SessionLocked
from ttrpg.research import events
from ttrpg.session.lock import SessionLock
from ttrpg.turn.checkpoint import make_saver

# The driver-like loop of these tests logs hand-made `tick` events, not ttrpg's own.
pytestmark = pytest.mark.usefixtures("unchecked_events")

TTL_MS = 1500

# argv: session_id ttl_ms mode; mode "full" = lock.check() + fenced writes (what the Driver does);
# "fence-only" = no local check at all: only the fences in Redis stand between it and the log.
DRIVER = r"""
import sys, time
from typing import TypedDict
from langgraph.graph import StateGraph, START, END
from ttrpg.backend.connection import get_redis
from ttrpg.turn.checkpoint import make_saver
from ttrpg.research.events import EventLog
from ttrpg.exceptions import LockLost
from ttrpg.session.lock import Fence, SessionLock

session_id, ttl_ms, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
redis = get_redis()
lock = SessionLock(redis, session_id, ttl_ms=ttl_ms)
lock.acquire()
fence = {"full": lock.fence(), "fence-only": Fence(redis, lock.key, lock.token, session_id=session_id),
         "unfenced": None}[mode]
log = EventLog(redis, session_id, "c", fence=fence)

class S(TypedDict, total=False):
    n: int

def step(state):
    log.emit("tick", f"tick:{state['n']}", 1, n=state["n"])
    return {"n": state["n"] + 1}

g = StateGraph(S)
g.add_node("step", step)
g.add_edge(START, "step")
g.add_edge("step", END)
graph = g.compile(checkpointer=make_saver(redis, fence=fence))
config = {"configurable": {"thread_id": session_id}}
try:
    n = 0
    while True:
        if mode == "full":
            lock.check()
        n = graph.invoke({"n": n}, config, durability="sync")["n"]
        print("tick", n, flush=True)
        time.sleep(0.01)
except LockLost as exc:
    print(str(exc), file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)
"""


def _start_driver(session_id: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, session_id, str(TTL_MS), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, timeout: float = 10.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def _checkpoints(redis_client, session_id) -> list[str]:
    saver = make_saver(redis_client)
    return [c.config["configurable"]["checkpoint_id"] for c in saver.list({"configurable": {"thread_id": session_id}})]


@pytest.mark.parametrize("mode", ["full", "fence-only"])
def test_stopped_driver_writes_nothing_after_takeover(redis_client, session_id, mode):
    driver = _start_driver(session_id, mode)
    try:
        for _ in range(3):  # it is driving: events and checkpoints are being written
            assert driver.stdout.readline().startswith("tick"), driver.stderr.read()
        driver.send_signal(signal.SIGSTOP)
        key = SessionLock(redis_client, session_id).key
        _wait_for(lambda: not redis_client.exists(key), timeout=TTL_MS / 1000 + 3)

        other = SessionLock(redis_client, session_id, ttl_ms=10_000)
        other.acquire()  # a second `resume` takes the session over and writes
        log = events.EventLog(redis_client, session_id, "c", fence=other.fence())
        log.emit("session_resumed", "resume:1", 1)
        ticks_before = [e for e in events.all_events(redis_client, session_id) if e["event_type"] == "tick"]
        checkpoints_before = _checkpoints(redis_client, session_id)

        driver.send_signal(signal.SIGCONT)
        assert driver.wait(timeout=20) == LockLost.exit_code
        stderr = driver.stderr.read().strip()
        assert stderr.count("\n") == 0, stderr  # one line
        assert stderr == (f"Session {session_id} was taken over by another driver "
                          f"({socket.gethostname()}, pid {os.getpid()}) while this one was stopped; this process "
                          f"stops without writing. Continue with `ttrpg resume {session_id}` if needed.")

        log_after = events.all_events(redis_client, session_id)
        assert [e for e in log_after if e["event_type"] == "tick"] == ticks_before
        assert log_after[-1]["event_type"] == "session_resumed"
        assert _checkpoints(redis_client, session_id) == checkpoints_before
        assert redis_client.get(key) == other.token.encode()  # its exit did not release another's lock
        other.release()
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGCONT)
            driver.kill()
        driver.wait()


def test_control_an_unfenced_driver_does_write_after_takeover(redis_client, session_id):
    """Control for the test above: without fences the stopped driver, once continued, goes on
    writing events and checkpoints next to the driver that took over (the reported bug)."""
    driver = _start_driver(session_id, "unfenced")
    try:
        for _ in range(3):
            assert driver.stdout.readline().startswith("tick"), driver.stderr.read()
        driver.send_signal(signal.SIGSTOP)
        key = SessionLock(redis_client, session_id).key
        _wait_for(lambda: not redis_client.exists(key), timeout=TTL_MS / 1000 + 3)
        other = SessionLock(redis_client, session_id, ttl_ms=10_000)
        other.acquire()
        ticks_before = sum(e["event_type"] == "tick" for e in events.all_events(redis_client, session_id))
        checkpoints_before = len(_checkpoints(redis_client, session_id))
        driver.send_signal(signal.SIGCONT)
        for _ in range(3):
            assert driver.stdout.readline().startswith("tick")
        assert sum(e["event_type"] == "tick" for e in events.all_events(redis_client, session_id)) > ticks_before
        assert len(_checkpoints(redis_client, session_id)) > checkpoints_before
        other.release()
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGCONT)
            driver.kill()
        driver.wait()


WATCHER = r"""
import sys, time
from ttrpg.backend.connection import get_redis
from ttrpg.session.lock import SessionLock

lock = SessionLock(get_redis(), sys.argv[1], ttl_ms=int(sys.argv[2]))
lock.acquire()
print("held", flush=True)
lock.lost_event.wait()
print("lost", lock._lost, flush=True)
"""


def test_renewal_thread_sees_the_ttl_elapsed_after_sigstop(redis_client, session_id):
    """Stopped past the TTL with nobody taking the lock: the renewal thread's first look after
    SIGCONT marks it lost (it never renews blindly)."""
    proc = subprocess.Popen([sys.executable, "-c", WATCHER, session_id, str(TTL_MS)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "held\n", proc.stderr.read()
        time.sleep(TTL_MS / 1000 * 1.5)  # renewing meanwhile: still held
        assert redis_client.exists(SessionLock(redis_client, session_id).key)
        proc.send_signal(signal.SIGSTOP)
        time.sleep(TTL_MS / 1000 + 0.5)
        woke = time.monotonic()
        proc.send_signal(signal.SIGCONT)
        assert proc.stdout.readline() == "lost True\n"
        assert time.monotonic() - woke < 1.0
        assert proc.wait(timeout=10) == 0
        assert not redis_client.exists(SessionLock(redis_client, session_id).key)  # not renewed after the loss
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait()


def test_check_sees_the_elapsed_ttl_without_the_thread(redis_client, session_id, monkeypatch):
    """``check()`` does not wait for the renewal thread: past the TTL since the last renewal,
    it raises at once."""
    lock = SessionLock(redis_client, session_id, ttl_ms=TTL_MS)
    lock.acquire()
    try:
        lock.check()
        lock._stop.set()  # as if the thread had not run yet
        lock._last_ok -= TTL_MS / 1000
        assert lock.lost
        with pytest.raises(LockLost) as err:
            lock.check()
        assert "expired while this driver was stopped" in str(err.value)
    finally:
        lock.release()


def test_renewal_keeps_the_lock_and_notices_a_takeover(redis_client, session_id):
    lock = SessionLock(redis_client, session_id, ttl_ms=600)
    lock.acquire()
    try:
        time.sleep(1.5)  # past two TTLs: renewed
        assert not lock.lost and redis_client.get(lock.key) == lock.token.encode()
        with pytest.raises(SessionLocked):
            SessionLock(redis_client, session_id).acquire()
        redis_client.set(lock.key, "elsewhere:77:ffff", px=5000)
        assert lock.lost_event.wait(2)
        with pytest.raises(LockLost) as err:
            lock.check()
        assert "(elsewhere, pid 77)" in str(err.value)
        assert str(err.value).count("\n") == 0
    finally:
        lock.release()
    assert redis_client.get(lock.key) == b"elsewhere:77:ffff"


def test_planted_holder_cannot_put_markup_in_messages(redis_client, session_id):
    lock = SessionLock(redis_client, session_id)
    redis_client.set(lock.key, "[link=http://x]\x1b]0;t\x07host:12:z", px=5000)
    with pytest.raises(SessionLocked) as err:
        lock.acquire()
    assert "[" not in str(err.value) and "\x1b" not in str(err.value)
    redis_client.delete(lock.key)


def measure_fence_cost(n: int = 200) -> dict:  # pragma: no cover - run by hand, see the report
    """Median microseconds of an event emit and a checkpoint put (2 KB state), unfenced and
    fenced, interleaved so both see the same machine load."""
    import statistics
    import uuid

    from langgraph.checkpoint.base import empty_checkpoint

    from ttrpg.backend.connection import get_redis

    redis = get_redis()
    sid = "bench-" + uuid.uuid4().hex[:8]
    lock = SessionLock(redis, sid)
    lock.acquire()
    fences = {"unfenced": None, "fenced": lock.fence()}
    savers = {name: make_saver(redis, fence=f) for name, f in fences.items()}
    configs = {name: {"configurable": {"thread_id": f"{sid}-{name}", "checkpoint_ns": ""}} for name in fences}
    times: dict[str, list[float]] = {}
    try:
        for i in range(n):
            for name, fence in fences.items():
                t = time.perf_counter()
                events.emit(redis, sid, "bench", f"{name}:{i}", fence=fence, n=i)
                times.setdefault(f"emit {name}", []).append(time.perf_counter() - t)
                cp = empty_checkpoint()
                cp["channel_values"] = {"n": i, "text": "x" * 2000}
                t = time.perf_counter()
                configs[name] = savers[name].put(configs[name], cp, {"source": "loop", "step": i}, {})
                times.setdefault(f"put {name}", []).append(time.perf_counter() - t)
    finally:
        lock.release()
    return {k: statistics.median(v) * 1e6 for k, v in times.items()}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps({k: round(v, 1) for k, v in measure_fence_cost().items()}))
