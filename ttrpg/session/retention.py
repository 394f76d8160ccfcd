"""Retention: what a finished session keeps in Redis.

A session's checkpoint history (every key of its LangGraph thread, about 2.4 MB at turn 100)
exists to resume it. A session that ended normally (status ``completed``) is never resumed,
so once it has ended it keeps only:

* its event log (the Redis Stream, its seen-ids set, and the JSONL mirror on disk),
* its metadata hash (``ttrpg:session:<id>``), plus a small summary of its final state.

What the commands that read a finished session use (checked in the code):

* ``ttrpg sessions``: the metadata hash only.
* ``ttrpg status``: the metadata hash; the checkpoint only for the pending phase and question,
  and an ended session has none (a thread without checkpoints reads as "nothing pending").
* ``ttrpg logs export``, ``ttrpg report``, ``ttrpg watch``: the event stream and the metadata.
* ``ttrpg logs transcript``: the events (``session_started`` names the characters); the
  checkpointed party only as a fallback for logs written before that field existed.

So compaction copies that party (names, ship) and the turn count into the metadata field
:data:`FINAL_STATE` before it deletes the thread, and records ``retention: compacted`` and the
bytes freed. ``TTRPG_RETENTION=keep`` keeps everything; the default, ``compact``, compacts a
session when it ends (:func:`compact_on_finish`); ``ttrpg compact`` compacts sessions
that ended before (:func:`compact_finished`, :func:`compact_all`).

Compaction never touches a session that is not ``completed`` or whose lock a live driver holds:
it takes the session's lock itself (or, called by the driver that just finished, checks that
driver's fence), and re-reads the status under it.
"""

from __future__ import annotations

import json
import time

from ttrpg.constants import (
    CHECKPOINT_THREAD_PATTERNS,
    EVENTS_SEEN,
    EVENTS_STREAM,
    SESSIONS_INDEX,
)
from ttrpg.exceptions import SessionLocked, TTRPGError
from ttrpg.session.lock import SessionLock, parse_holder
from ttrpg.session.store import check_session_id, load_meta, meta_key
from ttrpg.turn.checkpoint import make_saver

#: Metadata field: JSON summary of the final state (turns played, last turn, characters, ship).
FINAL_STATE = "final_state"
#: Metadata field: ``compacted`` once the checkpoint history is gone.
RETENTION = "retention"
#: Metadata field: bytes the compaction freed (MEMORY USAGE of the deleted keys; the summary it
#: adds to the metadata, a few hundred bytes, is not subtracted).
BYTES_FREED = "retention_bytes_freed"
#: Metadata field: when the session was compacted (epoch seconds).
COMPACTED_AT = "compacted_at"

_PREFIXES = tuple(p.split(":", 1)[0] + ":" for p in CHECKPOINT_THREAD_PATTERNS)
_BATCH = 500


# --- reading --------------------------------------------------------------------------------------

def thread_keys(redis, session_id: str) -> list[str]:
    """Every checkpoint key of the session's thread, in every namespace (one SCAN pass)."""
    keys = []
    for key in redis.scan_iter(match=f"*:{session_id}:*", count=1000):
        key = key.decode() if isinstance(key, bytes) else key
        if key.startswith(_PREFIXES) and key.split(":", 2)[1] == session_id:
            keys.append(key)
    return sorted(keys)


def all_thread_keys(redis) -> dict[str, list[str]]:
    """The checkpoint keys of every thread in this Redis, by thread id (one SCAN per key kind):
    for compacting many sessions without scanning the keyspace once per session."""
    found: dict[str, list[str]] = {}
    for pattern in CHECKPOINT_THREAD_PATTERNS:
        for key in redis.scan_iter(match=pattern.format(session_id="*"), count=1000):
            key = key.decode() if isinstance(key, bytes) else key
            found.setdefault(key.split(":", 2)[1], []).append(key)
    return found


def kept_keys(session_id: str) -> list[str]:
    """The keys a finished session keeps: its metadata, its event stream and seen-ids set."""
    return [meta_key(session_id), EVENTS_STREAM.format(session_id=session_id),
            EVENTS_SEEN.format(session_id=session_id)]


