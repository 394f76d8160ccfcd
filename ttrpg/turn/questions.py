"""What the DM may answer to each kind of question, and how an answer is read: one contract per kind.

Every DM decision reaches the turn graph as the answer to a question (see
:data:`ttrpg.vocabulary.QUESTIONS`): ``narration``, ``review``, ``adjudication``, ``dice``,
``laser_feelings``, ``outcome`` and ``intervention``. The keyboard DM reads what is typed
with the ``parse_*`` functions; DM scripts and the graph check whole answers with
:func:`check`. Both raise :class:`InvalidAnswer`, whose message says what was wrong and what
is allowed, so a prompt can ask again and nothing invalid reaches the graph.

Lenient where the meaning is clear::

    >>> parse_approach("L")
    'lasers'
    >>> parse_dice("6, 2", 2)
    [6, 2]
    >>> parse_player("zee", {"p1": "Zee Vex"})
    'p1'

Answers are plain JSON (they are checkpointed):

* narration: ``{"text", "whispers": [{"to", "layer", "text"}], "end": bool}``
* review, laser_feelings, outcome: ``{"text"}``
* adjudication: ``{"rolls": [{"player", "approach", "dice", "helpers": [...]}]}``
* dice: ``{"override": {player_id: [die, ...]}}``
* intervention: ``{"choice": "retry"|"skip"|"type"|"end_turn", "player_id", "text"}``
"""

from __future__ import annotations

import re
from typing import Any

from ttrpg import defaults
from ttrpg.vocabulary import QUESTION_KINDS

LAYERS = ("player", "character", "both")
APPROACHES = ("lasers", "feelings")
INTERVENTION_CHOICES = ("retry", "skip", "type", "end_turn")

_APPROACH_WORDS = {"l": "lasers", "laser": "lasers", "lasers": "lasers",
                   "f": "feelings", "feeling": "feelings", "feelings": "feelings"}
_CHOICE_WORDS = {"r": "retry", "retry": "retry", "again": "retry",
                 "s": "skip", "skip": "skip",
                 "t": "type", "type": "type",
                 "e": "end_turn", "end": "end_turn", "end_turn": "end_turn", "end turn": "end_turn",
                 "end-turn": "end_turn"}
_NO = {"", "none", "no", "nobody", "-"}


class InvalidAnswer(ValueError):
    """An answer the contract refuses; ``str(exc)`` says why and what is allowed."""


# --- the people at the table ----------------------------------------------------------------------

def party_names(state: dict) -> dict[str, str]:
    """Player id -> character name, in party order."""
    return {p["id"]: p["character"]["name"] for p in (state.get("party") or {}).get("players", [])}


def _who(ids: dict[str, str]) -> str:
    return ", ".join(f"{pid} ({name})" if name else pid for pid, name in ids.items())


def parse_player(raw: Any, allowed: dict[str, str]) -> str:
    """A player id or character name (any case; a unique first name or prefix will do)."""
    word = str(raw if raw is not None else "").strip()
    low = word.lower()
    if not allowed:
        raise InvalidAnswer("No player can be chosen here.")
    for pid, name in allowed.items():
        if low == pid.lower() or (name and low == name.lower()):
            return pid
    if low:
        matches = [pid for pid, name in allowed.items()
                   if name and (name.lower().split()[0] == low or name.lower().startswith(low))]
        if len(matches) == 1:
            return matches[0]
    shown = word if len(word) <= 40 else word[:40] + "…"
    raise InvalidAnswer(f"{shown!r} is not one of the players here. Choose one of: {_who(allowed)}.")


def parse_approach(raw: Any) -> str:
    """LASERS or FEELINGS, in any case, or L / F."""
    word = str(raw if raw is not None else "").strip().lower()
    if word in _APPROACH_WORDS:
        return _APPROACH_WORDS[word]
    raise InvalidAnswer(f"{str(raw)[:40]!r} is neither LASERS nor FEELINGS. Type lasers (L) or feelings (F).")


def parse_dice_count(raw: Any) -> int:
    """How many dice: 1, plus 1 if prepared, plus 1 if expert."""
    text = str(raw if raw is not None else "").strip()
    if isinstance(raw, bool) or not re.fullmatch(r"[123]", text):
        raise InvalidAnswer(f"{text[:40]!r} is not a number of dice. Type 1, 2 or 3 "
                            "(1, +1 if prepared, +1 if expert).")
    return int(text)


