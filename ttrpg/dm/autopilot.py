"""Autopilot DMs: every DM question answered without a person, for research batches.

Two DMs answer through the same question contracts as the keyboard DM and DM scripts
(:mod:`ttrpg.turn.questions`; every answer passes :func:`~ttrpg.turn.questions.check` before
it is given), and each marks its answers with its ``source`` in the ``dm_input`` events:

* :class:`RulesDM` (``autopilot-rules``): rules of thumb and a scenario. Deterministic: every
  choice comes from a ``random.Random`` seeded with a SHA-256 hash of (the DM's seed, the
  session's seed, the turn, the question kind), never Python's ``hash()``. The session *id*
  is left out on purpose: a session replayed with the same seeds under a new id (what a
  research batch does to reproduce a run) gets the same DM, word for word.
* :class:`LLMDM` (``autopilot-llm``): asks an OpenAI-compatible model (the offline model too)
  for each answer in a small JSON format per kind, checks it, asks again with the reason
  when it is refused (at most ``max_reasks`` times), then falls back to :class:`RulesDM`'s
  answer for that question. :meth:`LLMDM.answer_meta` says how the last answer came about
  (``{"reasks": n, "fallback": bool}``); the session driver adds it to the answer's envelope
  meta, checkpointed with the answer.

:func:`make_dm` builds either by name. What the rules DM decides:

* **narration**: the turn's scene of the scenario (its whispers go along, to players who are
  seated); after the last scene the scenes start again. ``end_after`` in the scenario ends
  the session after that many turns; without it the session's ``max_turns`` ends it.
* **adjudication**: every acting player rolls, except one whose action says it helps
  (help, assist, support, back up, cover for): that player helps the roller it names, or
  the first roller. LASERS or FEELINGS from the action's words
  (:func:`ttrpg.dm.script.judge_approach`: technology, science, calm precision vs.
  intuition, diplomacy, passion). Dice (:func:`judge_dice`): 1, +1 when the action mentions
  preparation, +1 when it falls in the character's role (an engineer repairing, a pilot
  flying) or claims expertise.
* **dice**: kept as rolled (the seeded roll is the roll: an autopilot has no table dice).
* **laser_feelings**, **outcome**: templates chosen by the roll's band (failure, barely,
  success, critical), naming the character and the dice; **review**: the auto-corrected
  action is accepted as corrected.
* **intervention** (a phase failed twice): ``retry`` the first time, since most failures
  are transient (a rate limit, a model hiccup) and the next attempt usually passes; ``skip``
  that player the second time (``end_turn`` when the failure was no one player's), since a
  phase that failed four times will not pass by waiting and a batch must go on without a
  person; ``end_turn`` after that.

Scenario files (:func:`load_scenario`), JSON::

    {"name": "Distress call",
     "scenes": [{"narration": "A derelict freighter drifts...",
                 "whispers": [{"to": "p1", "layer": "player", "text": "It is a trap."}]}],
     "outcomes": {"failure": ["{name} fails (dice {dice})..."], "barely": [...], "success": [...],
                  "critical": [...]},
     "no_roll": ["Nobody takes a risk; ..."],
     "laser_feelings": ["Yes, {name}: ..."],
     "order": "in_order",
     "end_after": 6}

Only ``scenes`` is required; missing template lists take the built-in ones; ``order`` is
``in_order`` or ``shuffled`` (seeded); templates may use ``{name}``, ``{dice}``, ``{band}``
and ``{question}`` (the LASER FEELINGS question).
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path
from typing import Any

from ttrpg import defaults
from ttrpg.dm.script import judge_approach
from ttrpg.exceptions import ConfigError, DMScriptError, LLMTransientError
from ttrpg.jsonfile import load_json_file, loads, unknown_keys
from ttrpg.llm.client import complete
from ttrpg.offline.dm_voice import (
    DM_PROMPT_MARKER,
    SEC_FORMAT,
    SEC_OUTLINE,
    SEC_PARTY,
    SEC_QUESTION,
    SEC_REFUSED,
)
from ttrpg.offline.hashing import stable_hash
from ttrpg.turn import questions

RULES_SOURCE = "autopilot-rules"
LLM_SOURCE = "autopilot-llm"
KINDS = ("rules", "llm")
"""The names :func:`make_dm` knows."""

BANDS = ("failure", "barely", "success", "critical")
_TEMPLATE_FIELDS = {"name", "dice", "band", "question"}
_SCENARIO_KEYS = {"name", "description", "scenes", "outcomes", "no_roll", "laser_feelings", "order", "end_after"}
_SCENE_KEYS = {"narration", "whispers"}

DEFAULT_SCENARIO: dict = {
    "name": "The Raptor's long week",
    "order": "in_order",
    "scenes": [
        {"narration": "The Raptor drops out of hyperspace beside the freighter Morning Lark. Its hull is scorched, "
                      "its running lights blink an old distress code, and a voice on the comm croaks: 'Pirates "
                      "took the bridge. Please... the cargo bay.'",
         "whispers": [{"to": "p1", "layer": "player",
                       "text": "Your sensors caught a second ship hiding in the freighter's shadow."}]},
        {"narration": "A banquet hall aboard the Xorian embassy ship glitters with floating lanterns. The "
                      "ambassador, a towering being of crystal and song, will sign the trade treaty only if the "
                      "crew can explain why Consortium agents keep asking about the Raptor."},
        {"narration": "A shimmering anomaly blooms off the starboard bow. Instruments report impossible readings: "
                      "the anomaly is broadcasting the Raptor's own distress call, dated three days from now.",
         "whispers": [{"to": "p2", "layer": "character",
                       "text": "In the anomaly's static you hear your own voice say: do not trust the readings."}]},
        {"narration": "Pirate fighters swarm out of an asteroid field, weapons hot. Their leader hails: 'Drop "
                      "your cargo and your shields, Raptor, and maybe you keep your engines.'"},
        {"narration": "The Raptor's circuit breakers fail all at once. The lights die, gravity flickers, and "
                      "somewhere aft something heavy drifts loose and starts tumbling toward the fuel lines."},
        {"narration": "A jungle moon, uncharted. Under the canopy stand ruins of black glass that hum when touched, "
                      "and a child-sized robot waves at the crew as if it has been waiting for them for centuries.",
         "whispers": [{"to": "p3", "layer": "player",
                       "text": "The robot's markings match the Consortium's oldest, most secret sigil."}]},
        {"narration": "At the Neon Bazaar of Port Saffron, a smuggler named Kessa offers a map to the pirate base, "
                      "for a price: the crew must steal back a music box from a crime lord's private vault."},
        {"narration": "The Consortium dreadnought Iron Verdict looms over the planet, its captain on every screen: "
                      "'Surrender the alien navigator and the Raptor flies free. Refuse, and we open fire.'"},
    ],
    "outcomes": {
        "failure": [
            "It goes wrong for {name} (dice {dice}): the situation turns worse, alarms blare and the way forward "
            "closes.",
            "{name}'s attempt fails (dice {dice}): someone notices, and now the crew is out of time.",
            "{name} misjudges it (dice {dice}): sparks, shouting, and a new problem on top of the old one.",
        ],
        "barely": [
            "{name} manages it, barely (dice {dice}): it works, but at a cost: something breaks or someone is hurt.",
            "A mixed result for {name} (dice {dice}): the goal is reached, with a complication close behind.",
            "{name} pulls it off at a price (dice {dice}): it holds for now, but the crew owes someone for it.",
        ],
        "success": [
            "{name} succeeds (dice {dice}): it is done well, and the crew gains the upper hand.",
            "{name} does it (dice {dice}): clean and sure; the way ahead opens.",
            "A success for {name} (dice {dice}): exactly as intended, and no one pays for it.",
        ],
        "critical": [
            "A critical success for {name} (dice {dice}): it works perfectly, and something extra falls into "
            "the crew's hands.",
            "{name} nails it (dice {dice}): a critical result, and an unexpected ally takes notice.",
        ],
    },
    "no_roll": [
        "Nobody takes a risk; the moment passes, and the situation shifts around the crew.",
        "The crew waits and watches; meanwhile, the trouble ahead grows a little closer.",
    ],
    "laser_feelings": [
        "Yes, {name}: you see it clearly now, and the answer is what you feared.",
        "{name}, honestly: no, and the one who told you otherwise knows it.",
        "Yes, {name}, but not the way you think: someone here is hiding the other half of it.",
    ],
}

_HELP = re.compile(r"\b(help|helps|helping|assist|assists|assisting|support|supports|supporting|back(?:s|ing)? up|"
                   r"covers? for|covering for)\b", re.I)
_PREPARED = re.compile(r"\b(prepar|plan|planned|ready|readied|rehears|set up|sets up|setting up|double-check|"
                       r"brace|studied|rigg|primed)", re.I)
_EXPERT_WORDS = re.compile(r"\b(expert|expertise|trained|training|specialty|speciality|years of)", re.I)
_ROLE_WORDS = {
    "doctor": r"heal|treat|medic|wound|patch|diagnos|surg|medkit|bandag",
    "envoy": r"negotiat|diplomat|translat|persuad|parley|treaty|mediat",
    "engineer": r"repair|fix|engine|reactor|rewir|circuit|reroute|calibrat|toolkit|weld",
    "explorer": r"scan|track|map|climb|navigat|explor|survey|scout",
    "pilot": r"pilot|fly|flies|steer|maneuv|manoeuv|dock|thruster|helm|evasive",
    "scientist": r"analy|scan|calculat|sample|decrypt|research|hypothes|measur",
    "soldier": r"shoot|fire|aim|blaster|rifle|fight|ambush|tactic|grenade",
}


def judge_dice(action: str, role: str = "") -> int:
    """How many dice: 1, +1 if the action mentions preparation, +1 if it is the character's
    role's work (an engineer repairing, a pilot flying) or claims expertise."""
    n = 1
    if _PREPARED.search(action):
        n += 1
    role_words = _ROLE_WORDS.get(str(role or "").lower())
    if _EXPERT_WORDS.search(action) or (role_words and re.search(r"\b(" + role_words + ")", action, re.I)):
        n += 1
    return n


