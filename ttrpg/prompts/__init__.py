"""Every prompt ttrpg sends to a model, in one place, plus the parsers for the replies.

Why one module: the two layers of an AI player must see different things, and that is
easiest to check (and to test) when every message is built here. The *player* layer
thinks out of character and may know secrets (GM whispers to the player, the player's own
goal and temperament, the table talk); the *character* layer speaks in character and must
never be handed any of that. Only the character-layer builders below are allowed to feed
the character, and none of them takes a player-only argument.

Why this shape: every system prompt opens with a block of ``Key: value`` lines (``Layer``,
``Task``, ``Attempt``, ``Character``, ``Style``, ``Role``, ``Number`` ...) and every user
message is a list of ``## Section`` blocks. A real model reads that as a clear character
sheet; the offline model (:mod:`ttrpg.offline`) parses the very same text to decide how to
answer, so the offline players exercise the real prompts rather than a side channel. The
parsers (:func:`parse_intent`, :func:`parse_discussion`, :func:`parse_question`) never
raise: small real models ignore formats, and an unparseable reply must degrade into a
usable one, not into a lost turn.

Inputs are plain JSON-like dicts (they travel through RQ and LangGraph state). A player
entry::

    {"id": "p1",
     "player": {"name", "goal", "traits": {"analytical", "risk_tolerance",
                "detail_orientation", "emotional_memory", "assertiveness",
                "cooperativeness", "openness", "rule_adherence", "roleplay_intensity"}},
     "character": {"name", "style", "role", "number", "goal", "equipment": [...],
                   "speech_patterns": [...], "mannerisms": [...]}}

and the ship ``{"name", "strengths": [two], "problem"}``. Missing fields get neutral
defaults rather than errors: validation of the characters file is someone else's job, and
a prompt builder that raises mid-turn would lose the turn.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PROMPT_VERSION = "1"
"""Bumped whenever a prompt's wording or structure changes, so logged sessions say which
prompts produced them (research comparisons across versions stay honest)."""

Message = dict[str, str]

#: Traits of a player, in the order they are shown (the order of the characters file spec).
TRAIT_NAMES: tuple[str, ...] = (
    "analytical", "risk_tolerance", "detail_orientation", "emotional_memory", "assertiveness",
    "cooperativeness", "openness", "rule_adherence", "roleplay_intensity",
)

#: Section titles. The offline model and :func:`fit_to_context` find sections by these
#: titles' first words, so change them together with :mod:`ttrpg.offline`.
SEC_NARRATION = "GM narration"
SEC_HISTORY = "Recent events (oldest first)"
SEC_MEMORIES = "What you remember from earlier"
SEC_PLAYER_WHISPERS = "Whispered to you by the GM (secret: only you, the player, know this)"
SEC_TABLE_TALK = "Table talk so far (out of character)"
SEC_DIRECTIVE = "Directive from your player"
SEC_CHAR_WHISPERS = "What only you have been told"
SEC_REJECTED = "Why your previous attempt was rejected"
SEC_OUTCOME = "What happened (the GM's outcome)"
SEC_SITUATION = "The roll"
SEC_REPLY = "Your reply"

#: Sections whose oldest lines :func:`fit_to_context` may fold into an "Earlier: ..." line.
_FOLDABLE = ("Recent events", "What you remember", "Table talk")
#: Sections :func:`fit_to_context` never cuts (the latest narration, the task itself).
_PROTECTED = ("GM narration", "Directive from", "What happened", "Your reply", "The roll")

MAX_ATTEMPTS = 3
"""Attempts a character gets to state an action (mirrors defaults.VALIDATION_MAX_ATTEMPTS;
kept literal here so this module imports nothing from the rest of ttrpg)."""

RULES_SUMMARY = """\
- Each character has a number from 2 to 5. A high number is better at LASERS (technology, science, \
cold rationality, calm precise action); a low number is better at FEELINGS (intuition, diplomacy, \
seduction, wild passionate action).
- For a risky action the GM says LASERS or FEELINGS and how many dice to roll (1, +1 if prepared, \
+1 if expert). LASERS: each die under the number is a success; FEELINGS: each die over it. A die \
equal to the number is LASER FEELINGS: a success, and the player may ask the GM one question that \
the GM answers honestly.
- 0 successes: things get worse. 1: it barely works, with a cost. 2: done well. 3: a critical success.
- Only the GM decides what happens; players and characters say what they try."""

_DEFAULT_STRICTER = {
    2: ("Your previous reply described what happened. This time describe ONLY what you try to do "
        "and how. Do not say whether it works, what anyone else does, or how anything ends."),
    3: ("FINAL ATTEMPT. Write one or two sentences that begin with \"I try to\" or \"I attempt to\" "
        "and describe only your attempt. No results, no reactions of others, no words like "
        "'successfully', 'manages to', 'falls', 'dies', 'opens', 'works'."),
}


# --------------------------------------------------------------------------- helpers on inputs


def _text(value: Any, default: str = "") -> str:
    """A one-line string from any JSON value (None and non-strings included)."""
    if value is None:
        return default
    out = " ".join(str(value).split())
    return out or default


def _strings(value: Any) -> list[str]:
    """A list of non-empty one-line strings from a list, a single string or nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        value = [value]
    return [s for s in (_text(v) for v in value) if s]


