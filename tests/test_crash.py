"""SIGKILL of a real `ttrpg` process, then `ttrpg resume`: the session completes, nothing twice.

The reference is a clean run of the same seeded demo; a crashed-and-resumed run must leave
the same events (apart from session_resumed / job_reattached, and timings), each once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import ROOT, run_cli
from ttrpg.research import events

FLEET_CLASS = "fork"  # what is tested is resume; fork workers keep 2 cores free for it
#: Fields that differ between two runs of one script: times (``wait_ms`` is how long the script took to
#: answer, 0 or 1 ms by the clock's luck), processes, the checkpoint a resume restarted from.
VOLATILE = {"timestamp", "latency_ms", "wait_ms", "worker_pid", "pid", "to_checkpoint", "status", "driver"}
RESUME_ONLY = {"session_resumed", "job_reattached"}
DEMO = ["demo", "--turns", "2", "--players", "2", "--seed", "11"]
DEMO_1 = ["demo", "--turns", "1", "--players", "2", "--seed", "11"]


def normalized(log: list[dict], session_id: str) -> list[tuple]:
    """Events without timings, and with the session id (part of job ids) replaced."""
    out = []
    for e in log:
        if e["event_type"] in RESUME_ONLY:
            continue
        fields = {k: v for k, v in e.items() if k not in VOLATILE and k != "session_id" and k != "campaign_id"}
        out.append((e["event_type"], e["event_id"].replace(session_id, "SID"),
                    repr(sorted(fields.items())).replace(session_id, "SID")))
    return sorted(out)


def _clean(demo):
    from ttrpg.backend.connection import get_redis

    sid = "clean-" + os.urandom(3).hex()
    result = run_cli(*demo, "--session", sid, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return normalized(events.all_events(get_redis(), sid), sid)


@pytest.fixture(scope="module")
def clean_logs(fleet, ttrpg_home):
    """Reference logs of clean runs: a 1-turn session (turn-1 kill points) and a 2-turn one."""
    return {1: _clean(DEMO_1), 2: _clean(DEMO)}


def _llm_calls(log):
    return Counter((e["turn_number"], e["phase"], e["player_id"], e["attempt"])
                   for e in log if e["event_type"] == "llm_call")


KILL_POINTS = ["dm_narration@1", "memory_query@1", "party_discussion@1", "strategic_intent@1",
               "character_action@1", "validation@1", "dm_adjudication@1", "dice_roll@1", "dice_resolution@1",
               "dm_outcome@1", "character_reaction@1", "memory_storage@2", "dm_narration@2"]


@pytest.mark.parametrize("kill_after", KILL_POINTS)
def test_sigkill_at_phase_boundary_then_resume(fleet, redis_client, clean_logs, kill_after):
    """Every phase of turn 1 in a 1-turn session; the turn boundary in a 2-turn session."""
    turns = 2 if kill_after.endswith("@2") else 1
    clean_log = clean_logs[turns]
    sid = "crash-" + kill_after.replace("@", "-").replace("_", "-") + "-" + os.urandom(2).hex()
    crashed = run_cli(*(DEMO if turns == 2 else DEMO_1), "--session", sid, env={"TTRPG_KILL_AFTER": kill_after},
                      timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    resumed = run_cli("resume", sid, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = events.all_events(redis_client, sid)
    assert normalized(log, sid) == clean_log
    assert [e["event_type"] for e in log].count("session_resumed") == 1
    assert all(n == 1 for n in _llm_calls(log).values())  # no finished call made again


def test_sigkill_in_the_middle_of_a_fanout_then_resume(fleet, redis_client):
    """Kill the DM while the players' jobs run: the jobs finish on the workers and resume reuses them."""
    sid = "midfan-" + os.urandom(3).hex()
    proc = subprocess.Popen([sys.executable, "-m", "ttrpg", *DEMO, "--session", sid, "--latency", "1500"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(e["event_type"] == "job_enqueued" and e.get("phase") == "intent"
               for e in events.all_events(redis_client, sid)):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the demo never reached the strategic intent fan-out")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    time.sleep(2)  # the jobs go on without the DM
    resumed = run_cli("resume", sid, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = events.all_events(redis_client, sid)
    calls = _llm_calls(log)
    assert all(n == 1 for n in calls.values()), calls
    reattached = [e for e in log if e["event_type"] == "job_reattached"]
    assert {e["phase"] for e in reattached} == {"intent"}
    assert [e["event_type"] for e in log][-1] == "session_ended"
