"""The messages ttrpg sends a model, one builder per phase and layer.

Why here, all of them: the two layers of an AI player must see different things, and that
is easiest to check (and to test) when every message is built in one module. The *player*
layer thinks out of character and may know secrets (GM whispers to the player, the
player's own goal and temperament, the table talk); the *character* layer speaks in
character and must never be handed any of that. Only the character-layer builders below
are allowed to feed the character, and none of them takes a player-only argument.

Why this shape: every system prompt opens with a block of ``Key: value`` lines (``Layer``,
``Task``, ``Attempt``, ``Character``, ``Style``, ``Role``, ``Number`` ...) and every user
message is a list of ``## Section`` blocks. A real model reads that as a clear character
sheet; the offline model (:mod:`ttrpg.offline`) parses the very same text to decide how to
answer, so the offline players exercise the real prompts rather than a side channel.

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

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ttrpg import defaults
from ttrpg.game.validation import strict_instructions

PROMPT_VERSION = "1"
"""Bumped whenever a prompt's wording or structure changes, so logged sessions say which
prompts produced them (research comparisons across versions stay honest)."""

Message = dict[str, str]

#: Traits of a player, in the order they are shown (the order of the characters file spec).
TRAIT_NAMES: tuple[str, ...] = (
    "analytical", "risk_tolerance", "detail_orientation", "emotional_memory", "assertiveness",
    "cooperativeness", "openness", "rule_adherence", "roleplay_intensity",
)

#: Section titles. The offline model and :func:`ttrpg.prompts.context.fit_to_context` find
#: sections by these titles' first words, so change them together with :mod:`ttrpg.offline`.
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
SEC_LINE = "The line to check"

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


# --------------------------------------------------------------------------- helpers on inputs


def one_line(value: Any, default: str = "") -> str:
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
    return [s for s in (one_line(v) for v in value) if s]


def _character(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The character half of an entry with neutral defaults (see the module docstring)."""
    c = entry.get("character") or {}
    try:
        number = int(c.get("number", 3))
    except (TypeError, ValueError):
        number = 3
    return {
        "name": one_line(c.get("name"), "the character"),
        "style": one_line(c.get("style"), "Intrepid"),
        "role": one_line(c.get("role"), "Explorer"),
        "number": min(5, max(2, number)),
        "goal": one_line(c.get("goal"), "Keep Being Awesome"),
        "equipment": _strings(c.get("equipment")),
        "speech_patterns": _strings(c.get("speech_patterns")),
        "mannerisms": _strings(c.get("mannerisms")),
    }


