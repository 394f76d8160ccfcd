"""Autopilot DMs on real sessions: every answer passes its contract, the log says who answered,
the rules DM is deterministic, the LLM DM re-asks a misbehaving model and falls back."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import QuietUI, offline_llm
from tests.fake_llm_server import FakeLLMServer, chat
from ttrpg.dm.autopilot import (
    DEFAULT_SCENARIO,
    LLMDM,
    RulesDM,
    judge_dice,
    load_scenario,
    make_dm,
)
from ttrpg.exceptions import ConfigError
from ttrpg.game.characters import default_party
from ttrpg.llm.config import make_config
from ttrpg.research import events
from ttrpg.session import play
from ttrpg.session.store import load_meta
from ttrpg.turn import questions


def _party(n):
    party = default_party().to_state()
    party["players"] = party["players"][:n]
    return party


def _play(session_id, dm, *, players=2, turns=2, llm=None):
    """A session of its own campaign: no memories of earlier sessions change what the players do."""
    return play.start(session_id=session_id, campaign_id=session_id, party=_party(players), llm=llm or offline_llm(),
                      dm=dm, ui=QuietUI(), max_turns=turns, seed=5, workers=0)


def _dm_inputs(redis, sid):
    return [e for e in events.all_events(redis, sid) if e["event_type"] == "dm_input"]


def _answer_metas(redis, sid):
    """Who answered each question and how (source, re-asks, fallback), from the ``dm_input`` events
    (the log is what researchers read; a finished session's checkpoints are compacted away)."""
    return {(e["turn_number"], e["kind"]): {k: e[k] for k in ("source", "reasks", "fallback") if k in e}
            for e in _dm_inputs(redis, sid) if not e.get("end")}


def _checked_by_contract(dm):
    """Wrap ``dm.ask`` so every answer is also checked here, against the question asked."""
    asked = []
    ask = dm.ask

    def checking(question, state):
        answer = ask(question, state)
        assert questions.check(answer, question, state) == answer
        asked.append(question["kind"])
        return answer

    dm.ask = checking
    return asked


# --- the rules DM ----------------------------------------------------------------------------------

def test_rules_dm_plays_sessions_deterministically_and_logs_its_source(fleet, redis_client):
    llm = offline_llm(backoff_base=0.0001)
    llm["faults"] = {"server_error": 1.0}  # p2 fails table talk twice a turn: interventions
    llm["fault_scope"] = {"players": ["p2"], "phases": ["discussion-r1"], "until_attempt": 3}
    runs = []
    for sid in ("s-" + uuid.uuid4().hex[:10], "s-" + uuid.uuid4().hex[:10]):
        dm = RulesDM(seed=2)
        asked = _checked_by_contract(dm)
        final = _play(sid, dm, llm=llm)
        assert final["turn"] == 3 and final["ended"]
        assert load_meta(redis_client, sid)["status"] == "completed"
        assert {"narration", "adjudication", "dice", "outcome", "intervention"} <= set(asked)
        inputs = _dm_inputs(redis_client, sid)
        assert inputs and {e["source"] for e in inputs} == {"autopilot-rules"}
        assert {e["kind"] for e in inputs} >= {"narration", "adjudication", "dice", "outcome", "intervention"}
        assert [e["choice"] for e in inputs if e["kind"] == "intervention"] == ["retry", "retry"]  # one per turn
        runs.append([(e["event_id"], e.get("text"), e.get("rolls"), e.get("override"), e.get("choice"))
                     for e in inputs])
    assert runs[0] == runs[1]  # same seeds, another session: the same DM, word for word
    narrations = [text for eid, text, *_ in runs[0] if eid.endswith(":narration")]
    assert narrations[:2] == [s["narration"] for s in DEFAULT_SCENARIO["scenes"][:2]]


def _state(n=3):
    return {"party": _party(n), "seed": 5, "session_id": "s-unit", "history": [], "narration": "A scene."}


@pytest.mark.parametrize("action, approach", [
    ("I hack the pirate console and reroute power to the shields.", "lasers"),
    ("I try to persuade the captain, pleading with her to let Galvin go.", "feelings"),
    ("I pilot the Raptor through the debris field, calculating each burn.", "lasers"),
    ("I bluff the guards and charm my way past them.", "feelings"),
    ("I sense something is wrong and comfort the frightened child.", "feelings"),
    ("I scan the ruins and shoot out the lock.", "lasers"),
])
def test_adjudication_reads_lasers_or_feelings_from_the_action(action, approach):
    state = _state(1)
    q = {"kind": "adjudication", "turn": 1, "actions": {"p1": action}}
    answer = RulesDM().ask(q, state)
    assert answer["rolls"][0]["approach"] == approach


def test_adjudication_dice_and_helpers():
    # p1 Zix is a Pilot, p2 Rex a Soldier, p3 K-7 a Scientist.
    assert judge_dice("I open the door.", "Pilot") == 1
    assert judge_dice("I pilot us out of the hangar.", "Pilot") == 2
    assert judge_dice("Prepared for this, I pilot us out of the hangar.", "Pilot") == 3
    assert judge_dice("I pilot us out of the hangar.", "Soldier") == 1
    state = _state(3)
    q = {"kind": "adjudication", "turn": 1,
         "actions": {"p1": "I steer the ship into the nebula.", "p2": "I help K-7 by covering the door.",
                     "p3": "I analyze the alien signal."}}
    rolls = RulesDM().ask(q, state)["rolls"]
    assert [r["player"] for r in rolls] == ["p1", "p3"]
    assert rolls[1]["helpers"] == ["p2"] and rolls[0]["helpers"] == []


def test_every_rules_answer_passes_its_contract():
    state = _state(2)
    roll = {"player": "p1", "approach": "lasers", "number": 3, "dice": [3, 6], "helpers": [],
            "result": {"band": "barely", "successes": 1, "laser_feelings": True}}
    state["rolls"] = [roll]
    actions = {"p1": "I calibrate the shields.", "p2": "I shout at the pirates."}
    asked = [
        {"kind": "narration", "turn": 1},
        {"kind": "review", "turn": 1, "player_id": "p2", "text": "I try to open the hatch.", "violations": ["x"]},
        {"kind": "adjudication", "turn": 1, "actions": actions},
        {"kind": "dice", "turn": 1, "rolls": [roll]},
        {"kind": "laser_feelings", "turn": 1, "player_id": "p1", "question": "Is Vex bluffing?"},
        {"kind": "outcome", "turn": 1, "rolls": [roll], "actions": actions},
        {"kind": "outcome", "turn": 2, "rolls": [], "actions": actions},
    ] + [{"kind": "intervention", "turn": 1, "phase": "party_discussion", "failures": n, "reason": "boom",
          "player_id": pid, "options": list(questions.INTERVENTION_CHOICES)} for n in (2, 4, 6) for pid in ("p2", None)]
    assert {q["kind"] for q in asked} == set(questions._CHECKS)
    dm = RulesDM(seed=9)
    choices = []
    for q in asked:
        answer = dm.ask(q, state)
        assert questions.check(answer, q, state) == answer
        if q["kind"] == "laser_feelings" or (q["kind"] == "outcome" and q["rolls"]):  # they name the roller
            assert "Zix" in answer["text"]
        if q["kind"] == "intervention":
            choices.append(answer["choice"])
    assert choices == ["retry", "retry", "skip", "end_turn", "end_turn", "end_turn"]
    ended = RulesDM({"scenes": ["Only scene."], "end_after": 1}).ask({"kind": "narration", "turn": 2}, state)
    assert ended["end"] is True


def test_bad_scenario_file_is_a_one_line_error_naming_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "scenario_bad.json"
    bad.write_text(json.dumps({"scenes": [{"narration": "Fine."}, {"narative": "Typo."}]}))
    with pytest.raises(ConfigError) as info:
        make_dm("rules", scenario=bad)
    message = str(info.value)
    assert "\n" not in message and str(bad) in message
    assert "scenes[1]" in message and "'narative'" in message and "allowed: narration, whispers" in message
    bad.write_text(json.dumps({"scenes": [], "outcomes": {"success": "{who} wins"}}))
    with pytest.raises(ConfigError, match=r'needs a non-empty "scenes" list, e\.g\.'):
        load_scenario(bad)
    bad.write_text(json.dumps({"scenes": ["Go."], "outcomes": {"success": "{who} wins"}}))
    with pytest.raises(ConfigError, match=r"outcomes.success uses \{who\}; only \{name\}"):
        load_scenario(bad)
    bad.write_text('{"scenes": [')
    with pytest.raises(ConfigError, match="not valid JSON at line 1"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="Unknown autopilot DM 'keyboard'; known: rules, llm"):
        make_dm("keyboard")
    good = tmp_path / "scenario_good.json"
    good.write_text(json.dumps({"scenes": ["A quiet dock."], "end_after": 3}))
    assert make_dm("rules", scenario=good).scenario["end_after"] == 3


# --- the LLM DM ------------------------------------------------------------------------------------

def test_llm_dm_with_the_offline_model_plays_a_session(fleet, redis_client, session_id):
    dm = make_dm("llm", llm=make_config(offline=True), seed=4, scenario={"scenes": ["The Raptor docks at a "
                                                                                   "silent station."]})
    asked = _checked_by_contract(dm)
    final = _play(session_id, dm, turns=2)
    assert final["ended"] and final["turn"] == 3
    inputs = _dm_inputs(redis_client, session_id)
    assert {e["source"] for e in inputs} == {"autopilot-llm"}
    assert "silent station" in inputs[0]["text"]
    assert dm.calls == len([k for k in asked if k != "dice"]) and dm.fallbacks == 0 and dm.reasks == 0
    metas = _answer_metas(redis_client, session_id)
    assert metas and all(m["source"] == "autopilot-llm" and m["fallback"] is False for m in metas.values())


def test_llm_dm_reasks_a_misbehaving_model_then_falls_back(fleet, redis_client, session_id):
    with FakeLLMServer() as server:
        url = server.route("dm",
                           chat("Sure! Here is a scene: the ship drifts."),       # narration: no JSON
                           chat('{"text": ""}'),                                  # narration: empty
                           chat('{"text": "   ", "whispers": []}'),              # narration: empty again: fallback
                           chat('{"rolls": [{"player": "nobody"}]}'),             # adjudication: no such player
                           chat('{"text": "The crew steadies itself."}'))         # then valid (no rolls; outcome)
        llm = make_config("fake-model", base_url=url, backoff_base=0.001)
        dm = LLMDM(llm, seed=3, max_reasks=2)
        final = _play(session_id, dm, players=1, turns=1)
        requests = server.requests_to("dm")
    assert final["ended"]
    assert dm.reasks == 3 and dm.fallbacks == 1
    retry_prompt = requests[1].json()["messages"]
    assert retry_prompt[-1]["role"] == "user" and "cannot be used" in retry_prompt[-1]["content"]
    assert "no JSON object" in retry_prompt[-1]["content"]
    assert "nobody" in requests[4].json()["messages"][-1]["content"]
    inputs = _dm_inputs(redis_client, session_id)
    assert {e["source"] for e in inputs} == {"autopilot-llm"}
    narration = next(e for e in inputs if e["kind"] == "narration" and not e["end"])
    assert narration["text"] == DEFAULT_SCENARIO["scenes"][0]["narration"]  # the rules DM's scene: the fallback
    assert (narration["reasks"], narration["fallback"]) == (2, True)  # counted in the log
    adjudication = next(e for e in inputs if e["kind"] == "adjudication")
    assert adjudication["rolls"] == []
    assert (adjudication["reasks"], adjudication["fallback"]) == (1, False)
    metas = _answer_metas(redis_client, session_id)
    assert {k: (m["reasks"], m["fallback"]) for k, m in metas.items() if k[0] == 1} == {
        (1, "narration"): (2, True), (1, "adjudication"): (1, False), (1, "outcome"): (0, False)}
