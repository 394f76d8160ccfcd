"""Memory across sessions: personal and party memories with confidence, on Redis (real server)."""

from __future__ import annotations

import json
import types
import uuid
from pathlib import Path

import pytest

import ttrpg
from ttrpg.constants import MEMORY_KEY
from ttrpg.game import dice
from ttrpg.memory import benchmark, conflicts, recall, storing
from ttrpg.memory.store import campaign_now, campaign_turn
from ttrpg.prompts.context import estimate_text_tokens
from ttrpg.research import events

PARTY = json.loads((Path(ttrpg.__file__).parent / "data" / "characters.json").read_text())


@pytest.fixture
def campaign():
    return "c-" + uuid.uuid4().hex[:10]


def _ctx(client, session_id, campaign_id):
    return types.SimpleNamespace(redis=client, events=events.EventLog(client, session_id, campaign_id))


def _state(campaign_id, session_id, turn, narration="", **kw):
    state = {"session_id": session_id, "campaign_id": campaign_id, "turn": turn, "party": PARTY,
             "narration": narration, "history": [], "intents": {}, "actions": {}, "rolls": [], "outcome": "",
             "reactions": {}, "consensus": {}, "laser_feelings": []}
    state.update(kw)
    return state


def _events(client, session_id, event_type):
    return [e for e in events.all_events(client, session_id) if e["event_type"] == event_type]


def _roll(pid, dice_rolled, number, approach="lasers"):
    return {"player": pid, "approach": approach, "number": number, "dice": dice_rolled, "helpers": [],
            "overridden": False, "result": dice.resolve_roll(dice_rolled, number, approach)}


# --------------------------------------------------------------------------- store and query

def test_store_then_query_round_trip_keeps_source_and_turn(redis_client, campaign):
    m = storing.store(redis_client, campaign, scope="party", text="The dock master Galvin sells fuel cheaply.",
                     source="dm", turn=3, session_id="s1")
    assert m["confidence"] == 1.0 and m["entities"] == ["Galvin"] and m["status"] == "active"
    raw = redis_client.execute_command("JSON.GET", MEMORY_KEY.format(campaign_id=campaign, memory_id=m["id"]), "$")
    assert json.loads(raw)[0]["text"] == m["text"]  # a JSON document under the memory prefix

    found = recall.query(redis_client, campaign, "Who sells fuel?", scopes=["party"])
    assert [f["id"] for f in found] == [m["id"]]
    hit = found[0]
    assert (hit["source"], hit["turn"], hit["session_id"], hit["scope"]) == ("dm", 3, "s1", "party")
    assert hit["learned"] == "turn 3 of session s1, from the DM"
    assert hit["confidence"] == 1.0
    # another campaign sees nothing
    assert recall.query(redis_client, "other-" + campaign, "Who sells fuel?", scopes=["party"]) == []


def test_base_confidence_follows_the_source(redis_client, campaign):
    kw = dict(turn=1, session_id="s1")
    dm = storing.store(redis_client, campaign, scope="party", text="A storm hits Kell.", source="dm", **kw)
    pl = storing.store(redis_client, campaign, scope="player:p1", text="I plan to wait out the storm.",
                      source="player", **kw)
    ch = storing.store(redis_client, campaign, scope="character:p1", text="Zix hides from the storm.",
                      source="character", **kw)
    assert dm["confidence"] == 1.0
    assert 0.7 <= pl["confidence"] <= 0.9
    assert 0.5 <= ch["confidence"] <= 0.7
    with pytest.raises(ValueError):
        storing.store(redis_client, campaign, scope="everyone", text="x", source="dm", **kw)
    with pytest.raises(ValueError):
        storing.store(redis_client, campaign, scope="party", text="x", source="narrator", **kw)


