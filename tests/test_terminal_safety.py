"""Text from a model, a server, the Redis or the DM reaches the terminal as text.

A log written straight into a session's stream (as a hostile model server's replies, or a
second tenant of the Redis, would leave it) holds rich markup (``[/]`` crashes rich,
``[link=...]`` and ``[blink]`` would render), OSC 8 hyperlinks, OSC 0 window titles, OSC 52
clipboard writes, CSI screen clears, 8-bit CSI, BEL, and Markdown/HTML that would inject
headings, code fences and scripts. Every command that shows it runs in a real process; its
output must hold no control character but newlines and tabs, show the text literally, and
exit 0 without a traceback. The exports (JSONL, CSV, ``report --json``) keep every byte.

Also here: the report's machine time apart from the DM's time, every roll counted, and
``--out`` paths that cannot be written.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.worker import Worker

from tests.fake_llm_server import FakeLLMServer, chat
from ttrpg.backend.connection import get_redis
from ttrpg.console import clean_text, one_line
from ttrpg.constants import CAMPAIGN_SESSIONS, SESSION_KEY
from ttrpg.memory import store, storing
from ttrpg.research import events, export, report, transcript, watch

ROOT = Path(__file__).resolve().parent.parent

OSC8 = "\x1b]8;;https://evil.example/\x1b\\osc8-link\x1b]8;;\x1b\\"
TITLE = "\x1b]0;pwned-title\x07"
CLIPBOARD = "\x1b]52;c;cHduZWQ=\x07"
CLEAR = "\x1b[2J\x1b[H"
HOSTILE = (f"open [/] close [link=https://evil.example]click[/link] [blink]blinking[/blink] {OSC8} {TITLE}"
           f"{CLIPBOARD} {CLEAR}\x1b[31mred\x9b0m \x07bell\x00nul\rcr\x85nel\u202eevil")
MARKDOWN = "\n# Turn 99\n```\n<script>alert(1)</script> & <img src=x> [pic](http://evil.example/t.png)"
NAME = "Zix[/x] \x1b]0;t\x07[bold]"
MODEL = "model[/] \x1b[2J"

# Every C0/C1 control character but newline and tab; ESC, CSI and BEL among them.
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def run_bytes(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m ttrpg ARGS`` in a real process; stdout and stderr as bytes (a test on text
    would not see an 8-bit control byte that is not UTF-8)."""
    return subprocess.run([sys.executable, "-m", "ttrpg", *args], capture_output=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "COLUMNS": "250", **(env or {})})


def assert_terminal_safe(result: subprocess.CompletedProcess) -> tuple[str, str]:
    """Exit 0, no traceback, no control character but \\n and \\t on either stream."""
    out, err = result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, (result.args, err)
    assert "Traceback" not in err and "MarkupError" not in err, err
    for stream in (result.stdout, result.stderr):
        assert b"\x1b" not in stream and b"\x07" not in stream and b"\x00" not in stream
    for name, text in (("stdout", out), ("stderr", err)):
        found = CONTROLS.search(text)
        assert not found, f"{name} holds {found.group()!r} in {text[max(0, found.start() - 40):found.end() + 40]!r}"
        assert "\u202e" not in text, name
    return out, err


