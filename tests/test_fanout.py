"""Fan-out of per-player LLM jobs on real workers: parallel, re-attached, failures surfaced."""

from __future__ import annotations

import pytest

from tests.conftest import offline_llm
from ttrpg.exceptions import PhaseError
from ttrpg.jobs.fanout import job_id, run_jobs
from ttrpg.research import events


def _requests(session_id, llm, players=("p1", "p2", "p3", "p4"), phase="intent"):
    return {pid: {"session_id": session_id, "campaign_id": "c", "turn": 1, "phase": phase, "player_id": pid,
                  "attempt": 1, "llm": llm, "max_tokens": 60,
                  "messages": [{"role": "system", "content": f"You are player {pid}."},
                               {"role": "user", "content": "The derelict freighter drifts. What do you do?"}]}
            for pid in players}


def test_job_ids_are_deterministic_and_rq_safe():
    jid = job_id("s:1", 3, "action-v2", "p1", 2)
    assert jid == "s-1_t3_action-v2_p1_a2"
    assert jid == job_id("s:1", 3, "action-v2", "p1", 2)


def test_four_players_run_in_parallel_and_reattach_without_new_calls(fleet, redis_client, session_id):
    log = events.EventLog(redis_client, session_id, "c")
    reqs = _requests(session_id, offline_llm(latency_ms=800))
    first = run_jobs(redis_client, fleet, reqs, session_id=session_id, turn=1, phase="intent", attempt=1, events=log)
    assert sorted(first.results) == ["p1", "p2", "p3", "p4"]
    assert sorted(first.enqueued) == ["p1", "p2", "p3", "p4"]
    assert all(r["ok"] and r["text"] for r in first.results.values())
    # The four calls overlapped: each started before every other one ended.
    calls = [e for e in events.all_events(redis_client, session_id) if e["event_type"] == "llm_call"]
    assert len(calls) == 4
    assert len({r["pid"] for r in first.results.values()}) == 4  # four different interpreters

    again = run_jobs(redis_client, fleet, reqs, session_id=session_id, turn=1, phase="intent", attempt=1, events=log)
    assert sorted(again.reattached) == ["p1", "p2", "p3", "p4"] and again.enqueued == []
    assert again.results == first.results
    calls = [e for e in events.all_events(redis_client, session_id) if e["event_type"] == "llm_call"]
    assert len(calls) == 4  # re-attaching called no model
    assert sum(e["event_type"] == "job_reattached" for e in events.all_events(redis_client, session_id)) == 4


def test_exhausted_retries_fail_the_phase_with_the_player_named(fleet, redis_client, session_id):
    llm = offline_llm(faults={"server_error": 1.0})
    llm["backoff_base"] = 0.001
    reqs = _requests(session_id, llm, players=("p2",))
    with pytest.raises(PhaseError) as err:
        run_jobs(redis_client, fleet, reqs, session_id=session_id, turn=1, phase="intent", attempt=1,
                 events=events.EventLog(redis_client, session_id, "c"))
    assert err.value.player_id == "p2"
    log = events.all_events(redis_client, session_id)
    retries = [e for e in log if e["event_type"] == "llm_retry"]
    assert len(retries) == 4 and all(e["error_class"] for e in retries)
    assert [e["outcome"] for e in log if e["event_type"] == "llm_call"] == ["error"]


def test_progress_shows_each_player_until_the_phase_ends(fleet, redis_client, session_id):
    llm = offline_llm(latency_ms=200, faults={"rate_limit": 1.0})
    llm["fault_scope"] = {"players": ["p2"]}  # p2 is rate-limited on every attempt, p1 never
    llm["backoff_base"] = 0.1
    snapshots: list[dict] = []
    with pytest.raises(PhaseError) as err:
        run_jobs(redis_client, fleet, _requests(session_id, llm, players=("p1", "p2")), session_id=session_id,
                 turn=1, phase="intent", attempt=1, on_progress=snapshots.append)
    assert err.value.player_id == "p2"
    p1 = [s["p1"]["status"] for s in snapshots]
    p2 = [s["p2"]["status"] for s in snapshots]
    print(f"{len(snapshots)} reports; p1 {p1}; p2 {p2}")
    assert "done" in p1 and set(p1) <= {"queued", "thinking", "done"}
    assert "retrying" in p2 and p2[-1] == "failed" and "done" not in p2
    assert any(s["p2"]["detail"].startswith("rate limit, retry") for s in snapshots if s["p2"]["status"] == "retrying")
    assert "5 attempts" in snapshots[-1]["p2"]["detail"]
    elapsed = [s["p2"]["elapsed_s"] for s in snapshots]
    assert elapsed == sorted(elapsed) and all(set(s) == {"p1", "p2"} for s in snapshots)
