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

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ttrpg.constants import EVENTS_SEEN, EVENTS_STREAM

_APPEND_ONCE = """
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
end
return false
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def emit(redis, session_id: str, event_type: str, event_id: str, *, campaign_id: str | None = None,
         turn_number: int | None = None, **fields) -> bool:
    """Append one event unless an event with this id was appended before; True if appended."""
    event = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": now_iso(),
        "session_id": session_id,
        "campaign_id": campaign_id,
        "turn_number": turn_number,
        **fields,
    }
    keys = [EVENTS_STREAM.format(session_id=session_id), EVENTS_SEEN.format(session_id=session_id)]
    added = redis.eval(_APPEND_ONCE, 2, *keys, f"{event_type}:{event_id}", json.dumps(event, default=str))
    return bool(added)


def read(redis, session_id: str, after: str = "-", count: int | None = None) -> list[tuple[str, dict]]:
    """Events after stream id ``after`` (exclusive unless '-'), as ``(stream_id, event)`` pairs."""
    start = after if after == "-" else f"({after}"
    entries = redis.xrange(EVENTS_STREAM.format(session_id=session_id), min=start, max="+", count=count)
    return [(_s(sid), json.loads(fields[b"e"])) for sid, fields in entries]


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
            yield last, json.loads(fields[b"e"])


class Mirror:
    """Keeps ``log_dir/<session>.jsonl`` equal to the session's stream, each event exactly once.

    The file is append-only. On first use the ids already in the file are read, so a crash
    between appending a line and remembering the stream position cannot duplicate a line,
    and a torn last line (power cut mid-write) is dropped and rewritten.
    """

    def __init__(self, redis, session_id: str, log_dir: Path):
        self.redis = redis
        self.session_id = session_id
        self.path = Path(log_dir) / f"{session_id}.jsonl"
        self._cursor = "-"
        self._seen: set[str] | None = None

    def sync(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._seen is None:
            self._seen = set()
            _truncate_torn_tail(self.path)
            if self.path.exists():
                with self.path.open() as fh:
                    for line in fh:
                        e = json.loads(line)
                        self._seen.add(f"{e['event_type']}:{e['event_id']}")
        entries = read(self.redis, self.session_id, after=self._cursor)
        new = []
        for sid, e in entries:
            self._cursor = sid
            key = f"{e['event_type']}:{e['event_id']}"
            if key not in self._seen:
                self._seen.add(key)
                new.append(e)
        if new or not self.path.exists():
            with self.path.open("a") as fh:
                for e in new:
                    fh.write(json.dumps(e, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return self.path


def mirror(redis, session_id: str, log_dir: Path) -> Path:
    """Bring ``log_dir/<session>.jsonl`` up to date with the stream (see :class:`Mirror`)."""
    return Mirror(redis, session_id, log_dir).sync()


def _truncate_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else v


class EventLog:
    """Emitter bound to one session (what phases and jobs hold)."""

    def __init__(self, redis, session_id: str, campaign_id: str | None):
        self.redis = redis
        self.session_id = session_id
        self.campaign_id = campaign_id

    def emit(self, event_type: str, event_id: str, turn_number: int | None = None, **fields) -> bool:
        return emit(self.redis, self.session_id, event_type, event_id, campaign_id=self.campaign_id,
                    turn_number=turn_number, **fields)
