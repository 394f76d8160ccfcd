"""The research log end to end: sessions played on real workers, then exported, told and measured.

Two sessions of one campaign are played once for the module (on the ``fleet``'s four real
worker processes, offline model with seeded faults so retries, validation failures and LASER
FEELINGS all happen), then every test reads their events from the real Redis.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from tests.conftest import QuietUI, offline_llm, run_cli
from ttrpg.backend.connection import get_redis
from ttrpg.cli import app, logs
from ttrpg.dm.script import ScriptDM, builtin_script
from ttrpg.exceptions import ConfigError, UnknownSession
from ttrpg.game.characters import default_party
from ttrpg.research import events, export, report, transcript, watch
from ttrpg.research import schema as event_schema
from ttrpg.research.stats import percentile
from ttrpg.session import play
from ttrpg.session.store import load_meta, touch
from ttrpg.settings import get_settings
from ttrpg.turn.phases import PHASES

ROOT = Path(__file__).resolve().parent.parent


def _party(n):
    party = default_party().to_state()
    party["players"] = party["players"][:n]
    return party


def _script():
    script = builtin_script()
    script["turns"] = [dict(t) for t in script["turns"]]
    # Zix (p1) rolls in turn 1; her number is 3: a 3 is LASER FEELINGS.
    script["turns"][0]["dice_override"] = {"p1": [3, 5]}
    return script


def _play(session_id, campaign_id, *, players, turns, faults=None):
    llm = offline_llm()
    llm["backoff_base"] = 0.0001
    llm["faults"] = faults or {}
    script = _script()
    return play.start(session_id=session_id, campaign_id=campaign_id, party=_party(players), llm=llm,
                      dm=ScriptDM(script), ui=QuietUI(), dm_script=script, max_turns=turns, seed=5, workers=0)


@pytest.fixture(scope="module")
def played(fleet):
    tag = uuid.uuid4().hex[:8]
    campaign = f"camp-{tag}"
    a, b = f"ra-{tag}", f"rb-{tag}"
    _play(a, campaign, players=2, turns=2, faults={"server_error": 0.15, "overreach": 0.9})
    _play(b, campaign, players=1, turns=1)
    redis = get_redis()
    yield {"campaign": campaign, "a": a, "b": b, "redis": redis}
    redis.close()


def _cli():
    """The commands as ``ttrpg`` registers them (``logs`` group, top-level ``watch``, ``report``)."""
    app = typer.Typer()
    app.add_typer(logs.app, name="logs")
    app.command()(logs.watch)
    app.command()(logs.report)
    return app


def invoke(*args):
    return CliRunner().invoke(_cli(), list(args))


# --- the schema -----------------------------------------------------------------------------------

def test_every_event_of_played_sessions_matches_the_schema(played):
    for sid in (played["a"], played["b"]):
        log = events.all_events(played["redis"], sid)
        assert event_schema.validate_log(log) == []
        types = [e["event_type"] for e in log]
        assert types[0] == "session_started" and types[-1] == "session_ended"
    log = events.all_events(played["redis"], played["a"])
    present = {e["event_type"] for e in log}
    assert {"phase_started", "phase_completed", "dm_input", "whisper", "memory_query", "job_enqueued", "llm_call",
            "llm_retry", "consensus", "validation_failed", "dice_roll", "laser_feelings",
            "turn_completed"} <= present


def test_schema_knows_every_event_type_the_code_emits():
    emitted = set()
    for path in (ROOT / "ttrpg").rglob("*.py"):
        emitted |= set(re.findall(r"\bemit\(\s*\"([a-z_]+)\"", path.read_text()))
    assert emitted, "no emit calls found"
    assert emitted <= set(event_schema.EVENT_TYPES), emitted - set(event_schema.EVENT_TYPES)
    issue_list = {"session_started", "session_resumed", "phase_started", "phase_completed", "phase_failed",
                  "rollback", "dm_intervention", "dm_input", "llm_call", "llm_retry", "job_enqueued",
                  "job_reattached", "validation_failed", "validation_autocorrected", "dice_roll", "laser_feelings",
                  "memory_query", "memory_stored", "memory_conflict", "consensus", "whisper", "turn_completed",
                  "session_ended"}
    assert issue_list <= set(event_schema.EVENT_TYPES)
    llm = {f.name for f in event_schema.EVENT_TYPES["llm_call"].fields if f.required}
    assert {"player_id", "phase", "attempt", "model", "latency_ms", "prompt_tokens", "completion_tokens",
            "outcome"} <= llm
    assert {"wait_s", "error_class"} <= {f.name for f in event_schema.EVENT_TYPES["llm_retry"].fields}


def test_schema_phases_are_the_graph_phases():
    assert event_schema.PHASES == PHASES


def test_validate_event_reports_what_is_wrong():
    good = {"event_id": "1:p1", "event_type": "dice_roll", "timestamp": "2026-11-23T20:01:02.345678+00:00",
            "session_id": "s", "campaign_id": "c", "turn_number": 1, "player_id": "p1", "approach": "lasers",
            "number": 3, "dice": [3, 5], "helpers": [], "overridden": False, "successes": 1, "band": "barely",
            "laser_feelings": True, "extra_field": "allowed"}
    assert event_schema.validate_event(good) == []
    assert event_schema.validate_event({**good, "timestamp": "2026-11-23T21:01:02+01:00"})
    assert event_schema.validate_event({**good, "timestamp": "yesterday"})
    assert any("dice" in p for p in event_schema.validate_event({**good, "dice": ["3"]}))
    assert any("band" in p for p in event_schema.validate_event({**good, "band": "great"}))
    assert any("number" in p for p in event_schema.validate_event({**good, "number": True}))
    missing = dict(good)
    del missing["turn_number"], missing["approach"]
    problems = event_schema.validate_event(missing)
    assert any("turn_number" in p for p in problems) and any("approach" in p for p in problems)
    assert event_schema.validate_event({**good, "event_type": "nope"}) == ["unknown event_type 'nope'"]
    narration = {**good, "event_type": "dm_input", "kind": "narration"}
    assert any("text" in p for p in event_schema.validate_event(narration))
    assert event_schema.validate_event({**narration, "text": "Hi", "end": False}) == []
    assert event_schema.validate_event({**good, "event_type": "dm_input", "kind": "outcome", "text": "ok"}) == []
    assert event_schema.validate_log([good, good]) == ["event 1: duplicate dice_roll '1:p1'"]


def test_docs_events_md_is_up_to_date():
    doc = ROOT / "docs" / "events.md"
    assert doc.read_text() == event_schema.render_markdown(), \
        "docs/events.md is stale: run `python -m ttrpg.research.schema`"
    for name in event_schema.EVENT_TYPES:
        assert f"### {name}" in doc.read_text()


# --- export ---------------------------------------------------------------------------------------

def test_export_jsonl_is_the_mirror_file(played):
    sid = played["a"]
    mirror = get_settings().log_dir / f"{sid}.jsonl"
    exported = export.export(played["redis"], [sid], fmt="jsonl")
    assert exported == mirror.read_text()
    assert [json.loads(line) for line in exported.splitlines()] == events.all_events(played["redis"], sid)


def test_export_csv_has_one_row_per_event_and_every_field(played):
    sid = played["a"]
    log = events.all_events(played["redis"], sid)
    rows = list(csv.DictReader(io.StringIO(export.export(played["redis"], sid, fmt="csv"))))
    assert len(rows) == len(log)
    header = list(rows[0].keys())
    assert header[:6] == ["event_id", "event_type", "timestamp", "session_id", "campaign_id", "turn_number"]
    assert set(header) == set().union(*(e.keys() for e in log))
    for row, e in zip(rows, log):
        assert (row["event_type"], row["event_id"]) == (e["event_type"], e["event_id"])
        assert int(row["turn_number"]) == e["turn_number"]
    roll_row, roll = next((r, e) for r, e in zip(rows, log) if e["event_type"] == "dice_roll")
    assert json.loads(roll_row["dice"]) == roll["dice"] and json.loads(roll_row["helpers"]) == roll["helpers"]
    assert roll_row["laser_feelings"] in ("true", "false")
    assert roll_row["prompt_tokens"] == ""  # a field of other events: empty here


def test_export_events_filter(played):
    sid = played["a"]
    log = events.all_events(played["redis"], sid)
    want = Counter(e["event_type"] for e in log if e["event_type"] in ("dice_roll", "llm_call"))
    result = invoke("logs", "export", sid, "--events", "dice_roll,llm_call")
    assert result.exit_code == 0, result.output
    got = Counter(json.loads(line)["event_type"] for line in result.stdout.splitlines())
    assert got == want and want["llm_call"] > 0
    as_csv = invoke("logs", "export", sid, "--events", "dice_roll", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == want["dice_roll"] and {r["event_type"] for r in rows} == {"dice_roll"}
    bad = invoke("logs", "export", sid, "--events", "dice_rolls")
    assert isinstance(bad.exception, ConfigError) and "dice_rolls" in str(bad.exception)


def test_export_out_file(played, tmp_path):
    out = tmp_path / "sub" / "a.csv"
    result = invoke("logs", "export", played["a"], "--format", "csv", "--out", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert str(out) in result.stderr
    assert out.read_bytes().decode() == export.export(played["redis"], played["a"], fmt="csv")


def test_campaign_export_covers_every_session(played):
    redis = played["redis"]
    assert export.campaign_sessions(redis, played["campaign"]) == [played["a"], played["b"]]
    result = invoke("logs", "export", "--campaign", played["campaign"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert Counter(e["session_id"] for e in lines) == {
        sid: len(events.all_events(redis, sid)) for sid in (played["a"], played["b"])}
    assert {e["campaign_id"] for e in lines} == {played["campaign"]}
    nothing = invoke("logs", "export", "--campaign", "no-such-campaign")
    assert isinstance(nothing.exception, ConfigError)
    both = invoke("logs", "export", played["a"], "--campaign", played["campaign"])
    assert isinstance(both.exception, ConfigError)


def test_unknown_session_is_unknown_everywhere(redis_client):
    with pytest.raises(UnknownSession):
        export.export(redis_client, ["no-such-session"])
    with pytest.raises(UnknownSession):
        transcript.transcript(redis_client, "no-such-session")
    with pytest.raises(UnknownSession):
        report.report(redis_client, "no-such-session")
    with pytest.raises(UnknownSession):
        watch.watch(redis_client, "no-such-session", from_start=True, json_lines=True, console=io.StringIO())
    for args in (("logs", "export", "nope"), ("logs", "transcript", "nope"), ("watch", "nope"), ("report", "nope")):
        assert isinstance(invoke(*args).exception, UnknownSession), args


def test_registered_cli_exits_2_on_unknown_session():
    commands = typer.main.get_command(app).commands
    assert "logs" in commands and "report" in commands
    for args in (("logs", "export", "no-such-session"), ("report", "no-such-session")):
        result = run_cli(*args)
        assert result.returncode == 2 and "No session 'no-such-session'" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_logs_help_does_not_import_the_library():
    code = (
        "import sys, typer\n"
        "from ttrpg.cli import logs\n"
        "app = typer.Typer()\n"
        "app.add_typer(logs.app, name='logs')\n"
        "app.command()(logs.watch)\n"
        "app.command()(logs.report)\n"
        "try:\n"
        "    app(sys.argv[1:] + ['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('langgraph', 'openai', 'rq', 'redis', 'httpx', 'ttrpg.research') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    for path in ([], ["logs"], ["logs", "export"], ["logs", "transcript"], ["watch"], ["report"]):
        result = subprocess.run([sys.executable, "-c", code, *path], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, (path, result.stderr)
        assert "HEAVY []" in result.stdout, (path, result.stdout[-300:])


def test_llm_calls_written_by_worker_processes_are_exported(played):
    exported = [json.loads(line) for line in export.export(played["redis"], played["a"]).splitlines()]
    calls = [e for e in exported if e["event_type"] == "llm_call"]
    enqueued = [e for e in exported if e["event_type"] == "job_enqueued"]
    assert calls and len(calls) >= len(enqueued)
    pids = {c["worker_pid"] for c in calls if c["outcome"] == "ok"}
    assert pids and os.getpid() not in pids
    assert all(isinstance(p, int) and p > 0 for p in pids)


# --- the story ------------------------------------------------------------------------------------

MACHINERY = ("phase_started", "phase_completed", "event_id", "event_type", "llm_call", "llm_retry", "job_",
             "dm_input", "turn_number", "session_started", "validation_failed", "memory_query", "consensus")


def _turn_texts(log, kind):
    return {e["turn_number"]: e["text"] for e in log if e["event_type"] == "dm_input" and e.get("kind") == kind}


def test_transcript_md_tells_the_story_without_machinery(played):
    redis, sid = played["redis"], played["a"]
    log = events.all_events(redis, sid)
    md = transcript.transcript(redis, sid, fmt="md")
    for turn, text in _turn_texts(log, "narration").items():
        assert f"## Turn {turn}" in md and text in md
    for text in _turn_texts(log, "outcome").values():
        assert text in md
    for e in (e for e in log if e["event_type"] == "whisper"):
        assert e["text"] in md
    names = {"p1": "Zix", "p2": "Rex Calloway"}
    for roll in (e for e in log if e["event_type"] == "dice_roll"):
        line = f"{names[roll['player_id']]} rolls {roll['approach'].upper()} against {roll['number']}: " \
               f"{', '.join(map(str, roll['dice']))}"
        assert line in md and roll["band"] in md
    lf = next(e for e in log if e["event_type"] == "laser_feelings")
    assert "LASER FEELINGS" in md and lf["question"] in md and lf["answer"] in md
    assert "The crew" in md and "Zix" in md and "Rex Calloway" in md
    lowered = md.lower()
    for word in MACHINERY:
        assert word not in lowered, word
    assert not re.search(r"\bp[1-4]\b", md), "player ids leak into the story"


def test_transcript_has_each_characters_final_action_and_reaction(played):
    redis, sid = played["redis"], played["a"]
    log = events.all_events(redis, sid)
    actions = [e for e in log if e["event_type"] == "character_action"]
    reactions = [e for e in log if e["event_type"] == "character_reaction"]
    assert actions and reactions
    md = transcript.transcript(redis, sid, fmt="md")
    start = log[0]
    assert start["characters"]["p1"]["name"] == "Zix"
    for e in actions + reactions:
        assert e["character"] == start["characters"][e["player_id"]]["name"]
        assert f"**{e['character']}**" in md and e["text"] in md
    # per turn: narration, then actions, then dice, then outcome, then reactions
    for turn in (1, 2):
        section = md.split(f"## Turn {turn}")[1].split("## Turn")[0]
        narration = _turn_texts(log, "narration")[turn]
        outcome = _turn_texts(log, "outcome")[turn]
        act = next(e["text"] for e in actions if e["turn_number"] == turn)
        react = next(e["text"] for e in reactions if e["turn_number"] == turn)
        assert section.index(narration) < section.index(act) < section.index(outcome) < section.index(react)
    # the final line, after validation: an auto-corrected action appears corrected
    for fix in (e for e in log if e["event_type"] == "validation_autocorrected"):
        final = next(a for a in actions
                     if (a["turn_number"], a["player_id"]) == (fix["turn_number"], fix["player_id"]))
        assert final["text"] == fix["corrected"] and final["autocorrected"]


def test_transcript_html_is_escaped_and_self_contained(played):
    page = transcript.transcript(played["redis"], played["a"], fmt="html")
    assert page.startswith("<!DOCTYPE html>") and "Zix" in page and "Turn 2" in page
    assert "<script" not in page and "http" not in page and "src=" not in page
    narration = _turn_texts(events.all_events(played["redis"], played["a"]), "narration")[1]
    assert narration.replace("'", "&#x27;") in page  # the narration's quotes are escaped
    with pytest.raises(ConfigError):
        transcript.transcript(played["redis"], played["a"], fmt="pdf")


def test_story_renders_actions_and_reactions_by_character_name():
    base = {"session_id": "s", "campaign_id": "c", "timestamp": "2026-11-23T20:00:00+00:00"}

    def ev(t, n, eid, **kw):
        return {**base, "event_type": t, "event_id": eid, "turn_number": n, **kw}

    log = [
        ev("session_started", 1, "start", players=["p1"], model="m", offline=True, seed=1, max_turns=1,
           characters={"p1": {"name": "Zix", "style": "Alien", "role": "Pilot", "number": 3, "player": "Alex"}},
           ship={"name": "The Raptor", "strengths": ["Fast"], "problem": "Fuel Hog"}),
        ev("dm_input", 1, "1:narration", kind="narration", text="A ship <drifts>.", end=False),
        ev("character_action", 1, "1:p1", player_id="p1", character="Zix", text="Zix scans it.", attempt=2,
           autocorrected=True, reviewed=False, manual=False),
        ev("dice_roll", 1, "1:p1", player_id="p1", approach="lasers", number=3, dice=[3, 6], helpers=[],
           overridden=False, successes=1, band="barely", laser_feelings=True),
        ev("laser_feelings", 1, "1:p1", player_id="p1", question="Is it empty?", answer="No."),
        ev("dm_input", 1, "1:outcome", kind="outcome", text="It is not empty."),
        ev("character_reaction", 1, "1:p1", player_id="p1", character="Zix", text="Zix shivers."),
        ev("turn_completed", 1, "1", ended_early=False, prompt_tokens=1, completion_tokens=1, consensus="solo"),
        ev("session_ended", 2, "end", turns_played=1),
    ]
    assert event_schema.validate_log(log) == []
    md = transcript.render_transcript_md(transcript.story(log))
    assert md.startswith("# The Raptor — Session s")
    assert "- Zix (Alien Pilot, number 3), played by Alex" in md
    assert "**Zix** (corrected to stay within the rules): Zix scans it." in md
    assert "- Zix rolls LASERS against 3: 3, 6 — barely, LASER FEELINGS!" in md
    assert "**Zix** asks: Is it empty?" in md and "**DM**: No." in md
    assert "**Zix**: Zix shivers." in md and "ended after 1 turn(s)" in md
    page = transcript.render_transcript_html(transcript.story(log))
    assert "A ship &lt;drifts&gt;." in page and "<drifts>" not in page


# --- the report -----------------------------------------------------------------------------------

def test_report_numbers_match_the_events(played):
    redis, sid = played["redis"], played["a"]
    log = events.all_events(redis, sid)
    rep = report.report(redis, sid)
    of = lambda t: [e for e in log if e["event_type"] == t]  # noqa: E731
    assert rep["turns"]["completed"] == len(of("turn_completed")) == 2
    assert rep["events"] == len(log) and rep["ended"]
    calls = of("llm_call")
    assert rep["llm"]["calls"] == len(calls) and rep["llm"]["ok"] == sum(c["outcome"] == "ok" for c in calls)
    assert rep["llm"]["prompt_tokens"] == sum(c["prompt_tokens"] or 0 for c in calls)
    assert rep["llm"]["completion_tokens"] == sum(c["completion_tokens"] or 0 for c in calls)
    assert rep["retries"]["total"] == len(of("llm_retry")) > 0
    assert rep["retries"]["by_error_class"] == dict(Counter(r["error_class"] for r in of("llm_retry")))
    assert rep["validation"]["autocorrections"] == len(of("validation_autocorrected"))
    assert rep["validation"]["failures_total"] == len(of("validation_failed")) > 0
    first_actions = {(c["turn_number"], c["player_id"]) for c in calls if c["phase"] == "action-v1"
                     and c["outcome"] == "ok"}
    first_failed = {(v["turn_number"], v["player_id"]) for v in of("validation_failed") if v["attempt"] == 1}
    assert rep["validation"]["first_attempt_actions"] == len(first_actions) == 4  # 2 players × 2 turns
    assert rep["validation"]["first_attempt_failure_rate"] == round(len(first_failed) / len(first_actions), 4)
    for row in rep["tokens_per_turn"]:
        mine = [c for c in calls if c["turn_number"] == row["turn"]]
        assert row["llm_calls"] == len(mine)
        assert row["total_tokens"] == sum((c["prompt_tokens"] or 0) + (c["completion_tokens"] or 0) for c in mine)
    assert sum(r["llm_calls"] for r in rep["tokens_per_turn"]) == len(calls)
    finals = [c for c in of("consensus") if c["final"]]
    assert rep["consensus"]["outcomes"] == dict(Counter(c["state"] for c in finals))
    assert rep["consensus"]["decisions"] == 2  # one per turn with 2 players
    assert rep["dice"]["rolls"] == len(of("dice_roll")) and rep["dice"]["laser_feelings"] >= 1
    # phase durations from started/completed pairs
    starts = {e["event_id"]: e for e in of("phase_started")}
    for phase, stats in rep["phases"].items():
        ds = [(datetime.fromisoformat(e["timestamp"]) - datetime.fromisoformat(starts[e["event_id"]]["timestamp"]))
              .total_seconds() * 1000 for e in of("phase_completed") if e["phase"] == phase]
        assert stats["count"] == len(ds)
        if len(ds) >= 2:
            q = statistics.quantiles(ds, n=100, method="inclusive")
            assert stats["p50_ms"] == pytest.approx(statistics.median(ds), abs=0.06)
            assert stats["p95_ms"] == pytest.approx(q[94], abs=0.06)
    assert set(rep["phases"]) >= {"dm_narration", "party_discussion", "character_action", "memory_storage"}
    assert rep["phases"]["party_discussion"]["label"] == "table talk"
    # the DM's time apart from machine time: every answer counted, in the phase that uses it
    assert rep["dm_time"]["answers"] == len(of("dm_input"))
    assert sum(p["dm"]["answers"] for p in rep["phases"].values()) == sum(
        report.dm_phase(d) != "" for d in of("dm_input"))
    assert rep["machine_time"]["total_ms"] == pytest.approx(sum(p["total_ms"] or 0 for p in rep["phases"].values()),
                                                            abs=0.5)
    assert json.loads(json.dumps(rep)) == rep  # plain JSON


def test_percentile_is_linear_interpolation():
    xs = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    q = statistics.quantiles(xs, n=100, method="inclusive")
    assert percentile(xs, 0.5) == pytest.approx(statistics.median(xs))
    assert percentile(xs, 0.95) == pytest.approx(q[94])
    assert percentile([4.0], 0.95) == 4.0 and percentile([], 0.5) is None


def test_report_cli_json_and_self_contained_html(played, tmp_path):
    page = tmp_path / "report.html"
    result = invoke("report", played["a"], "--json", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == report.report(played["redis"], played["a"])
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") >= 4 and "<rect" in html
    assert "http" not in html and "<script" not in html and "src=" not in html and "<link" not in html
    assert "Phase duration" in html and "dm_narration" in html
    human = invoke("report", played["a"])
    assert human.exit_code == 0 and "Phase durations" in human.stdout and "p95" in human.stdout


# --- watching -------------------------------------------------------------------------------------

def test_watch_from_start_prints_every_event_as_json_and_stops_at_the_end(played):
    redis, sid = played["redis"], played["a"]
    sink = io.StringIO()
    done = {}
    t = threading.Thread(target=lambda: done.setdefault(
        "n", watch.watch(redis, sid, from_start=True, json_lines=True, console=sink)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "watch did not stop at session_ended"
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert lines == events.all_events(redis, sid) and done["n"] == len(lines)
    assert sink.getvalue() == export.export(redis, sid)


def test_watch_cli_json_and_human(played):
    sid = played["b"]
    result = invoke("watch", sid, "--from-start", "--json")
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == events.all_events(played["redis"], sid)
    human = invoke("watch", sid, "--from-start")
    assert human.exit_code == 0
    out = human.stdout.splitlines()
    assert len(out) == len(events.all_events(played["redis"], sid))
    assert "session_started" in out[0] and "session_ended" in out[-1]
    late = invoke("watch", sid)  # not from the start: the session is over, say so and stop
    assert late.exit_code == 0 and "already ended" in late.stdout


def test_watch_follows_a_live_session(fleet, redis_client):
    sid = "rw-" + uuid.uuid4().hex[:8]
    player = threading.Thread(target=_play, args=(sid, sid), kwargs={"players": 1, "turns": 1}, daemon=True)
    player.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            load_meta(redis_client, sid)
            break
        except UnknownSession:
            time.sleep(0.02)
    sink = io.StringIO()
    stop = threading.Event()
    watcher = threading.Thread(target=watch.watch, args=(redis_client, sid),
                               kwargs={"from_start": True, "json_lines": True, "console": sink, "stop": stop},
                               daemon=True)
    watcher.start()
    player.join(120)
    watcher.join(30)
    stop.set()
    assert not player.is_alive() and not watcher.is_alive()
    seen = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert seen == events.all_events(redis_client, sid) and seen[-1]["event_type"] == "session_ended"


def test_watch_stops_when_asked(redis_client):
    sid = "rq-" + uuid.uuid4().hex[:8]
    touch(redis_client, sid, campaign_id=sid, status="new")  # a session with no events yet
    sink = io.StringIO()
    stop = threading.Event()
    t = threading.Thread(target=watch.watch, args=(redis_client, sid),
                         kwargs={"json_lines": False, "console": sink, "stop": stop, "block_ms": 100}, daemon=True)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()  # waiting for events
    stop.set()
    t.join(5)
    assert not t.is_alive() and sink.getvalue() == ""
