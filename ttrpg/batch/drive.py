"""A session-driver job: several sessions of a batch driven at once in one process.

:func:`drive_group` is what :func:`ttrpg.jobs.functions.drive_sessions` runs on a worker of
the drivers queue. Each session gets a thread, its own :class:`~ttrpg.session.driver.Driver`
(under its session lock, so one driver per session even when a re-queued job overlaps a
stalled one) and an autopilot DM built from the session's stored DM spec (data). Player
jobs go to the player queue, served by ordinary workers: a driver never runs them itself.

Why threads and not asyncio: the Driver, LangGraph's sync ``stream`` and the fan-out's
blocking ``XREAD`` are synchronous, and a driver thread spends nearly all of a turn blocked
in Redis reads (the GIL is released there); an asyncio driver would mean a second, async
copy of the driver, the graph runner and RQ's waiting, for no measured gain.

A session stops early when the batch is cancelled: :class:`BatchUI` checks the cancel flag
at every phase boundary (after each checkpoint) and before each DM question, and raises
:class:`BatchCancelled`, which no ``except Exception`` in the driver catches; the session is
marked paused and stays resumable.
"""

from __future__ import annotations

import resource
import threading
import time

from ttrpg import defaults
from ttrpg.batch import record
from ttrpg.batch.watchdog import Heartbeat, rescue
from ttrpg.exceptions import ConfigError, LockLost, SessionLocked

_SETUP = threading.Lock()


class BatchCancelled(BaseException):
    """Raised inside a driver at a phase boundary when its batch is cancelled (like Ctrl-C)."""


class BatchUI:
    """What a driver shows, for nobody: it checks the cancel flag and counts steps."""

    def __init__(self, redis, batch_id: str):
        self.redis, self.batch_id, self.steps = redis, batch_id, 0

    def _check(self) -> None:
        if record.is_cancelled(self.redis, self.batch_id):
            raise BatchCancelled()

    def session_header(self, driver, values) -> None:
        self._check()

    def question(self, question, state) -> None:
        self._check()

    def step(self, node, values, state) -> None:
        self.steps += 1
        self._check()

    def failure(self, phase, count, reason) -> None:
        pass

    def session_end(self, driver, final) -> None:
        pass


def build_dm(spec: dict, settings):
    """The autopilot DM a session's stored spec describes: ``{"kind", "seed", "llm", "scenario"}``.

    The spec comes from Redis: an LLM DM's endpoint is checked like a job's
    (:func:`ttrpg.llm.client.endpoint_for_job`), so this driver's API key goes only to its own
    ``OPENAI_BASE_URL`` or one in ``TTRPG_ALLOWED_BASE_URLS``.
    """
    kind = spec.get("kind", "rules")
    if kind not in ("rules", "llm"):
        raise ConfigError(f"Unknown DM kind {str(kind)[:40]!r} in the batch record.")
    llm = spec.get("llm")
    if kind == "llm" and isinstance(llm, dict) and not llm.get("offline"):
        from ttrpg.llm.client import endpoint_for_job

        llm = {**llm, "base_url": endpoint_for_job(llm.get("base_url"), settings.openai_base_url,
                                                   settings.allowed_base_urls)}
    from ttrpg.dm.autopilot import make_dm

    seed = spec.get("seed", 1)
    return make_dm(kind, scenario=spec.get("scenario") if isinstance(spec.get("scenario"), dict) else None,
                   seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 1,
                   llm=llm if isinstance(llm, dict) else None, api_key=settings.openai_api_key)


def _rss_kb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _check_request(request) -> tuple[str, int, list[str]]:
    from ttrpg.session.store import check_session_id

    if not isinstance(request, dict):
        raise ConfigError("drive_sessions needs {batch_id, group, session_ids}.")
    batch_id = record.check_batch_id(request.get("batch_id"))
    group = request.get("group")
    sids = request.get("session_ids")
    if isinstance(group, bool) or not isinstance(group, int) or not isinstance(sids, list):
        raise ConfigError("drive_sessions needs {batch_id, group: int, session_ids: [..]}.")
    return batch_id, group, [check_session_id(s) for s in sids]


