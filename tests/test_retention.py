"""Retention on real sessions: a finished session's checkpoints go, its log, status and summary stay.

Sessions are played offline on real workers with ``TTRPG_RETENTION=keep`` (so the driver leaves
the checkpoints in place whether or not it compacts on finish), then compacted here.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import uuid

import pytest

from tests.conftest import QuietUI, offline_llm, run_cli
from ttrpg.constants import SESSION_LOCK
from ttrpg.dm.script import ScriptDM, builtin_script
from ttrpg.exceptions import SessionFinished, SessionLocked, TTRPGError
from ttrpg.game.characters import default_party
from ttrpg.research import events
from ttrpg.research.report import report
from ttrpg.research.transcript import transcript
from ttrpg.session import play, retention, store
from ttrpg.session.lock import SessionLock
from ttrpg.settings import get_settings


def _settings(mode: str):
    return dataclasses.replace(get_settings(), retention=mode)


def _play(sid: str, players: int, turns: int) -> dict:
    party = default_party().to_state()
    party["players"] = party["players"][:players]
    script = builtin_script()
    return play.start(session_id=sid, campaign_id="ret-camp", party=party, llm=offline_llm(), dm=ScriptDM(script),
                      ui=QuietUI(), dm_script=script, max_turns=turns, seed=5, workers=0,
                      settings=_settings("keep"))


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """``ttrpg ARGS`` in this process (same entry point as the console script; cheaper than a
    subprocess): exit code, stdout, stderr. The umask the CLI sets is put back."""
    import os

    from ttrpg.cli import main

    capsys.readouterr()
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.umask(umask)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _scan(redis, sid: str) -> list[str]:
    """Every key of this Redis that names the session, whatever its prefix (a full SCAN)."""
    return sorted(k.decode() for k in redis.scan_iter(match=f"*{sid}*", count=1000))


def _checkpoint_keys(redis, sid: str) -> list[str]:
    """The session's keys that are neither ttrpg's own nor RQ's (its jobs expire on their own)."""
    return [k for k in _scan(redis, sid) if not k.startswith(("ttrpg:", "rq:"))]


@pytest.fixture(scope="module")
def finished(fleet):
    """One 3-turn offline session with two AI players, finished, checkpoints kept."""
    from ttrpg.backend.connection import get_redis

    sid = "ret-" + uuid.uuid4().hex[:8]
    final = _play(sid, players=2, turns=3)
    assert final["ended"] and final["turn"] == 4
    redis = get_redis()
    yield {"sid": sid, "redis": redis, "events": len(events.all_events(redis, sid))}
    redis.close()


@pytest.fixture
def live_holder(finished):
    """The session's lock held by a live process of this host (as a running driver would hold it)."""
    redis, sid = finished["redis"], finished["sid"]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    key = SESSION_LOCK.format(session_id=sid)
    redis.set(key, f"{socket.gethostname()}:{sleeper.pid}:tok", px=60_000)
    yield sleeper
    redis.delete(key)
    sleeper.kill()
    sleeper.wait()


def test_1_finished_session_keeps_checkpoints_under_keep(finished):
    redis, sid = finished["redis"], finished["sid"]
    keys = _checkpoint_keys(redis, sid)
    kinds = sorted({k.split(":", 1)[0] for k in keys})
    print(f"\ncheckpoint key kinds of a finished thread: {kinds} ({len(keys)} keys)")
    assert {"checkpoint", "checkpoint_latest", "checkpoint_write"} <= set(kinds)
    assert set(keys) == set(retention.thread_keys(redis, sid))  # the saver's key kinds, and nothing else
    assert retention.compact_on_finish(redis, sid, _settings("keep")) is None
    assert _checkpoint_keys(redis, sid) == keys


def test_2_resume_of_a_finished_session_says_so_in_one_line(finished):
    sid = finished["sid"]
    with pytest.raises(SessionFinished, match="after 3 turns"):
        play.resume(sid)
    result = run_cli("resume", sid)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "finished after 3 turns" in lines[0] and f"ttrpg logs export {sid}" in lines[0]


def test_3_a_session_with_a_live_driver_or_not_finished_is_refused(finished, live_holder, capsys):
    redis, sid = finished["redis"], finished["sid"]
    keys = _checkpoint_keys(redis, sid)
    with pytest.raises(SessionLocked, match="live driver"):
        retention.compact_finished(redis, sid, get_settings())
    assert retention.compact_on_finish(redis, sid, _settings("compact"))["error"].startswith("SessionLocked")
    result = run_cli("compact", sid)
    assert result.returncode == 1 and "live driver" in result.stderr and "Traceback" not in result.stderr
    assert _checkpoint_keys(redis, sid) == keys

    other = "ret-new-" + uuid.uuid4().hex[:6]  # created, never played: status "new"
    store.create(redis, store.SessionSpec(session_id=other, campaign_id=other,
                                          party=default_party().to_state(), llm=offline_llm()))
    with pytest.raises(TTRPGError, match="not finished"):
        retention.compact_finished(redis, other)
    code, _, err = _cli(capsys, "compact", other)
    assert code == 1 and "not finished" in err
    assert _cli(capsys, "compact", "no-such-session-x")[0] == 2
    assert _cli(capsys, "compact")[0] == 2
    assert _cli(capsys, "compact", "--all", sid)[0] == 2
    assert _checkpoint_keys(redis, sid) == keys