def _hostile_log(redis, sid: str, campaign: str) -> None:
    """A whole session's events, every text hostile (as a model server or a Redis writer left it)."""
    redis.hset(SESSION_KEY.format(session_id=sid), mapping={
        "campaign_id": campaign, "status": "completed", "created_at": str(time.time()), "turn": "1"})
    redis.sadd(CAMPAIGN_SESSIONS.format(campaign_id=campaign), sid)

    def emit(event_type, event_id, turn=1, **fields):
        assert events.emit(redis, sid, event_type, event_id, campaign_id=campaign, turn_number=turn, **fields)

    emit("session_started", "start", players=["p1", "p2"], model=MODEL, offline=False, seed=1, max_turns=1,
         characters={"p1": {"name": NAME, "style": "[red]Alien", "role": "Pilot\x1b[2J", "number": 3,
                            "player": "Alex[/]"},
                     "p2": {"name": "Rex", "style": "Droid", "role": "Doctor", "number": 4}},
         ship={"name": "[blink]Raptor[/blink]\x1b]0;ship\x07", "strengths": [], "problem": "x"})
    for phase in ("dm_narration", "character_action", "dice_resolution"):
        emit("phase_started", f"1:{phase}:1", phase=phase, attempt=1)
        emit("phase_completed", f"1:{phase}:1", phase=phase, attempt=1)
    emit("dm_input", "1:narration", kind="narration", text=HOSTILE + MARKDOWN, end=False, wait_ms=4200)
    emit("whisper", "1:0", player_id="p1", layer="player", text="secret [/] \x1b]52;c;eA==\x07\n# not a heading")
    emit("consensus", "1:1", round=1, state="agreed", plan="plan [/x]\x1b[2J", final=True)
    emit("llm_call", "1:p1:action-v1:x1", player_id="p1", phase="action-v1", attempt=1, model=MODEL,
         latency_ms=12, prompt_tokens=3, completion_tokens=4, outcome="error", error_class="Boom[/]\x1b[2J",
         worker_pid=1)
    emit("phase_failed", "1:character_action:1:failed", phase="character_action", attempt=1,
         reason="server said [/] \x1b]0;t\x07", failures=1)
    emit("character_action", "1:p1", player_id="p1", character=NAME, text=HOSTILE, attempt=1,
         autocorrected=False, reviewed=False, manual=False)
    emit("dm_input", "1:adjudication", kind="adjudication", wait_ms=800,
         rolls=[{"player": "p1", "approach": "lasers", "dice": 1, "helpers": []}])
    for index, dice in ((1, [3]), (2, [6])):  # one player, two rolls in one turn
        emit("dice_roll", f"1:p1:{index}", player_id="p1", approach="lasers", number=3, dice=dice, helpers=[],
             overridden=False, successes=int(dice[0] < 3), band="barely" if dice == [3] else "failure",
             laser_feelings=dice == [3])
    emit("laser_feelings", "1:p1", player_id="p1", question="Is it [/] safe?\x1b[2J", answer="No [blink].\x07")
    emit("dm_input", "1:outcome", kind="outcome", text="outcome " + HOSTILE, wait_ms=1000)
    emit("character_reaction", "1:p1", player_id="p1", character=NAME, text="reaction " + HOSTILE)
    emit("turn_completed", "1", ended_early=False, prompt_tokens=3, completion_tokens=4, consensus="agreed")
    emit("session_ended", "end", turn=2, turns_played=1)


@pytest.fixture(scope="module")
def hostile(ttrpg_home):
    redis = get_redis()
    tag = uuid.uuid4().hex[:8]
    sid, campaign = f"evil-{tag}", f"camp[/x]-{tag}\x1b]0;c\x07"
    # Planted as a Redis writer would: not checked against the schema on the way in.
    os.environ["TTRPG_CHECK_EVENTS"] = "0"
    events._checking.cache_clear()
    try:
        _hostile_log(redis, sid, campaign)
    finally:
        os.environ["TTRPG_CHECK_EVENTS"] = "1"
        events._checking.cache_clear()
    yield {"redis": redis, "sid": sid, "campaign": campaign}
    redis.close()


# --- the commands that show a log -----------------------------------------------------------------

def test_watch_shows_hostile_events_as_text(hostile):
    out, err = assert_terminal_safe(run_bytes("watch", hostile["sid"], "--from-start"))
    lines = out.splitlines()
    assert len(lines) == len(events.all_events(hostile["redis"], hostile["sid"]))
    assert "[/]" in out and "[link=https://evil.example]click[/link]" in out and "[blink]blinking[/blink]" in out
    assert "osc8-link" in out and "Zix[/x] [bold]: open [/]" in out  # a hyperlink's text stays, as text
    assert "pwned-title" not in out and "evil.example/" not in out  # an escape sequence goes with its payload
    assert "DM narration" in out and "dice resolution" in out  # phases by their labels
    assert "after 4.2 s" in out  # how long the DM took
    assert "Watching session" in err


