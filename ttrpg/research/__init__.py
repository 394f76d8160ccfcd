"""What researchers do with a session's event log: export it, read the story, measure it, watch it.

* :func:`export`: the events of sessions as JSON Lines (byte-for-byte the ``research_logs``
  mirror) or CSV (one row per event, the union of all fields as columns);
* :func:`campaign_sessions`: the sessions of a campaign, oldest first;
* :func:`transcript`: the story as the DM would keep it, turn by turn (Markdown or HTML);
* :func:`report` / :func:`report_html`: phase durations, model calls, retries, validation,
  tokens and consensus of a session, computed from its events alone;
* :func:`watch`: print a session's events as they arrive (catching up first if asked).

Everything here reads the Redis Stream (:mod:`ttrpg.research.events`) only, so it works on any
machine that reaches the session's Redis, during or after play.

Every text in a log came from a model, a server, a file or the DM. Exports keep it exactly;
everything made for people (transcripts, the report, ``watch``) shows it as text: control
characters and terminal escapes removed (:func:`ttrpg.console.clean_text`), HTML escaped,
Markdown neutralized (:func:`md_text`), never parsed as rich markup.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections import Counter, defaultdict
from datetime import datetime
from typing import Iterable

from ttrpg.console import clean_text, one_line
from ttrpg.constants import CAMPAIGN_SESSIONS, EVENTS_STREAM, SESSION_KEY
from ttrpg.exceptions import ConfigError
from ttrpg.research import events as _events
from ttrpg.research.schema import COMMON_NAMES, EVENT_TYPES, PHASES
from ttrpg.vocabulary import QUESTIONS, phase_label

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
        from ttrpg.turn.graph import compile_graph, make_saver

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
            chars.setdefault(e.get("player_id"), {})["name"] = e["character"]
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
    rolled: set = set()
    for e in evts:
        t, n = e["event_type"], e.get("turn_number")
        if t == "dm_input" and e.get("kind") == "narration" and not e.get("end"):
            turn(n)["narration"] = e.get("text", "")
        elif t == "dm_input" and e.get("kind") == "outcome":
            turn(n)["outcome"] = e.get("text", "")
        elif t == "whisper":
            turn(n)["whispers"].append({"to": name(e.get("player_id")), "layer": e.get("layer"),
                                        "text": e.get("text")})
        elif t == "character_action":
            turn(n)["actions"].append({"player_id": e.get("player_id"), "name": name(e.get("player_id")),
                                       "text": e.get("text", ""), "autocorrected": bool(e.get("autocorrected")),
                                       "reviewed": bool(e.get("reviewed")), "manual": bool(e.get("manual"))})
        elif t == "dice_roll":
            if ("dice_roll", e.get("event_id")) in rolled:
                continue  # the same roll twice (logs concatenated): one roll
            rolled.add(("dice_roll", e.get("event_id")))
            turn(n)["rolls"].append({"player_id": e.get("player_id"), "name": name(e.get("player_id")),
                                     "approach": e.get("approach"), "number": e.get("number"),
                                     "dice": e.get("dice") or [], "band": e.get("band"),
                                     "laser_feelings": bool(e.get("laser_feelings")),
                                     "overridden": bool(e.get("overridden")),
                                     "helpers": [{"name": name(h.get("player")), "die": h.get("die"),
                                                  "success": bool(h.get("success"))}
                                                 for h in e.get("helpers") or []]})
        elif t == "laser_feelings":
            turn(n)["laser_feelings"].append({"name": name(e.get("player_id")), "question": e.get("question", ""),
                                              "answer": e.get("answer", "")})
        elif t == "character_reaction":
            turn(n)["reactions"].append({"player_id": e.get("player_id"), "name": name(e.get("player_id")),
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
    """One roll in words, on one line, cleaned (escape it for Markdown or HTML after)."""
    dice = ", ".join(one_line(d) for d in r["dice"]) if isinstance(r["dice"], list) else one_line(r["dice"])
    s = f"{one_line(r['name'])} rolls {one_line(r['approach']).upper()} against {one_line(r['number'])}: " \
        f"{dice or 'no dice'}"
    if r["overridden"]:
        s += " (dice set by the DM)"
    s += f" — {one_line(r['band'])}"
    if r["laser_feelings"]:
        s += ", LASER FEELINGS!"
    helped = [f"{one_line(h['name'])} ({one_line(h['die'])}, {'helped' if h['success'] else 'no help'})"
              for h in r["helpers"]]
    if helped:
        s += f" Helped by {', '.join(helped)}."
    return s


def _crew_line(c: dict) -> str:
    """A crew member in words, on one line, cleaned (escape it for Markdown or HTML after)."""
    desc = " ".join(one_line(x) for x in (c.get("style"), c.get("role")) if x)
    number = f"number {one_line(c['number'])}" if c.get("number") else None
    extra = ", ".join(x for x in ((desc or None), number) if x)
    s = one_line(c.get("name") or "?") + (f" ({extra})" if extra else "")
    if c.get("player"):
        s += f", played by {one_line(c['player'])}"
    return s


def _action_tag(a: dict) -> str:
    if a.get("manual"):
        return " (typed by the DM)"
    if a.get("reviewed"):
        return " (reviewed by the DM)"
    if a.get("autocorrected"):
        return " (corrected to stay within the rules)"
    return ""


# A line that would start a Markdown block (heading, list, quote, fence, table, rule, link
# definition) if it began the line: its first marker is backslash-escaped.
_MD_LINE_START = re.compile(r"^([ \t]*)(?:([#=+\-*_|~:\[!])|(\d+)([.)]))", re.M)


def md_text(value, *, inline: bool = False) -> str:
    """Untrusted text for a Markdown document: read as the same text, never as markup.

    Control characters and terminal escapes go (:func:`~ttrpg.console.clean_text`; newlines
    are kept unless ``inline``); ``&``, ``<`` and ``>`` become entities (no raw HTML, no
    autolinks, no quotes); backslashes and backticks are escaped (no code spans or fences);
    ``](`` is broken (no links or images); a line starting with a block marker (``#``, ``-``,
    ``*``, ``+``, ``=``, ``|``, ``~``, ``[``, ``1.``...) has it escaped (no fake headings,
    lists or tables). Emphasis inside a line is left alone.
    """
    s = one_line(value) if inline else clean_text("" if value is None else value)
    s = s.replace("\\", "\\\\").replace("`", "\\`")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("](", "]\\(")

    def marker(m: re.Match) -> str:
        if m.group(2):
            return f"{m.group(1)}\\{m.group(2)}"
        return f"{m.group(1)}{m.group(3)}\\{m.group(4)}"

    return _MD_LINE_START.sub(marker, s)


def _md_block(value, prefix: str = "") -> str:
    """A paragraph of untrusted text; ``prefix`` (e.g. ``"> "``) starts each of its lines."""
    lines = md_text(value).strip("\n").split("\n")
    return "\n".join(prefix + line if line.strip() else prefix.rstrip() for line in lines)


def render_transcript_md(s: dict) -> str:
    md = lambda v: md_text(v, inline=True)  # noqa: E731 - names, ids, one-line texts
    ship = s["ship"].get("name") if isinstance(s["ship"], dict) else None
    lines = [f"# {md(ship) + ' — ' if ship else ''}Session {md(s['session_id'])}", ""]
    meta = ([f"Campaign {md(s['campaign_id'])}"] if s["campaign_id"] else []) \
        + ([f"played {md(s['date'])}"] if s["date"] else [])
    if meta:
        lines += ["*" + ", ".join(meta) + ".*", ""]
    if s["characters"]:
        lines += ["**The crew**", ""] + [f"- {md(_crew_line(c))}" for c in s["characters"].values()] + [""]
    for t in s["turns"]:
        lines += [f"## Turn {md(t['turn'])}", ""]
        if t["narration"]:
            lines += [_md_block(t["narration"]), ""]
        for w in t["whispers"]:
            lines += [f"> *Whispered to {md(w['to'])} ({md(w['layer'])}):* "
                      + _md_block(w["text"], "> ").removeprefix(">").lstrip(" "), ""]
        if t["plan"]:
            lines += [f"*The crew's plan: {md(t['plan'])}*", ""]
        for a in t["actions"]:
            lines += [f"**{md(a['name'])}**{_action_tag(a)}: {_md_block(a['text'])}", ""]
        for r in t["rolls"]:
            lines += [f"- {md(_roll_line(r))}"]
        if t["rolls"]:
            lines += [""]
        for q in t["laser_feelings"]:
            lines += [f"**{md(q['name'])}** asks: {_md_block(q['question'])}", "",
                      f"**DM**: {_md_block(q['answer'])}", ""]
        if t["outcome"]:
            lines += [_md_block(t["outcome"]), ""]
        for r in t["reactions"]:
            lines += [f"**{md(r['name'])}**: {_md_block(r['text'])}", ""]
        if t["ended_early"]:
            lines += ["*The DM ended this turn early.*", ""]
    if s["ended"]:
        lines += ["---", "", f"*The session ended after {md(s['turns_played'])} turn(s).*", ""]
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


def html_text(value, *, breaks: bool = False) -> str:
    """Untrusted text for an HTML page: cleaned (:func:`~ttrpg.console.clean_text`), then
    escaped (quotes included); ``breaks``: its newlines become ``<br>``."""
    s = html.escape(clean_text("" if value is None else value))
    return s.replace("\n", "<br>\n") if breaks else s


def render_transcript_html(s: dict) -> str:
    e = html_text

    def p(v) -> str:  # a paragraph's text: its line breaks kept
        return html_text(str(v or "").strip("\n"), breaks=True)

    ship = s["ship"].get("name") if isinstance(s["ship"], dict) else None
    title = f"{one_line(ship) + ' — ' if ship else ''}Session {one_line(s['session_id'])}"
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{e(title)}</title>",
             f"<style>{_PAGE_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             f"<p class=\"meta\">Campaign {e(s['campaign_id'])}"
             + (f", played {e(s['date'])}" if s["date"] else "") + ".</p>"]
    if s["characters"]:
        parts.append("<h3>The crew</h3><ul>" + "".join(f"<li>{e(_crew_line(c))}</li>"
                                                      for c in s["characters"].values()) + "</ul>")
    for t in s["turns"]:
        parts.append(f"<section><h2>Turn {e(t['turn'])}</h2>")
        if t["narration"]:
            parts.append(f"<p>{p(t['narration'])}</p>")
        for w in t["whispers"]:
            parts.append(f"<p class=\"whisper\">Whispered to {e(one_line(w['to']))} ({e(one_line(w['layer']))}): "
                         f"{p(w['text'])}</p>")
        if t["plan"]:
            parts.append(f"<p class=\"plan\">The crew's plan: {p(t['plan'])}</p>")
        for a in t["actions"]:
            parts.append(f"<p><span class=\"who\">{e(one_line(a['name']))}</span><span class=\"tag\">"
                         f"{e(_action_tag(a))}</span>: {p(a['text'])}</p>")
        if t["rolls"]:
            parts.append("<ul class=\"dice\">" + "".join(f"<li>{e(_roll_line(r))}</li>" for r in t["rolls"]) + "</ul>")
        for q in t["laser_feelings"]:
            parts.append(f"<p class=\"lf\"><span class=\"who\">{e(one_line(q['name']))}</span> asks: "
                         f"{p(q['question'])}<br><span class=\"who\">DM</span>: {p(q['answer'])}</p>")
        if t["outcome"]:
            parts.append(f"<p class=\"outcome\">{p(t['outcome'])}</p>")
        for r in t["reactions"]:
            parts.append(f"<p><span class=\"who\">{e(one_line(r['name']))}</span>: {p(r['text'])}</p>")
        if t["ended_early"]:
            parts.append("<p class=\"early\">The DM ended this turn early.</p>")
        parts.append("</section>")
    if s["ended"]:
        parts.append(f"<hr><p class=\"meta\">The session ended after {e(s['turns_played'])} turn(s).</p>")
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


def question_kind(kind) -> str:
    """The DM question a ``dm_input`` kind answers (``dice_override`` is the dice question)."""
    return "dice" if kind == "dice_override" else str(kind)


def dm_phase(e: dict) -> str:
    """The phase a DM answer belongs to (:data:`ttrpg.vocabulary.QUESTIONS`); an intervention
    belongs to the phase that failed when its event names it, else to none."""
    kind = question_kind(e.get("kind"))
    if kind in QUESTIONS and QUESTIONS[kind][1]:
        return QUESTIONS[kind][1]
    return e.get("phase") if isinstance(e.get("phase"), str) and e.get("phase") in PHASES else ""


def _wait_ms(e: dict) -> float | None:
    v = e.get("wait_ms")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return float(v)


def _dm_stats(answers: list[dict]) -> dict:
    """The DM's time over some answers: how many, how many were timed (logs from before
    ``wait_ms`` have none: their time is None, shown as n/a), total, p50, p95 and max."""
    waits = [w for w in (_wait_ms(d) for d in answers) if w is not None]
    return {"answers": len(answers), "timed": len(waits), "total_ms": _r(sum(waits)) if waits else None,
            "p50_ms": _r(percentile(waits, 0.5)), "p95_ms": _r(percentile(waits, 0.95)),
            "max_ms": _r(max(waits, default=None))}


def _unique(evts: list[dict]) -> list[dict]:
    """Events counted once per event id: two rolls of one player in one turn have two ids
    (``turn:player:index``) and count twice; the same event read twice counts once."""
    seen, out = set(), []
    for e in evts:
        key = e.get("event_id")
        if key is None:
            out.append(e)
        elif key not in seen:
            seen.add(key)
            out.append(e)
    return out


def report_from_events(evts: list[dict]) -> dict:
    """The numbers of one session's log (see :func:`report`)."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for e in evts:
        by_type[e["event_type"]].append(e)
    start = (by_type.get("session_started") or [{}])[0]
    end = (by_type.get("session_ended") or [None])[0]

    # phases: started/completed pairs share their event id (turn:phase:attempt); that is
    # machine time: the DM answers in ask nodes, between work phases, not inside them
    started = {e["event_id"]: e for e in by_type["phase_started"]}
    durations: dict[str, list[float]] = defaultdict(list)
    for e in by_type["phase_completed"]:
        s = started.get(e["event_id"])
        if s:
            durations[e["phase"]].append((_ts(e) - _ts(s)).total_seconds() * 1000)
    dm_answers = _unique(by_type["dm_input"])
    dm_by_phase: dict[str, list[dict]] = defaultdict(list)
    for d in dm_answers:
        if dm_phase(d):
            dm_by_phase[dm_phase(d)].append(d)
    order = {p: i for i, p in enumerate(PHASES)}
    phases = {}
    for p in sorted(set(durations) | set(dm_by_phase), key=lambda p: (order.get(p, 99), str(p))):
        ds = durations.get(p, [])
        phases[p] = {"label": phase_label(p), "count": len(ds), "p50_ms": _r(percentile(ds, 0.5)),
                     "p95_ms": _r(percentile(ds, 0.95)), "max_ms": _r(max(ds, default=None)),
                     "total_ms": _r(sum(ds)) if ds else None, "dm": _dm_stats(dm_by_phase.get(p, []))}
    dm_time = dict(_dm_stats(dm_answers), by_kind={
        k: _dm_stats([d for d in dm_answers if question_kind(d.get("kind")) == k])
        for k in dict.fromkeys(question_kind(d.get("kind")) for d in dm_answers)})
    machine_time = {"total_ms": _r(sum(sum(ds) for ds in durations.values())) if durations else None,
                    "phase_runs": sum(len(ds) for ds in durations.values())}

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
    rolls = _unique(by_type["dice_roll"])
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
        "phases": phases, "machine_time": machine_time, "dm_time": dm_time,
        "failures": {"phase_failed": len(by_type["phase_failed"]),
                     "by_phase": _counts(f.get("phase") for f in by_type["phase_failed"]),
                     "rollbacks": len(by_type["rollback"]),
                     "interventions": _counts(i.get("choice") for i in by_type["dm_intervention"])},
        "jobs": {"enqueued": len(by_type["job_enqueued"]), "reattached": len(by_type["job_reattached"])},
        "llm": llm, "retries": retry, "validation": validation, "tokens_per_turn": tokens_per_turn,
        "consensus": consensus,
        "dice": {"rolls": len(rolls), "bands": _counts(r.get("band") for r in rolls),
                 "laser_feelings": sum(bool(r.get("laser_feelings")) for r in rolls),
                 "overridden": sum(bool(r.get("overridden")) for r in rolls),
                 "by_player": _counts((r.get("player_id") for r in rolls), sort=True),
                 "by_turn": _counts((r.get("turn_number") for r in rolls), sort=True),
                 "most_by_one_player_in_a_turn": max(Counter((r.get("turn_number"), str(r.get("player_id")))
                                                             for r in rolls).values(), default=0)},
    }


