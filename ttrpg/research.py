"""What researchers do with a session's event log: export it, read the story, measure it, watch it.

* :func:`export`: the events of sessions as JSON Lines (byte-for-byte the ``research_logs``
  mirror) or CSV (one row per event, the union of all fields as columns);
* :func:`campaign_sessions`: the sessions of a campaign, oldest first;
* :func:`transcript`: the story as the DM would keep it, turn by turn (Markdown or HTML);
* :func:`report` / :func:`report_html`: phase durations, model calls, retries, validation,
  tokens and consensus of a session, computed from its events alone;
* :func:`watch`: print a session's events as they arrive (catching up first if asked).

Everything here reads the Redis Stream (:mod:`ttrpg.events`) only, so it works on any
machine that reaches the session's Redis, during or after play.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import Iterable

from ttrpg import events as _events
from ttrpg.constants import CAMPAIGN_SESSIONS, EVENTS_STREAM, SESSION_KEY
from ttrpg.event_schema import COMMON_NAMES, EVENT_TYPES, PHASES
from ttrpg.exceptions import ConfigError

FORMATS = ("jsonl", "csv")
TRANSCRIPT_FORMATS = ("md", "html")


# --- reading --------------------------------------------------------------------------------------

def check_session(redis, session_id: str) -> dict:
    """The session's metadata; raises :class:`~ttrpg.exceptions.UnknownSession` if there is none."""
    from ttrpg.session import load_meta

    return load_meta(redis, session_id)


def session_events(redis, session_id: str) -> list[dict]:
    """Every event of a known session, in log order."""
    check_session(redis, session_id)
    return _events.all_events(redis, session_id)


def campaign_sessions(redis, campaign_id: str) -> list[str]:
    """The ids of a campaign's sessions, oldest first (by creation time)."""
    ids = sorted(v.decode() if isinstance(v, bytes) else v
                 for v in redis.smembers(CAMPAIGN_SESSIONS.format(campaign_id=campaign_id)))

    def created(sid: str) -> float:
        raw = redis.hget(SESSION_KEY.format(session_id=sid), "created_at")
        try:
            return float(raw) if raw is not None else math.inf
        except ValueError:
            return math.inf

    return sorted(ids, key=lambda sid: (created(sid), sid))


def parse_event_types(event_types: str | Iterable[str] | None) -> list[str] | None:
    """``"dice_roll,llm_call"`` or a list → checked list of event types (None: all)."""
    if event_types is None:
        return None
    if isinstance(event_types, str):
        event_types = event_types.split(",")
    wanted = [t.strip() for t in event_types if t and t.strip()]
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise ConfigError(f"Unknown event type(s): {', '.join(unknown)}.",
                          hint=f"Known types: {', '.join(EVENT_TYPES)} (see docs/events.md).")
    return wanted or None


# --- export ---------------------------------------------------------------------------------------

