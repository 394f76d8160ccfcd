"""The session event log: a Redis Stream per session, mirrored to ``research_logs/<session>.jsonl``.

Why a stream: the orchestrator and workers on other machines write to the same log, and a
watcher on a third machine can follow it live. Why event ids: a phase that re-runs after a
crash (or a node re-run after ``interrupt()``) emits the same events again; each event
carries a deterministic ``event_id`` and the append is a Lua script that adds it to the
stream only if the id is new. So after ``kill -9`` and ``ttrpg resume`` the log holds every
event exactly once.

Every event is a JSON object::

    {"event_id": "3:strategic_intent:1:started", "event_type": "phase_started",
     "timestamp": "2026-11-23T20:01:02.345678+00:00", "session_id": "s1",
     "campaign_id": "c1", "turn_number": 3, "phase": "strategic_intent", ...}
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ttrpg.constants import EVENTS_SEEN, EVENTS_STREAM
from ttrpg.exceptions import EventSchemaError
from ttrpg.research.schema import validate_event
from ttrpg.settings import get_settings

# KEYS: stream, seen-set[, lock]; ARGV: "type:id", event JSON[, token]. With a lock key the
# append happens only while the lock holds the token (-1 otherwise): a driver that lost its
# session lock cannot add to the log, not even in the moment before it notices.
_APPEND_ONCE = """
if KEYS[3] and redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return -1
end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
end
return false
"""
_append_script = None  # redis-py Script (EVALSHA, falls back to EVAL once per server)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


@functools.cache
def _checking() -> bool:
    """``TTRPG_CHECK_EVENTS=1``: every event is checked against its schema when emitted."""
    return get_settings().check_events


def emit(redis, session_id: str, event_type: str, event_id: str, *, campaign_id: str | None = None,
         turn_number: int | None = None, fence=None, **fields) -> bool:
    """Append one event unless an event with this id was appended before; True if appended.

    ``fence`` (a :class:`ttrpg.session.lock.Fence`, what a session's driver passes) makes the append
    conditional on the session lock still holding the driver's token, checked atomically with
    the append; :class:`~ttrpg.exceptions.LockLost` is raised otherwise. Without it (workers,
    tools, tests) the append is unconditional.
    """
    event = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": now_iso(),
        "session_id": session_id,
        "campaign_id": campaign_id,
        "turn_number": turn_number,
        **fields,
    }
    encoded = json.dumps(event, default=str)
    if _checking():
        problems = validate_event(json.loads(encoded))
        if problems:
            raise EventSchemaError(f"Event {event_type}:{event_id} does not match its schema: {'; '.join(problems)}")
    keys = [EVENTS_STREAM.format(session_id=session_id), EVENTS_SEEN.format(session_id=session_id)]
    args = [f"{event_type}:{event_id}", encoded]
    if fence is not None:
        if fence.lock is not None:
            fence.lock.check()  # known lost: no round trip
        keys.append(fence.key)
        args.append(fence.token)
    global _append_script
    if _append_script is None:
        _append_script = redis.register_script(_APPEND_ONCE)
    added = _append_script(keys=keys, args=args, client=redis)
    if added == -1:
        raise fence.lost()
    return bool(added)


def read(redis, session_id: str, after: str = "-", count: int | None = None) -> list[tuple[str, dict]]:
    """Events after stream id ``after`` (exclusive unless '-'), as ``(stream_id, event)`` pairs."""
    start = after if after == "-" else f"({after}"
    entries = redis.xrange(EVENTS_STREAM.format(session_id=session_id), min=start, max="+", count=count)
    pairs = ((_s(sid), _event_of(fields)) for sid, fields in entries)
    return [(sid, event) for sid, event in pairs if event is not None]


def all_events(redis, session_id: str) -> list[dict]:
    return [event for _, event in read(redis, session_id)]


def follow(redis, session_id: str, after: str = "$", block_ms: int = 5000):
    """Yield ``(stream_id, event)`` as they arrive (``after='0'`` replays everything first)."""
    key = EVENTS_STREAM.format(session_id=session_id)
    last = after
    while True:
        reply = redis.xread({key: last}, block=block_ms, count=100)
        if not reply:
            yield None, None  # lets the caller check for session end / Ctrl-C
            continue
        for sid, fields in reply[0][1]:
            last = _s(sid)
            event = _event_of(fields)
            if event is not None:
                yield last, event


def _event_of(fields: dict) -> dict | None:
    """The event stored in a stream entry, or None for an entry that is not one of ours
    (anyone who can write to Redis can add entries: they are skipped, not fatal)."""
    try:
        event = json.loads(fields[b"e"])
    except (KeyError, ValueError, TypeError):
        return None
    return event if isinstance(event, dict) and "event_type" in event else None


class Mirror:
    """Keeps ``log_dir/<session>.jsonl`` equal to the session's stream, each event exactly once.

    The file is append-only. Each sync holds an exclusive ``flock`` on it while it reads the
    lines appended since its last look (by anyone: two processes may sync the same session,
    e.g. a driver that lost its lock and the one that took over, or ``ttrpg logs export``),
    reads the stream and appends what the file lacks. So a line is never written twice, a
    crash between appending a line and remembering the stream position cannot duplicate it,
    and a torn last line (power cut, kill -9 mid-write) is dropped and rewritten.
    """

    def __init__(self, redis, session_id: str, log_dir: Path):
        self.redis = redis
        self.session_id = session_id
        self.path = Path(log_dir) / f"{session_id}.jsonl"
        self._cursor = "-"
        self._seen: set[str] = set()
        self._offset = 0  # bytes of the file already read into _seen
        self._inode: tuple[int, int] | None = None

    def sync(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._read_new_lines(fd)
            new = []
            for sid, e in read(self.redis, self.session_id, after=self._cursor):
                self._cursor = sid
                key = _event_key(e)
                if key is not None and key not in self._seen:
                    self._seen.add(key)
                    new.append(json.dumps(e, default=str) + "\n")
            if new:
                data = "".join(new).encode()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
                self._offset += len(data)
        finally:
            os.close(fd)  # releases the flock
        return self.path

    def _read_new_lines(self, fd: int) -> None:
        """Read what was appended since the last sync (all of it the first time, or when the
        file was replaced); drop a torn last line. Called with the flock held."""
        st = os.fstat(fd)
        if self._inode != (st.st_dev, st.st_ino) or st.st_size < self._offset:
            self._inode, self._offset, self._seen, self._cursor = (st.st_dev, st.st_ino), 0, set(), "-"
        if st.st_size == self._offset:
            return
        os.lseek(fd, self._offset, os.SEEK_SET)
        chunks, left = [], st.st_size - self._offset
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):  # a writer died mid-line: no live writer is (we hold the flock)
            os.ftruncate(fd, self._offset + len(complete))
        for line in complete.splitlines():
            try:
                key = _event_key(json.loads(line))
            except ValueError:
                continue
            if key is not None:
                self._seen.add(key)
        self._offset += len(complete)


def mirror(redis, session_id: str, log_dir: Path) -> Path:
    """Bring ``log_dir/<session>.jsonl`` up to date with the stream (see :class:`Mirror`)."""
    return Mirror(redis, session_id, log_dir).sync()


def _event_key(e) -> str | None:
    """The dedup key of an event (as in the stream's seen-set); None for anything that is not
    an event (a planted stream entry is skipped, never allowed to stop the mirror)."""
    if isinstance(e, dict) and "event_type" in e and "event_id" in e:
        return f"{e['event_type']}:{e['event_id']}"
    return None


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


class EventLog:
    """Emitter bound to one session (what phases and jobs hold).

    A session's driver passes its lock's fence (``lock.fence()``): then every append is
    conditional on the lock still being its own. Workers and tools pass none.
    """

    def __init__(self, redis, session_id: str, campaign_id: str | None, fence=None):
        self.redis = redis
        self.session_id = session_id
        self.campaign_id = campaign_id
        self.fence = fence

    def emit(self, event_type: str, event_id: str, turn_number: int | None = None, **fields) -> bool:
        return emit(self.redis, self.session_id, event_type, event_id, campaign_id=self.campaign_id,
                    turn_number=turn_number, fence=self.fence, **fields)
