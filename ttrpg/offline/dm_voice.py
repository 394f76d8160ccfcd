"""The offline model's voice as a game master: JSON answers to the autopilot DM's questions.

:class:`ttrpg.dm.autopilot.LLMDM` marks its system prompt with :data:`DM_PROMPT_MARKER`;
:class:`~ttrpg.offline.transport.OfflineTransport` sends such prompts here instead of to the
characters' voice. Like a model, the voice reads only the prompt: the ``Question: <kind>``
line of the system message and the ``## Question`` (JSON), ``## Party`` and ``## Scene outline``
sections of the user messages, and answers in the JSON format the prompt asks for.

Deterministic: every choice comes from a ``random.Random`` seeded with ``stable_hash(seed,
messages)``, so the same seed and prompt give the same answer, on every machine.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ttrpg.offline.hashing import stable_hash
from ttrpg.prompts.context import split_sections

DM_PROMPT_MARKER = "[ttrpg autopilot DM]"
"""First line of the autopilot DM's system prompt: routes the request to this voice."""

SEC_PARTY = "Party"
SEC_QUESTION = "Question"
SEC_OUTLINE = "Scene outline"
SEC_FORMAT = "Answer format"
SEC_REFUSED = "Refused"

_SCENES = [
    "An old beacon wakes on the edge of the system, repeating a name no one aboard {ship} has heard in years.",
    "A merchant convoy limps past, its lead ship venting plasma; a child's face appears on the comm, pleading "
    "for help.",
    "Gravity ripples through {ship}: something vast and quiet is passing beneath the hull, and it has noticed "
    "the crew.",
    "A customs cutter hails {ship}, demanding an inspection; its officer smiles a little too widely.",
    "Down on a frozen moon, a research station answers every hail with the same recorded laugh.",
]
_OPENERS = ["", "The hum of the engines drops to a whisper. ", "Warning lights blink amber. ",
            "For a moment, nobody speaks. "]
_BANDS = {
    "failure": ["{name} fails (dice {dice}): it goes wrong, and the danger grows.",
                "{name}'s move backfires (dice {dice}): things get worse, fast."],
    "barely": ["{name} barely makes it (dice {dice}): it works, at a cost.",
               "{name} gets there with a complication (dice {dice}): something is lost on the way."],
    "success": ["{name} succeeds (dice {dice}): it is done well.",
                "{name} pulls it off cleanly (dice {dice})."],
    "critical": ["{name} scores a critical success (dice {dice}): it works, and something extra comes of it.",
                 "A critical result for {name} (dice {dice}): better than anyone hoped."],
}
_NO_ROLL = ["Nobody takes a risk, and the situation shifts quietly around the crew.",
            "The crew holds back; the trouble ahead does not."]
_HONEST = ["Yes, {name}: and the answer is closer than you think.", "No, {name}: whoever told you so was lying.",
           "Yes, {name}, but it will cost something to use it."]


def is_dm_prompt(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a chat request is the autopilot DM's (its system message carries the marker)."""
    return any(m.get("role") == "system" and DM_PROMPT_MARKER in str(m.get("content") or "") for m in messages)


def _sections(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Sections of the user messages, the first occurrence of each title winning."""
    found: dict[str, str] = {}
    for m in messages:
        if m.get("role") == "user":
            for title, body in split_sections(str(m.get("content") or "")):
                if title:
                    found.setdefault(title, body.strip())
    return found


def dm_reply(messages: Sequence[Mapping[str, Any]], seed: int) -> str:
    """The offline GM's reply (a JSON object as text) to an autopilot DM prompt; pure."""
    system = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    kind_match = re.search(r"(?m)^Question:\s*(\w+)", system)
    kind = kind_match.group(1) if kind_match else "outcome"
    ship_match = re.search(r"starship ([^:.]+)[:.]", system)
    ship = ship_match.group(1).strip() if ship_match else "the ship"
    sections = _sections(messages)
    try:
        question = json.loads(sections.get(SEC_QUESTION) or "{}")
    except ValueError:
        question = {}
    if not isinstance(question, dict):
        question = {}
    names = dict(re.findall(r"(?m)^- ([\w-]+): ([^,\n]+)", sections.get(SEC_PARTY, "")))
    rng = random.Random(stable_hash("dm", seed, [(m.get("role"), m.get("content")) for m in messages]))
    answer = _answer(kind, question, names, sections, ship, rng)
    return json.dumps(answer, ensure_ascii=False)


def _answer(kind: str, q: dict, names: dict[str, str], sections: dict[str, str], ship: str,
            rng: random.Random) -> dict:
    def name(pid: Any) -> str:
        return names.get(str(pid), str(pid or "someone"))

    if kind == "narration":
        outline = sections.get(SEC_OUTLINE)
        scene = outline or rng.choice(_SCENES).format(ship=ship)
        return {"text": rng.choice(_OPENERS) + scene, "whispers": []}
    if kind == "review":
        return {"text": ""}
    if kind == "adjudication":
        suggested = q.get("suggested") if isinstance(q.get("suggested"), dict) else {}
        rolls = [{"player": pid, "approach": suggested.get(pid, "lasers"), "dice": rng.choice((1, 1, 2)),
                  "helpers": []} for pid in (q.get("actions") or {})]
        return {"rolls": rolls}
    if kind == "laser_feelings":
        return {"text": rng.choice(_HONEST).format(name=name(q.get("player_id")))}
    if kind == "outcome":
        rolls = q.get("rolls") if isinstance(q.get("rolls"), list) else []
        if not rolls:
            return {"text": rng.choice(_NO_ROLL)}
        lines = [rng.choice(_BANDS.get(str(r.get("band")), _BANDS["failure"])).format(
            name=name(r.get("player")), dice=", ".join(map(str, r.get("dice") or [])) or "none")
            for r in rolls if isinstance(r, dict)]
        return {"text": " ".join(lines) or rng.choice(_NO_ROLL)}
    if kind == "intervention":
        failures = q.get("failures") if isinstance(q.get("failures"), int) else 2
        if failures <= 2:
            return {"choice": "retry", "player_id": None}
        if q.get("player_id"):
            return {"choice": "skip", "player_id": q["player_id"]}
        return {"choice": "end_turn", "player_id": None}
    return {"text": "The moment passes."}