def report(redis, session_id: str) -> dict:
    """Numbers of a session, from its events: turns, per phase the machine time (p50/p95,
    from ``phase_started``/``phase_completed`` pairs) and the DM's time to answer (``wait_ms``
    of the ``dm_input`` events of the phase's questions; None where the log has none), LLM
    calls and latency, retries by error class,
    first-attempt validation failure rate, auto-corrections, tokens per turn (every
    ``llm_call``, table talk included), consensus outcomes, dice."""
    return report_from_events(session_events(redis, session_id))


# --- the report as a page -------------------------------------------------------------------------

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")


def svg_bar_chart(title: str, rows: list[tuple[str, list[float]]], series: list[str], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG: one group of bars per row, one bar per series."""
    e = html_text
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
    e = html_text
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs) + "</table>"


def ms_text(ms) -> str:
    """Milliseconds for people: ``n/a`` when unknown (a log without the figure)."""
    return "n/a" if ms is None else f"{ms:g}"


def s_text(ms) -> str:
    """Milliseconds as seconds for people, ``n/a`` when unknown."""
    return "n/a" if ms is None else f"{ms / 1000:.1f} s"


def time_rows(rep: dict) -> list[dict]:
    """Per phase, for tables: its label, machine runs and times, and the DM's answers and time
    (``n/a`` where the log does not say how long the DM took)."""
    rows = []
    for p, d in rep["phases"].items():
        dm = d.get("dm") or {}
        ran = bool(d["count"])  # no run: the DM answered, no work was logged for the phase
        rows.append({"phase": p, "label": d.get("label") or phase_label(p), "runs": str(d["count"]),
                     "p50": ms_text(d["p50_ms"]) if ran else "-", "p95": ms_text(d["p95_ms"]) if ran else "-",
                     "max": ms_text(d["max_ms"]) if ran else "-",
                     "machine_total": ms_text(d.get("total_ms")) if ran else "-",
                     "dm_answers": str(dm.get("answers", 0)),
                     "dm_total": ms_text(dm.get("total_ms")) if dm.get("answers") else "-",
                     "dm_p50": ms_text(dm.get("p50_ms")) if dm.get("answers") else "-"})
    return rows


def report_summary(rep: dict) -> list[tuple[str, str]]:
    """The report's headline figures as (label, value) pairs, values cleaned and on one line."""
    llm, val, ret = rep["llm"], rep["validation"], rep["retries"]
    rate = val["first_attempt_failure_rate"]
    dm, machine = rep.get("dm_time") or {}, rep.get("machine_time") or {}
    dm_note = ""
    if dm.get("answers") and dm.get("timed", 0) < dm["answers"]:
        dm_note = f" ({dm['timed']} of {dm['answers']} answers timed)"
    pairs = [
        ("session", rep["session_id"]), ("campaign", rep["campaign_id"]), ("model", rep["model"]),
        ("players", ", ".join(map(str, rep["players"]))), ("started", rep["started_at"]),
        ("duration", f"{rep['duration_s']} s" if rep["duration_s"] is not None else "(not ended)"),
        ("machine time (phases)", s_text(machine.get("total_ms"))),
        ("DM time (answering)", s_text(dm.get("total_ms")) + dm_note
         + (f", p50 {ms_text(dm.get('p50_ms'))} ms per answer" if dm.get("p50_ms") is not None else "")),
        ("turns completed", rep["turns"]["completed"]), ("turns ended early", rep["turns"]["ended_early"]),
        ("resumes", rep["turns"]["resumes"]), ("events", rep["events"]),
        ("LLM calls", f"{llm['calls']} ({llm['ok']} ok, {llm['errors']} error)"),
        ("LLM latency p50 / p95", f"{ms_text(llm['latency_p50_ms'])} / {ms_text(llm['latency_p95_ms'])} ms"),
        ("tokens", f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion"),
        ("retries", f"{ret['total']}" + (" (" + ", ".join(f"{k} {v}" for k, v in ret["by_error_class"].items())
                                         + ")" if ret["by_error_class"] else "")),
        ("phase failures / rollbacks", f"{rep['failures']['phase_failed']} / {rep['failures']['rollbacks']}"),
        ("first-attempt validation failures", f"{val['first_attempt_failures']} of {val['first_attempt_actions']}"
         + (f" ({rate:.1%})" if rate is not None else "")),
        ("auto-corrections", f"{val['autocorrections']} ({val['needs_review']} needed review)"),
        ("consensus", ", ".join(f"{k} {v}" for k, v in rep["consensus"]["outcomes"].items()) or "-"),
        ("dice", f"{rep['dice']['rolls']} rolls, {rep['dice']['laser_feelings']} LASER FEELINGS"),
    ]
    return [(k, one_line("-" if v is None else v)) for k, v in pairs]


def report_html(rep: dict) -> str:
    """A self-contained page (inline CSS and SVG, no scripts, no external assets) of a report."""
    e = html_text
    llm, val, ret, con = rep["llm"], rep["validation"], rep["retries"], rep["consensus"]
    rows = time_rows(rep)
    charts = [
        svg_bar_chart("Phase duration, machine time (ms)",
                      [(d.get("label") or p, [d["p50_ms"], d["p95_ms"]]) for p, d in rep["phases"].items()
                       if d["count"]], ["p50", "p95"], " ms"),
        svg_bar_chart("Time per phase: machine and DM (total ms)",
                      [(d.get("label") or p, [d.get("total_ms"), (d.get("dm") or {}).get("total_ms")])
                       for p, d in rep["phases"].items()], ["machine", "DM"], " ms"),
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
           "font-size:12px}svg .title{font-size:14px;font-weight:600}svg .val{fill:#555}.empty{color:#888}"
           ".note{color:#555}")
    head = ("<tr><th>phase</th><th>runs</th><th>machine p50 ms</th><th>machine p95 ms</th><th>machine max ms</th>"
            "<th>machine total ms</th><th>DM answers</th><th>DM total ms</th><th>DM p50 ms</th></tr>")
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>Report: session {e(rep['session_id'])}</title>", f"<style>{css}</style></head><body>",
        f"<h1>Session {e(rep['session_id'])}</h1>", _kv_table(report_summary(rep)), "<h2>Charts</h2>", *charts,
        "<h2>Phases</h2>",
        "<p class=\"note\">Machine time: from each phase's start to its end. DM time: how long the DM took to "
        "answer the questions of that phase (n/a: the log does not say).</p>",
        "<table>" + head
        + "".join(f"<tr><td title=\"{e(r['phase'])}\">{e(r['label'])}</td><td>{e(r['runs'])}</td>"
                  f"<td>{e(r['p50'])}</td><td>{e(r['p95'])}</td><td>{e(r['max'])}</td><td>{e(r['machine_total'])}</td>"
                  f"<td>{e(r['dm_answers'])}</td><td>{e(r['dm_total'])}</td><td>{e(r['dm_p50'])}</td></tr>"
                  for r in rows) + "</table>",
        "<h2>Events</h2>", _kv_table(list(rep["events_by_type"].items())),
        "</body></html>", ""])


