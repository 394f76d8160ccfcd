"""A 4-player demo: the party talks out of character, reaches every consensus state, and acts."""

from __future__ import annotations

from tests.conftest import QuietUI
from ttrpg.research import events
from ttrpg.session import play

FLEET_CLASS = "fork"


def test_four_player_demo_reaches_every_consensus_state_and_acts(fleet, redis_client, session_id):
    final = play.demo(session_id=session_id, turns=2, players=4, seed=7, ui=QuietUI(), workers=0)
    log = events.all_events(redis_client, session_id)
    states = {e["state"] for e in log if e["event_type"] == "consensus"}
    assert {"unanimous", "majority", "conflicted"} <= states
    majority = [e for e in log if e["event_type"] == "consensus" and e["state"] == "majority"]
    assert all(e["dissent"] for e in majority)  # the dissent is noted
    assert all(len(final["discussion"]) >= 4 for _ in [0])
    # after the talk, all four characters declare actions, in parallel jobs
    actions = [e for e in log if e["event_type"] == "job_enqueued" and e["phase"] == "action-v1"]
    assert {e["player_id"] for e in actions} == {"p1", "p2", "p3", "p4"}
    assert len(final["actions"]) == 4