def test_full_text_stemming_and_entity_match(redis_client, campaign):
    a = storing.store(redis_client, campaign, scope="party", text="The freighter docks at Port Kell at dawn.",
                     source="dm", turn=1, session_id="s1")
    b = storing.store(redis_client, campaign, scope="party", text="Mira Voss hides the stolen crystal.",
                     source="dm", turn=2, session_id="s1")
    assert {"Port Kell"} <= set(a["entities"]) and "Mira Voss" in b["entities"]
    # full text, with stemming: "docked" finds "docks"
    assert [m["id"] for m in recall.query(redis_client, campaign, "Which ship docked?", scopes=["party"])] == [a["id"]]
    # entity match, in any letter case, including a multi-word entity
    assert recall.query(redis_client, campaign, "what about mira voss", scopes=["party"])[0]["id"] == b["id"]
    assert recall.query(redis_client, campaign, "Tell me of PORT KELL!", scopes=["party"])[0]["id"] == a["id"]


def test_user_text_is_escaped_and_stopword_or_empty_queries_find_nothing(redis_client, campaign):
    storing.store(redis_client, campaign, scope="party", text="The beacon on K-7 blinks red.", source="dm", turn=1,
                 session_id="s1")
    for text in ("", "   ", "the a of and", "?!", "@scope:{party} | *", "-(beacon", '"beacon', "beacon)) | @x:[1 2]",
                 "$param", "~beacon*", "K-7's beacon; {red}"):
        found = recall.query(redis_client, campaign, text, scopes=["party"])
        assert isinstance(found, list)
        if "beacon" in text:
            assert found and "beacon" in found[0]["text"]
        elif text.strip(" ?!") == "" or text == "the a of and":
            assert found == []
    assert recall.query(redis_client, campaign, "beacon", scopes=[]) == []


def test_scope_filter_is_inside_the_query_not_after_limit(redis_client, campaign):
    for i in range(60):
        storing.store(redis_client, campaign, scope="player:p2", text=f"The reactor reactor reactor hums, note {i}.",
                     source="player", turn=1, session_id="s1")
    party = storing.store(redis_client, campaign, scope="party", text="Somewhere a reactor is mentioned once, "
                         "among many other words about cargo, fuel, pirates, and docking fees.", source="dm",
                         turn=1, session_id="s1")
    found = recall.query(redis_client, campaign, "reactor", scopes=["party", "player:p1"], limit=1)
    assert [m["id"] for m in found] == [party["id"]]


def test_token_budget_and_limit(redis_client, campaign):
    for i in range(8):
        storing.store(redis_client, campaign, scope="party", text=f"The nebula glows, report {i}. " + "x" * 200,
                     source="dm", turn=i + 1, session_id="s1")
    assert len(recall.query(redis_client, campaign, "nebula", scopes=["party"], limit=3, token_budget=None)) == 3
    small = recall.query(redis_client, campaign, "nebula", scopes=["party"], limit=8, token_budget=120)
    assert sum(estimate_text_tokens(m["text"]) for m in small) <= 120 and len(small) == 2


# --------------------------------------------------------------------------- confidence

def test_effective_confidence_decays_with_age_character_layer_faster(redis_client, campaign):
    old = storing.store(redis_client, campaign, scope="party", text="Galvin owes the crew a favour.", source="dm",
                       turn=1, session_id="s1", id="old")
    new = storing.store(redis_client, campaign, scope="party", text="Galvin owes the crew a favour!", source="dm",
                       turn=40, session_id="s1", id="new")
    found = recall.query(redis_client, campaign, "favour Galvin owes", scopes=["party"])
    assert [m["id"] for m in found] == [new["id"], old["id"]]
    assert found[0]["confidence"] == 1.0 and found[1]["confidence"] < 1.0
    # at an explicit clock value, the same age weighs more on the character layer
    p = recall.effective_confidence({"scope": "player:p1", "cturn": 1, "confidence": 0.6}, 21)
    c = recall.effective_confidence({"scope": "character:p1", "cturn": 1, "confidence": 0.6}, 21)
    assert c < p < 0.6
    # the floor keeps very old memories recallable
    assert recall.effective_confidence({"scope": "party", "cturn": 1, "confidence": 1.0}, 100000) > 0


