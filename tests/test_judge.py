"""The referee: the session's own model gives a second opinion on overreach (ttrpg.game.judge).

Whole sessions run on real workers through the real ``openai`` client; the model is
:mod:`tests.fake_llm_server`, at the network edge, answering each prompt by what it asks: the
referee's question ("Task: overreach check") gets a verdict, the character's action an action,
anything else a plain line. Each route plays one kind of referee: a strict one, one that
overrules the rules, one that answers nonsense, one whose server is down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import QuietUI, run_cli
from tests.fake_llm_server import FakeLLMServer, Reply, Request, chat, error
from ttrpg.dm.script import ScriptDM, builtin_script
from ttrpg.fleet.local import local_workers
from ttrpg.game import judge
from ttrpg.game.characters import default_party
from ttrpg.llm.config import make_config
from ttrpg.prompts.builders import overreach_judge_messages
from ttrpg.research import events, watch
from ttrpg.research.report import report_from_events, report_summary
from ttrpg.research.schema import validate_event
from ttrpg.session import play
from ttrpg.settings import get_settings

KEY = "sk-referee-test-0123456789"
CLEAN_ACTION = "I brace against the hatch and heave on the manual release."
RETRY_ACTION = "I key the comm and ask Galvin to unlock the hatch from inside."
RULES_FLAG = "I heave on the release and the hatch swings open."  # the rules flag "swings open"
REASON = "the quartermaster waves them aboard"
NONSENSE = "[/] [bold red]sure[/] \x1b[31mno idea\x1b[0m"


def _system(req: Request) -> str:
    body = req.json()
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")


def _line_checked(req: Request) -> str:
    """The action line a referee request asks about (its "The line to check" section)."""
    user = req.json()["messages"][-1]["content"]
    return user.split("## The line to check\n", 1)[1].split("\n\n## ", 1)[0]


def _referee(verdict_for: Callable[[str], Reply], first_action: str = CLEAN_ACTION) -> Callable[[Request], Reply]:
    """A model: the referee's question gets ``verdict_for(line)``, the character's first action
    ``first_action`` and its retries :data:`RETRY_ACTION`, everything else a plain line."""

    def respond(req: Request) -> Reply:
        system = _system(req)
        if "Task: overreach check" in system:
            return verdict_for(_line_checked(req))
        if "Task: action" in system:
            return chat(first_action if "Attempt: 1" in system else RETRY_ACTION)
        return chat("DIRECTIVE: get aboard the freighter carefully.\nREASON: Galvin needs help.")

    return respond


def _verdict(overreach: bool, kind=None, reason="") -> Reply:
    return chat(json.dumps({"overreach": overreach, "kind": kind, "reason": reason}))


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer() as s:
        s.respond("strict", _referee(lambda line: _verdict(True, "other_reaction", REASON) if line == CLEAN_ACTION
                                     else _verdict(False, None, "an attempt")))
        s.respond("lenient", _referee(lambda line: _verdict(False, None, "only an attempt"), first_action=RULES_FLAG))
        s.respond("stubborn", _referee(lambda line: _verdict(True, "outcome", REASON)))
        s.respond("nonsense", _referee(lambda line: chat(NONSENSE)))
        s.respond("down", _referee(lambda line: error(500, "referee overloaded")))
        yield s


@pytest.fixture(scope="module")
def queues(ttrpg_home, server):
    """One real worker per route, each with that route as its own endpoint and the key: {route: queue}."""
    routes = ("strict", "lenient", "stubborn", "nonsense", "down")
    names = {r: f"j-{r}-{uuid.uuid4().hex[:8]}" for r in routes}
    with contextlib.ExitStack() as stack:
        fleets = [stack.enter_context(local_workers(
            1, [names[r]], "fork", dataclasses.replace(get_settings(), openai_base_url=server.url(r),
                                                      openai_api_key=KEY))) for r in routes]
        yield names
        for fleet in fleets:
            for proc in fleet.procs:
                proc.send_signal(signal.SIGTERM)


def _play(route, server, queue, session_id, monkeypatch, ui=None):
    monkeypatch.setenv("TTRPG_QUEUE", queue)
    llm = make_config("fake-model", base_url=server.url(route), overreach_judge=True, backoff_base=0.001,
                      request_timeout_s=10, context_window=8192)
    party = default_party().to_state()
    party["players"] = party["players"][:1]
    script = builtin_script()
    return play.start(session_id=session_id, campaign_id="c-" + session_id, party=party, llm=llm,
                      dm=ScriptDM(script), ui=ui or QuietUI(), dm_script=script, max_turns=1, seed=5, workers=0)


def _of(log, kind):
    return [e for e in log if e["event_type"] == kind]


def test_a_line_only_the_referee_flags_is_asked_again_with_its_reason(server, queues, redis_client, session_id,
                                                                      monkeypatch):
    final = _play("strict", server, queues["strict"], session_id, monkeypatch)
    assert final["turn"] == 2
    log = events.all_events(redis_client, session_id)
    assert _of(log, "session_started")[0]["overreach_judge"] is True
    judged = _of(log, "overreach_judged")
    assert [(e["attempt"], e["verdict"], e["decided_by"], e["rules"]) for e in judged] == \
        [(1, True, "referee", []), (2, False, "referee", [])]
    failed = _of(log, "validation_failed")
    assert failed[0]["violations"] == [f"other_reaction: {REASON}"] and failed[0]["text"] == CLEAN_ACTION
    # the retry prompt carries the referee's reason
    retry_prompts = [r for r in server.requests_to("strict")
                     if "Task: action" in _system(r) and "Attempt: 2" in _system(r)]
    assert retry_prompts and REASON in retry_prompts[0].json()["messages"][-1]["content"]
    assert all(not validate_event(e) for e in judged)
    counts = report_from_events(log)["validation"]["referee"]
    assert (counts["verdicts"], counts["flagged_what_rules_passed"], counts["decided_by_rules"]) == (2, 1, 0)
    assert final["actions"]["p1"]["text"] == RETRY_ACTION and final["actions"]["p1"]["valid"]
    assert any(label == "overreach referee" for label, _ in report_summary(report_from_events(log)))
    assert watch.describe(judged[0]) == f"p1 round 1: referee: overreach ({REASON}); decided by referee"


def test_the_referee_clears_a_line_the_rules_flag(server, queues, redis_client, session_id, monkeypatch):
    final = _play("lenient", server, queues["lenient"], session_id, monkeypatch)
    log = events.all_events(redis_client, session_id)
    judged = _of(log, "overreach_judged")[0]
    assert judged["verdict"] is False and judged["decided_by"] == "referee"
    assert judged["rules"] and judged["rules"][0].startswith("outcome:")
    assert not _of(log, "validation_failed")
    assert final["history"] and any(RULES_FLAG in line for line in final["history"])


def test_a_line_the_referee_flags_to_the_last_attempt_goes_to_the_dm_uncut(server, queues, redis_client,
                                                                           session_id, monkeypatch):
    ui = QuietUI()
    final = _play("stubborn", server, queues["stubborn"], session_id, monkeypatch, ui=ui)
    (review,) = [q for q in ui.questions if q["kind"] == "review"]
    assert review["text"] == RETRY_ACTION and review["corrected"] is False
    assert review["violations"] == [f"outcome: {REASON}"]
    action = final["actions"]["p1"]
    assert action["text"] == RETRY_ACTION and action["reviewed"] and not action["autocorrected"]


def test_an_unreadable_verdict_leaves_the_rules_deciding_and_is_logged_as_text(server, queues, redis_client,
                                                                                session_id, monkeypatch):
    final = _play("nonsense", server, queues["nonsense"], session_id, monkeypatch)
    assert final["turn"] == 2
    judged = _of(events.all_events(redis_client, session_id), "overreach_judged")[0]
    assert judged["verdict"] is None and judged["decided_by"] == "rules" and judged["reply"] == NONSENSE


def test_a_referee_that_is_down_loses_no_turn(server, queues, redis_client, session_id, monkeypatch):
    final = _play("down", server, queues["down"], session_id, monkeypatch)
    assert final["turn"] == 2 and final["ended"]
    log = events.all_events(redis_client, session_id)
    judged = _of(log, "overreach_judged")[0]
    assert judged["decided_by"] == "rules" and "referee overloaded" in judged["error"]
    assert not _of(log, "phase_failed")


# --------------------------------------------------------------------------- the pieces


def test_decide_combines_the_two_verdicts():
    flag = [{"kind": "outcome", "match": "swings open", "start": 5, "end": 16, "reason": "r"}]
    assert judge.decide(flag, None) == (flag, "rules")
    assert judge.decide([], None) == ([], "rules")
    assert judge.decide(flag, {"overreach": False, "kind": None, "reason": ""}) == ([], "referee")
    assert judge.decide(flag, {"overreach": True, "kind": "future", "reason": "x"}) == (flag, "referee")
    (only,), by = judge.decide([], {"overreach": True, "kind": "future", "reason": "it will work"})
    assert by == "referee" and only["kind"] == "future" and judge.describe(only) == "future: it will work"


def test_the_offline_model_never_referees(monkeypatch):
    monkeypatch.setenv("TTRPG_OVERREACH_JUDGE", "on")
    assert make_config(settings=get_settings(), offline=True)["overreach_judge"] is False
    assert make_config(offline=True, overreach_judge=True)["overreach_judge"] is False
    assert make_config("m", base_url="http://127.0.0.1:1/v1", settings=get_settings())["overreach_judge"] is True
    monkeypatch.setenv("TTRPG_OVERREACH_JUDGE", "off")
    assert make_config("m", base_url="http://127.0.0.1:1/v1", settings=get_settings())["overreach_judge"] is False


def test_play_refuses_a_referee_for_the_offline_model():
    result = run_cli("play", "--offline", "--overreach-judge")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--overreach-judge needs a real model" in result.stderr


def _corpus(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"text": CLEAN_ACTION, "overreach": False},
        {"text": RULES_FLAG, "overreach": True},
        {"text": "I ask Galvin where the pirates went.", "overreach": False},
    ]) + "\n")
    return path


def test_score_measures_the_rules_on_labelled_lines(tmp_path):
    result = run_cli("overreach", "score", str(_corpus(tmp_path)), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert (figures["tp"], figures["fp"], figures["fn"], figures["tn"]) == (1, 0, 0, 2)


def test_score_with_a_referee_asks_the_model_once_per_line(tmp_path, server):
    before = len(server.requests_to("lenient"))
    result = run_cli("overreach", "score", str(_corpus(tmp_path)), "--judge", "--model", "m", "--json",
                     env={"OPENAI_BASE_URL": server.url("lenient"), "OPENAI_API_KEY": KEY,
                          "TTRPG_CONTEXT_WINDOW": "8192"})
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    # the lenient referee clears everything: recall falls to 0, the rules alone had 1.0
    assert (figures["tp"], figures["fn"], figures["unreadable"]) == (0, 1, 0)
    assert figures["rules"]["recall"] == 1.0
    assert len(server.requests_to("lenient")) - before == 3


@pytest.mark.parametrize("content, problem", [
    ("not json\n", "line 1: not JSON"),
    ("[" * 100_000 + "\n", "line 1: not JSON"),  # nested past any parser's recursion: still one line
    ('{"text": "x"}\n', 'line 1: needs a string "text"'),
    ("", "holds no labelled lines"),
])
def test_score_names_the_bad_line_and_exits_2(tmp_path, content, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    result = run_cli("overreach", "score", str(path))
    assert result.returncode == 2 and problem in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- a capable model as referee

REFEREE_DATA = Path(__file__).parent / "data" / "overreach" / "referee"
HELD_OUT = Path(__file__).parent / "data" / "overreach" / "fresh5.jsonl"


def test_a_capable_referee_reaches_the_goal_on_the_held_out_part(server):
    """With the replies a capable model gave to the referee's exact prompt for each line of the
    held-out part (recorded, ``tests/data/overreach/referee/``: no paid model is reachable from the
    test machines), the rules and the referee together reach precision and recall of at least 0.95
    on lines nobody tuned for, where the rules alone score 0.90 / 0.79. The replies go through
    everything a session's do: the real ``openai`` client over HTTP, the parser, :func:`judge.decide`.
    When the prompt changes the recording no longer answers it, and this test says so."""
    recorded_prompt = (REFEREE_DATA / "system-prompt.txt").read_text()
    assert overreach_judge_messages("x", "", "the character")[0]["content"] == recorded_prompt, \
        "The referee's prompt changed: record the replies again (tests/data/overreach/README.md says how)."
    replies = {json.loads(line)["text"]: json.loads(line)["reply"]
               for line in (REFEREE_DATA / "fresh5-replies.jsonl").read_text().splitlines()}
    asked = []

    def recorded(req: Request) -> Reply:
        messages = req.json()["messages"]
        asked.append(messages[0]["content"] == recorded_prompt)
        return chat(replies[_line_checked(req)])

    server.respond("recorded", recorded)
    result = run_cli("overreach", "score", str(HELD_OUT), "--judge", "--model", "recorded-referee", "--json",
                     env={"OPENAI_BASE_URL": server.url("recorded"), "OPENAI_API_KEY": KEY,
                          "TTRPG_CONTEXT_WINDOW": "8192"}, timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    print(f"\n[recorded referee] precision {figures['precision']:.3f} recall {figures['recall']:.3f} "
          f"(rules alone {figures['rules']['precision']:.3f} / {figures['rules']['recall']:.3f})")
    assert len(asked) == figures["lines"] == 425 and all(asked) and figures["unreadable"] == 0
    assert figures["precision"] >= 0.95 and figures["recall"] >= 0.95
    assert figures["rules"]["recall"] < 0.85  # what the referee adds: the rules alone miss one in five


def test_a_kill_after_the_refereed_validation_resumes_without_asking_the_referee_again(server, queues, redis_client,
                                                                                       tmp_path):
    """SIGKILL of the DM's process right after the refereed validation, then ``ttrpg resume``: the
    session ends as it would have, and no referee call (or any other) is made twice."""
    script = dict(builtin_script(), turns=builtin_script()["turns"][:1])
    (tmp_path / "dm.json").write_text(json.dumps(script))
    sid = "judge-crash-" + uuid.uuid4().hex[:6]
    env = {"TTRPG_QUEUE": queues["strict"], "OPENAI_BASE_URL": server.url("strict"), "OPENAI_API_KEY": KEY,
           "TTRPG_CONTEXT_WINDOW": "8192", "TTRPG_BACKOFF_BASE": "0.001"}
    crashed = run_cli("play", "--dm-script", str(tmp_path / "dm.json"), "--model", "fake-model", "--overreach-judge",
                      "--turns", "1", "--players", "1", "--workers", "0", "--session", sid,
                      env={**env, "TTRPG_KILL_AFTER": "validation@1"}, timeout=300)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    resumed = run_cli("resume", sid, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = events.all_events(redis_client, sid)
    judged = _of(log, "overreach_judged")
    assert [(e["attempt"], e["verdict"]) for e in judged] == [(1, True), (2, False)]
    calls = [(e["phase"], e["player_id"], e["attempt"]) for e in _of(log, "llm_call")]
    assert len(calls) == len(set(calls)) and ("judge-v1", "p1", 1) in calls and ("judge-v2", "p1", 1) in calls
    assert _of(log, "session_resumed") and log[-1]["event_type"] == "session_ended"
