"""Sessions end to end on real workers: a demo plays, failures roll back, the DM intervenes."""

from __future__ import annotations

import pytest

from tests.conftest import QuietUI, offline_llm, run_cli
from ttrpg.dm.script import ScriptDM, builtin_script
from ttrpg.exceptions import SessionLocked, UnknownSession
from ttrpg.game.characters import default_party
from ttrpg.research import events
from ttrpg.session import play
from ttrpg.session.lock import SessionLock
from ttrpg.session.store import list_sessions, load_meta


def _party(n):
    party = default_party().to_state()
    party["players"] = party["players"][:n]
    return party


def _play(session_id, *, players=2, turns=2, llm=None, script=None, ui=None):
    script = script or builtin_script()
    return play.start(session_id=session_id, campaign_id="camp", party=_party(players), llm=llm or offline_llm(),
                      dm=ScriptDM(script), ui=ui or QuietUI(), dm_script=script, max_turns=turns, seed=5, workers=0)


def test_demo_session_plays_every_phase_in_order(fleet, redis_client, session_id):
    ui = QuietUI()
    final = _play(session_id, players=2, turns=2, ui=ui)
    assert final["turn"] == 3 and final["ended"]
    order = [s for s in ui.steps if s not in ("action_retry", "dm_review", "laser_feelings")
             and not s.startswith("ask_")]
    asks = [s for s in ui.steps if s.startswith("ask_")]
    assert asks[:4] == ["ask_narration", "ask_adjudication", "ask_dice", "ask_outcome"] or \
        asks[:5] == ["ask_narration", "ask_adjudication", "ask_dice", "ask_laser_feelings", "ask_outcome"]
    assert order[:10] == ["dm_narration", "memory_query", "party_discussion", "strategic_intent", "character_action",
                          "validation", "dm_adjudication", "dice_roll", "dice_resolution", "dm_outcome"]
    log = events.all_events(redis_client, session_id)
    types = [e["event_type"] for e in log]
    assert types[0] == "session_started" and types[-1] == "session_ended"
    assert types.count("turn_completed") == 2
    assert len({(e["event_type"], e["event_id"]) for e in log}) == len(log)
    for e in log:
        assert {"event_type", "timestamp", "session_id", "turn_number", "campaign_id"} <= set(e)
    assert load_meta(redis_client, session_id)["status"] == "completed"
    assert any(r["session_id"] == session_id and r["status"] == "completed" for r in list_sessions(redis_client))