def test_age_counts_across_sessions_on_the_campaign_clock(redis_client, campaign):
    storing.store(redis_client, campaign, scope="party", text="A fact from turn 12.", source="dm", turn=12,
                 session_id="s1")
    assert campaign_turn(redis_client, campaign, "s2", 1) == 13  # session 2 turn 1 comes after
    assert campaign_turn(redis_client, campaign, "s2", 1) == 13  # and stays there
    assert campaign_now(redis_client, campaign) == 13


# --------------------------------------------------------------------------- layers

def test_player_memories_never_reach_the_character_layer(redis_client, campaign, session_id):
    secret = storing.store(redis_client, campaign, scope="player:p1", text="Out of character: Galvin is the traitor.",
                          source="player", turn=1, session_id=session_id)
    own = storing.store(redis_client, campaign, scope="character:p1", text="Zix shook Galvin's hand warmly.",
                       source="character", turn=1, session_id=session_id)
    shared = storing.store(redis_client, campaign, scope="party", text="Galvin runs the docks of Kell.", source="dm",
                          turn=1, session_id=session_id)
    ctx = _ctx(redis_client, session_id, campaign)
    found = recall.recall_for_turn(ctx, _state(campaign, session_id, 2, "Galvin waves you over."))
    p1_player, p1_char = " ".join(found["p1"]["player"]), " ".join(found["p1"]["character"])
    assert secret["text"] in p1_player and own["text"] in p1_player and shared["text"] in p1_player
    assert secret["text"] not in p1_char and "traitor" not in p1_char
    assert own["text"] in p1_char and shared["text"] in p1_char
    # another AI sees only the party memory
    assert found["p2"]["player"] == found["p2"]["character"] and secret["text"] not in " ".join(found["p2"]["player"])
    assert own["text"] not in " ".join(found["p2"]["player"])
    assert "turn 1 of this session" in found["p1"]["player"][0]


def test_nothing_found_is_said_explicitly_and_one_event_per_turn(redis_client, campaign, session_id):
    ctx = _ctx(redis_client, session_id, campaign)
    state = _state(campaign, session_id, 1, "A derelict drifts past the viewport.")
    found = recall.recall_for_turn(ctx, state)
    assert set(found) == {p["id"] for p in PARTY["players"]}
    for layers in found.values():
        assert layers == {"player": [recall.NOTHING_KNOWN], "character": [recall.NOTHING_KNOWN]}
    recall.recall_for_turn(ctx, state)  # a re-run of the phase logs nothing new
    logged = _events(redis_client, session_id, "memory_query")
    assert len(logged) == 1 and logged[0]["event_id"] == "1" and logged[0]["results"] == 0
    assert logged[0]["counts"]["p1"] == {"player": 0, "character": 0}


# --------------------------------------------------------------------------- conflicts

def test_conflict_dm_beats_character_and_is_logged(redis_client, campaign, session_id):
    ev = events.EventLog(redis_client, session_id, campaign)
    belief = storing.store(redis_client, campaign, scope="character:p1", text="Galvin is dead; Zix saw him fall.",
                          source="character", turn=2, session_id=session_id, events=ev)
    fact = storing.store(redis_client, campaign, scope="party", text="Galvin is alive, hiding in the vents.",
                        source="dm", turn=3, session_id=session_id, events=ev)
    assert fact["status"] == "active" and fact["supersedes"] == [belief["id"]]
    listed = {m["id"]: m for m in recall.list_memories(redis_client, campaign)}
    assert listed[belief["id"]]["status"] == "superseded"  # kept, not deleted
    assert listed[belief["id"]]["superseded_by"] == fact["id"]
    (conflict,) = _events(redis_client, session_id, "memory_conflict")
    assert conflict["kept"] == fact["id"] and conflict["kept_source"] == "dm"
    assert conflict["superseded"] == belief["id"] and conflict["superseded_source"] == "character"
    assert conflict["entity"] == "galvin" and conflict["concept"] == "life"
    assert (conflict["memory_id"], conflict["conflicts_with"]) == (fact["id"], belief["id"])
    assert conflict["event_id"] == f"3:{fact['id']}:vs:{belief['id']}"
    # superseded memories are no longer recalled
    assert [m["id"] for m in recall.query(redis_client, campaign, "Galvin", scopes=["party", "character:p1"])] \
        == [fact["id"]]


