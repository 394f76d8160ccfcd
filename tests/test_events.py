"""The event log: appends once per event id, fenced appends for a session's driver, and a JSONL
mirror that holds every event exactly once even when several processes sync it at once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ttrpg.exceptions import LockLost
from ttrpg.research import events
from ttrpg.session.lock import Fence, SessionLock

# These tests write hand-made events (sample fields, ticks), not ttrpg's own.
pytestmark = pytest.mark.usefixtures("unchecked_events")


def test_emit_once_per_id_unfenced(redis_client, session_id):
    """Workers and tools emit without a fence, as before."""
    assert events.emit(redis_client, session_id, "llm_call", "1:p1", turn_number=1, player_id="p1")
    assert not events.emit(redis_client, session_id, "llm_call", "1:p1", turn_number=1, player_id="p1")
    (event,) = events.all_events(redis_client, session_id)
    assert event["event_id"] == "1:p1" and event["player_id"] == "p1" and event["session_id"] == session_id


def test_fenced_emit_appends_only_while_the_lock_is_ours(redis_client, session_id):
    lock = SessionLock(redis_client, session_id)
    lock.acquire()
    try:
        log = events.EventLog(redis_client, session_id, "c", fence=lock.fence())
        assert log.emit("phase_started", "1:a", 1)
        assert not log.emit("phase_started", "1:a", 1)
        redis_client.set(lock.key, "otherhost:99:beef", px=5000)  # taken over (the local flag does not know yet)
        with pytest.raises(LockLost) as err:
            log.emit("phase_started", "1:b", 1)
        assert "(otherhost, pid 99)" in str(err.value) and lock.lost
        assert [e["event_id"] for e in events.all_events(redis_client, session_id)] == ["1:a"]
        # nothing was marked seen: the driver that holds the lock can still log "1:b"
        other = Fence(redis_client, lock.key, "otherhost:99:beef", session_id=session_id)
        assert events.emit(redis_client, session_id, "phase_started", "1:b", fence=other)
    finally:
        lock.release()
        redis_client.delete(lock.key)


def test_fenced_emit_refuses_when_the_lock_expired(redis_client, session_id):
    fence = Fence(redis_client, f"ttrpg-test-lock:{session_id}", "me:1:x", session_id=session_id)
    with pytest.raises(LockLost) as err:
        events.emit(redis_client, session_id, "x", "1", fence=fence)
    assert "expired" in str(err.value)
    assert events.all_events(redis_client, session_id) == []


SYNCER = r"""
import sys
from pathlib import Path
from ttrpg.backend.connection import get_redis
from ttrpg.research.events import Mirror

session_id, log_dir, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
m = Mirror(get_redis(), session_id, log_dir)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(rounds):
    m.sync()
"""


def test_concurrent_mirror_syncs_write_each_line_once(redis_client, session_id, tmp_path):
    """Two processes (e.g. a stale driver and the one that took over) sync the same session's
    mirror at the same time while events keep arriving: every event is in the file once, in
    stream order."""
    for i in range(100):
        events.emit(redis_client, session_id, "tick", str(i), n=i)
    procs = [subprocess.Popen([sys.executable, "-c", SYNCER, session_id, str(tmp_path), "60"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for i in range(100, 300):  # more events while they sync
            events.emit(redis_client, session_id, "tick", str(i), n=i)
        for p in procs:
            assert p.wait(timeout=120) == 0, p.stderr.read()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    events.Mirror(redis_client, session_id, tmp_path).sync()
    lines = (tmp_path / f"{session_id}.jsonl").read_text().splitlines()
    ids = [json.loads(line)["event_id"] for line in lines]
    assert ids == [str(i) for i in range(300)]


def test_two_mirrors_in_turn_and_a_torn_tail(redis_client, session_id, tmp_path):
    a, b = events.Mirror(redis_client, session_id, tmp_path), events.Mirror(redis_client, session_id, tmp_path)
    events.emit(redis_client, session_id, "tick", "0")
    a.sync()
    events.emit(redis_client, session_id, "tick", "1")
    b.sync()  # its first look reads a's line, appends only "1"
    events.emit(redis_client, session_id, "tick", "2")
    a.sync()  # re-reads b's line since its last look
    path = tmp_path / f"{session_id}.jsonl"
    assert [json.loads(x)["event_id"] for x in path.read_text().splitlines()] == ["0", "1", "2"]

    with path.open("a") as fh:  # a writer killed mid-line
        fh.write('{"event_id": "3", "event_ty')
    events.emit(redis_client, session_id, "tick", "3")
    b.sync()
    assert [json.loads(x)["event_id"] for x in path.read_text().splitlines()] == ["0", "1", "2", "3"]
    assert path.stat().st_mode & 0o077 == 0