def test_4_compacting_frees_the_checkpoints_and_keeps_everything_else(finished, capsys):
    redis, sid = finished["redis"], finished["sid"]
    before_keys = _checkpoint_keys(redis, sid)
    status_before = json.loads(_cli(capsys, "status", sid, "--json")[1])
    code, export_before, _ = _cli(capsys, "logs", "export", sid)
    assert code == 0 and export_before.count("\n") == finished["events"]
    transcript_before, report_before = transcript(redis, sid, fmt="md"), report(redis, sid)

    with SessionLock(redis, sid) as lock:  # as at the end of Driver.run: the driver still holds its lock
        result = retention.compact_on_finish(redis, sid, _settings("compact"), fence=lock.fence())
    with capsys.disabled():
        print(f"\ncompacted a 3-turn 2-player session: {result}")
    assert result["result"] == "compacted" and result["keys_deleted"] == len(before_keys)
    assert result["bytes_after"] < result["bytes_before"]
    assert _checkpoint_keys(redis, sid) == []  # checkpoints, latest pointers, writes, registries: all gone
    meta = store.load_meta(redis, sid)
    assert meta["retention"] == "compacted" and meta["status"] == "completed"
    assert int(meta["retention_bytes_freed"]) == result["checkpoint_bytes_before"]
    assert 0 < result["bytes_before"] - result["bytes_after"] <= result["checkpoint_bytes_before"]
    summary = retention.stored_summary(meta)
    assert summary["turns_played"] == 3 and set(summary["characters"]) == {"p1", "p2"}

    export_after = run_cli("logs", "export", sid)  # a real process, as a researcher would run it
    assert export_after.returncode == 0 and export_after.stdout == export_before
    assert export_after.stdout.count("\n") == finished["events"]
    assert transcript(redis, sid, fmt="md") == transcript_before and report(redis, sid) == report_before
    code, out, err = _cli(capsys, "status", sid, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["status"] == "completed" and info["turn"] == status_before["turn"]
    assert info["pending_question"] is None and info["pending_phase"] is None
    code, out, _ = _cli(capsys, "status", sid)
    assert code == 0 and "completed" in out
    listed = json.loads(_cli(capsys, "sessions", "--json")[1])
    assert any(r["session_id"] == sid and r["status"] == "completed" for r in listed)

    resumed = run_cli("resume", sid)
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert len(resumed.stderr.strip().splitlines()) == 1 and "finished after 3 turns" in resumed.stderr


def test_5_compact_is_idempotent(finished, capsys):
    redis, sid = finished["redis"], finished["sid"]
    freed = store.load_meta(redis, sid)["retention_bytes_freed"]
    again = retention.compact_finished(redis, sid, get_settings())
    assert again["result"] == "already compacted" and again["keys_deleted"] == 0
    assert again["bytes_before"] == again["bytes_after"]
    code, out, err = _cli(capsys, "compact", sid, "--json")
    assert code == 0, err
    row = json.loads(out)["sessions"][0]
    assert row["result"] == "already compacted" and row["keys_deleted"] == 0
    assert store.load_meta(redis, sid)["retention_bytes_freed"] == freed
    assert _checkpoint_keys(redis, sid) == []


def test_6_bytes_per_finished_session_four_players(fleet, redis_client, capsys):
    """The figure for the issue: one 3-turn 4-player offline session, before and after compaction,
    and `ttrpg compact --all` finding it among the finished sessions."""
    sid = "ret4-" + uuid.uuid4().hex[:8]
    _play(sid, players=4, turns=3)
    sizes = retention.session_bytes(redis_client, sid)
    code, out, err = _cli(capsys, "compact", "--all", "--json")
    assert code == 0, err
    rows = {r["session_id"]: r for r in json.loads(out)["sessions"]}
    row = rows[sid]
    assert row["result"] == "compacted" and row["bytes_before"] == sizes["total"]
    assert _checkpoint_keys(redis_client, sid) == []
    with capsys.disabled():
        print(f"\n3-turn 4-player session: {row['bytes_before']} B before ({sizes['checkpoints']} B checkpoints in "
              f"{row['keys_deleted']} keys, {sizes['kept']} B meta+events), {row['bytes_after']} B after compaction")