def _rng(*parts: Any) -> random.Random:
    return random.Random(stable_hash("autopilot", *parts))


# --- scenarios -------------------------------------------------------------------------------------

def load_scenario(path: str | Path) -> dict:
    """Read and check a scenario file (format in the module docstring); errors name the file and the fix."""
    return validate_scenario(load_json_file(path, what="scenario file"), f"Scenario file {path}")


def validate_scenario(data: Any, where: str = "Scenario") -> dict:
    """The scenario with its template lists filled from the built-in one; :class:`ConfigError`
    naming ``where``, the field and what it must be, when anything is off."""
    def fail(msg: str):
        raise ConfigError(f"{where}: {msg}", hint="Fix the scenario file (its format is in the docstring of "
                                                  "ttrpg.dm.autopilot and in the README) and run again.")

    if not isinstance(data, dict):
        fail('the top level must be an object with a "scenes" list, e.g. {"scenes": [{"narration": "..."}]}.')
    if unknown := unknown_keys(data, _SCENARIO_KEYS):
        fail(unknown)
    scenes = data.get("scenes")
    if not isinstance(scenes, list) or not scenes:
        fail('needs a non-empty "scenes" list, e.g. "scenes": [{"narration": "A distress call..."}].')
    if len(scenes) > defaults.MAX_TURNS:
        fail(f"has {len(scenes)} scenes; at most {defaults.MAX_TURNS}.")
    scenes = [{"narration": s} if isinstance(s, str) else s for s in scenes]  # a bare text is a scene too
    for i, scene in enumerate(scenes):
        at = f"scenes[{i}]"
        if not isinstance(scene, dict):
            fail(f'{at} must be an object: {{"narration": "...", "whispers": [...]}}.')
        bad = set(scene) - _SCENE_KEYS
        if bad:
            fail(f"{at} has unknown key(s) {', '.join(sorted(map(repr, bad)))}; allowed: narration, whispers.")
        _check(lambda: questions.check_text(scene.get("narration"), "narration"), f"{at}.narration", fail)
        whispers = scene.get("whispers") or []
        if not isinstance(whispers, list):
            fail(f'{at}.whispers must be a list of {{"to": "p1", "layer": "player", "text": "..."}}.')
        for j, w in enumerate(whispers):
            if not isinstance(w, dict) or not isinstance(w.get("to"), str) or not w["to"].strip():
                fail(f'{at}.whispers[{j}] must be {{"to": "p1", "layer": "player|character|both", "text": "..."}}.')
            if str(w.get("layer", "both")).lower() not in questions.LAYERS:
                fail(f"{at}.whispers[{j}].layer must be one of {', '.join(questions.LAYERS)}.")
            _check(lambda: questions.check_text(w.get("text"), "whisper"), f"{at}.whispers[{j}].text", fail)
    outcomes = data.get("outcomes") or {}
    if not isinstance(outcomes, dict) or set(outcomes) - set(BANDS):
        fail(f"outcomes must be an object with keys among {', '.join(BANDS)}, each a list of texts.")
    for band, templates in outcomes.items():
        _templates(templates, f"outcomes.{band}", fail)
    for key in ("no_roll", "laser_feelings"):
        if key in data:
            _templates(data[key], key, fail)
    if data.get("order", "in_order") not in ("in_order", "shuffled"):
        fail('order must be "in_order" or "shuffled".')
    end_after = data.get("end_after")
    if end_after is not None and (isinstance(end_after, bool) or not isinstance(end_after, int)
                                  or not 1 <= end_after <= defaults.MAX_TURNS):
        fail(f"end_after must be a whole number of turns from 1 to {defaults.MAX_TURNS}, or null (never).")
    base = DEFAULT_SCENARIO
    out = {**data, "scenes": scenes, "outcomes": {b: _as_list(outcomes.get(b) or base["outcomes"][b]) for b in BANDS},
           "no_roll": _as_list(data.get("no_roll") or base["no_roll"]),
           "laser_feelings": _as_list(data.get("laser_feelings") or base["laser_feelings"]),
           "order": data.get("order", "in_order"), "end_after": end_after}
    return out


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check(fn, at: str, fail) -> None:
    try:
        fn()
    except questions.InvalidAnswer as exc:
        fail(f"{at}: {exc}")