def test_watch_json_keeps_every_byte_as_json(hostile):
    result = run_bytes("watch", hostile["sid"], "--from-start", "--json")
    out, _ = assert_terminal_safe(result)  # JSON escapes control characters: \u001b, never ESC
    assert [json.loads(line) for line in out.splitlines()] == events.all_events(hostile["redis"], hostile["sid"])


def test_watch_on_a_real_terminal_prints_no_escape_but_its_own_colours(hostile):
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, color_system="truecolor", width=200)
    n = watch.watch(hostile["redis"], hostile["sid"], from_start=True, console=console)
    assert n == len(events.all_events(hostile["redis"], hostile["sid"]))
    shown = sink.getvalue()
    assert "\x1b[" in shown  # rich's own colours are there...
    rest = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # ...and nothing else
    assert not CONTROLS.search(rest), repr(CONTROLS.search(rest))
    assert "[/]" in rest and "[blink]blinking[/blink]" in rest


def test_transcript_md_is_text_not_markup(hostile):
    md, _ = assert_terminal_safe(run_bytes("logs", "transcript", hostile["sid"]))
    assert "[/]" in md and "[link=https://evil.example]click[/link]" in md and "osc8-link" in md
    assert "Zix[/x] [bold]" in md and "Raptor" in md
    assert "pwned-title" not in md and "cHduZWQ" not in md
    # no injected structure: headings, fences, raw HTML, links or images
    assert "\n# Turn 99" not in md and "\\# Turn 99" in md
    assert "```" not in md and "\\`\\`\\`" in md
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "<img" not in md
    assert "](http" not in md and "\n# not a heading" not in md
    assert [line for line in md.splitlines() if line.startswith("## ")] == ["## Turn 1"]
    assert md.count("rolls LASERS against 3") == 2  # both rolls of one player in one turn


def test_transcript_html_escapes_everything(hostile):
    page, _ = assert_terminal_safe(run_bytes("logs", "transcript", hostile["sid"], "--format", "html"))
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "[/]" in page and "Zix[/x] [bold]" in page and "osc8-link" in page
    assert "pwned-title" not in page
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", page))
    assert tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "ul", "li",
                    "section", "span", "br", "hr"}, tags


def test_report_text_html_and_json(hostile, tmp_path):
    out, err = assert_terminal_safe(run_bytes("report", hostile["sid"]))
    assert "model[/]" in out and "camp[/x]" in out and "Phase durations" in out
    assert "DM narration" in out and "4200" in out and "n/a" not in out.split("DM narration")[1].split("\n")[0]
    page = tmp_path / "r.html"
    result = run_bytes("report", hostile["sid"], "--json", "--html", str(page))
    out, _ = assert_terminal_safe(result)
    rep = json.loads(out)
    assert rep["model"] == MODEL and rep["campaign_id"] == hostile["campaign"]  # data: kept exactly
    html = page.read_text()
    assert not CONTROLS.search(html) and "<script" not in html and "model[/]" in html
    assert "DM narration" in html and "dice resolution" in html


def test_export_keeps_every_byte(hostile, tmp_path):
    out, _ = assert_terminal_safe(run_bytes("logs", "export", hostile["sid"]))
    assert [json.loads(line) for line in out.splitlines()] == events.all_events(hostile["redis"], hostile["sid"])
    narration = next(json.loads(line) for line in out.splitlines() if json.loads(line)["event_id"] == "1:narration")
    assert narration["text"] == HOSTILE + MARKDOWN
    by_campaign = tmp_path / "c.jsonl"
    _, err = assert_terminal_safe(run_bytes("logs", "export", "--campaign", hostile["campaign"], "--out",
                                            str(by_campaign)))
    assert "Wrote" in err
    assert by_campaign.read_text() == export.export(hostile["redis"], hostile["sid"])
    table = tmp_path / "e.csv"
    assert_terminal_safe(run_bytes("logs", "export", hostile["sid"], "--format", "csv", "--out", str(table)))
    assert table.read_bytes().decode() == export.export(hostile["redis"], hostile["sid"], fmt="csv")
    assert HOSTILE in table.read_bytes().decode()  # the CSV cell holds the text exactly