def _character(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The character half of an entry with neutral defaults (see the module docstring)."""
    c = entry.get("character") or {}
    try:
        number = int(c.get("number", 3))
    except (TypeError, ValueError):
        number = 3
    return {
        "name": _text(c.get("name"), "the character"),
        "style": _text(c.get("style"), "Intrepid"),
        "role": _text(c.get("role"), "Explorer"),
        "number": min(5, max(2, number)),
        "goal": _text(c.get("goal"), "Keep Being Awesome"),
        "equipment": _strings(c.get("equipment")),
        "speech_patterns": _strings(c.get("speech_patterns")),
        "mannerisms": _strings(c.get("mannerisms")),
    }


def _player(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The player half of an entry with neutral defaults."""
    p = entry.get("player") or {}
    raw = p.get("traits")
    traits: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
    return {"name": _text(p.get("name"), _text(entry.get("id"), "a player")),
            "goal": _text(p.get("goal"), "Have fun and help the crew"), "traits": traits}


def trait_level(value: Any) -> float | None:
    """A trait as 0..1, whatever scale the characters file used (0-1, 1-10 or 0-100)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    if v > 10:
        v /= 100.0
    elif v > 1:
        v /= 10.0
    return min(1.0, max(0.0, v))


def _trait_words(level: float) -> str:
    return ("very low" if level < 0.2 else "low" if level < 0.4 else "medium" if level < 0.6
            else "high" if level < 0.8 else "very high")


def number_meaning(number: int) -> str:
    """What a Lasers & Feelings number means, in words, with the per-die odds.

    Odds count the LASER FEELINGS face (a die equal to the number) as a success, as the rules do.
    """
    lasers = round(100 * number / 6)
    feelings = round(100 * (7 - number) / 6)
    lean = "better at LASERS" if number >= 4 else "better at FEELINGS"
    return f"{lean} (each die succeeds {lasers}% of the time on LASERS, {feelings}% on FEELINGS)"


def approach_of(number: int) -> str:
    """``"LASERS"`` for 4-5, ``"FEELINGS"`` for 2-3: which kind of action a character is better at."""
    return "LASERS" if number >= 4 else "FEELINGS"


def ship_line(ship: Mapping[str, Any] | None) -> str:
    """``The Raptor (strengths: Fast, Nimble; problem: Fuel Hog)``."""
    ship = ship or {}
    name = _text(ship.get("name"), "The Raptor")
    strengths = ", ".join(_strings(ship.get("strengths"))) or "none noted"
    problem = _text(ship.get("problem"), "none noted")
    return f"{name} (strengths: {strengths}; problem: {problem})"


def _character_card(entry: Mapping[str, Any], ship: Mapping[str, Any] | None) -> list[str]:
    c = _character(entry)
    return [
        f"Character: {c['name']}",
        f"Style: {c['style']}",
        f"Role: {c['role']}",
        f"Number: {c['number']} - {number_meaning(c['number'])}",
        f"Character goal: {c['goal']}",
        f"Equipment: {'; '.join(c['equipment']) or 'nothing special'}",
        f"Speech patterns: {'; '.join(c['speech_patterns']) or 'none in particular'}",
        f"Mannerisms: {'; '.join(c['mannerisms']) or 'none in particular'}",
        f"Ship: {ship_line(ship)}",
    ]


def _player_card(entry: Mapping[str, Any]) -> list[str]:
    p = _player(entry)
    traits = []
    for name in list(TRAIT_NAMES) + sorted(k for k in p["traits"] if k not in TRAIT_NAMES):
        if name not in p["traits"]:
            continue
        raw = p["traits"][name]
        level = trait_level(raw)
        traits.append(f"{name} {level:.1f} ({_trait_words(level)})" if level is not None
                      else f"{name} {_text(raw)}")
    seat = _text(entry.get("id"))
    return [f"Player: {p['name']}", *([f"Seat: {seat}"] if seat else []), f"Player goal: {p['goal']}",
            f"Traits: {'; '.join(traits) or 'none given'}"]


def _section(title: str, body: str | Sequence[str] | None, empty: str = "(none)") -> str:
    """One ``## Title`` block; lists become ``- item`` lines. Empty sections say so, so the
    structure of a prompt is the same every turn (models and the offline parser rely on it)."""
    if isinstance(body, str) or body is None:
        text = (body or "").strip() or empty
    else:
        items = [i for i in (_text(x) for x in body) if i]
        text = "\n".join(f"- {i}" for i in items) or empty
    return f"## {title}\n{text}"


def _user(*sections: str) -> Message:
    return {"role": "user", "content": "\n\n".join(sections)}


def _system(intro: str, keys: Sequence[str], *blocks: str) -> Message:
    body = intro.strip() + "\n\n" + "\n".join(keys)
    for block in blocks:
        if block.strip():
            body += "\n\n" + block.strip()
    return {"role": "system", "content": body}


def _table_talk_lines(discussion: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """Render table talk entries ``{"round", "player" (or "player_id"), "name"?, "say", "proposal", "vote"}``.

    Speakers are shown by ``name`` when the entry has one, else by player id (the seat, which
    each player's own prompt also shows, so a player recognises its own earlier proposals).

    ``|`` separates the fields, so it is removed from the free text; the offline model and
    humans can then read each player's PROPOSAL and VOTE back unambiguously.
    """
    lines = []
    for d in discussion or []:
        if not isinstance(d, Mapping):
            text = _text(d)
            if text:
                lines.append(text)
            continue
        who = _text(d.get("name") or d.get("player_name") or d.get("player") or d.get("player_id"), "someone")
        rnd = d.get("round") or d.get("round_no")
        say = _text(d.get("say")).replace("|", "/")
        parts = [f"Round {rnd}, {who}" if rnd else who, f"says: {say}" if say else "says nothing"]
        if _text(d.get("proposal")):
            parts.append(f"PROPOSAL: {_text(d.get('proposal')).replace('|', '/')}")
        if _text(d.get("vote")):
            parts.append(f"VOTE: {_text(d.get('vote'))}")
        lines.append(" | ".join([parts[0] + " " + parts[1]] + parts[2:]))
    return lines


# --------------------------------------------------------------------------- player layer

_PLAYER_INTRO = """\
You are {player}, a player at a table playing Lasers & Feelings, a light science-fiction tabletop \
role-playing game run by a human Game Master (GM). You play the character {char}. {now}"""

_NOW_INTENT = "Right now you think as a player, out of character: what should {char} try next, and why?"
_NOW_DISCUSSION = ("Before anyone acts, the players talk it over out of character: what should the crew "
                   "do next?")
_NOW_QUESTION = ("{char} just rolled LASER FEELINGS: you may ask the GM one question, and the GM must "
                 "answer it honestly.")

_PLAYER_DUTIES = """\
What to do:
- Decide, as a player, what {char} should attempt next. Play to {char}'s number, role, goal and \
ship, and to your own goal and temperament (your traits).
- Only the GM decides what happens: plan an attempt, never a result.
- Anything the GM whispered to you is a secret: use it in your thinking, but never write it in the \
DIRECTIVE (your character hears the directive, and does not know your secrets)."""


def player_intent_messages(entry: Mapping[str, Any], ship: Mapping[str, Any] | None, narration: str,
                           memories: Sequence[str], player_whispers: Sequence[str],
                           history: Sequence[str], discussion: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Player layer: the strategic intent, and the directive the player gives its character.

    Reply format ``INTENT: ...`` / ``DIRECTIVE: ...`` (read back with :func:`parse_intent`).
    This is where player-only knowledge lives: whispers, the player's goal and traits, memories
    and the table talk. Only the DIRECTIVE crosses over to the character layer.
    """
    p, c = _player(entry), _character(entry)
    system = _system(
        _PLAYER_INTRO.format(player=p["name"], char=c["name"], now=_NOW_INTENT.format(char=c["name"])),
        ["Layer: player", "Task: intent", *_player_card(entry), *_character_card(entry, ship)],
        "How the game works:\n" + RULES_SUMMARY,
        _PLAYER_DUTIES.format(char=c["name"]),
        "Reply in exactly this format, two lines, nothing else:\n"
        "INTENT: <your plan as a player, one or two sentences>\n"
        f"DIRECTIVE: <one sentence telling {c['name']} what to attempt, as an instruction>",
    )
    user = _user(
        _section(SEC_NARRATION, narration),
        _section(SEC_HISTORY, history),
        _section(SEC_MEMORIES, memories),
        _section(SEC_PLAYER_WHISPERS, player_whispers),
        _section(SEC_TABLE_TALK, _table_talk_lines(discussion)),
        _section(SEC_REPLY, f"INTENT: ...\nDIRECTIVE: ... (what {c['name']} should attempt now)"),
    )
    return [system, user]


def discussion_messages(entry: Mapping[str, Any], ship: Mapping[str, Any] | None, narration: str,
                        memories: Sequence[str], player_whispers: Sequence[str], history: Sequence[str],
                        discussion_so_far: Sequence[Mapping[str, Any]], round_no: int) -> list[Message]:
    """Player layer, out of character: one contribution to the table talk before acting.

    Reply format (read back with :func:`parse_discussion`)::

        SAY: <one or two sentences to the other players>
        PROPOSAL: <the plan you back, a 2-6 word label; copy a label exactly to back it>
        VOTE: agree | disagree

    Why labels: consensus becomes mechanical. The table agrees when every player's latest
    PROPOSAL is the same label (after :func:`plan_label_key`), or when every latest VOTE is
    ``agree`` (then the most-backed label wins): see :func:`consensus_label`.
    """
    p, c = _player(entry), _character(entry)
    system = _system(
        _PLAYER_INTRO.format(player=p["name"], char=c["name"], now=_NOW_DISCUSSION),
        ["Layer: player", "Task: discussion", f"Round: {int(round_no)}", *_player_card(entry),
         *_character_card(entry, ship)],
        "How the game works:\n" + RULES_SUMMARY,
        "What to do:\n"
        "- Talk with the other players, out of character, about what the crew should do next.\n"
        "- Back one plan with a short label. To back a plan someone already proposed, copy its label "
        "exactly; propose a new label only if you really think it is better.\n"
        "- Vote agree if you would go along with the plan most players back; disagree if not.\n"
        "- Keep what the GM whispered to you secret; you may hint, not reveal.",
        "Reply in exactly this format, three lines, nothing else:\n"
        "SAY: <one or two sentences to the other players>\n"
        "PROPOSAL: <the plan you back, as a label of 2 to 6 words>\n"
        "VOTE: <agree or disagree>",
    )
    user = _user(
        _section(SEC_NARRATION, narration),
        _section(SEC_HISTORY, history),
        _section(SEC_MEMORIES, memories),
        _section(SEC_PLAYER_WHISPERS, player_whispers),
        _section(SEC_TABLE_TALK, _table_talk_lines(discussion_so_far), empty="(nobody has spoken yet)"),
        _section(SEC_REPLY, f"Round {int(round_no)}. SAY: ...\nPROPOSAL: ...\nVOTE: agree or disagree"),
    )
    return [system, user]


def laser_feelings_question_messages(entry: Mapping[str, Any], ship: Mapping[str, Any] | None,
                                     narration: str, situation: str) -> list[Message]:
    """Player layer: after rolling LASER FEELINGS, ask the GM one question answered honestly.

    Reply format ``QUESTION: ...`` (read back with :func:`parse_question`).
    """
    p, c = _player(entry), _character(entry)
    system = _system(
        _PLAYER_INTRO.format(player=p["name"], char=c["name"], now=_NOW_QUESTION.format(char=c["name"])),
        ["Layer: player", "Task: question", *_player_card(entry), *_character_card(entry, ship)],
        "How the game works:\n" + RULES_SUMMARY,
        "What to do:\n"
        "- Ask ONE short question about the situation whose honest answer would help the crew "
        f"(for example what someone really wants, what is hidden, what {c['name']} should watch out for).\n"
        "- Ask, do not act.",
        "Reply in exactly this format, one line, nothing else:\nQUESTION: <your question>",
    )
    user = _user(_section(SEC_NARRATION, narration), _section(SEC_SITUATION, situation),
                 _section(SEC_REPLY, "QUESTION: ..."))
    return [system, user]


# --------------------------------------------------------------------------- character layer
#
# Nothing below may take or render: player whispers, the player's name/goal/traits,
# memories of the player layer, or table talk. ``character_memories`` are the character
# layer's own (party and character scopes only: see ttrpg.memory.recall_for_turn).

_CHAR_INTRO = """\
You are {char}, a character in a game of Lasers & Feelings, a light science-fiction tabletop \
role-playing game run by a human Game Master (GM). You speak and act only as {char}, in character."""


def character_action_messages(entry: Mapping[str, Any], ship: Mapping[str, Any] | None, narration: str,
                              directive: str, character_whispers: Sequence[str], history: Sequence[str],
                              attempt: int = 1, violations: Sequence[str] = (),
                              extra_instructions: str = "", character_memories: Sequence[str] = ()) -> list[Message]:
    """Character layer: what the character attempts now, in character, intent only.

    ``attempt`` counts from 1; from attempt 2 on, the reasons the last reply was rejected
    (``violations``) and stricter instructions are included. ``extra_instructions`` is meant to
    come from ``ttrpg.game.validation.strict_instructions(attempt)``; when it is empty on a retry a
    built-in stricter wording is used, so a retry is never weaker than the first try.
    """
    c = _character(entry)
    attempt = max(1, int(attempt))
    stricter = ""
    if attempt > 1:
        extra = (extra_instructions or "").strip() or _DEFAULT_STRICTER.get(attempt, _DEFAULT_STRICTER[3])
        stricter = (f"This is attempt {attempt} of {max(MAX_ATTEMPTS, attempt)}: the GM rejected your "
                    f"previous reply because it described an outcome.\n{extra}")
    elif extra_instructions.strip():
        stricter = extra_instructions.strip()
    system = _system(
        _CHAR_INTRO.format(char=c["name"]),
        ["Layer: character", "Task: action", f"Attempt: {attempt}", *_character_card(entry, ship)],
        "What to do:\n"
        f"- Say what {c['name']} tries to do next, and how, following the directive from "
        f"{c['name']}'s player. Stay in {c['name']}'s voice: style, role, speech patterns, mannerisms.\n"
        "- Intent only: describe the attempt, never its result. Do not say whether it works, what "
        "anyone else does or feels, what is found, or who is hurt. The GM and the dice decide that.\n"
        f"- One to three sentences, first person present (\"I ...\") or third person present "
        f"(\"{c['name']} ...\"). No dice, no game terms, no out-of-character talk.",
        stricter,
    )
    sections = [
        _section(SEC_NARRATION, narration),
        _section(SEC_HISTORY, history),
        _section(SEC_MEMORIES, character_memories),
        _section(SEC_CHAR_WHISPERS, character_whispers),
        _section(SEC_DIRECTIVE, directive, empty="(no directive: choose for yourself)"),
    ]
    if attempt > 1:
        sections.append(_section(SEC_REJECTED, list(violations) or ["it described an outcome"]))
    sections.append(_section(SEC_REPLY, f"In character, one to three sentences: what {c['name']} "
                                        "attempts, and how. Stop before anything happens."))
    return [system, _user(*sections)]


def character_reaction_messages(entry: Mapping[str, Any], ship: Mapping[str, Any] | None, narration: str,
                                outcome: str, character_whispers: Sequence[str],
                                history: Sequence[str], character_memories: Sequence[str] = ()) -> list[Message]:
    """Character layer: an in-character reaction to the GM's outcome; no new action."""
    c = _character(entry)
    system = _system(
        _CHAR_INTRO.format(char=c["name"]),
        ["Layer: character", "Task: reaction", "Attempt: 1", *_character_card(entry, ship)],
        "What to do:\n"
        f"- React in character to what the GM said happened: what {c['name']} says, feels or thinks.\n"
        "- No new action, no attempt, no plan: the turn is over. Do not add events or results beyond "
        "the GM's outcome.\n"
        f"- One to three sentences in {c['name']}'s voice (speech patterns and mannerisms).",
    )
    user = _user(
        _section(SEC_NARRATION, narration),
        _section(SEC_OUTCOME, outcome),
        _section(SEC_HISTORY, history),
        _section(SEC_MEMORIES, character_memories),
        _section(SEC_CHAR_WHISPERS, character_whispers),
        _section(SEC_REPLY, f"In character, one to three sentences: {c['name']}'s reaction. No new action."),
    )
    return [system, user]


# --------------------------------------------------------------------------- parsers

_LABEL_LINE = r"(?im)^[ \t>*_#`\-]*\**[ \t]*({labels})[ \t]*\**[ \t]*[:：=\-–][ \t]*\**"
_LABEL_ANY = r"\b({labels})\b\**[ \t]*[:：]"


def _labelled(text: str, labels: Sequence[str]) -> dict[str, str]:
    """Values of ``LABEL: value`` fields; a value runs until the next label.

    Labels count at the start of a line in any case (``Intent:``, ``**DIRECTIVE:**``) and,
    in upper case only, anywhere (a model that put all fields on one line); lower-case
    "intent:" inside a sentence stays text.
    """
    alt = "|".join(re.escape(label) for label in labels)
    found = list(re.finditer(_LABEL_LINE.format(labels=alt), text))
    found += re.finditer(_LABEL_ANY.format(labels=alt), text)
    matches: list[re.Match[str]] = []
    for m in sorted(found, key=lambda m: (m.start(1), -m.end())):
        if not matches or m.start(1) >= matches[-1].end():
            matches.append(m)
    out: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        key = m.group(1).upper()
        value = _clean_value(text[m.end():end])
        if key not in out or not out[key]:
            out[key] = value
    return out


def _clean_value(value: str) -> str:
    value = " ".join(value.replace("**", " ").split())
    value = value.strip(" \"'`*_<>[]")
    return value


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s.strip()]


def parse_intent(text: str | None) -> dict[str, str]:
    """``{"intent", "directive"}`` from a player-layer reply; never raises.

    Off-format replies fall back to: first sentence as the intent, the rest (or the same text)
    as the directive, so the character always gets something to act on.
    """
    raw = text if isinstance(text, str) else ""
    fields = _labelled(raw, ("INTENT", "DIRECTIVE"))
    intent, directive = fields.get("INTENT", ""), fields.get("DIRECTIVE", "")
    if not intent and not directive:
        sentences = _sentences(raw.strip().strip("\"'"))
        if not sentences:
            return {"intent": "", "directive": ""}
        intent = sentences[0]
        directive = " ".join(sentences[1:]) or sentences[0]
    return {"intent": intent or directive, "directive": directive or intent}


_AGREE = re.compile(r"\b(agree|agreed|yes|aye|support|okay|ok|fine|sounds good|let'?s do it|go with)\b", re.I)
_DISAGREE = re.compile(r"\b(disagree|no|nay|object|against|oppose|rather not|don'?t think so)\b", re.I)


def _vote_word(text: str) -> str | None:
    if _DISAGREE.search(text):
        return "disagree"
    if _AGREE.search(text):
        return "agree"
    return None


def parse_discussion(text: str | None) -> dict[str, str]:
    """``{"say", "proposal", "vote"}`` from a table-talk reply; never raises.

    ``vote`` is always ``"agree"`` or ``"disagree"``. Without a VOTE field it is read from the
    text; failing that, a player who backs no plan of their own counts as ``agree`` (nothing
    to hold out for) and one who proposed something counts as ``disagree`` until they vote.
    A label named in ``VOTE: agree <label>`` fills a missing PROPOSAL.
    """
    raw = text if isinstance(text, str) else ""
    fields = _labelled(raw, ("SAY", "PROPOSAL", "VOTE"))
    say, proposal, vote_text = fields.get("SAY", ""), fields.get("PROPOSAL", ""), fields.get("VOTE", "")
    if not fields:
        say = " ".join(raw.split()).strip("\"'")
    vote = _vote_word(vote_text) if vote_text else None
    if vote == "agree" and not proposal:
        proposal = re.sub(r"^agree[sd]?\b[\s:,\-–—]*((with|on|to)\b)?\s*", "", vote_text, flags=re.I).strip(" \"'.")
    if vote is None:
        vote = _vote_word(say) or ("disagree" if proposal else "agree")
    proposal = " ".join(proposal.split()[:12]).rstrip(".!")
    return {"say": say, "proposal": proposal, "vote": vote}


def parse_question(text: str | None) -> str:
    """The one question from a LASER FEELINGS reply; never raises (may return ``""``)."""
    raw = text if isinstance(text, str) else ""
    q = _labelled(raw, ("QUESTION",)).get("QUESTION", "")
    if not q:
        asked = [s for s in _sentences(raw) if s.endswith("?")]
        q = asked[0] if asked else (_sentences(raw)[0] if _sentences(raw) else "")
    q = q.strip(" \"'")
    if q and not q.endswith("?"):
        q = q.rstrip(".!") + "?"
    return q


def clean_character_text(text: str | None, name: str = "") -> str:
    """A character reply without the wrappers weak models add (``Zix:``, ``ACTION:``, quotes)."""
    raw = " ".join((text if isinstance(text, str) else "").split())
    prefixes = ["ACTION", "REACTION", "RESPONSE", "REPLY", "ANSWER"] + ([re.escape(name)] if name else [])
    raw = re.sub(r"^\**(%s)\**\s*:\s*" % "|".join(prefixes), "", raw, flags=re.I)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        raw = raw[1:-1].strip()
    return raw


def plan_label_key(label: str | None) -> str:
    """Normalised plan label: case, punctuation and articles ignored, so "Scan the freighter!"
    and "scan freighter" back the same plan."""
    words = re.findall(r"[a-z0-9']+", (label or "").lower())
    return " ".join(w for w in words if w not in {"the", "a", "an", "its", "their", "our"})


def consensus_label(latest: Sequence[Mapping[str, Any]]) -> str | None:
    """The agreed plan label for one round of parsed replies (one per player), or None.

    Consensus when every player backs the same label, or when every player votes ``agree``
    and at least one label was proposed (the most-backed label, earliest first on a tie).
    """
    if not latest:
        return None
    labels = [_text(d.get("proposal")) for d in latest]
    keys = [plan_label_key(x) for x in labels]
    if all(keys) and len(set(keys)) == 1:
        return labels[0]
    if all(_text(d.get("vote")).lower() == "agree" for d in latest) and any(keys):
        counts = Counter(k for k in keys if k)
        best = max(counts.values())
        for label, key in zip(labels, keys):
            if key and counts[key] == best:
                return label
    return None


# --------------------------------------------------------------------------- context window


def estimate_text_tokens(text: str) -> int:
    """Rough token count of a text: about four characters per token (English, BPE tokenizers)."""
    return (len(text or "") + 3) // 4


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Rough token count of a chat request (content plus a few tokens of framing per message)."""
    return sum(estimate_text_tokens(_content(m)) + 4 for m in messages) + 2


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


_HEADER = re.compile(r"(?m)^## (.+)$")
_ITEM_CHARS = 300
_SUMMARY_CHARS = 300


def split_sections(content: str) -> list[list[str]]:
    """``[[title, body], ...]`` of a user message built here; text before the first ``## `` header
    has title ``""``. Used by :func:`fit_to_context` and by the offline model to read prompts."""
    parts: list[list[str]] = []
    matches = list(_HEADER.finditer(content))
    if not matches:
        return [["", content]]
    if matches[0].start() > 0:
        parts.append(["", content[:matches[0].start()].rstrip("\n")])
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(content)
        parts.append([m.group(1), content[m.end():end].strip("\n")])
    return parts


def _join_sections(parts: list[list[str]]) -> str:
    return "\n\n".join((f"## {t}\n{b}" if t else b) for t, b in parts)


def _gist(line: str, words: int = 10) -> str:
    w = line.split()
    return " ".join(w[:words]) + ("..." if len(w) > words else "")


def _fold_oldest(body: str, keep: int) -> str | None:
    """Fold one more of the oldest ``- `` lines into the ``- Earlier: ...`` summary line.

    Returns the new body, or None when only ``keep`` ordinary lines are left.
    """
    lines = body.split("\n")
    summary = lines[0][len("- Earlier: "):] if lines and lines[0].startswith("- Earlier: ") else None
    items = lines[1:] if summary is not None else lines
    items = [i for i in items if i.strip()]
    if len(items) <= keep:
        return None
    oldest = items.pop(0)
    gist = _gist(oldest[2:] if oldest.startswith("- ") else oldest)
    merged = f"{summary}; {gist}" if summary else gist
    if len(merged) > _SUMMARY_CHARS:  # keep how it began and what was folded last
        head = _SUMMARY_CHARS // 3
        tail = merged[-(_SUMMARY_CHARS - head - 5):]
        merged = merged[:head].rsplit(" ", 1)[0] + " ... " + tail.split(" ", 1)[-1]
    return "\n".join([f"- Earlier: {merged}"] + items)


def _truncate_items(body: str, limit: int) -> str:
    out = []
    for line in body.split("\n"):
        out.append(line if len(line) <= limit else line[: limit - 3].rstrip() + "...")
    return "\n".join(out)


def fit_to_context(messages: Sequence[Mapping[str, Any]], context_window: int,
                   reserve: int) -> tuple[list[Message], bool]:
    """Shrink a request so that it fits the model's context window; returns ``(messages, shrank)``.

    The budget is 80 % of ``context_window`` minus ``reserve`` (the tokens kept for the reply):
    token counts are estimates (:func:`estimate_tokens`), and a 400 from the server would cost
    the turn, so we aim well under the limit. When over budget, in this order, until it fits:

    1. drop older turns of a multi-message chat (system messages and the last message stay);
    2. fold the oldest lines of "Recent events", then memories, then table talk, into one
       ``- Earlier: ...`` summary line (the last two lines of each stay);
    3. cut long lines in the unprotected sections to 300 characters;
    4. fold those sections down to their last line;
    5. as a last resort cut the start of the narration (its end is the latest).

    The system prompt (the character sheet and the rules of the task) is never touched. The
    input is not modified.
    """
    msgs: list[Message] = [{"role": str(m.get("role", "user")), "content": _content(m)} for m in messages]
    budget = max(int(context_window * 0.8) - max(0, reserve), context_window // 4, 64)
    if estimate_tokens(msgs) <= budget:
        return msgs, False

    def fits() -> bool:
        return estimate_tokens(msgs) <= budget

    # 1. older turns of a longer chat
    while not fits():
        middle = [i for i, m in enumerate(msgs[:-1]) if m["role"] != "system"]
        if not middle:
            break
        msgs.pop(middle[0])

    target = max((i for i, m in enumerate(msgs) if m["role"] != "system"), default=None)
    if target is None:
        return msgs, True
    parts = split_sections(msgs[target]["content"])

    def commit() -> None:
        msgs[target]["content"] = _join_sections(parts)

    def titled(prefixes: Sequence[str]) -> list[list[str]]:
        return [p for p in parts if p[0].startswith(tuple(prefixes))]

    # 2. fold oldest lines of the foldable sections, history first
    for prefix in _FOLDABLE:
        for part in titled([prefix]):
            while not fits():
                folded = _fold_oldest(part[1], keep=2)
                if folded is None:
                    break
                part[1] = folded
                commit()
    # 3. cut long lines outside protected sections
    if not fits():
        for part in parts:
            if part[0] and not part[0].startswith(_PROTECTED):
                part[1] = _truncate_items(part[1], _ITEM_CHARS)
        commit()
    # 4. fold down to the last line
    for prefix in _FOLDABLE:
        for part in titled([prefix]):
            while not fits():
                folded = _fold_oldest(part[1], keep=1)
                if folded is None:
                    break
                part[1] = folded
                commit()
    # 5. the narration keeps its end
    if not fits():
        for part in titled(["GM narration"]):
            excess_chars = (estimate_tokens(msgs) - budget) * 4 + 16
            if excess_chars < len(part[1]):
                part[1] = "..." + part[1][excess_chars + 3:]
            commit()
    return msgs, True