def _templates(value, at: str, fail) -> None:
    items = _as_list(value) if isinstance(value, (str, list)) else None
    if not items:
        fail(f"{at} must be a text or a non-empty list of texts.")
    for k, template in enumerate(items):
        where = f"{at}[{k}]" if isinstance(value, list) else at
        if not isinstance(template, str):
            fail(f"{where} must be text.")
        _check(lambda: questions.check_text(template, "text"), where, fail)
        try:
            names = {n for _, n, _, _ in string.Formatter().parse(template) if n is not None}
        except ValueError as exc:
            fail(f"{where} is not a valid template ({exc}); write {{{{ and }}}} for braces.")
        bad = names - _TEMPLATE_FIELDS
        if bad:
            fail(f"{where} uses {', '.join('{' + b + '}' for b in sorted(bad))}; only {{name}}, {{dice}}, {{band}} "
                 "and {question} can be filled in (write {{ and }} for braces).")


# --- the rules DM ------------------------------------------------------------------------------------

def _character(state: dict, pid: str) -> dict:
    for p in (state.get("party") or {}).get("players", []):
        if p["id"] == pid:
            return p.get("character") or {}
    return {}


class RulesDM:
    """Answers every question by rules of thumb and a scenario (see the module docstring)."""

    source = RULES_SOURCE

    def __init__(self, scenario: dict | None = None, seed: int = 1):
        self.scenario = validate_scenario(scenario if scenario is not None else DEFAULT_SCENARIO,
                                          "Scenario" if scenario is not None else "Built-in scenario")
        self.seed = int(seed)

    def rng(self, state: dict, turn: int, kind: str, *extra: Any) -> random.Random:
        """The RNG of one decision: (DM seed, session seed, turn, kind[, extra])."""
        return _rng(self.seed, state.get("seed"), turn, kind, *extra)

    def ask(self, question: dict, state: dict) -> dict:
        kind, turn = question["kind"], int(question.get("turn") or 1)
        if question.get("error"):
            # The same question, the same state: the same answer would be refused again.
            raise DMScriptError(f"The autopilot DM's {kind} answer of turn {turn} was refused: {question['error']}",
                                hint=f"The session is saved; continue at the keyboard: ttrpg resume "
                                     f"{state.get('session_id', '')} --keyboard")
        answer = getattr(self, f"_{kind}")(question, state, turn)
        return questions.check(answer, question, state)

    # one method per question kind

    def scene(self, state: dict, turn: int) -> dict | None:
        """The scenario's scene for ``turn`` (None once ``end_after`` turns were played)."""
        end_after = self.scenario.get("end_after")
        if end_after and turn > end_after:
            return None
        scenes = self.scenario["scenes"]
        order = list(range(len(scenes)))
        if self.scenario.get("order") == "shuffled":
            self.rng(state, 0, "scene-order").shuffle(order)
        return scenes[order[(turn - 1) % len(scenes)]]

    def _narration(self, q: dict, state: dict, turn: int) -> dict:
        scene = self.scene(state, turn)
        if scene is None:
            return {"text": "", "end": True}
        seated = questions.party_names(state)
        whispers = [w for w in scene.get("whispers") or [] if w["to"] in seated]  # players not at this table: left out
        return {"text": scene["narration"], "whispers": whispers}

    def _review(self, q: dict, state: dict, turn: int) -> dict:
        return {"text": q.get("text", "")}

    def _adjudication(self, q: dict, state: dict, turn: int) -> dict:
        actions = q.get("actions") or {}
        acting = questions.acting_players(q, state)
        helping = [pid for pid in acting if _HELP.search(actions.get(pid, ""))]
        rollers = [pid for pid in acting if pid not in helping] or list(acting)[:1]
        rolls = {pid: {"player": pid, "approach": judge_approach(actions.get(pid, "")),
                       "dice": judge_dice(actions.get(pid, ""), _character(state, pid).get("role", "")),
                       "helpers": []} for pid in rollers}
        for pid in helping:
            if pid in rolls:
                continue
            words = set(re.findall(r"[\w-]+", actions.get(pid, "").lower()))
            named = [r for r in rollers if r in words or words & _name_words(acting[r])]
            rolls[(named or rollers)[0]]["helpers"].append(pid)
        return {"rolls": list(rolls.values())}

    def _dice(self, q: dict, state: dict, turn: int) -> dict:
        return {"override": {}}

    def _laser_feelings(self, q: dict, state: dict, turn: int) -> dict:
        pid = q.get("player_id")
        roll = next((r for r in state.get("rolls") or [] if r.get("player") == pid), {})
        fields = self._fields(state, roll, pid, question=q.get("question", ""))
        template = self.rng(state, turn, "laser_feelings", pid).choice(self.scenario["laser_feelings"])
        return {"text": template.format(**fields)}

    def _outcome(self, q: dict, state: dict, turn: int) -> dict:
        rolls = q.get("rolls") or []
        rng = self.rng(state, turn, "outcome")
        if not rolls:
            names = list(questions.acting_players(q, state).values()) or ["the crew"]
            return {"text": rng.choice(self.scenario["no_roll"]).format(
                name=names[0], dice="none", band="none", question="")}
        lines = []
        for r in rolls:
            band = (r.get("result") or {}).get("band", "failure")
            lines.append(rng.choice(self.scenario["outcomes"][band]).format(**self._fields(state, r, r["player"])))
        return {"text": " ".join(lines)}

    def _intervention(self, q: dict, state: dict, turn: int) -> dict:
        failures = int(q.get("failures") or 2)
        options = q.get("options") or questions.INTERVENTION_CHOICES
        if failures <= 2 and "retry" in options:
            return {"choice": "retry"}
        if failures <= 4 and q.get("player_id") and "skip" in options:
            return {"choice": "skip", "player_id": q["player_id"]}
        return {"choice": "end_turn"}

    @staticmethod
    def _fields(state: dict, roll: dict, pid: str | None, question: str = "") -> dict:
        name = _character(state, pid).get("name") or pid or "someone"
        return {"name": name, "dice": ", ".join(map(str, roll.get("dice") or [])) or "none",
                "band": (roll.get("result") or {}).get("band", "none"), "question": question}