def export(redis, session_ids: str | Iterable[str], fmt: str = "jsonl",
           event_types: str | Iterable[str] | None = None) -> str:
    """The events of ``session_ids`` (in that order, each in log order) as one text.

    ``jsonl``: one JSON object per line, exactly as ``research_logs/<session>.jsonl`` has them.
    ``csv``: a header of the union of all fields (the common fields first, then in order of
    first appearance) and one row per event; arrays and objects JSON-encoded, booleans
    ``true``/``false``, null as an empty cell. ``event_types`` keeps only those types.
    Raises UnknownSession for a session that does not exist, ConfigError for a bad format or type.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}.", hint=f"Use one of: {', '.join(FORMATS)}.")
    if isinstance(session_ids, str):
        session_ids = [session_ids]
    wanted = parse_event_types(event_types)
    rows: list[dict] = []
    for sid in session_ids:
        rows += [e for e in session_events(redis, sid) if wanted is None or e.get("event_type") in wanted]
    if fmt == "jsonl":
        return "".join(json.dumps(e, default=str) + "\n" for e in rows)
    return to_csv(rows)


def csv_columns(rows: list[dict]) -> list[str]:
    cols = list(COMMON_NAMES)
    seen = set(cols)
    for e in rows:
        for k in e:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = csv_columns(rows)
    writer = csv.writer(buf)
    writer.writerow(cols)
    for e in rows:
        writer.writerow([csv_cell(e.get(c)) for c in cols])
    return buf.getvalue()


# --- the story ------------------------------------------------------------------------------------

def _characters_from_state(redis, session_id: str) -> tuple[dict, dict]:
    """Fallback for logs whose ``session_started`` lacks ``characters``: the checkpointed party."""
    try:
        from ttrpg.graph import compile_graph, make_saver

        values = compile_graph(make_saver(redis)).get_state({"configurable": {"thread_id": session_id}}).values
    except Exception:  # no checkpoint (pruned, other Redis): ids stay ids
        return {}, {}
    party = (values or {}).get("party") or {}
    chars = {p["id"]: {"name": p["character"].get("name", p["id"]), "style": p["character"].get("style"),
                       "role": p["character"].get("role"), "number": p["character"].get("number"),
                       "player": (p.get("player") or {}).get("name")} for p in party.get("players", [])}
    return chars, party.get("ship") or {}


def story(evts: list[dict], characters: dict | None = None, ship: dict | None = None) -> dict:
    """The story in a session's events: who is who, and per turn what was said, done and rolled."""
    start = next((e for e in evts if e["event_type"] == "session_started"), {})
    chars: dict[str, dict] = {}
    for pid, c in (characters or {}).items():
        chars[pid] = dict(c) if isinstance(c, dict) else {"name": str(c)}
    for pid, c in (start.get("characters") or {}).items():
        chars[pid] = dict(c) if isinstance(c, dict) else {"name": str(c)}
    for e in evts:
        if e["event_type"] in ("character_action", "character_reaction") and e.get("character"):
            chars.setdefault(e["player_id"], {})["name"] = e["character"]
    for pid in start.get("players") or []:
        chars.setdefault(pid, {}).setdefault("name", pid)

    def name(pid) -> str:
        return (chars.get(pid) or {}).get("name") or str(pid)

    turns: dict[int, dict] = {}

    def turn(n) -> dict:
        return turns.setdefault(n, {"turn": n, "narration": "", "whispers": [], "actions": [], "rolls": [],
                                    "laser_feelings": [], "outcome": "", "reactions": [], "ended_early": False,
                                    "plan": ""})

    ended = None
    for e in evts:
        t, n = e["event_type"], e.get("turn_number")
        if t == "dm_input" and e.get("kind") == "narration" and not e.get("end"):
            turn(n)["narration"] = e.get("text", "")
        elif t == "dm_input" and e.get("kind") == "outcome":
            turn(n)["outcome"] = e.get("text", "")
        elif t == "whisper":
            turn(n)["whispers"].append({"to": name(e["player_id"]), "layer": e.get("layer"), "text": e.get("text")})
        elif t == "character_action":
            turn(n)["actions"].append({"player_id": e["player_id"], "name": name(e["player_id"]),
                                       "text": e.get("text", ""), "autocorrected": bool(e.get("autocorrected")),
                                       "reviewed": bool(e.get("reviewed")), "manual": bool(e.get("manual"))})
        elif t == "dice_roll":
            turn(n)["rolls"].append({"player_id": e["player_id"], "name": name(e["player_id"]),
                                     "approach": e.get("approach"), "number": e.get("number"),
                                     "dice": e.get("dice") or [], "band": e.get("band"),
                                     "laser_feelings": bool(e.get("laser_feelings")),
                                     "overridden": bool(e.get("overridden")),
                                     "helpers": [{"name": name(h.get("player")), "die": h.get("die"),
                                                  "success": bool(h.get("success"))}
                                                 for h in e.get("helpers") or []]})
        elif t == "laser_feelings":
            turn(n)["laser_feelings"].append({"name": name(e["player_id"]), "question": e.get("question", ""),
                                              "answer": e.get("answer", "")})
        elif t == "character_reaction":
            turn(n)["reactions"].append({"player_id": e["player_id"], "name": name(e["player_id"]),
                                         "text": e.get("text", "")})
        elif t == "consensus" and e.get("final"):
            turn(n)["plan"] = e.get("plan", "")
        elif t == "turn_completed":
            turn(n)["ended_early"] = bool(e.get("ended_early"))
        elif t == "session_ended":
            ended = e
    played = [turns[k] for k in sorted(k for k in turns if k is not None)
              if turns[k]["narration"] or turns[k]["actions"] or turns[k]["outcome"]]
    return {"session_id": start.get("session_id") or (evts[0]["session_id"] if evts else ""),
            "campaign_id": start.get("campaign_id") or (evts[0].get("campaign_id") if evts else ""),
            "date": (start.get("timestamp") or "")[:10], "characters": chars,
            "ship": start.get("ship") or ship or {}, "turns": played,
            "ended": ended is not None, "turns_played": (ended or {}).get("turns_played", len(played))}