# --- watching -------------------------------------------------------------------------------------

_STYLE = {"session_started": "bold", "session_resumed": "bold", "session_ended": "bold", "phase_failed": "red",
          "rollback": "red", "dm_intervention": "yellow", "llm_retry": "yellow", "validation_failed": "yellow",
          "validation_autocorrected": "yellow", "dm_input": "cyan", "whisper": "cyan", "dice_roll": "magenta",
          "laser_feelings": "magenta", "phase_started": "dim", "phase_completed": "dim", "job_enqueued": "dim",
          "job_reattached": "dim", "llm_call": "dim", "character_action": "green", "character_reaction": "green"}


def _short(text, n=90) -> str:
    return one_line(text or "", n)


def describe(e: dict) -> str:
    """One line saying what an event says, for people watching a session (raw: the caller
    cleans it, see :func:`watch_line`)."""
    t = e.get("event_type")
    g = e.get
    if t in ("phase_started", "phase_completed"):
        return f"{phase_label(g('phase'))} (attempt {g('attempt')})"
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
        waited = _wait_ms(e)
        took = f" (after {waited / 1000:.1f} s)" if waited is not None else ""
        return f"{g('kind')}{took}: {_short(json.dumps(detail) if not isinstance(detail, str) else detail)}"
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
        return f"{phase_label(str(g('phase') or ''))}: {_short(g('reason'))}"
    if t == "dm_intervention":
        return f"{phase_label(str(g('phase') or ''))} failed {g('failures')}×: DM chose {g('choice')}"
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
        return f"players {', '.join(map(str, g('players') or []))}, model {g('model')}, seed {g('seed')}"
    if t == "session_ended":
        return f"after {g('turns_played')} turn(s)"
    rest = {k: v for k, v in e.items() if k not in COMMON_NAMES}
    return _short(", ".join(f"{k}={v}" for k, v in rest.items()), 120)


def watch_line(e: dict) -> tuple[str, str]:
    """The time, turn and type of an event, and what it says: each on one line, cleaned
    (no control characters or terminal escapes); print them as text, never as markup."""
    when = one_line(str(e.get("timestamp") or "")[11:19])
    head = f"{when} t{one_line(e.get('turn_number'))} {one_line(e.get('event_type') or '?', 40):<24}"
    try:
        body = describe(e)
    except Exception as exc:  # a malformed event (odd field types): show it, keep watching
        body = f"(unreadable event: {type(exc).__name__}) " + json.dumps(e, default=str)
    return head, one_line(body, 2000)


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
        head, body = watch_line(e)
        if self.rich:
            from rich.text import Text

            style = _STYLE.get(e.get("event_type"), "") if isinstance(e.get("event_type"), str) else ""
            line = Text(f"{head} ", style=style)
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
                w.raw(f"Session {one_line(session_id)} has already ended (use --from-start to replay it).")
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