def _name_words(name: str) -> set[str]:
    """The words of a character's name a helper may call it by ("Rex", "Calloway"; "K-7")."""
    return {w for w in re.findall(r"[\w-]+", (name or "").lower()) if len(w) > 1}


# --- the LLM DM ---------------------------------------------------------------------------------------

_FORMATS = {
    "narration": ('{"text": "the scene, 2-5 sentences, present tense, second person plural", '
                  '"whispers": [{"to": "p1", "layer": "player", "text": "a secret for one player"}]}',
                  "whispers may be an empty list; layer is player, character or both."),
    "review": ('{"text": ""}',
               "an empty text accepts the corrected action as it is; or give the action rewritten so that it "
               "only says what the character tries, never what happens."),
    "adjudication": ('{"rolls": [{"player": "p1", "approach": "lasers", "dice": 1, "helpers": []}]}',
                     "one roll per acting player at most; approach is lasers (technology, science, calm "
                     "precision) or feelings (intuition, diplomacy, passion); dice is 1, +1 if prepared, +1 if "
                     "expert; helpers are other acting players who help; an empty rolls list: nobody rolls."),
    "laser_feelings": ('{"text": "your honest answer to the question"}', "answer the question honestly, in a line "
                       "or two."),
    "outcome": ('{"text": "what happens"}',
                "say what happens for every roll: failure (0 successes) goes wrong, barely (1) succeeds with a "
                "cost, success (2) is done well, critical (3) adds something extra; name the characters."),
    "intervention": ('{"choice": "retry", "player_id": null}',
                     "choice is retry (run the failed phase again), skip (leave player_id out of this turn), "
                     "type (give \"text\": the player's line) or end_turn."),
}
_QUESTION_KEYS = {
    "narration": ("turn",),
    "review": ("turn", "player_id", "text", "violations"),
    "adjudication": ("turn", "actions", "suggested"),
    "laser_feelings": ("turn", "player_id", "question"),
    "outcome": ("turn", "rolls", "actions"),
    "intervention": ("turn", "phase", "failures", "reason", "player_id", "options"),
}
_SYSTEM = (DM_PROMPT_MARKER + "\n"
           "You are the game master (GM) of a Lasers & Feelings tabletop role-playing session: a crew of "
           "AI players on the starship {ship}. You answer one question of the game at a time. Characters have a "
           "number from 2 to 5: a die under it succeeds with LASERS, over it with FEELINGS, equal to it is LASER "
           "FEELINGS (a success, and the player may ask you a question you answer honestly). Be concrete, fair "
           "and brief; outcomes are yours to decide, never the players'.\n"
           "Question: {kind}\n"
           "Reply with one JSON object and nothing else: no prose, no code fence.")