def _roll_line(r: dict) -> str:
    dice = ", ".join(map(str, r["dice"])) or "no dice"
    s = f"{r['name']} rolls {str(r['approach']).upper()} against {r['number']}: {dice}"
    if r["overridden"]:
        s += " (dice set by the DM)"
    s += f" — {r['band']}"
    if r["laser_feelings"]:
        s += ", LASER FEELINGS!"
    helped = [f"{h['name']} ({h['die']}, {'helped' if h['success'] else 'no help'})" for h in r["helpers"]]
    if helped:
        s += f" Helped by {', '.join(helped)}."
    return s


def _crew_line(c: dict) -> str:
    desc = " ".join(x for x in (c.get("style"), c.get("role")) if x)
    extra = ", ".join(x for x in ((desc or None), f"number {c['number']}" if c.get("number") else None) if x)
    s = c.get("name", "?") + (f" ({extra})" if extra else "")
    if c.get("player"):
        s += f", played by {c['player']}"
    return s


def _action_tag(a: dict) -> str:
    if a.get("manual"):
        return " (typed by the DM)"
    if a.get("reviewed"):
        return " (reviewed by the DM)"
    if a.get("autocorrected"):
        return " (corrected to stay within the rules)"
    return ""


def render_transcript_md(s: dict) -> str:
    ship = s["ship"].get("name") if s["ship"] else None
    lines = [f"# {ship + ' — ' if ship else ''}Session {s['session_id']}", ""]
    meta = ([f"Campaign {s['campaign_id']}"] if s["campaign_id"] else []) + ([f"played {s['date']}"] if s["date"] else [])
    if meta:
        lines += ["*" + ", ".join(meta) + ".*", ""]
    if s["characters"]:
        lines += ["**The crew**", ""] + [f"- {_crew_line(c)}" for c in s["characters"].values()] + [""]
    for t in s["turns"]:
        lines += [f"## Turn {t['turn']}", ""]
        if t["narration"]:
            lines += [t["narration"], ""]
        for w in t["whispers"]:
            lines += [f"> *Whispered to {w['to']} ({w['layer']}):* {w['text']}", ""]
        if t["plan"]:
            lines += [f"*The crew's plan: {t['plan']}*", ""]
        for a in t["actions"]:
            lines += [f"**{a['name']}**{_action_tag(a)}: {a['text']}", ""]
        for r in t["rolls"]:
            lines += [f"- {_roll_line(r)}"]
        if t["rolls"]:
            lines += [""]
        for q in t["laser_feelings"]:
            lines += [f"**{q['name']}** asks: {q['question']}", "", f"**DM**: {q['answer']}", ""]
        if t["outcome"]:
            lines += [t["outcome"], ""]
        for r in t["reactions"]:
            lines += [f"**{r['name']}**: {r['text']}", ""]
        if t["ended_early"]:
            lines += ["*The DM ended this turn early.*", ""]
    if s["ended"]:
        lines += ["---", "", f"*The session ended after {s['turns_played']} turn(s).*", ""]
    return "\n".join(lines)


_PAGE_CSS = """
body{font-family:Georgia,serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}
h1,h2{font-family:system-ui,sans-serif} .meta{color:#666;font-style:italic}
.whisper{border-left:3px solid #99c;padding-left:.6rem;color:#446;font-style:italic}
.plan{color:#555;font-style:italic} .who{font-weight:bold} .tag{color:#777;font-size:.9em}
.dice{font-family:system-ui,sans-serif;font-size:.95em;background:#f4f4f8;padding:.4rem .8rem;border-radius:4px}
.lf{color:#7a2a8a} .outcome{border-left:3px solid #3a8;padding-left:.6rem} .early{color:#a60}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
"""