def test_clean_text_and_md_text():
    assert clean_text(HOSTILE).startswith("open [/] close [link=https://evil.example]click[/link] [blink]")
    assert not CONTROLS.search(clean_text(HOSTILE)) and "\u202e" not in clean_text(HOSTILE)
    assert clean_text("a\n\tb") == "a\n\tb" and one_line("a\n\n b  c", 4) == "a b…"
    assert transcript.md_text("# h\n- item\n1. one\n> q\n[ref]: http://x\n| a | b |\n~~~") == (
        "\\# h\n\\- item\n1\\. one\n&gt; q\n\\[ref]: http://x\n\\| a | b |\n\\~~~")
    assert transcript.md_text("[a](http://x) ![i](y) `c` \\ <b>&") == (
        "\\[a]\\(http://x) ![i]\\(y) \\`c\\` \\\\ &lt;b&gt;&amp;")
    assert transcript.md_text("x [/] [blink]x[/blink]") == "x [/] [blink]x[/blink]"
    assert transcript.md_text("[/]") == "\\[/]"  # a line starting with [ could define a link: escaped
    assert transcript.md_text("two\nlines", inline=True) == "two lines"


# --- status commands that print names read from Redis ---------------------------------------------

def test_workers_status_shows_hostile_names_as_text(redis_client):
    tag = uuid.uuid4().hex[:6]
    queue_name = f"q[/x]{tag}\x1b]0;q\x07"
    queue = Queue(queue_name, connection=redis_client, serializer=JSONSerializer)
    worker = Worker([queue], name=f"w[/x]{tag}\x1b[2J[blink]", connection=redis_client, serializer=JSONSerializer)
    worker.hostname = "host[/]\x1b]8;;https://evil.example/\x1b\\h\x1b]8;;\x1b\\"
    worker.register_birth()
    job = Job.create("evil[/x].func", connection=redis_client, serializer=JSONSerializer, id=f"job-{tag}",
                     origin=queue_name)
    job.save()
    error = "Traceback...\nRuntimeError: server said [/] \x1b]0;t\x07 [link=x]y[/link]"
    FailedJobRegistry(queue_name, connection=redis_client, serializer=JSONSerializer).add(job, ttl=600,
                                                                                          exc_string=error)
    Result.create_failure(job, ttl=600, exc_string=error)  # where RQ keeps a failed job's error
    try:
        out, _ = assert_terminal_safe(run_bytes("workers", "--queue", queue_name))
        assert f"w[/x]{tag}[blink]" in out and "host[/]" in out and f"q[/x]{tag}" in out
        assert "server said [/]" in out and "evil[/x].func" in out
        out, _ = assert_terminal_safe(run_bytes("workers", "failed", "--queue", queue_name))
        assert "server said [/]  [link=x]y[/link]" in out
        info = json.loads(run_bytes("workers", "--json", "--queue", queue_name).stdout)  # data: kept exactly
        assert any(w["name"] == worker.name for w in info["workers"])
    finally:
        FailedJobRegistry(queue_name, connection=redis_client, serializer=JSONSerializer).remove(job, delete_job=True)
        worker.register_death()
        redis_client.srem(Worker.redis_workers_keys, worker.key)


def test_memory_listing_shows_hostile_memories_as_text(redis_client):
    campaign = "mem-" + uuid.uuid4().hex[:8]
    storing.store(redis_client, campaign, scope="party", text="Galvin [/] lies \x1b]0;t\x07[blink]", source="dm",
                  turn=1, session_id="s1")
    try:
        out, _ = assert_terminal_safe(run_bytes("memory", "list", campaign))
        assert "Galvin [/] lies [blink]" in out
        out, _ = assert_terminal_safe(run_bytes("memory", "query", campaign, "Galvin"))
        assert "Galvin [/] lies" in out
    finally:
        store.delete_campaign(redis_client, campaign)


# --- the report: machine time and DM time, every roll ---------------------------------------------

def _events_at(*specs):
    """Events of one session with given times (seconds from a start)."""
    t0 = datetime(2026, 11, 28, 20, 0, tzinfo=timezone.utc)
    out = []
    for at, event_type, event_id, fields in specs:
        out.append({"event_id": event_id, "event_type": event_type,
                    "timestamp": (t0 + timedelta(seconds=at)).isoformat(), "session_id": "s", "campaign_id": "c",
                    "turn_number": fields.pop("turn", 1), **fields})
    return out