def key_bytes(redis, keys: list[str]) -> int:
    """Sum of ``MEMORY USAGE key SAMPLES 0`` (exact, every element counted); missing keys count 0."""
    total = 0
    for i in range(0, len(keys), _BATCH):
        pipe = redis.pipeline(transaction=False)
        for key in keys[i:i + _BATCH]:
            pipe.memory_usage(key, samples=0)
        total += sum(n or 0 for n in pipe.execute())
    return total


def session_bytes(redis, session_id: str, thread: list[str] | None = None) -> dict:
    """What the session holds in Redis: ``{"checkpoints", "kept", "total"}`` in bytes."""
    thread = thread_keys(redis, session_id) if thread is None else thread
    checkpoints, kept = key_bytes(redis, thread), key_bytes(redis, kept_keys(session_id))
    return {"checkpoints": checkpoints, "kept": kept, "total": checkpoints + kept}


def final_values(redis, session_id: str) -> dict:
    """The channel values of the thread's latest checkpoint ({} when it has none)."""
    tup = make_saver(redis).get_tuple({"configurable": {"thread_id": session_id, "checkpoint_ns": ""}})
    return dict((tup.checkpoint or {}).get("channel_values") or {}) if tup else {}


def final_summary(values: dict) -> dict:
    """The part of a final state later commands may need once the checkpoints are gone."""
    turn = values.get("turn")
    party = values.get("party") or {}
    characters = {}
    for p in party.get("players") or []:
        if isinstance(p, dict) and isinstance(p.get("character"), dict):
            c = p["character"]
            characters[p.get("id")] = {"name": c.get("name", p.get("id")), "style": c.get("style"),
                                       "role": c.get("role"), "number": c.get("number"),
                                       "player": (p.get("player") or {}).get("name")}
    return {"turn": turn, "turns_played": turn - 1 if isinstance(turn, int) else None,
            "ended": bool(values.get("ended")), "characters": characters, "ship": party.get("ship") or {}}