def render_transcript_html(s: dict) -> str:
    e = html.escape
    ship = s["ship"].get("name") if s["ship"] else None
    title = f"{ship + ' — ' if ship else ''}Session {s['session_id']}"
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
             f"<style>{_PAGE_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             f"<p class=\"meta\">Campaign {e(str(s['campaign_id']))}"
             + (f", played {e(s['date'])}" if s["date"] else "") + ".</p>"]
    if s["characters"]:
        parts.append("<h3>The crew</h3><ul>" + "".join(f"<li>{e(_crew_line(c))}</li>"
                                                      for c in s["characters"].values()) + "</ul>")
    for t in s["turns"]:
        parts.append(f"<section><h2>Turn {t['turn']}</h2>")
        if t["narration"]:
            parts.append(f"<p>{e(t['narration'])}</p>")
        for w in t["whispers"]:
            parts.append(f"<p class=\"whisper\">Whispered to {e(w['to'])} ({e(str(w['layer']))}): {e(w['text'])}</p>")
        if t["plan"]:
            parts.append(f"<p class=\"plan\">The crew's plan: {e(t['plan'])}</p>")
        for a in t["actions"]:
            parts.append(f"<p><span class=\"who\">{e(a['name'])}</span><span class=\"tag\">{e(_action_tag(a))}"
                         f"</span>: {e(a['text'])}</p>")
        if t["rolls"]:
            parts.append("<ul class=\"dice\">" + "".join(f"<li>{e(_roll_line(r))}</li>" for r in t["rolls"]) + "</ul>")
        for q in t["laser_feelings"]:
            parts.append(f"<p class=\"lf\"><span class=\"who\">{e(q['name'])}</span> asks: {e(q['question'])}<br>"
                         f"<span class=\"who\">DM</span>: {e(q['answer'])}</p>")
        if t["outcome"]:
            parts.append(f"<p class=\"outcome\">{e(t['outcome'])}</p>")
        for r in t["reactions"]:
            parts.append(f"<p><span class=\"who\">{e(r['name'])}</span>: {e(r['text'])}</p>")
        if t["ended_early"]:
            parts.append("<p class=\"early\">The DM ended this turn early.</p>")
        parts.append("</section>")
    if s["ended"]:
        parts.append(f"<hr><p class=\"meta\">The session ended after {s['turns_played']} turn(s).</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def transcript(redis, session_id: str, fmt: str = "md") -> str:
    """The story of a session as a DM would keep it: per turn the narration, each character's
    action (by name), the dice and their results, LASER FEELINGS questions, the outcome and the
    reactions. No machinery (phases, jobs, model calls)."""
    if fmt not in TRANSCRIPT_FORMATS:
        raise ConfigError(f"Unknown transcript format {fmt!r}.", hint="Use md or html.")
    evts = session_events(redis, session_id)
    start = next((e for e in evts if e["event_type"] == "session_started"), {})
    characters, ship = ({}, {})
    if not start.get("characters"):
        characters, ship = _characters_from_state(redis, session_id)
    s = story(evts, characters, ship)
    return render_transcript_md(s) if fmt == "md" else render_transcript_html(s)


# --- the report -----------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, ``statistics.quantiles``
    with ``method="inclusive"``); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _ts(e: dict) -> datetime:
    return datetime.fromisoformat(e["timestamp"])


def _counts(values, sort: bool = False) -> dict[str, int]:
    """How many of each value, keyed by the value as text (JSON object keys are strings)."""
    counts = Counter(values)
    items = sorted(counts.items(), key=lambda kv: (str(type(kv[0])), kv[0])) if sort else counts.items()
    return {str(k): n for k, n in items}


def _r(x, nd=1):
    return None if x is None else round(x, nd)


