"""Where the DM's answers come from: the keyboard, or a DM script.

Every DM decision reaches the graph as the answer to an ``interrupt()`` question. A question
is a dict with a ``kind``: ``narration``, ``adjudication``, ``dice``, ``laser_feelings``,
``outcome``, ``review`` or ``intervention`` (plus ``turn`` and kind-specific fields).

DM script format (JSON), used by ``ttrpg demo``, ``--dm-script`` and tests. Answers are looked
up by turn and kind, never by position, so a resumed session picks up the right answer::

    {
      "turns": [
        {
          "narration": "A distress call from a derelict freighter...",
          "whispers": [{"to": "p1", "layer": "player", "text": "The call is a trap."}],
          "rolls": [{"player": "auto", "approach": "auto", "dice": 2, "helpers": []}],
          "dice_override": {"p1": [3, 5]},
          "outcomes": {"failure": "...", "barely": "...", "success": "...", "critical": "..."},
          "outcome": "used when there was no roll (or instead of outcomes)",
          "laser_feelings_answer": "Yes: the captain is lying."
        }
      ],
      "repeat": true,                 # after the last turn, start again from the first
      "review": "accept",             # DM review of an auto-corrected action: accept it as corrected
      "intervention": "retry",        # retry | skip | end_turn | type:<line>; without it the session
                                      # stops (resumable) at the first phase that fails twice
      "end_after": 6                  # optional: end the session after this many turns
    }

The script is checked in full when loaded (:func:`validate_script`); an answer still refused
at play time (an override for a player who did not roll that turn, say) stops the session
with one line, resumable at the keyboard. Each player rolls at most once per turn.

``player: "auto"`` picks the characters in turn order; ``approach: "auto"`` judges LASERS or
FEELINGS from the action's words; outcome texts may use ``{name}``, ``{dice}`` and ``{band}``.
"""

from __future__ import annotations

import json
import re
import string
from importlib.resources import files
from pathlib import Path

from ttrpg import defaults
from ttrpg.exceptions import DMScriptError
from ttrpg.jsonfile import load_json_file, unknown_keys
from ttrpg.turn import questions

_LASERS = re.compile(r"\b(scan|hack|calculat|analy[sz]|repair|fix|pilot|fly|aim|shoot|fire|reroute|engine|"
                     r"sensor|console|computer|decrypt|measure|calibrat|override|shield|program|precise|circuit)",
                     re.I)
_FEELINGS = re.compile(r"\b(persuad|charm|convinc|plead|bluff|lie|comfort|negotiat|intimidat|sense|feel|"
                       r"trust|seduc|inspir|shout|calm|talk|beg|rally|distract|threaten|hug|sing)", re.I)


def judge_approach(action_text: str) -> str:
    """LASERS for technology and calm precision, FEELINGS for intuition and passion."""
    lasers = len(_LASERS.findall(action_text))
    feelings = len(_FEELINGS.findall(action_text))
    return "feelings" if feelings > lasers else "lasers"


_SCRIPT_KEYS = {"turns", "repeat", "review", "intervention", "end_after", "description"}
_TURN_KEYS = {"narration", "whispers", "rolls", "dice_override", "outcomes", "outcome", "laser_feelings_answer"}
_BANDS = ("failure", "barely", "success", "critical")
_TEMPLATE_FIELDS = {"name", "dice", "band"}
_MAX_TURNS = 10_000


def load_script(path: str | Path) -> dict:
    """Read and check a DM script in full (see the module docstring); errors name the field."""
    return validate_script(load_json_file(path, what="DM script", error=DMScriptError), f"DM script {path}")