def stored_summary(meta: dict) -> dict:
    """The :data:`FINAL_STATE` a compaction saved in the metadata ({} if none)."""
    try:
        found = json.loads(meta.get(FINAL_STATE) or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def turns_played(redis, session_id: str, meta: dict) -> int | None:
    """Turns a finished session played: from its saved summary, else its last checkpoint."""
    n = stored_summary(meta).get("turns_played")
    if isinstance(n, int):
        return n
    try:
        turn = final_values(redis, session_id).get("turn")
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: the count is only for a message
        turn = None
    return turn - 1 if isinstance(turn, int) else None


# --- compacting -----------------------------------------------------------------------------------

def _require_finished(session_id: str, meta: dict) -> None:
    status = meta.get("status", "")
    if status != "completed":
        raise TTRPGError(f"Session {session_id} is not finished (status {status or 'unknown'}): only sessions "
                          "that ended are compacted.",
                          hint=f"Finish it first (`ttrpg resume {session_id}`); its checkpoints are what resume uses.")


def _locked(session_id: str, holder) -> SessionLocked:
    host, pid = parse_holder(holder or b"?:?")
    return SessionLocked(f"Session {session_id} has a live driver (host {host}, pid {pid}); not compacted.",
                         hint=f"Compact it once that process has exited: `ttrpg compact {session_id}`.")


def compact_finished(redis, session_id: str, settings=None, *, fence=None, keys: list[str] | None = None) -> dict:
    """Delete the checkpoint history of a finished session; keep its log, metadata and a summary.

    Returns ``{"session_id", "result", "bytes_before", "bytes_after", "keys_deleted",
    "checkpoint_bytes_before"}`` (bytes: MEMORY USAGE of the session's keys, checkpoints plus
    what it keeps). Idempotent: a second call deletes nothing (``result`` "already compacted").

    Raises TTRPGError (exit 1) unless the session's status is ``completed``,
    :class:`~ttrpg.exceptions.SessionLocked` when a live driver holds its lock, and
    UnknownSession when there is no such session. ``fence``: the finishing driver's own
    fence (it holds the lock); without one the lock is taken here for the duration.
    ``keys``: the thread's keys if already scanned (:func:`all_thread_keys`). ``settings``
    is accepted for symmetry with :func:`compact_on_finish`; nothing in it is needed here.
    """
    check_session_id(session_id)
    _require_finished(session_id, load_meta(redis, session_id))
    if fence is not None:
        fence.check()
        return _compact(redis, session_id, load_meta(redis, session_id), fence, keys)
    lock = SessionLock(redis, session_id)
    try:
        lock.acquire()
    except SessionLocked:
        raise _locked(session_id, redis.get(lock.key)) from None
    try:
        meta = load_meta(redis, session_id)  # again, under the lock
        _require_finished(session_id, meta)
        return _compact(redis, session_id, meta, lock.fence(), keys)
    finally:
        lock.release()


def _compact(redis, session_id: str, meta: dict, fence, keys: list[str] | None) -> dict:
    thread = thread_keys(redis, session_id) if keys is None else list(keys)
    before = session_bytes(redis, session_id, thread)
    mkey = meta_key(session_id)
    if thread and FINAL_STATE not in meta:  # saved before anything is deleted: a crash here loses nothing
        fence.check()
        redis.hset(mkey, FINAL_STATE, json.dumps(final_summary(final_values(redis, session_id))))
    make_saver(redis, fence=fence).delete_thread(session_id)  # what the saver's own index knows of
    fence.check()
    for i in range(0, len(thread), _BATCH):  # and every key the scan found, in any namespace
        redis.unlink(*thread[i:i + _BATCH])
    freed_before = int(meta[BYTES_FREED]) if str(meta.get(BYTES_FREED, "")).isdigit() else 0
    fields = {RETENTION: "compacted"}
    if thread or not meta.get(COMPACTED_AT):
        fields[COMPACTED_AT] = str(time.time())
    if thread or BYTES_FREED not in meta:  # the deleted keys' MEMORY USAGE, added up over runs
        fields[BYTES_FREED] = str(freed_before + before["checkpoints"])
    fence.check()
    redis.hset(mkey, mapping=fields)  # not touch(): compacting must not reorder `ttrpg sessions`
    after = session_bytes(redis, session_id, [])
    return {"session_id": session_id, "result": "compacted" if thread else "already compacted",
            "bytes_before": before["total"], "bytes_after": after["total"], "keys_deleted": len(thread),
            "checkpoint_bytes_before": before["checkpoints"]}


def compact_on_finish(redis, session_id: str, settings, *, fence=None) -> dict | None:
    """What the driver calls once it has marked the session completed: compact it, unless
    ``settings.retention`` is ``keep``. Never raises: the session has ended well either way, and
    ``ttrpg compact`` can finish the job later. Returns the result, or
    ``{"session_id", "error"}``, or None (retention ``keep``)."""
    if getattr(settings, "retention", "compact") == "keep":
        return None
    try:
        return compact_finished(redis, session_id, settings, fence=fence)
    except Exception as exc:  # noqa: BLE001 - the session is complete; compaction is housekeeping
        return {"session_id": session_id, "error": f"{type(exc).__name__}: {exc}"}


def compact_all(redis, settings=None) -> dict:
    """Compact every finished session of this Redis that still has checkpoints.

    Returns ``{"sessions": [result or {"session_id", "result": "skipped"|"failed", "error"}],
    "already_compacted": n, "bytes_freed": n}``; sessions not finished are left alone and not
    listed, finished sessions with nothing left to delete are only counted. A session whose
    driver is still running (it is finishing right now) is listed as skipped.
    """
    by_thread = all_thread_keys(redis)
    rows, already, freed = [], 0, 0
    for raw in redis.zrange(SESSIONS_INDEX, 0, -1):
        sid = raw.decode() if isinstance(raw, bytes) else raw
        try:
            meta = load_meta(redis, sid)
        except TTRPGError:
            continue
        if meta.get("status") != "completed":
            continue
        keys = by_thread.get(sid, [])
        if not keys and meta.get(RETENTION) == "compacted":
            already += 1
            continue
        try:
            row = compact_finished(redis, sid, settings, keys=keys)
        except SessionLocked as exc:
            rows.append({"session_id": sid, "result": "skipped", "error": str(exc)})
            continue
        except TTRPGError as exc:
            rows.append({"session_id": sid, "result": "failed", "error": str(exc)})
            continue
        if row["result"] == "already compacted":
            already += 1
            continue
        freed += max(row["bytes_before"] - row["bytes_after"], 0)
        rows.append(row)
    return {"sessions": rows, "already_compacted": already, "bytes_freed": freed}