def report_from_events(evts: list[dict]) -> dict:
    """The numbers of one session's log (see :func:`report`)."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for e in evts:
        by_type[e["event_type"]].append(e)
    start = (by_type.get("session_started") or [{}])[0]
    end = (by_type.get("session_ended") or [None])[0]

    # phases: started/completed pairs share their event id (turn:phase:attempt)
    started = {e["event_id"]: e for e in by_type["phase_started"]}
    durations: dict[str, list[float]] = defaultdict(list)
    for e in by_type["phase_completed"]:
        s = started.get(e["event_id"])
        if s:
            durations[e["phase"]].append((_ts(e) - _ts(s)).total_seconds() * 1000)
    order = {p: i for i, p in enumerate(PHASES)}
    phases = {p: {"count": len(ds), "p50_ms": _r(percentile(ds, 0.5)), "p95_ms": _r(percentile(ds, 0.95)),
                  "max_ms": _r(max(ds)), "total_ms": _r(sum(ds))}
              for p, ds in sorted(durations.items(), key=lambda kv: order.get(kv[0], 99))}

    calls = by_type["llm_call"]
    latencies = [float(c["latency_ms"]) for c in calls if c.get("latency_ms") is not None]
    llm = {"calls": len(calls), "ok": sum(c.get("outcome") == "ok" for c in calls),
           "errors": sum(c.get("outcome") != "ok" for c in calls),
           "errors_by_class": _counts(c.get("error_class") or "unknown" for c in calls if c.get("outcome") != "ok"),
           "repeated_executions": sum(not str(c["event_id"]).endswith(":x1") for c in calls),
           "latency_p50_ms": _r(percentile(latencies, 0.5)), "latency_p95_ms": _r(percentile(latencies, 0.95)),
           "prompt_tokens": sum(int(c.get("prompt_tokens") or 0) for c in calls),
           "completion_tokens": sum(int(c.get("completion_tokens") or 0) for c in calls),
           "by_player": _counts((c.get("player_id") for c in calls), sort=True),
           "models": _counts(c.get("model") for c in calls),
           "worker_processes": len({c["worker_pid"] for c in calls if c.get("worker_pid") is not None})}

    retries = by_type["llm_retry"]
    retry = {"total": len(retries), "by_error_class": _counts(r.get("error_class") for r in retries),
             "wait_s_total": round(sum(float(r.get("wait_s") or 0) for r in retries), 3)}

    # validation: first answers = (turn, player) with an ok action-v1 call; failed = validation_failed attempt 1
    first = {(c["turn_number"], c.get("player_id")) for c in calls
             if c.get("phase") == "action-v1" and c.get("outcome") == "ok"}
    first_failed = {(v["turn_number"], v.get("player_id")) for v in by_type["validation_failed"]
                    if v.get("attempt") == 1}
    corrected = by_type["validation_autocorrected"]
    validation = {"first_attempt_actions": len(first), "first_attempt_failures": len(first_failed),
                  "first_attempt_failure_rate": round(len(first_failed) / len(first), 4) if first else None,
                  "failures_total": len(by_type["validation_failed"]),
                  "failures_by_round": _counts((v.get("attempt") for v in by_type["validation_failed"]), sort=True),
                  "autocorrections": len(corrected),
                  "needs_review": sum(bool(c.get("needs_review")) for c in corrected)}

    per_turn: dict[int, dict] = {}
    for t in by_type["turn_completed"]:
        per_turn.setdefault(t["turn_number"], {"turn": t["turn_number"], "llm_calls": 0, "prompt_tokens": 0,
                                               "completion_tokens": 0})
    for c in calls:
        row = per_turn.setdefault(c["turn_number"], {"turn": c["turn_number"], "llm_calls": 0, "prompt_tokens": 0,
                                                     "completion_tokens": 0})
        row["llm_calls"] += 1
        row["prompt_tokens"] += int(c.get("prompt_tokens") or 0)
        row["completion_tokens"] += int(c.get("completion_tokens") or 0)
    tokens_per_turn = [dict(r, total_tokens=r["prompt_tokens"] + r["completion_tokens"])
                       for _, r in sorted(per_turn.items())]

    finals = [c for c in by_type["consensus"] if c.get("final")]
    consensus = {"decisions": len(finals), "outcomes": _counts(c.get("state") for c in finals),
                 "decided_by_vote": sum(c.get("decided_by") == "vote" for c in finals),
                 "rounds": _counts((c.get("round") for c in finals), sort=True),
                 "rounds_total": len([c for c in by_type["consensus"] if c.get("decided_by") != "vote"])}

    completed = by_type["turn_completed"]
    rolls = by_type["dice_roll"]
    duration = (_ts(end) - _ts(start)).total_seconds() if end and start.get("timestamp") else None
    return {
        "session_id": start.get("session_id") or (evts[0]["session_id"] if evts else None),
        "campaign_id": start.get("campaign_id") or (evts[0].get("campaign_id") if evts else None),
        "model": start.get("model"), "players": start.get("players") or [],
        "started_at": start.get("timestamp"), "ended_at": end["timestamp"] if end else None,
        "duration_s": _r(duration, 3), "ended": end is not None,
        "events": len(evts), "events_by_type": _counts((e["event_type"] for e in evts), sort=True),
        "turns": {"completed": len(completed), "ended_early": sum(bool(t.get("ended_early")) for t in completed),
                  "resumes": len(by_type["session_resumed"])},
        "phases": phases,
        "failures": {"phase_failed": len(by_type["phase_failed"]),
                     "by_phase": _counts(f.get("phase") for f in by_type["phase_failed"]),
                     "rollbacks": len(by_type["rollback"]),
                     "interventions": _counts(i.get("choice") for i in by_type["dm_intervention"])},
        "jobs": {"enqueued": len(by_type["job_enqueued"]), "reattached": len(by_type["job_reattached"])},
        "llm": llm, "retries": retry, "validation": validation, "tokens_per_turn": tokens_per_turn,
        "consensus": consensus,
        "dice": {"rolls": len(rolls), "bands": _counts(r.get("band") for r in rolls),
                 "laser_feelings": sum(bool(r.get("laser_feelings")) for r in rolls),
                 "overridden": sum(bool(r.get("overridden")) for r in rolls)},
    }


def report(redis, session_id: str) -> dict:
    """Numbers of a session, from its events: turns, phase durations (p50/p95, from
    ``phase_started``/``phase_completed`` pairs), LLM calls and latency, retries by error class,
    first-attempt validation failure rate, auto-corrections, tokens per turn (every
    ``llm_call``, table talk included), consensus outcomes, dice."""
    return report_from_events(session_events(redis, session_id))


# --- the report as a page -------------------------------------------------------------------------

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


def svg_bar_chart(title: str, rows: list[tuple[str, list[float]]], series: list[str], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG: one group of bars per row, one bar per series."""
    e = html.escape
    if not rows:
        return f"<p class=\"empty\">{e(title)}: no data.</p>"
    label_w, bar_w, bar_h, gap = 170, 360, 14, 8
    group_h = bar_h * len(series) + gap
    legend_h = 22 if len(series) > 1 else 0
    height = 28 + legend_h + group_h * len(rows)
    top = max((v for _, vals in rows for v in vals if v is not None), default=0) or 1
    out = [f"<svg role=\"img\" aria-label=\"{e(title)}\" width=\"{label_w + bar_w + 90}\" height=\"{height}\" "
           f"viewBox=\"0 0 {label_w + bar_w + 90} {height}\">",
           f"<text x=\"0\" y=\"16\" class=\"title\">{e(title)}</text>"]
    if legend_h:
        x = label_w
        for i, name in enumerate(series):
            out.append(f"<rect x=\"{x}\" y=\"26\" width=\"10\" height=\"10\" fill=\"{_COLORS[i % len(_COLORS)]}\"/>"
                       f"<text x=\"{x + 14}\" y=\"35\">{e(name)}</text>")
            x += 14 + 8 * len(name) + 16
    y = 28 + legend_h
    for label, vals in rows:
        out.append(f"<text x=\"{label_w - 6}\" y=\"{y + bar_h * len(series) / 2 + 4:.0f}\" "
                   f"text-anchor=\"end\">{e(label)}</text>")
        for i, v in enumerate(vals):
            v = v or 0
            w = max(1.0, bar_w * v / top) if v else 0
            out.append(f"<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1f}\" height=\"{bar_h - 2}\" "
                       f"fill=\"{_COLORS[i % len(_COLORS)]}\"><title>{e(series[i])}: {v:g}{e(unit)}</title></rect>"
                       f"<text x=\"{label_w + w + 4:.1f}\" y=\"{y + bar_h - 4}\" class=\"val\">{v:g}{e(unit)}</text>")
            y += bar_h
        y += gap
    out.append("</svg>")
    return "".join(out)