def drive_group(request: dict) -> dict:
    """Drive a group of a batch's sessions to their end, one thread per session (see the module doc)."""
    import os
    import socket

    from ttrpg.backend.connection import get_redis
    from ttrpg.settings import get_settings

    batch_id, group, sids = _check_request(request)
    settings = get_settings()
    redis = get_redis(settings)
    batch = record.load_batch(redis, batch_id)
    listed = set(batch.get("groups", [])[group] if group < len(batch.get("groups", [])) else [])
    sids = [s for s in sids if s in listed]  # only the batch's own sessions of this group
    done: dict[str, list[str]] = {"completed": [], "cancelled": [], "failed": [], "left": []}
    if batch["cancelled"]:
        record.set_group(redis, batch_id, group, status="cancelled")
        done["cancelled"] = sids
        return done
    record.mark_started(redis, batch_id)
    info = record.set_group(redis, batch_id, group, status="running", started_at=time.time(),
                            host=socket.gethostname(), pid=os.getpid(), sessions=len(sids))
    record.set_group(redis, batch_id, group, runs=int(info.get("runs", 0)) + 1)
    peak = [_rss_kb()]

    def now_and_then() -> None:
        peak[0] = max(peak[0], _rss_kb())
        rescue(redis, batch)

    results: dict[str, str] = {}
    with Heartbeat(redis, batch_id, group, also=now_and_then):
        threads = [threading.Thread(target=_drive_one, args=(redis, settings, batch, sid, results),
                                    name=f"drive-{sid}", daemon=True) for sid in sids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peak[0] = max(peak[0], _rss_kb())
    for sid in sids:
        done.setdefault(results.get(sid, "failed"), []).append(sid)
    final = "cancelled" if done["cancelled"] else "done"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record.set_group(redis, batch_id, group, status=final, ended_at=time.time(), rss_kb=peak[0],
                     cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
                     completed=len(done["completed"]), failed=len(done["failed"]))
    return done


def _take_lock(redis, sid: str, batch_id: str):
    """The session's lock; waits for a dead driver's lock to expire. None: completed, cancelled,
    or held by a live driver for longer than :data:`~ttrpg.defaults.BATCH_LOCK_WAIT_S`."""
    from ttrpg.session.lock import SessionLock
    from ttrpg.session.store import load_meta

    deadline = time.monotonic() + defaults.BATCH_LOCK_WAIT_S
    while True:
        lock = SessionLock(redis, sid)
        try:
            lock.acquire()
            return lock
        except SessionLocked:
            if load_meta(redis, sid).get("status") == "completed" or record.is_cancelled(redis, batch_id):
                return None
            if time.monotonic() > deadline:
                return None
            time.sleep(1.0)


def _drive_one(redis, settings, batch: dict, sid: str, results: dict) -> None:
    """One session, in its own thread: skipped if completed, else driven to its end."""
    from ttrpg.session.driver import Driver
    from ttrpg.session.store import load_meta, touch

    batch_id = batch["batch_id"]
    try:
        if load_meta(redis, sid).get("status") == "completed":
            results[sid] = "completed"
            return
        spec = record.session_record(redis, batch_id, sid) or {}
        lock = _take_lock(redis, sid, batch_id)
        if lock is None:
            status = load_meta(redis, sid).get("status")
            results[sid] = ("completed" if status == "completed"
                            else "cancelled" if record.is_cancelled(redis, batch_id) else "left")
            return
        try:
            if load_meta(redis, sid).get("status") == "completed":  # finished while we waited for the lock
                results[sid] = "completed"
                return
            dm = build_dm(spec.get("dm") or {}, settings)
            with _SETUP:  # the checkpointer creates its search indices on setup: not from two threads at once
                driver = Driver(redis, sid, dm, BatchUI(redis, batch_id), settings, queue=batch["players_queue"],
                                fence=lock.fence())
            record.clear_outcome(redis, batch_id, sid)
            driver.run(spec.get("initial"))
            results[sid] = "completed"
        except BatchCancelled:
            if not lock.lost:
                touch(redis, sid, status="paused")
            record.set_outcome(redis, batch_id, sid, "cancelled")
            results[sid] = "cancelled"
        except LockLost as exc:  # another driver took the session over: it is theirs now
            results[sid] = "left"
            record.set_outcome(redis, batch_id, sid, "left", str(exc))
        finally:
            lock.release()
    except BaseException as exc:  # one session's failure must not stop its neighbours
        results[sid] = "failed"
        try:
            record.set_outcome(redis, batch_id, sid, "failed", f"{type(exc).__name__}: {exc}")
            touch(redis, sid, status="paused")
        except Exception:
            pass
