"""Reading a prompt: what the offline model understands of a request, like a real model from its text alone.

It parses the ``Key: value`` character sheet of the system message (layer, task, attempt,
the character's name, style, role, number, goal, equipment, speech patterns and mannerisms)
and the ``## Section`` blocks of the last user message that :mod:`ttrpg.prompts.builders`
writes (the DM's narration, the directive, the outcome...), and finds the names and things a
narration mentions ("the derelict freighter", "Galvin").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ttrpg.prompts.builders import SEC_NARRATION, SEC_TABLE_TALK
from ttrpg.prompts.context import split_sections

_KEY_LINE = re.compile(r"(?m)^([A-Z][A-Za-z ]{1,30}):[ \t]*(\S.*)$")


@dataclass
class Prompt:
    """What the offline model understood of a request."""

    layer: str = "character"
    task: str = "action"
    attempt: int = 1
    round_no: int = 1
    name: str = "the character"
    style: str = "Intrepid"
    role: str = "Explorer"
    number: int = 3
    char_goal: str = ""
    equipment: list[str] = field(default_factory=list)
    speech: list[str] = field(default_factory=list)
    mannerisms: list[str] = field(default_factory=list)
    ship: str = "The Raptor"
    ship_strengths: list[str] = field(default_factory=list)
    player: str = ""
    seat: str = ""
    player_goal: str = ""
    traits: dict[str, float] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)

    def section(self, *prefixes: str) -> str:
        """Body of the first section whose title starts with one of ``prefixes`` ("" if none/empty)."""
        for title, body in self.sections.items():
            if title.startswith(prefixes):
                body = body.strip()
                return "" if body.startswith("(") and body.endswith(")") else body
        return ""

    def items(self, *prefixes: str) -> list[str]:
        """The ``- `` lines of a section (the ``Earlier:`` summary line excluded)."""
        out = []
        for line in self.section(*prefixes).split("\n"):
            line = line.strip()
            if line.startswith("- ") and not line.startswith("- Earlier:"):
                out.append(line[2:].strip())
        return out

    def trait(self, name: str, default: float = 0.5) -> float:
        return self.traits.get(name, default)


def _split_list(value: str) -> list[str]:
    if not value or value.lower() in ("nothing special", "none in particular", "none", "none given"):
        return []
    return [v.strip() for v in value.split(";") if v.strip()]


def read_prompt(messages: Sequence[Mapping[str, Any]]) -> Prompt:
    """Parse the character sheet and sections out of a request; tolerant of foreign prompts.

    Unknown or missing keys keep neutral defaults. A prompt that was not built by
    :mod:`ttrpg.prompts` is treated as a character action whose narration is the last user
    message.
    """
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    users = [str(m.get("content") or "") for m in messages if m.get("role") != "system"]
    keys: dict[str, str] = {}
    for m in _KEY_LINE.finditer(system):
        keys.setdefault(m.group(1).strip().lower(), m.group(2).strip())
    p = Prompt()
    p.layer = keys.get("layer", "character").lower()
    p.task = keys.get("task", "intent" if "INTENT:" in system else "action").lower()
    p.attempt = _first_int(keys.get("attempt"), 1)
    p.round_no = _first_int(keys.get("round"), 1)
    p.name = keys.get("character", p.name)
    p.style = keys.get("style", p.style)
    p.role = keys.get("role", p.role)
    p.number = min(5, max(2, _first_int(keys.get("number"), 3)))
    p.char_goal = keys.get("character goal", "")
    p.equipment = _split_list(keys.get("equipment", ""))
    p.speech = _split_list(keys.get("speech patterns", ""))
    p.mannerisms = _split_list(keys.get("mannerisms", ""))
    ship = keys.get("ship", "")
    if ship:
        p.ship = ship.split(" (", 1)[0].strip() or p.ship
        found = re.search(r"strengths:\s*([^;)]*)", ship)
        if found:
            p.ship_strengths = [x.strip() for x in found.group(1).split(",") if x.strip() and x.strip() != "none noted"]
    p.player = keys.get("player", "")
    p.seat = keys.get("seat", "")
    p.player_goal = keys.get("player goal", "")
    for m in re.finditer(r"([a-z_]+)\s+([0-9.]+)", keys.get("traits", "")):
        try:
            p.traits[m.group(1)] = min(1.0, max(0.0, float(m.group(2))))
        except ValueError:
            continue
    last_user = users[-1] if users else ""
    parts = split_sections(last_user)
    p.sections = {title: body for title, body in parts if title}
    if not p.sections:
        p.sections = {SEC_NARRATION: last_user}
    return p


def _first_int(value: str | None, default: int) -> int:
    m = re.search(r"\d+", value or "")
    return int(m.group(0)) if m else default



_DETERMINERS = {"the", "a", "an", "its", "his", "her", "their", "this", "that", "these", "those", "our",
                "your", "my", "some", "every", "each", "another"}
_NUMBERS = {"two", "three", "four", "five", "six", "several", "many", "dozens"}
_STOP = {
    "of", "from", "to", "in", "on", "at", "with", "and", "or", "but", "as", "by", "for", "into", "onto",
    "over", "under", "near", "beside", "behind", "toward", "towards", "through", "across", "inside",
    "outside", "around", "between", "off", "out", "up", "down", "while", "when", "where", "which", "who",
    "that", "than", "then", "is", "are", "was", "were", "be", "been", "being", "has", "have", "had",
    "can", "could", "will", "would", "shall", "should", "may", "might", "must", "does", "do", "did",
    "not", "no", "you", "it", "he", "she", "they", "we", "i", "me", "him", "them", "us", "there", "here",
    "just", "very", "still", "now", "so", "if", "all", "any", "what", "about", "after", "before", "again",
    "against", "along", "among", "upon", "within", "without", "past", "like", "ahead", "away", "back",
}
_NOT_NAMES = {"gm", "dm", "i", "lasers", "feelings", "laser", "you", "the", "a", "an", "it", "he", "she",
              "they", "we", "your", "suddenly", "then", "there", "here", "inside", "outside", "ahead",
              "behind", "meanwhile", "finally", "something", "someone", "everyone", "nothing", "as", "when",
              "what", "who", "where", "why", "how", "this", "that", "these", "those", "but", "and", "or",
              "so", "if", "yes", "no", "ok", "okay", "round", "earlier"}
#: Verbs a GM's narration often uses after a subject ("the drones open fire", "the hatch bears
#: glyphs"); a noun phrase stops before them. Base forms; -s/-es/-ed forms are derived.
_VERBS = {
    "open", "fire", "close", "turn", "start", "begin", "move", "come", "go", "rush", "fly", "drift", "hang",
    "stand", "sit", "lie", "flicker", "glow", "hum", "roar", "scream", "shake", "rumble", "appear", "seem",
    "look", "wait", "watch", "approach", "attack", "explode", "block", "bear", "hold", "reach", "point", "raise",
    "aim", "shout", "charge", "swarm", "surround", "emerge", "pulse", "blink", "beep", "spark", "leak", "burn",
    "crackle", "echo", "fall", "rise", "spin", "slide", "hiss", "groan", "creak", "whisper", "speak", "say",
    "tell", "call", "hail", "demand", "offer", "refuse", "laugh", "smile", "stare", "wave", "run", "hide",
    "lead", "cover", "fill", "line", "flash", "blare", "sound", "ring", "float", "dock", "land", "jump",
}
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[.,;:!?\"()]")


def _is_known_verb(word: str) -> bool:
    lw = word.lower()
    stems = {lw, lw[:-1] if lw.endswith("s") else "", lw[:-2] if lw.endswith(("es", "ed")) else "",
             lw[:-1] if lw.endswith("ed") else "", lw[:-3] if lw.endswith("ing") else ""}
    return bool(stems & _VERBS)


def _looks_like_verb(word: str) -> bool:
    lw = word.lower()
    return ((lw.endswith("s") and not lw.endswith(("ss", "us", "is", "ics", "ous")) and len(lw) > 3)
            or lw.endswith("ly") or lw.endswith("ing"))


def narration_nouns(text: str, exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """``(names, things)`` mentioned in a narration: "Galvin", "the derelict freighter".

    A heuristic, not a parser: a determiner followed by up to three words, stopping at
    prepositions and at words that look like verbs before a preposition ("a distress beacon
    pulses from" gives "the distress beacon"); capitalised words that are not sentence starters
    (or that recur, or carry a comma) are names. ``exclude`` drops e.g. the ship's and the
    character's own names.
    """
    tokens = _TOKEN.findall(text or "")
    excluded = {e.lower() for e in exclude if e} | {w.lower() for e in exclude for w in (e or "").split()}
    names: list[str] = []
    things: list[str] = []
    capitalised_mid = {t for i, t in enumerate(tokens)
                       if i > 0 and t[0].isupper() and tokens[i - 1] not in (".", "!", "?", "\"")}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.lower()
        if low in _DETERMINERS or low in _NUMBERS:
            words: list[str] = [low] if low in _NUMBERS else []
            j = i + 1
            while j < len(tokens) and len(words) < 3:
                w = tokens[j]
                lw = w.lower()
                if not w[0].isalpha() or lw in _STOP or lw in _DETERMINERS:
                    break
                nxt = tokens[j + 1].lower() if j + 1 < len(tokens) else "."
                if words and (_is_known_verb(w) or (_looks_like_verb(w) and (
                        nxt in _STOP or nxt in _DETERMINERS or nxt.endswith("ly")
                        or (len(words) >= 2 and nxt[:1].isalpha())))):
                    break
                words.append(w)
                j += 1
            while words and words[-1].lower().endswith("ly"):
                words.pop()
            if words and words[-1] in _NUMBERS:
                words = []
            phrase = " ".join(words)
            if words and phrase.lower() not in excluded and words[-1].lower() not in excluded:
                thing = "the " + phrase
                if thing.lower() not in (t.lower() for t in things):
                    things.append(thing)
            i = max(j, i + 1)
            continue
        if tok[0].isupper() and low not in _NOT_NAMES and low not in _STOP:
            sentence_start = i == 0 or tokens[i - 1] in (".", "!", "?", "\"", ":")
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            run = [tok]
            j = i + 1
            while j < len(tokens) and tokens[j][0].isupper() and tokens[j].lower() not in _NOT_NAMES:
                run.append(tokens[j])
                j += 1
            ok = (not sentence_start or tok in capitalised_mid or nxt == "," or len(run) > 1)
            name = " ".join(run)
            if ok and name.lower() not in excluded and not any(w.lower() in excluded for w in run):
                if name not in names:
                    names.append(name)
            i = j
            continue
        i += 1
    return names, things


# Compiled at import: a forked horse inherits them instead of compiling them for its one job.
_ROUND = re.compile(r"^Round \d+,\s*")
_PROPOSAL = re.compile(r"PROPOSAL:\s*([^|]+)")
_VOTE = re.compile(r"VOTE:\s*(\w+)")


def table_talk(p: Prompt) -> list[dict[str, str]]:
    """``[{who, proposal, vote}]``: the table talk so far, one row per line, oldest first."""
    rows = []
    for line in p.items(SEC_TABLE_TALK):
        who = _ROUND.sub("", line.split(" says", 1)[0]).strip()
        prop = _PROPOSAL.search(line)
        vote = _VOTE.search(line)
        rows.append({"who": who, "proposal": prop.group(1).strip() if prop else "",
                     "vote": vote.group(1).lower() if vote else ""})
    return rows