def _kv_table(pairs: list[tuple[str, object]]) -> str:
    e = html.escape
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in pairs) + "</table>"


def report_html(rep: dict) -> str:
    """A self-contained page (inline CSS and SVG, no scripts, no external assets) of a report."""
    e = html.escape
    llm, val, ret, con = rep["llm"], rep["validation"], rep["retries"], rep["consensus"]
    rate = val["first_attempt_failure_rate"]
    summary = [("session", rep["session_id"]), ("campaign", rep["campaign_id"]), ("model", rep["model"]),
               ("players", ", ".join(map(str, rep["players"]))), ("started", rep["started_at"]),
               ("duration (s)", rep["duration_s"]), ("turns completed", rep["turns"]["completed"]),
               ("turns ended early", rep["turns"]["ended_early"]), ("resumes", rep["turns"]["resumes"]),
               ("events", rep["events"]), ("LLM calls (ok / error)", f"{llm['calls']} ({llm['ok']} / {llm['errors']})"),
               ("LLM latency p50 / p95 (ms)", f"{llm['latency_p50_ms']} / {llm['latency_p95_ms']}"),
               ("tokens (prompt / completion)", f"{llm['prompt_tokens']} / {llm['completion_tokens']}"),
               ("retries", ret["total"]), ("phase failures / rollbacks",
                                           f"{rep['failures']['phase_failed']} / {rep['failures']['rollbacks']}"),
               ("first-attempt validation failures",
                f"{val['first_attempt_failures']} of {val['first_attempt_actions']}"
                + (f" ({rate:.1%})" if rate is not None else "")),
               ("auto-corrections (need review)", f"{val['autocorrections']} ({val['needs_review']})"),
               ("dice rolls / LASER FEELINGS", f"{rep['dice']['rolls']} / {rep['dice']['laser_feelings']}")]
    charts = [
        svg_bar_chart("Phase duration (ms)", [(p, [d["p50_ms"], d["p95_ms"]]) for p, d in rep["phases"].items()],
                      ["p50", "p95"], " ms"),
        svg_bar_chart("Tokens per turn", [(f"turn {t['turn']}", [t["prompt_tokens"], t["completion_tokens"]])
                                          for t in rep["tokens_per_turn"]], ["prompt", "completion"]),
        svg_bar_chart("LLM calls per player", [(str(p), [n]) for p, n in llm["by_player"].items()], ["calls"]),
        svg_bar_chart("Retries by error class", [(str(k), [v]) for k, v in ret["by_error_class"].items()],
                      ["retries"]),
        svg_bar_chart("Consensus outcomes", [(str(k), [v]) for k, v in con["outcomes"].items()], ["turns"]),
        svg_bar_chart("Validation failures by round",
                      [(f"round {k}", [v]) for k, v in val["failures_by_round"].items()], ["failures"]),
    ]
    css = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
           "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ddd;padding:.25rem .6rem;"
           "text-align:left}th{background:#f5f5f5;font-weight:600}svg{display:block;margin:1.5rem 0;"
           "font-size:12px}svg .title{font-size:14px;font-weight:600}svg .val{fill:#555}.empty{color:#888}")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Report: session {e(str(rep['session_id']))}</title>", f"<style>{css}</style></head><body>",
        f"<h1>Session {e(str(rep['session_id']))}</h1>", _kv_table(summary), "<h2>Charts</h2>", *charts,
        "<h2>Phases</h2>",
        "<table><tr><th>phase</th><th>runs</th><th>p50 ms</th><th>p95 ms</th><th>max ms</th></tr>"
        + "".join(f"<tr><td>{e(p)}</td><td>{d['count']}</td><td>{d['p50_ms']}</td><td>{d['p95_ms']}</td>"
                  f"<td>{d['max_ms']}</td></tr>" for p, d in rep["phases"].items()) + "</table>",
        "<h2>Events</h2>", _kv_table(list(rep["events_by_type"].items())),
        "</body></html>", ""])