def parse_dice(raw: Any, count: int) -> list[int]:
    """``count`` die values from 1 to 6: ``6 2``, ``6, 2`` or (for single digits) ``62``."""
    example = " ".join(str(d) for d in (6, 2, 4)[:count])
    allowed = f"type {count} number{'s' if count != 1 else ''} from 1 to 6, e.g. `{example}`, or Enter to keep"
    if isinstance(raw, (list, tuple)):
        values = list(raw)
    else:
        text = str(raw if raw is not None else "").strip()
        if len(text) > 64:
            raise InvalidAnswer(f"That is not a roll: {allowed}.")
        parts = [p for p in re.split(r"[\s,;/]+", text) if p]
        if len(parts) == 1 and count > 1 and re.fullmatch(r"[1-6]+", parts[0]) and len(parts[0]) == count:
            parts = list(parts[0])
        values = parts
    out = []
    for v in values:
        s = str(v).strip()
        if isinstance(v, bool) or not re.fullmatch(r"[1-6]", s):
            raise InvalidAnswer(f"{s[:20]!r} is not a die: {allowed}.")
        out.append(int(s))
    if len(out) != count:
        raise InvalidAnswer(f"{len(out)} di{'e' if len(out) == 1 else 'ce'} typed, but {count} "
                            f"{'was' if count == 1 else 'were'} rolled: {allowed}.")
    return out


def parse_helpers(raw: Any, allowed: dict[str, str], roller: str) -> list[str]:
    """Helper players: ids or names separated by spaces or commas; Enter for none."""
    if isinstance(raw, (list, tuple)):
        words = [str(w) for w in raw]
    else:
        text = str(raw if raw is not None else "").strip()
        words = [] if text.lower() in _NO else [w for w in re.split(r"[\s,;]+", text) if w]
    others = {pid: name for pid, name in allowed.items() if pid != roller}
    helpers: list[str] = []
    for w in words:
        if not others:
            raise InvalidAnswer("Nobody else can help here; press Enter for no helpers.")
        try:
            pid = parse_player(w, others)
        except InvalidAnswer:
            if w.strip().lower() in (roller.lower(), (allowed.get(roller) or "").lower()):
                raise InvalidAnswer(f"{roller} rolls and cannot also help; helpers: {_who(others)}.") from None
            raise InvalidAnswer(f"{w[:40]!r} cannot help here. Helpers: {_who(others)}, or Enter for none.") from None
        if pid not in helpers:
            helpers.append(pid)
    return helpers


def parse_choice(raw: Any) -> str:
    """An intervention choice: retry, skip, type or end (the turn), or their first letters."""
    word = re.sub(r"\s+", " ", str(raw if raw is not None else "").strip().lower())
    if word in _CHOICE_WORDS:
        return _CHOICE_WORDS[word]
    raise InvalidAnswer(f"{str(raw)[:40]!r} is not a choice. Type retry (r), skip (s), type (t) or end (e).")


def check_text(raw: Any, what: str, *, allow_empty: bool = False) -> str:
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise InvalidAnswer(f"The {what} must be text.")
    text = raw.strip()
    if not text and not allow_empty:
        raise InvalidAnswer(f"The {what} is empty: type a line (or /help).")
    if len(text) > defaults.DM_TEXT_MAX_CHARS:
        raise InvalidAnswer(f"The {what} is {len(text)} characters long; at most {defaults.DM_TEXT_MAX_CHARS} "
                            "are allowed.")
    if "\x00" in text:
        raise InvalidAnswer(f"The {what} contains a NUL character.")
    return text


# --- what each question allows ----------------------------------------------------------------------

def acting_players(question: dict, state: dict) -> dict[str, str]:
    """Players who acted this turn (and may roll or help), in party order."""
    names = party_names(state)
    actions = question.get("actions") or {}
    return {pid: name for pid, name in names.items() if pid in actions}


def _check_narration(answer: Any, question: dict, state: dict) -> dict:
    if isinstance(answer, str):
        answer = {"text": answer}
    if not isinstance(answer, dict):
        raise InvalidAnswer("A narration answer is the scene's text.")
    if answer.get("end"):
        return {"text": "", "whispers": [], "end": True}
    text = check_text(answer.get("text"), "narration")
    names = party_names(state)
    whispers = []
    raw_whispers = answer.get("whispers") or []
    if not isinstance(raw_whispers, list):
        raise InvalidAnswer("whispers must be a list of {to, layer, text}.")
    for w in raw_whispers:
        if not isinstance(w, dict):
            raise InvalidAnswer("Each whisper is {to, layer, text}.")
        layer = str(w.get("layer", "both")).strip().lower()
        if layer not in LAYERS:
            raise InvalidAnswer(f"Whisper layer {str(w.get('layer'))[:20]!r} is not one of {', '.join(LAYERS)}.")
        whispers.append({"to": parse_player(w.get("to"), names), "layer": layer,
                         "text": check_text(w.get("text"), "whisper")})
    return {"text": text, "whispers": whispers, "end": False}