def _player(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The player half of an entry with neutral defaults."""
    p = entry.get("player") or {}
    raw = p.get("traits")
    traits: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
    return {"name": one_line(p.get("name"), one_line(entry.get("id"), "a player")),
            "goal": one_line(p.get("goal"), "Have fun and help the crew"), "traits": traits}


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
    name = one_line(ship.get("name"), "The Raptor")
    strengths = ", ".join(_strings(ship.get("strengths"))) or "none noted"
    problem = one_line(ship.get("problem"), "none noted")
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
                      else f"{name} {one_line(raw)}")
    seat = one_line(entry.get("id"))
    return [f"Player: {p['name']}", *([f"Seat: {seat}"] if seat else []), f"Player goal: {p['goal']}",
            f"Traits: {'; '.join(traits) or 'none given'}"]


def _section(title: str, body: str | Sequence[str] | None, empty: str = "(none)") -> str:
    """One ``## Title`` block; lists become ``- item`` lines. Empty sections say so, so the
    structure of a prompt is the same every turn (models and the offline parser rely on it)."""
    if isinstance(body, str) or body is None:
        text = (body or "").strip() or empty
    else:
        items = [i for i in (one_line(x) for x in body) if i]
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
            text = one_line(d)
            if text:
                lines.append(text)
            continue
        who = one_line(d.get("name") or d.get("player_name") or d.get("player") or d.get("player_id"), "someone")
        rnd = d.get("round") or d.get("round_no")
        say = one_line(d.get("say")).replace("|", "/")
        parts = [f"Round {rnd}, {who}" if rnd else who, f"says: {say}" if say else "says nothing"]
        if one_line(d.get("proposal")):
            parts.append(f"PROPOSAL: {one_line(d.get('proposal')).replace('|', '/')}")
        if one_line(d.get("vote")):
            parts.append(f"VOTE: {one_line(d.get('vote'))}")
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

    Reply format ``INTENT: ...`` / ``DIRECTIVE: ...`` (read back with
    :func:`ttrpg.prompts.parsers.parse_intent`).
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

    Reply format (read back with :func:`ttrpg.prompts.parsers.parse_discussion`)::

        SAY: <one or two sentences to the other players>
        PROPOSAL: <the plan you back, a 2-6 word label; copy a label exactly to back it>
        VOTE: agree | disagree

    Why labels: consensus becomes mechanical. The table agrees when every player's latest
    PROPOSAL is the same label (after :func:`plan_label_key`), or when every latest VOTE is
    ``agree`` (then the most-backed label wins): see :func:`ttrpg.prompts.parsers.consensus_label`.
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

    Reply format ``QUESTION: ...`` (read back with :func:`ttrpg.prompts.parsers.parse_question`).
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
# layer's own (party and character scopes only: see ttrpg.memory.recall.recall_for_turn).

_CHAR_INTRO = """\
You are {char}, a character in a game of Lasers & Feelings, a light science-fiction tabletop \
role-playing game run by a human Game Master (GM). You speak and act only as {char}, in character."""


def character_action_messages(entry: Mapping[str, Any], ship: Mapping[str, Any] | None, narration: str,
                              directive: str, character_whispers: Sequence[str], history: Sequence[str],
                              attempt: int = 1, violations: Sequence[str] = (),
                              extra_instructions: str = "", character_memories: Sequence[str] = ()) -> list[Message]:
    """Character layer: what the character attempts now, in character, intent only.

    ``attempt`` counts from 1; from attempt 2 on, the reasons the last reply was rejected
    (``violations``) and stricter instructions are included: ``extra_instructions``, or when
    that is empty :func:`ttrpg.game.validation.strict_instructions`, so a retry is never
    weaker than the first try.
    """
    c = _character(entry)
    attempt = max(1, int(attempt))
    stricter = ""
    if attempt > 1:
        extra = (extra_instructions or "").strip() or strict_instructions(attempt)
        most = max(defaults.VALIDATION_MAX_ATTEMPTS, attempt)
        stricter = (f"This is attempt {attempt} of {most}: the GM rejected your "
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


_JUDGE_INTRO = """\
You referee one line that an AI character wrote in a game of Lasers & Feelings, a light \
science-fiction tabletop role-playing game. The Game Master (GM) and the dice decide what \
happens; a character only says what it attempts, intends, says aloud and feels."""

JUDGE_RULES = """\
The line OVERREACHES when, outside quoted speech, it narrates any of these:
- outcome: a result of the character's own action (the lock opens, the guard goes down, "I slip \
past unseen", "I manage to ..."), something found or realized, a perception that succeeds \
("I spot the sniper"), or a jump in time to the result;
- other_reaction: what someone or something else does, says, feels or decides;
- future: what will certainly happen.
The line is CLEAN when it only gives attempts ("I try to pick the lock"), how the character goes \
about it, intentions and aims ("until he talks", "so that ..."), plans, questions, hopes, worries, \
feelings, words inside quotes (boasts too), or the situation the GM already described.

Examples:
I wedge the crowbar under the hatch and heave. -> {"overreach": false, "kind": null, "reason": "an attempt"}
I heave on the crowbar and the hatch pops open. -> {"overreach": true, "kind": "outcome", "reason": "the hatch opens"}
"Stand down," I tell the guard, who lowers his rifle. -> {"overreach": true, "kind": "other_reaction", "reason": "the guard lowers his rifle"}
"Nobody outruns me!" I shout, sprinting for the shuttle. -> {"overreach": false, "kind": null, "reason": "speech and an attempt"}
I sweep the wreck with my scanner and find the data core. -> {"overreach": true, "kind": "outcome", "reason": "finds the core"}
I start on the engine; by dawn it will purr again. -> {"overreach": true, "kind": "future", "reason": "the repair will work"}

Answer with one line of JSON and nothing else:
{"overreach": true or false, "kind": "outcome" or "other_reaction" or "future" or null, "reason": "a few words"}"""


def overreach_judge_messages(text: str, narration: str, character_name: str) -> list[Message]:
    """The referee's question: does this action line narrate what belongs to the GM and the dice?

    A second opinion on :func:`ttrpg.game.validation.find_overreach`, asked of the session's
    own model when ``TTRPG_OVERREACH_JUDGE`` is on (see :mod:`ttrpg.game.judge`). The line
    and the scene are data inside sections, never instructions; the reply is one line of
    JSON, read by :func:`ttrpg.prompts.parsers.parse_verdict`.
    """
    name = one_line(character_name, "the character")
    system = _system(_JUDGE_INTRO, ["Layer: referee", "Task: overreach check", f"Character: {name}"], JUDGE_RULES)
    scene = one_line(narration)[:defaults.JUDGE_NARRATION_MAX_CHARS]
    return [system, _user(_section(SEC_NARRATION, scene),
                          _section(SEC_LINE, one_line(text)[:defaults.JUDGE_LINE_MAX_CHARS]),
                          _section(SEC_REPLY, "One line of JSON: is the line above clean, or does it overreach?"))]


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
