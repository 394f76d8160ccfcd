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
      "intervention": "retry",        # retry | skip | end_turn | type:<line>
      "end_after": 6                  # optional: end the session after this many turns
    }

``player: "auto"`` picks the characters in turn order; ``approach: "auto"`` judges LASERS or
FEELINGS from the action's words; outcome texts may use ``{name}``, ``{dice}`` and ``{band}``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ttrpg.exceptions import DMScriptError

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


def load_script(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DMScriptError(f"DM script not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise DMScriptError(f"DM script {path} is not valid JSON: line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg}") from None
    return validate_script(data, str(path))


def validate_script(data, where: str = "DM script") -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("turns"), list) or not data["turns"]:
        raise DMScriptError(f"{where}: needs a non-empty \"turns\" list.")
    for i, turn in enumerate(data["turns"]):
        if not isinstance(turn, dict) or not isinstance(turn.get("narration"), str):
            raise DMScriptError(f"{where}: turns[{i}].narration must be a string.")
        for j, r in enumerate(turn.get("rolls") or []):
            if r.get("approach", "auto") not in ("auto", "lasers", "feelings"):
                raise DMScriptError(f"{where}: turns[{i}].rolls[{j}].approach must be auto, lasers or feelings.")
            if not 1 <= int(r.get("dice", 1)) <= 3:
                raise DMScriptError(f"{where}: turns[{i}].rolls[{j}].dice must be 1-3.")
    choice = str(data.get("intervention", "retry"))
    if choice.split(":", 1)[0] not in ("retry", "skip", "end_turn", "type"):
        raise DMScriptError(f"{where}: intervention must be retry, skip, end_turn or type:<line>.")
    return data


class ScriptDM:
    """Answers every question from a DM script (see module docstring)."""

    def __init__(self, script: dict):
        self.script = validate_script(script)

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
        spec = self._turn(turn) or {}
        if kind == "narration":
            if not spec:
                return {"text": "", "end": True}
            return {"text": spec["narration"], "whispers": spec.get("whispers") or []}
        if kind == "adjudication":
            return {"rolls": self._rolls(spec, turn, question, state)}
        if kind == "dice":
            return {"override": spec.get("dice_override") or {}}
        if kind == "laser_feelings":
            return {"text": spec.get("laser_feelings_answer") or "Yes, and you sense it clearly."}
        if kind == "outcome":
            return {"text": self._outcome(spec, question, state)}
        if kind == "review":
            return {"text": question["text"]} if self.script.get("review", "accept") == "accept" else \
                {"text": self.script["review"]}
        if kind == "intervention":
            choice = str(self.script.get("intervention", "retry"))
            if choice.startswith("type:"):
                return {"choice": "type", "text": choice[5:], "player_id": question.get("player_id")}
            return {"choice": choice, "player_id": question.get("player_id")}
        raise DMScriptError(f"The DM script cannot answer a {kind!r} question.")

    def _rolls(self, spec: dict, turn: int, question: dict, state: dict) -> list[dict]:
        actions = question.get("actions") or {}
        ids = [pid for pid in (p["id"] for p in state["party"]["players"]) if pid in actions]
        rolls = []
        for k, r in enumerate(spec.get("rolls") or []):
            if not ids:
                break
            pid = r.get("player", "auto")
            if pid == "auto":
                pid = ids[(turn - 1 + k) % len(ids)]
            if pid not in ids:
                continue
            approach = r.get("approach", "auto")
            if approach == "auto":
                approach = judge_approach(actions.get(pid, ""))
            rolls.append({"player": pid, "approach": approach, "dice": int(r.get("dice", 1)),
                          "helpers": [h for h in r.get("helpers") or [] if h in ids and h != pid]})
        return rolls

    def _outcome(self, spec: dict, question: dict, state: dict) -> str:
        rolls = question.get("rolls") or []
        if rolls and spec.get("outcomes"):
            r = rolls[0]
            name = next(p["character"]["name"] for p in state["party"]["players"] if p["id"] == r["player"])
            template = spec["outcomes"].get(r["result"]["band"]) or spec.get("outcome") or ""
            return template.format(name=name, dice=", ".join(map(str, r["dice"])), band=r["result"]["band"])
        return spec.get("outcome") or "The moment passes; the situation shifts."


def builtin_script() -> dict:
    """The demo's DM script, shipped in the package."""
    from importlib.resources import files

    return validate_script(json.loads(files("ttrpg").joinpath("data/demo_script.json").read_text()),
                           "built-in demo script")