def _check_text_answer(what: str):
    def check(answer: Any, question: dict, state: dict) -> dict:
        if isinstance(answer, dict):
            answer = answer.get("text")
        return {"text": check_text(answer, what)}
    return check


def _check_review(answer: Any, question: dict, state: dict) -> dict:
    if isinstance(answer, dict):
        answer = answer.get("text")
    text = check_text(answer, "action", allow_empty=True)
    return {"text": text or question.get("text", ""), "player_id": question.get("player_id")}


def _check_adjudication(answer: Any, question: dict, state: dict) -> dict:
    if not isinstance(answer, dict) or not isinstance(answer.get("rolls", []), list):
        raise InvalidAnswer("An adjudication is a list of rolls: {player, approach, dice, helpers}.")
    acting = acting_players(question, state)
    rolls, seen = [], set()
    for r in answer.get("rolls") or []:
        if not isinstance(r, dict):
            raise InvalidAnswer("Each roll is {player, approach, dice, helpers}.")
        pid = parse_player(r.get("player"), acting)
        if pid in seen:
            raise InvalidAnswer(f"{pid} already rolls this turn: each player rolls at most once per turn.")
        seen.add(pid)
        rolls.append({"player": pid, "approach": parse_approach(r.get("approach", "lasers")),
                      "dice": parse_dice_count(r.get("dice", 1)),
                      "helpers": parse_helpers(r.get("helpers") or [], acting, pid)})
    return {"rolls": rolls}


def _check_dice(answer: Any, question: dict, state: dict) -> dict:
    if not isinstance(answer, dict) or not isinstance(answer.get("override") or {}, dict):
        raise InvalidAnswer("A dice answer is {override: {player: [dice]}}.")
    rolled = {r["player"]: len(r["dice"]) for r in question.get("rolls") or []}
    override = {}
    for pid, dice in (answer.get("override") or {}).items():
        if pid not in rolled:
            raise InvalidAnswer(f"{str(pid)[:40]!r} did not roll this turn; rolls: {', '.join(rolled) or 'none'}.")
        if dice in (None, [], ""):
            continue
        override[pid] = parse_dice(dice, rolled[pid])
    return {"override": override}


def _check_intervention(answer: Any, question: dict, state: dict) -> dict:
    if isinstance(answer, str):
        answer = {"choice": answer}
    if not isinstance(answer, dict):
        raise InvalidAnswer("An intervention answer is {choice, player_id, text}.")
    choice = parse_choice(answer.get("choice"))
    if choice not in (question.get("options") or INTERVENTION_CHOICES):
        raise InvalidAnswer(f"{choice} is not possible here; choose {', '.join(question['options'])}.")
    out: dict = {"choice": choice, "player_id": None}
    if choice in ("skip", "type"):
        pid = answer.get("player_id") or question.get("player_id")
        if not pid:
            raise InvalidAnswer(f"Say which player to {choice}: {_who(party_names(state))}.")
        out["player_id"] = parse_player(pid, party_names(state))
    if choice == "type":
        out["text"] = check_text(answer.get("text"), "player's line")
    return out


_CHECKS = {
    "narration": _check_narration,
    "review": _check_review,
    "adjudication": _check_adjudication,
    "dice": _check_dice,
    "laser_feelings": _check_text_answer("answer"),
    "outcome": _check_text_answer("outcome"),
    "intervention": _check_intervention,
}
assert set(_CHECKS) == set(QUESTION_KINDS)


def check(answer: Any, question: dict, state: dict) -> dict:
    """The normalized answer to ``question``, or :class:`InvalidAnswer` saying why not.

    Never raises anything else: whatever went wrong reading an answer is the answer's fault
    and must send the DM back to the question, not the phase into its failure path.
    """
    kind = question.get("kind")
    fn = _CHECKS.get(kind)
    if fn is None:
        raise InvalidAnswer(f"Unknown question kind {kind!r}.")
    try:
        return fn(answer, question, state)
    except InvalidAnswer:
        raise
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise InvalidAnswer(f"The answer could not be read ({type(exc).__name__}: {str(exc)[:200]}).") from None


def envelope(answer: Any, *, source: str, wait_ms: int | None) -> dict:
    """What the driver resumes the graph with: the DM's answer plus who gave it and how long it took."""
    return {"answer": answer, "meta": {"source": source, "wait_ms": wait_ms}}


def open_envelope(value: Any) -> tuple[Any, dict]:
    """``(answer, meta)`` of a resume value (a bare answer from older code has empty meta)."""
    if isinstance(value, dict) and set(value) == {"answer", "meta"} and isinstance(value["meta"], dict):
        return value["answer"], value["meta"]
    return value, {}