def _view(question: dict) -> dict:
    """What the model is shown of a question (its fields, without the bookkeeping)."""
    view = {k: question[k] for k in _QUESTION_KEYS.get(question["kind"], ()) if k in question}
    if question["kind"] == "outcome":
        view["rolls"] = [{"player": r.get("player"), "approach": r.get("approach"), "number": r.get("number"),
                          "dice": r.get("dice"), "band": (r.get("result") or {}).get("band"),
                          "successes": (r.get("result") or {}).get("successes")} for r in question.get("rolls") or []]
    return view


def _json_object(text: str) -> dict:
    """The JSON object in a model's reply (a code fence or words around it are tolerated)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise questions.InvalidAnswer("The reply holds no JSON object; reply with only the JSON object in the "
                                      "format given.")
    try:
        data = loads(text[start:end + 1], what="reply", source="")
    except ConfigError as exc:
        raise questions.InvalidAnswer(f"The reply's JSON cannot be read: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise questions.InvalidAnswer("The reply must be one JSON object.")
    return data


class LLMDM:
    """Asks a model for every answer; re-asks refused ones; falls back to :class:`RulesDM`.

    ``llm`` is an :class:`~ttrpg.llm.config.LLMConfig` (:func:`~ttrpg.llm.config.make_config`;
    offline or real); ``seed`` seeds the model's sampling (the config's ``seed``) and the
    fallback DM; ``scenario`` gives the model each turn's scene as an outline to narrate in its
    own words, and ends the session at its ``end_after``. The dice question is not put to the
    model (the seeded roll is kept, as :class:`RulesDM` does). A model server that still fails
    after the client's retries (:class:`~ttrpg.exceptions.LLMTransientError`) gets the rules
    answer for that question; a permanent error (rejected key, unknown model) stops the session
    (resumable), since every later question would fail the same way.

    Counters: ``calls`` (model requests), ``reasks`` and ``fallbacks`` (totals), and
    :meth:`answer_meta` for the last answer.
    """

    source = LLM_SOURCE

    def __init__(self, llm: dict, seed: int = 1, scenario: dict | None = None, api_key: str | None = None,
                 max_reasks: int = defaults.AUTOPILOT_MAX_REASKS):
        if not isinstance(llm, dict) or not llm.get("model"):
            raise ConfigError("The LLM autopilot DM needs a model config.",
                              hint="Pass one made by ttrpg.llm.config.make_config (offline=True for the offline "
                                   "model).")
        if isinstance(max_reasks, bool) or not isinstance(max_reasks, int) or max_reasks < 0:
            raise ConfigError(f"max_reasks must be a whole number from 0, got {max_reasks!r}.")
        self.seed = int(seed)
        self.llm = {**llm, "seed": self.seed}
        self.rules = RulesDM(scenario, seed)
        self.scenario = scenario
        self.api_key = api_key
        self.max_reasks = max_reasks
        self.calls = self.reasks = self.fallbacks = 0
        self._last: dict = {"reasks": 0, "fallback": False}
        self._refused: dict[tuple, int] = {}

    def answer_meta(self) -> dict:
        """How the last answer came about: ``{"reasks": n, "fallback": bool}``."""
        return dict(self._last)

    def ask(self, question: dict, state: dict) -> dict:
        kind, turn = question["kind"], int(question.get("turn") or 1)
        self._last = {"reasks": 0, "fallback": False}
        if question.get("error"):
            key = (turn, kind)
            self._refused[key] = self._refused.get(key, 0) + 1
            if self._refused[key] > self.max_reasks:
                raise DMScriptError(f"The autopilot DM's {kind} answers of turn {turn} were refused "
                                    f"{self._refused[key]} times; the last time: {question['error']}",
                                    hint=f"The session is saved; continue at the keyboard: ttrpg resume "
                                         f"{state.get('session_id', '')} --keyboard")
        if kind == "dice" or (kind == "narration" and self.rules.scene(state, turn) is None):
            return self.rules.ask(question, state)
        messages = self._messages(question, state)
        reasks = 0
        while True:
            try:
                reply = complete(self.llm, messages, api_key=self.api_key,
                                 max_tokens=defaults.AUTOPILOT_LLM_MAX_TOKENS)
            except LLMTransientError:
                break
            finally:
                self.calls += 1
            text = reply.get("text") or ""
            try:
                answer = self._read(kind, text, question, state)
                self._last = {"reasks": reasks, "fallback": False}
                return answer
            except questions.InvalidAnswer as exc:
                if reasks >= self.max_reasks:
                    break
                reasks += 1
                self.reasks += 1
                messages = [*messages, {"role": "assistant", "content": text[:2000] or "(empty)"},
                            {"role": "user", "content": f"## {SEC_REFUSED}\nThat answer cannot be used: {exc}\n"
                                                        "Reply again with only the JSON object, in the format "
                                                        "given."}]
        self.fallbacks += 1
        self._last = {"reasks": reasks, "fallback": True}
        return self.rules.ask({k: v for k, v in question.items() if k != "error"}, state)

    def _read(self, kind: str, text: str, question: dict, state: dict) -> dict:
        data = _json_object(text)
        if kind == "narration" and data.get("end"):
            raise questions.InvalidAnswer("Do not end the session: narrate this turn's scene.")
        if kind in ("laser_feelings", "outcome", "review") and not isinstance(data.get("text", ""), str):
            raise questions.InvalidAnswer('"text" must be a string.')
        return questions.check(data, question, state)

    def _messages(self, question: dict, state: dict) -> list[dict]:
        kind = question["kind"]
        party = state.get("party") or {}
        ship = (party.get("ship") or {}).get("name") or "The Raptor"
        lines = [f"- {p['id']}: {p['character']['name']}, {p['character'].get('style', '')} "
                 f"{p['character'].get('role', '')}, number {p['character'].get('number', '')}"
                 for p in party.get("players", [])]
        sections = [(SEC_PARTY, "\n".join(lines))]
        history = (state.get("history") or [])[-5:]
        if history:
            sections.append(("Story so far", "\n".join(f"- {h}" for h in history)))
        if kind != "narration" and state.get("narration"):
            sections.append(("This turn's scene", state["narration"]))
        if kind == "narration" and self.scenario is not None:
            scene = self.rules.scene(state, int(question.get("turn") or 1))
            if scene:
                sections.append((SEC_OUTLINE, scene["narration"]))
        sections.append((SEC_QUESTION, json.dumps(_view(question), ensure_ascii=False)))
        example, rules = _FORMATS[kind]
        sections.append((SEC_FORMAT, f"{example}\n{rules}"))
        if question.get("error"):
            sections.append((SEC_REFUSED, f"Your last answer to this question could not be used: {question['error']}"))
        user = "\n\n".join(f"## {title}\n{body}" for title, body in sections)
        return [{"role": "system", "content": _SYSTEM.format(ship=ship, kind=kind)},
                {"role": "user", "content": user}]


# --- choosing one --------------------------------------------------------------------------------------

def make_dm(kind: str, *, scenario: dict | str | Path | None = None, seed: int = 1, llm: dict | None = None,
            api_key: str | None = None):
    """An autopilot DM by name: ``rules`` (:class:`RulesDM`) or ``llm`` (:class:`LLMDM`, needs ``llm``).

    ``scenario`` is a scenario dict or the path of a scenario file (:func:`load_scenario`).
    """
    if isinstance(scenario, (str, Path)):
        scenario = load_scenario(scenario)
    if kind == "rules":
        return RulesDM(scenario, seed)
    if kind == "llm":
        if llm is None:
            raise ConfigError("The llm autopilot DM needs a model config (llm=...).",
                              hint="Pass llm=make_config(...) (offline=True for the offline model), or use the "
                                   "rules DM.")
        return LLMDM(llm, seed=seed, scenario=scenario, api_key=api_key)
    raise ConfigError(f"Unknown autopilot DM {kind!r}; known: {', '.join(KINDS)}.",
                      hint="Use rules (scenario and rules of thumb) or llm (a model answers, rules as fallback).")