def validate_script(data, where: str = "DM script") -> dict:
    """Check every answer a script gives, so that a session never stops on a script mistake.

    Player ids are checked for form only: one script serves parties of any size (the demo's
    whispers to p2 are skipped when p2 is not seated), so answers naming a player who is not
    at the table are left out at play time.
    """
    def fail(msg: str):
        raise DMScriptError(f"{where}: {msg}", hint="Fix the script (the format is in `ttrpg play --help` and the "
                                                    "README) and run the command again.")

    if not isinstance(data, dict):
        fail("the top level must be an object with a \"turns\" list.")
    if unknown := unknown_keys(data, _SCRIPT_KEYS):
        fail(unknown)
    turns = data.get("turns")
    if not isinstance(turns, list) or not turns:
        fail("needs a non-empty \"turns\" list.")
    if len(turns) > _MAX_TURNS:
        fail(f"has {len(turns)} turns; at most {_MAX_TURNS}.")
    for i, turn in enumerate(turns):
        at = f"turns[{i}]"
        if not isinstance(turn, dict):
            fail(f"{at} must be an object.")
        unknown = set(turn) - _TURN_KEYS
        if unknown:
            fail(f"{at} has unknown key(s) {', '.join(sorted(map(repr, unknown)))}; "
                 f"allowed: {', '.join(sorted(_TURN_KEYS))}.")
        _check(lambda: questions.check_text(turn.get("narration"), "narration"), f"{at}.narration", fail)
        for j, w in enumerate(_list(turn, "whispers", at, fail)):
            if not isinstance(w, dict):
                fail(f"{at}.whispers[{j}] must be {{to, layer, text}}.")
            if not isinstance(w.get("to"), str) or not w["to"].strip():
                fail(f"{at}.whispers[{j}].to must be a player id (p1, p2...).")
            if str(w.get("layer", "both")).lower() not in questions.LAYERS:
                fail(f"{at}.whispers[{j}].layer must be one of {', '.join(questions.LAYERS)}.")
            _check(lambda: questions.check_text(w.get("text"), "whisper"), f"{at}.whispers[{j}].text", fail)
        for j, r in enumerate(_list(turn, "rolls", at, fail)):
            if not isinstance(r, dict):
                fail(f"{at}.rolls[{j}] must be {{player, approach, dice, helpers}}.")
            player = r.get("player", "auto")
            if not isinstance(player, str) or not player.strip():
                fail(f"{at}.rolls[{j}].player must be \"auto\" or a player id.")
            if r.get("approach", "auto") != "auto":
                _check(lambda: questions.parse_approach(r.get("approach")), f"{at}.rolls[{j}].approach", fail)
            _check(lambda: questions.parse_dice_count(r.get("dice", 1)), f"{at}.rolls[{j}].dice", fail)
            helpers = r.get("helpers") or []
            if not isinstance(helpers, list) or not all(isinstance(h, str) for h in helpers):
                fail(f"{at}.rolls[{j}].helpers must be a list of player ids.")
        override = turn.get("dice_override") or {}
        if not isinstance(override, dict):
            fail(f"{at}.dice_override must be an object: {{player id: [dice]}}.")
        for pid, dice in override.items():
            if not isinstance(dice, list) or not 1 <= len(dice) <= 3:
                fail(f"{at}.dice_override[{pid!r}] must be a list of 1-3 dice.")
            _check(lambda: questions.parse_dice(dice, len(dice)), f"{at}.dice_override[{pid!r}]", fail)
        outcomes = turn.get("outcomes") or {}
        if not isinstance(outcomes, dict) or set(outcomes) - set(_BANDS):
            fail(f"{at}.outcomes must be an object with keys among {', '.join(_BANDS)}.")
        for band, template in outcomes.items():
            _check(lambda: _check_template(template), f"{at}.outcomes.{band}", fail)
        for key in ("outcome", "laser_feelings_answer"):
            if key in turn:
                _check(lambda: _check_template(turn[key]), f"{at}.{key}", fail)
    if not isinstance(data.get("repeat", True), bool):
        fail("repeat must be true or false.")
    review = data.get("review", "accept")
    if not isinstance(review, str) or not review.strip():
        fail("review must be \"accept\" or the text that replaces an auto-corrected action.")
    if "intervention" in data:
        choice = data["intervention"]
        if not isinstance(choice, str) or choice.split(":", 1)[0].strip().lower() not in (
                "retry", "skip", "end_turn", "type"):
            fail("intervention must be retry, skip, end_turn or type:<line>.")
        if choice.startswith("type:"):
            _check(lambda: questions.check_text(choice[5:], "typed line"), "intervention", fail)
    end_after = data.get("end_after")
    if end_after is not None and (isinstance(end_after, bool) or not isinstance(end_after, int)
                                  or not 1 <= end_after <= _MAX_TURNS):
        fail(f"end_after must be a whole number of turns from 1 to {_MAX_TURNS}.")
    return data


def _list(turn: dict, key: str, at: str, fail) -> list:
    value = turn.get(key) or []
    if not isinstance(value, list):
        fail(f"{at}.{key} must be a list.")
    return value


def _check(fn, at: str, fail) -> None:
    try:
        fn()
    except questions.InvalidAnswer as exc:
        fail(f"{at}: {exc}")


def _check_template(template) -> None:
    if not isinstance(template, str):
        raise questions.InvalidAnswer("must be text.")
    questions.check_text(template, "text")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise questions.InvalidAnswer(f"is not a valid template ({exc}); write {{{{ and }}}} for braces.") from None
    bad = names - _TEMPLATE_FIELDS
    if bad:
        raise questions.InvalidAnswer(f"uses {', '.join('{' + b + '}' for b in sorted(bad))}; only {{name}}, "
                                      "{dice} and {band} can be filled in (write {{ and }} for braces).")