def test_report_separates_dm_time_from_machine_time():
    log = _events_at(
        (0, "session_started", "start", {"players": ["p1"], "model": "m"}),
        (30, "dm_input", "1:narration", {"kind": "narration", "text": "x", "end": False, "wait_ms": 30000}),
        (30, "phase_started", "1:dm_narration:1", {"phase": "dm_narration", "attempt": 1}),
        (30.5, "phase_completed", "1:dm_narration:1", {"phase": "dm_narration", "attempt": 1}),
        (31, "phase_started", "1:party_discussion:1", {"phase": "party_discussion", "attempt": 1}),
        (33, "phase_completed", "1:party_discussion:1", {"phase": "party_discussion", "attempt": 1}),
        (40, "dm_input", "1:adjudication", {"kind": "adjudication", "rolls": [], "wait_ms": 7000}),
        (41, "dm_input", "1:dice", {"kind": "dice_override", "override": {}, "wait_ms": 1000}),
        (50, "dm_input", "1:intervention", {"kind": "intervention", "phase": "party_discussion", "wait_ms": 9000}),
        (60, "dm_input", "2:narration", {"kind": "narration", "text": "y", "end": False, "wait_ms": 10000,
                                         "turn": 2}),
        (60, "phase_started", "2:dm_narration:1", {"phase": "dm_narration", "attempt": 1, "turn": 2}),
        (60.25, "phase_completed", "2:dm_narration:1", {"phase": "dm_narration", "attempt": 1, "turn": 2}),
        (70, "dm_input", "2:outcome", {"kind": "outcome", "text": "z", "turn": 2}),  # an older event: no wait_ms
    )
    rep = report.report_from_events(log)
    narration = rep["phases"]["dm_narration"]
    assert narration["label"] == "DM narration"
    assert (narration["count"], narration["total_ms"]) == (2, 750.0)  # machine time
    assert narration["dm"] == {"answers": 2, "timed": 2, "total_ms": 40000.0, "p50_ms": 20000.0,
                               "p95_ms": 29000.0, "max_ms": 30000.0}
    assert rep["phases"]["dm_adjudication"]["dm"]["total_ms"] == 7000.0
    assert rep["phases"]["dm_adjudication"]["count"] == 0  # the DM answered; no machine time logged
    assert rep["phases"]["dice_resolution"]["dm"]["total_ms"] == 1000.0  # dice_override is the dice question
    assert rep["phases"]["party_discussion"]["dm"]["total_ms"] == 9000.0  # an intervention: the failed phase's
    assert rep["phases"]["party_discussion"]["total_ms"] == 2000.0
    outcome = rep["phases"]["dm_outcome"]["dm"]
    assert (outcome["answers"], outcome["timed"], outcome["total_ms"]) == (1, 0, None)  # n/a, not 0
    assert rep["dm_time"]["total_ms"] == 57000.0 and rep["dm_time"]["answers"] == 6
    assert rep["dm_time"]["timed"] == 5 and set(rep["dm_time"]["by_kind"]) == {
        "narration", "adjudication", "dice", "intervention", "outcome"}
    assert rep["machine_time"]["total_ms"] == 2750.0
    rows = {r["phase"]: r for r in report.time_rows(rep)}
    assert rows["dm_outcome"]["dm_total"] == "n/a" and rows["dm_narration"]["dm_total"] == "40000"
    page = report.report_html(rep)
    assert "DM narration" in page and "n/a" in page and "40000" in page


def test_a_log_without_wait_ms_reports_dm_time_as_not_available():
    log = _events_at(
        (0, "session_started", "start", {"players": ["p1"], "model": "m"}),
        (1, "dm_input", "1:narration", {"kind": "narration", "text": "x", "end": False}),
        (1, "phase_started", "1:dm_narration:1", {"phase": "dm_narration", "attempt": 1}),
        (2, "phase_completed", "1:dm_narration:1", {"phase": "dm_narration", "attempt": 1}),
    )
    rep = report.report_from_events(log)
    assert rep["dm_time"]["total_ms"] is None and rep["dm_time"]["answers"] == 1
    assert rep["phases"]["dm_narration"]["total_ms"] == 1000.0
    assert dict(report.report_summary(rep))["DM time (answering)"].startswith("n/a")