# --- watching -------------------------------------------------------------------------------------

_STYLE = {"session_started": "bold", "session_resumed": "bold", "session_ended": "bold", "phase_failed": "red",
          "rollback": "red", "dm_intervention": "yellow", "llm_retry": "yellow", "validation_failed": "yellow",
          "validation_autocorrected": "yellow", "dm_input": "cyan", "whisper": "cyan", "dice_roll": "magenta",
          "laser_feelings": "magenta", "phase_started": "dim", "phase_completed": "dim", "job_enqueued": "dim",
          "job_reattached": "dim", "llm_call": "dim", "character_action": "green", "character_reaction": "green"}


def _short(text, n=90) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def describe(e: dict) -> str:
    """One line saying what an event says, for people watching a session."""
    t = e.get("event_type")
    g = e.get
    if t in ("phase_started", "phase_completed"):
        return f"{g('phase')} (attempt {g('attempt')})"
    if t == "llm_call":
        tail = f" {g('latency_ms')} ms, {g('prompt_tokens')}+{g('completion_tokens')} tokens"
        return (f"{g('player_id')} {g('phase')}: {g('outcome')}" + (f" {g('error_class')}" if g("error_class") else "")
                + tail + (f", pid {g('worker_pid')}" if g("worker_pid") else ""))
    if t == "llm_retry":
        return f"{g('player_id')} {g('phase')}: retry {g('retry')} after {g('error_class')}, wait {float(g('wait_s') or 0):.3g} s"
    if t in ("job_enqueued", "job_reattached"):
        return f"{g('player_id')} {g('phase')} attempt {g('attempt')}" + (f" ({g('status')})" if g("status") else "")
    if t == "dm_input":
        detail = g("text") if g("text") is not None else (g("rolls") if g("kind") == "adjudication" else g("override"))
        return f"{g('kind')}: {_short(json.dumps(detail) if not isinstance(detail, str) else detail)}"
    if t == "dice_roll":
        return (f"{g('player_id')} {str(g('approach')).upper()} {g('number')}: {g('dice')} → {g('band')}"
                + (" · LASER FEELINGS" if g("laser_feelings") else ""))
    if t in ("character_action", "character_reaction"):
        return f"{g('character') or g('player_id')}: {_short(g('text'))}"
    if t == "validation_failed":
        return f"{g('player_id')} round {g('attempt')}: {'; '.join(g('violations') or [])}"
    if t == "validation_autocorrected":
        return f"{g('player_id')}: {_short(g('corrected'))}" + (" (needs review)" if g("needs_review") else "")
    if t == "consensus":
        return f"round {g('round')}: {g('state')} on {_short(g('plan'), 60)!r}" + (" (final)" if g("final") else "")
    if t in ("phase_failed", "rollback"):
        return f"{g('phase')}: {_short(g('reason'))}"
    if t == "dm_intervention":
        return f"{g('phase')} failed {g('failures')}×: DM chose {g('choice')}"
    if t == "laser_feelings":
        return f"{g('player_id')} asks {_short(g('question'), 60)!r}; DM: {_short(g('answer'), 60)!r}"
    if t == "memory_query":
        return f"{g('results')} remembered line(s) for {_short(g('query'), 70)!r}"
    if t == "whisper":
        return f"to {g('player_id')} ({g('layer')}): {_short(g('text'))}"
    if t == "turn_completed":
        return f"tokens {g('prompt_tokens')}+{g('completion_tokens')}, consensus {g('consensus')}" + (
            " (ended early)" if g("ended_early") else "")
    if t == "session_started":
        return f"players {', '.join(g('players') or [])}, model {g('model')}, seed {g('seed')}"
    if t == "session_ended":
        return f"after {g('turns_played')} turn(s)"
    rest = {k: v for k, v in e.items() if k not in COMMON_NAMES}
    return _short(", ".join(f"{k}={v}" for k, v in rest.items()), 120)