class ScriptDM:
    """Answers every question from a DM script (see module docstring)."""

    source = "script"

    def __init__(self, script: dict):
        self.script = validate_script(script)
        self._interventions: dict[tuple, int] = {}

    def _turn(self, turn: int) -> dict | None:
        turns = self.script["turns"]
        end_after = self.script.get("end_after")
        if end_after and turn > int(end_after):
            return None
        if turn <= len(turns):
            return turns[turn - 1]
        if self.script.get("repeat", True):
            return turns[(turn - 1) % len(turns)]
        return None

    def ask(self, question: dict, state: dict):
        kind, turn = question["kind"], question.get("turn", 1)
        if question.get("error"):
            raise DMScriptError(f"The DM script's answer to the {kind} question of turn {turn} was refused: "
                                f"{question['error']}",
                                hint=f"The session is saved. Fix the script, or continue at the keyboard: "
                                     f"ttrpg resume {state.get('session_id', '')} --keyboard")
        spec = self._turn(turn) or {}
        if kind == "narration":
            if not spec:
                return {"text": "", "end": True}
            seated = questions.party_names(state)
            whispers = []
            for w in spec.get("whispers") or []:
                try:
                    whispers.append({**w, "to": questions.parse_player(w["to"], seated)})
                except questions.InvalidAnswer:
                    continue  # a whisper for a player who is not at this table
            return {"text": spec["narration"], "whispers": whispers}
        if kind == "adjudication":
            return {"rolls": self._rolls(spec, turn, question, state)}
        if kind == "dice":
            rolled = {r["player"]: len(r["dice"]) for r in question.get("rolls") or []}
            return {"override": {pid: d for pid, d in (spec.get("dice_override") or {}).items()
                                 if rolled.get(pid) == len(d)}}
        if kind == "laser_feelings":
            return {"text": spec.get("laser_feelings_answer") or "Yes, and you sense it clearly."}
        if kind == "outcome":
            return {"text": self._outcome(spec, question, state)}
        if kind == "review":
            return {"text": question["text"]} if self.script.get("review", "accept") == "accept" else \
                {"text": self.script["review"]}
        if kind == "intervention":
            return self._intervention(question, state)
        raise DMScriptError(f"The DM script cannot answer a {kind!r} question.")

    def _intervention(self, question: dict, state: dict) -> dict:
        sid = state.get("session_id", "")
        where = f"phase {question.get('phase')} of turn {question.get('turn')} failed twice ({question.get('reason')})"
        if "intervention" not in self.script:
            raise DMScriptError(f"The DM script has no \"intervention\" answer, and {where}.",
                                hint=f"The session is saved: continue at the keyboard with `ttrpg resume {sid} "
                                     "--keyboard`, or add \"intervention\" to the script.")
        key = (question.get("turn"), question.get("phase"))
        self._interventions[key] = self._interventions.get(key, 0) + 1
        if self._interventions[key] > defaults.SCRIPT_INTERVENTIONS_MAX:
            raise DMScriptError(f"The DM script answered {self.script['intervention']!r} "
                                f"{defaults.SCRIPT_INTERVENTIONS_MAX} times and {where} again.",
                                hint=f"The session is saved: continue at the keyboard with `ttrpg resume {sid} "
                                     "--keyboard` once the cause is fixed.")
        choice = str(self.script["intervention"])
        if choice.startswith("type:"):
            return {"choice": "type", "text": choice[5:], "player_id": question.get("player_id")}
        if choice == "skip" and not question.get("player_id"):
            return {"choice": "end_turn"}  # nobody to skip: the failure was not one player's
        return {"choice": choice, "player_id": question.get("player_id")}

    def _rolls(self, spec: dict, turn: int, question: dict, state: dict) -> list[dict]:
        actions = question.get("actions") or {}
        suggested = question.get("suggested") or {}
        ids = [pid for pid in (p["id"] for p in state["party"]["players"]) if pid in actions]
        rolls: list[dict] = []
        chosen: set[str] = set()
        for k, r in enumerate(spec.get("rolls") or []):
            if not ids:
                break
            pid = r.get("player", "auto")
            if pid == "auto":
                free = [ids[(turn - 1 + k + n) % len(ids)] for n in range(len(ids))]
                pid = next((p for p in free if p not in chosen), None)
            if pid is None or pid not in ids or pid in chosen:
                continue
            chosen.add(pid)
            approach = r.get("approach", "auto")
            if approach == "auto":
                approach = suggested.get(pid) or judge_approach(actions.get(pid, ""))
            rolls.append({"player": pid, "approach": approach, "dice": int(r.get("dice", 1)),
                          "helpers": [h for h in r.get("helpers") or [] if h in ids and h != pid]})
        return rolls

    def _outcome(self, spec: dict, question: dict, state: dict) -> str:
        rolls = question.get("rolls") or []
        if rolls and spec.get("outcomes"):
            r = rolls[0]
            name = next(p["character"]["name"] for p in state["party"]["players"] if p["id"] == r["player"])
            template = spec["outcomes"].get(r["result"]["band"]) or spec.get("outcome") or ""
            if template:
                return template.format(name=name, dice=", ".join(map(str, r["dice"])), band=r["result"]["band"])
        return spec.get("outcome") or "The moment passes; the situation shifts."


def builtin_script() -> dict:
    """The demo's DM script, shipped in the package."""
    return validate_script(json.loads(files("ttrpg").joinpath("data/demo_script.json").read_text()),
                           "built-in demo script")