def test_report_counts_every_roll_by_event_id():
    roll = {"player_id": "p1", "approach": "lasers", "number": 3, "helpers": [], "overridden": False,
            "successes": 1, "laser_feelings": False}
    log = _events_at(
        (0, "session_started", "start", {"players": ["p1", "p2"], "model": "m"}),
        (0, "dm_input", "1:narration", {"kind": "narration", "text": "x", "end": False}),
        (1, "dice_roll", "1:p1:1", {**roll, "dice": [1], "band": "barely"}),
        (2, "dice_roll", "1:p1:2", {**roll, "dice": [2], "band": "barely"}),
        (3, "dice_roll", "1:p2", {**roll, "player_id": "p2", "dice": [6], "band": "failure"}),  # an older id
        (3, "dice_roll", "1:p2", {**roll, "player_id": "p2", "dice": [6], "band": "failure"}),  # read twice
    )
    rep = report.report_from_events(log)
    assert rep["dice"]["rolls"] == 3 and rep["dice"]["by_player"] == {"p1": 2, "p2": 1}
    assert rep["dice"]["most_by_one_player_in_a_turn"] == 2 and rep["dice"]["bands"] == {"barely": 2, "failure": 1}
    story = transcript.story(log)
    assert [r["dice"] for r in story["turns"][0]["rolls"]] == [[1], [2], [6]]


# --- --out that cannot be written -----------------------------------------------------------------

@pytest.mark.parametrize("command", [("logs", "export"), ("logs", "transcript"), ("report",)])
def test_out_paths_that_cannot_be_written_exit_2_with_one_line(hostile, tmp_path, command):
    option = "--html" if command == ("report",) else "--out"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = {tmp_path: "is a directory", Path("/dev/full"): "No space left", a_file / "sub" / "out.txt": "folder"}
    for path, words in cases.items():
        result = run_bytes(*command, hostile["sid"], option, str(path))
        err = result.stderr.decode()
        assert result.returncode == 2, (command, path, err)
        assert "Traceback" not in err and words in err, (command, path, err)
        assert err.startswith("Error: ") and option in err and len(err.strip().splitlines()) <= 2, err
    made = tmp_path / "new" / "folder" / "out.txt"  # a missing folder that can be made is made
    result = run_bytes(*command, hostile["sid"], option, str(made))
    assert result.returncode == 0 and made.stat().st_size > 0, result.stderr


def test_play_against_a_hostile_model_prints_its_replies_as_text(tmp_path, queue_name, redis_client):
    """The DM's own terminal: every reply of the model (table talk, actions, reactions) is markup,
    escape sequences and control bytes. The session completes, the screen shows the text
    literally and no control byte, and the research log keeps the reply exactly."""
    sid = "hostile-play-" + uuid.uuid4().hex[:6]
    with FakeLLMServer() as server:
        base = server.route("evil", chat(f"I try to open the door. {HOSTILE}"))
        result = run_bytes("play", "--model", "fake-model", "--players", "2", "--turns", "1", "--session", sid,
                           "--dm-script", str(ROOT / "ttrpg" / "data" / "demo_script.json"),
                           "--workers", "2", "--worker-class", "fork",
                           env={"OPENAI_BASE_URL": base, "OPENAI_API_KEY": "", "TTRPG_CONTEXT_WINDOW": "8192",
                                "TTRPG_BACKOFF_BASE": "0.001"}, timeout=240)
    out, err = assert_terminal_safe(result)
    assert "[/]" in out and "[blink]blinking[/blink]" in out and "osc8-link" in out
    log = events.all_events(redis_client, sid)
    assert log[-1]["event_type"] == "session_ended"
    reactions = [e["text"] for e in log if e["event_type"] == "character_reaction"]
    assert reactions and all(OSC8 in t and CLIPBOARD in t and "[/]" in t and CLEAR in t for t in reactions)