def test_conflict_newer_lower_source_loses_to_older_dm_fact(redis_client, campaign, session_id):
    ev = events.EventLog(redis_client, session_id, campaign)
    fact = storing.store(redis_client, campaign, scope="party", text="The hangar door is locked.", source="dm", turn=1,
                        session_id=session_id, events=ev, entities=["hangar door"])
    guess = storing.store(redis_client, campaign, scope="player:p2", text="I think the hangar door is not locked.",
                         source="player", turn=5, session_id=session_id, events=ev, entities=["hangar door"])
    assert guess["status"] == "superseded" and guess["superseded_by"] == fact["id"]
    assert {m["id"]: m["status"] for m in recall.list_memories(redis_client, campaign)}[fact["id"]] == "active"
    (conflict,) = _events(redis_client, session_id, "memory_conflict")
    assert (conflict["kept_source"], conflict["superseded_source"]) == ("dm", "player")


def test_no_conflict_between_different_ais_or_unrelated_statements(redis_client, campaign, session_id):
    ev = events.EventLog(redis_client, session_id, campaign)
    storing.store(redis_client, campaign, scope="character:p1", text="Galvin is friendly.", source="character",
                 turn=1, session_id=session_id, events=ev)
    storing.store(redis_client, campaign, scope="character:p2", text="Galvin is hostile.", source="character",
                 turn=2, session_id=session_id, events=ev)
    storing.store(redis_client, campaign, scope="party", text="Galvin is dead tired but alive.", source="dm",
                 turn=3, session_id=session_id, events=ev)  # ambiguous sentence: asserts nothing about life
    assert _events(redis_client, session_id, "memory_conflict") == []
    assert all(m["status"] == "active" for m in recall.list_memories(redis_client, campaign))


def test_claims_heuristic():
    assert conflicts.claims("Galvin is not alive.", ["Galvin"]) == {("galvin", "life"): -1}
    assert conflicts.claims("Galvin is dead.", ["Galvin"]) == {("galvin", "life"): -1}
    assert conflicts.claims("Galvin isn't hostile.", ["Galvin"]) == {("galvin", "attitude"): 1}
    assert conflicts.claims("The vault is open.", ["Vault"]) == {("vault", "open"): 1}
    assert conflicts.claims("Nothing about anyone.", ["Galvin"]) == {}


# --------------------------------------------------------------------------- idempotence

def test_storing_twice_keeps_one_memory(redis_client, campaign):
    kw = dict(scope="party", text="The Xorian envoy arrives.", source="dm", turn=4, session_id="s1")
    a = storing.store(redis_client, campaign, **kw)
    b = storing.store(redis_client, campaign, **kw)
    assert a["id"] == b["id"] and a["created_at"] == b["created_at"]
    assert len(recall.list_memories(redis_client, campaign)) == 1