class _Writer:
    """Writes to a rich Console (human lines styled, JSON verbatim) or to any text file."""

    def __init__(self, console):
        if console is None:
            from ttrpg.console import out

            console = out()
        self.console = console
        self.rich = hasattr(console, "print") and hasattr(console, "file")

    def raw(self, line: str) -> None:
        f = self.console.file if self.rich else self.console
        f.write(line + "\n")
        f.flush()

    def human(self, e: dict) -> None:
        when = (e.get("timestamp") or "")[11:19]
        head = f"{when} t{e.get('turn_number')} {e.get('event_type', '?'):<24}"
        body = describe(e)
        if self.rich:
            from rich.text import Text

            line = Text(f"{head} ", style=_STYLE.get(e.get("event_type"), ""))
            line.append(body)
            self.console.print(line, soft_wrap=True)
        else:
            self.raw(f"{head} {body}")


def watch(redis, session_id: str, from_start: bool = False, json_lines: bool = False, console=None, *,
          stop=None, block_ms: int = 1000) -> int:
    """Print a session's events as they arrive until ``session_ended`` (or Ctrl-C, or ``stop``
    — a ``threading.Event`` — is set). Returns how many events were printed.

    ``from_start``: first catch up with every event already in the log, then follow. Otherwise
    follow from the newest event at the time of the call (nothing written after it is missed).
    ``json_lines``: one JSON object per line, exactly as the log stores it; otherwise one
    readable line per event. ``console``: a rich Console or a text file (default: stdout).
    """
    check_session(redis, session_id)
    w = _Writer(console)
    if from_start:
        after = "0-0"
    else:
        newest = redis.xrevrange(EVENTS_STREAM.format(session_id=session_id), count=1)
        if newest and json.loads(newest[0][1][b"e"]).get("event_type") == "session_ended":
            if not json_lines:
                w.raw(f"Session {session_id} has already ended (use --from-start to replay it).")
            return 0
        after = (newest[0][0].decode() if isinstance(newest[0][0], bytes) else newest[0][0]) if newest else "0-0"
    printed = 0
    try:
        for _sid, event in _events.follow(redis, session_id, after=after, block_ms=block_ms):
            if event is not None:
                if json_lines:
                    w.raw(json.dumps(event, default=str))
                else:
                    w.human(event)
                printed += 1
                if event.get("event_type") == "session_ended":
                    break
            if stop is not None and stop.is_set():
                break
    except KeyboardInterrupt:
        pass
    return printed
