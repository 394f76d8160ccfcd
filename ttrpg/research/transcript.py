"""The story in a session's events, as a DM would keep it: per turn the narration, each
character's action (by name), the dice, LASER FEELINGS questions, the outcome and the reactions,
as Markdown or a self-contained HTML page. No machinery (phases, jobs, model calls).

Every text in a log came from a model, a server, a file or the DM: here it is shown as text,
control characters and terminal escapes removed (:func:`ttrpg.console.clean_text`), HTML
escaped (:func:`html_text`), Markdown neutralized (:func:`md_text`).
"""

from __future__ import annotations

import html
import re

from ttrpg.console import clean_text, one_line
from ttrpg.exceptions import ConfigError
from ttrpg.research.export import session_events
from ttrpg.turn.graph import compile_graph, make_saver

TRANSCRIPT_FORMATS = ("md", "html")


def _characters_from_state(redis, session_id: str) -> tuple[dict, dict]:
    """Fallback for logs whose ``session_started`` lacks ``characters``: the checkpointed party."""
    try:
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