def test_store_turn_is_idempotent_and_stores_each_layer(redis_client, campaign, session_id):
    ctx = _ctx(redis_client, session_id, campaign)
    state = _state(
        campaign, session_id, 2, "At Port Kell, the smuggler Galvin offers you a job: haul his crates to Vega.",
        intents={"p1": {"intent": "Take the job, but check the crates.", "directive": "Scan the crates."}},
        actions={"p1": {"text": "Zix scans the crates with a hum."}},
        reactions={"p1": "Zix whistles at the readout."},
        rolls=[_roll("p1", [2, 5], 3)], outcome="The crates hold contraband; Galvin shrugs.",
        consensus={"state": "unanimous", "plan": "Accept the job and keep an eye on Galvin."})
    first = storing.store_turn(ctx, state)
    second = storing.store_turn(ctx, state)  # the phase re-runs after a crash
    assert [m["id"] for m in first] == [m["id"] for m in second]
    listed = recall.list_memories(redis_client, campaign, limit=1000)
    assert len(listed) == len(first) == len({m["id"] for m in first})
    by_id = {m["id"]: m for m in listed}
    assert by_id[f"{session_id}:2:narration:party"]["source"] == "dm"
    assert by_id[f"{session_id}:2:outcome:party"]["text"].startswith("The crates hold contraband")
    assert "Zix rolled LASERS" in by_id[f"{session_id}:2:outcome:party"]["text"]
    assert by_id[f"{session_id}:2:decision:party"]["source"] == "player"
    assert by_id[f"{session_id}:2:intent:p1"]["scope"] == "player:p1"
    assert by_id[f"{session_id}:2:intent:p1"]["source"] == "player"
    assert by_id[f"{session_id}:2:action:p1"]["scope"] == "character:p1"
    assert "whistles" in by_id[f"{session_id}:2:action:p1"]["text"]
    logged = _events(redis_client, session_id, "memory_stored")  # one per memory, exactly once
    assert sorted(e["event_id"] for e in logged) == sorted(f"2:{m['id']}" for m in first)
    stored = logged[0]
    assert stored["stored_this_turn"] == len(first) and sum(stored["by_scope"].values()) == len(first)
    assert {"new_entity", "roll_outcome", "party_decision"} <= set(stored["triggers"])
    assert "Galvin" in stored["new_entities"] and "Zix" not in stored["new_entities"]
    intent = next(e for e in logged if e["memory_id"] == f"{session_id}:2:intent:p1")
    assert (intent["player_id"], intent["layer"], intent["source"]) == ("p1", "player", "player")


def test_quiet_turn_stores_nothing_and_every_tenth_turn_a_recap(redis_client, campaign, session_id):
    ctx = _ctx(redis_client, session_id, campaign)
    assert storing.store_turn(ctx, _state(campaign, session_id, 3, "the engines hum quietly.")) == []
    history = [f"Turn {t}: the ship drifts through sector {t}." for t in range(1, 10)]
    stored = storing.store_turn(ctx, _state(campaign, session_id, 10, "the engines hum quietly.", history=history))
    assert [m["kind"] for m in stored] == ["summary"]
    assert stored[0]["text"].startswith("Recap of turns 1-10") and "sector 9" in stored[0]["text"]
    (logged,) = _events(redis_client, session_id, "memory_stored")
    assert logged["event_id"] == f"10:{stored[0]['id']}" and logged["triggers"] == ["summary"]


def test_quest_change_and_scene_end_and_session_end(redis_client, campaign, session_id):
    ctx = _ctx(redis_client, session_id, campaign)
    state = _state(campaign, session_id, 4, "the crates are delivered.",
                   outcome="The mission is complete. End of scene.")
    kinds = [m["kind"] for m in storing.store_turn(ctx, state)]
    assert "quest0" in kinds and "scene_end" in kinds
    quest = next(m for m in recall.list_memories(redis_client, campaign) if m["kind"] == "quest0")
    assert quest["text"].startswith("Quest completed:")
    end = storing.store_session_end(ctx, {**state, "turn": 5, "history": ["Turn 4: the crates are delivered."]})
    assert len(end) == 1 and end[0]["kind"] == "session_end" and end[0]["turn"] == 4
    assert storing.store_session_end(ctx, {**state, "turn": 5, "history": ["Turn 4: x"]})[0]["id"] == end[0]["id"]
    assert [e["event_id"] for e in _events(redis_client, session_id, "memory_stored")
            if e["event_id"].startswith("end:")] == [f"end:{end[0]['id']}"]


# --------------------------------------------------------------------------- across sessions