@pytest.mark.parametrize("choice", ["retry", "skip", "type:I hold position and cover the door.", "end_turn"])
def test_phase_failing_twice_asks_the_dm_and_each_option_works(fleet, redis_client, session_id, choice):
    llm = offline_llm()
    llm["backoff_base"] = 0.0001
    llm["faults"] = {"server_error": 1.0}
    # p2's model is down during table talk; for "retry" it is back at the phase's third attempt.
    llm["fault_scope"] = {"players": ["p2"], "phases": ["discussion-r1"],
                          **({"until_attempt": 3} if choice == "retry" else {})}
    script = dict(builtin_script(), intervention=choice)
    ui = QuietUI()
    final = _play(session_id, players=2, turns=1, llm=llm, script=script, ui=ui)
    assert final["ended"]
    log = events.all_events(redis_client, session_id)
    failed = [e for e in log if e["event_type"] == "phase_failed"]
    assert [e["attempt"] for e in failed] == [1, 2]
    assert failed[0]["phase"] == "party_discussion" and failed[0]["player_id"] == "p2"
    rollbacks = [e for e in log if e["event_type"] == "rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["reason"]
    interventions = [e for e in log if e["event_type"] == "dm_intervention"]
    assert len(interventions) == 1 and interventions[0]["choice"] == choice.split(":")[0]
    assert [q for q in ui.questions if q["kind"] == "intervention"]
    completed = {e["phase"] for e in log if e["event_type"] == "phase_completed"}
    if choice == "end_turn":
        assert "strategic_intent" not in completed and "memory_storage" in completed
        assert final["turn_ended"]
    else:
        assert {"strategic_intent", "character_action", "character_reaction"} <= completed
    if choice == "skip":
        assert "p2" not in final["actions"] and "p1" in final["actions"]
    if choice.startswith("type"):
        assert any(t["player"] == "p2" and "hold position" in (t.get("say", "") + t.get("proposal", ""))
                   for t in final["discussion"])
    if choice == "retry":
        assert "p2" in final["actions"]


def test_second_driver_of_an_open_session_is_refused(redis_client, session_id):
    with SessionLock(redis_client, session_id):
        with pytest.raises(SessionLocked):
            SessionLock(redis_client, session_id).acquire()
    lock = SessionLock(redis_client, session_id)
    lock.acquire()  # released above, so free again
    lock.release()


def test_unknown_session_is_a_clear_error(redis_client):
    with pytest.raises(UnknownSession):
        load_meta(redis_client, "no-such-session")
    result = run_cli("resume", "no-such-session")
    assert result.returncode == 2
    assert "No session 'no-such-session'" in result.stderr and "ttrpg sessions" in result.stderr
    assert "Traceback" not in result.stderr
    status = run_cli("status", "no-such-session")
    assert status.returncode == 2


def test_bad_characters_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "characters.json"
    bad.write_text('{"players": [ {"id": "p1", ')
    result = run_cli("play", "--offline", "--characters", str(bad), "--turns", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "line" in result.stderr
    missing = run_cli("play", "--offline", "--characters", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "not found" in missing.stderr.lower()


def test_redis_down_is_a_clear_error(tmp_path):
    result = run_cli("sessions", env={"TTRPG_REDIS_URL": f"unix://{tmp_path}/gone.sock"})
    assert result.returncode == 1
    assert "Cannot reach Redis" in result.stderr and "Traceback" not in result.stderr


def test_play_without_key_says_what_to_do():
    result = run_cli("play", "--turns", "1", env={"OPENAI_API_KEY": "", "TTRPG_MODEL": "gpt-4o-mini"})
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr and "--offline" in result.stderr


def test_lock_of_a_dead_process_on_this_host_is_taken_over(redis_client, session_id):
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    key = f"ttrpg:lock:{session_id}"
    redis_client.set(key, f"{socket.gethostname()}:{dead.pid}:abcd", px=15000)
    lock = SessionLock(redis_client, session_id)
    lock.acquire()
    assert redis_client.get(key).decode() == lock.token
    lock.release()
    redis_client.set(key, f"other-host:{dead.pid}:abcd", px=15000)  # elsewhere: we cannot tell, so refuse
    with pytest.raises(SessionLocked):
        SessionLock(redis_client, session_id).acquire()


def test_player_whisper_never_reaches_a_character_prompt(fleet, redis_client, session_id):
    """Inspect the prompts the jobs actually carried: the secret is in p1's player-layer
    prompts and in no character-layer prompt of anyone."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from ttrpg.jobs.fanout import job_id

    secret = "The quartermaster is secretly a Consortium spy named Orlo"
    script = builtin_script()
    script["turns"] = [dict(script["turns"][0], whispers=[{"to": "p1", "layer": "player", "text": secret}])]
    _play(session_id, players=2, turns=1, script=script)
    prompts_by_phase = {}
    for phase in ("discussion-r1", "intent", "action-v1", "action-v2", "action-v3", "reaction"):
        for pid in ("p1", "p2"):
            job = Job.fetch_many([job_id(session_id, 1, phase, pid, 1)], connection=redis_client,
                                 serializer=JSONSerializer)[0]
            if job is not None:
                text = " ".join(m["content"] for m in job.args[0]["messages"])
                prompts_by_phase[(phase, pid)] = text
    assert secret in prompts_by_phase[("intent", "p1")]
    assert secret not in prompts_by_phase[("intent", "p2")]
    character = {k: v for k, v in prompts_by_phase.items() if k[0].startswith(("action", "reaction"))}
    assert {("action-v1", "p1"), ("reaction", "p1")} <= set(character)
    assert all(secret not in text for text in character.values())
    assert all("Orlo" not in text for text in character.values())