def test_galvin_is_remembered_in_the_next_session_after_a_redis_restart(redis_client, campaign, ttrpg_home):
    from ttrpg.backend import embedded
    from ttrpg.backend.connection import get_redis

    s1 = "s1-" + uuid.uuid4().hex[:6]
    ctx = _ctx(redis_client, s1, campaign)
    state = _state(campaign, s1, 3, "A wiry mechanic named Galvin climbs out of the engine bay and offers "
                                    "to fix your fuel lines for a price.",
                   rolls=[_roll("p2", [5], 2, "feelings")], outcome="Galvin takes your credits and grins.")
    stored = storing.store_turn(ctx, state)
    assert any("Galvin" in m["entities"] for m in stored)
    redis_client.close()

    embedded.stop(ttrpg_home)
    embedded.ensure_running(ttrpg_home)
    client = get_redis()
    try:
        found = recall.query(client, campaign, "what do we know about Galvin?", scopes=["party"])
        assert found, "Galvin was forgotten across the restart"
        narration = next(m for m in found if m["kind"] == "narration")
        assert narration["source"] == "dm" and narration["turn"] == 3 and narration["session_id"] == s1
        assert narration["learned"] == f"turn 3 of session {s1}, from the DM"
        # session 2 of the same campaign recalls it for its players
        s2 = "s2-" + uuid.uuid4().hex[:6]
        recalled = recall.recall_for_turn(_ctx(client, s2, campaign),
                                          _state(campaign, s2, 1, "Galvin is back, waving an invoice."))
        assert any("Galvin" in line and f"session {s1}" in line for line in recalled["p1"]["character"])
    finally:
        client.close()


# --------------------------------------------------------------------------- CLI and bench

def test_cli_query_and_list(redis_client, campaign):
    from typer.testing import CliRunner

    from ttrpg.cli.memory import app

    storing.store(redis_client, campaign, scope="party", text="Galvin fixes fuel lines at Port Kell.", source="dm",
                 turn=3, session_id="s1")
    storing.store(redis_client, campaign, scope="player:p1", text="I suspect Galvin overcharges.", source="player",
                 turn=4, session_id="s1")
    runner = CliRunner()
    result = runner.invoke(app, ["query", campaign, "what do we know about Galvin?", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["scope"] for r in rows} == {"party", "player:p1"}
    result = runner.invoke(app, ["query", campaign, "what do we know about Galvin?", "--scope", "party", "--json"])
    assert [r["scope"] for r in json.loads(result.stdout)] == ["party"]
    result = runner.invoke(app, ["query", campaign, "Galvin"])
    assert result.exit_code == 0 and "Galvin" in result.stdout and "party" in result.stdout
    result = runner.invoke(app, ["list", campaign, "--scope", "player:p1", "--json"])
    assert [r["text"] for r in json.loads(result.stdout)] == ["I suspect Galvin overcharges."]
    result = runner.invoke(app, ["list", campaign])
    assert result.exit_code == 0 and "Galvin" in result.stdout and "player:p1" in result.stdout
    result = runner.invoke(app, ["query", campaign, "Galvin", "--scope", "bogus"])
    assert result.exit_code != 0


def test_bench_query_reports_and_cleans_up(redis_client):
    figures = benchmark.bench_query(redis_client, n=300, queries=5)
    assert figures["n"] == 300 and figures["queries"] == 5 and figures["deleted"] == 300
    assert 0 < figures["median_ms"] <= figures["p95_ms"] <= figures["max_ms"]


def test_memory_events_match_the_research_log_schema(redis_client, campaign, session_id):
    from ttrpg.research import schema as event_schema
    ctx = _ctx(redis_client, session_id, campaign)
    storing.store(redis_client, campaign, scope="character:p1", text="Galvin is dead.", source="character", turn=1,
                 session_id=session_id, events=ctx.events)
    state = _state(campaign, session_id, 2, "Galvin is alive and waves from the dock.", rolls=[_roll("p1", [4], 3)],
                   outcome="You reach him.", history=["Turn 1: x"])
    recall.recall_for_turn(ctx, state)
    storing.store_turn(ctx, state)
    storing.store_session_end(ctx, state)
    logged = events.all_events(redis_client, session_id)
    assert {e["event_type"] for e in logged} == {"memory_query", "memory_stored", "memory_conflict"}
    assert event_schema.validate_log(logged) == []
