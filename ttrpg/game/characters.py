"""The party file (``characters.json``): who plays, which characters, which ship.

Why a strict schema: the file is written by hand by the DM, and a typo ("Hotshot",
number 7) would otherwise surface as a confusing model behaviour mid-game. So every field
is checked up front, extra keys are refused (they are usually misspelt keys), and every
error names the field path and what is allowed, one line each, e.g.::

    characters.json is invalid (2 errors):
      players[1].character.number: must be 2-5, got 7
      players[0].character.style: must be one of Alien, Android, Dangerous, Heroic, Hot-Shot, Intrepid, Savvy, got 'Hotshot'

(one error is one line: ``characters.json is invalid: players[1].character.number: must be 2-5, got 7``)

Format (``examples/characters.json`` is a complete 4-player file)::

    {"ship": {"name": "The Raptor", "strengths": ["Fast", "Nimble"], "problem": "Fuel Hog"},
     "players": [
       {"id": "p1",
        "player": {"name": "Alex", "goal": "Get the crew through alive",
                   "traits": {"analytical": 0.7, "risk_tolerance": 0.4, "detail_orientation": 0.6,
                              "emotional_memory": 0.5, "assertiveness": 0.6, "cooperativeness": 0.8,
                              "openness": 0.5, "rule_adherence": 0.7, "roleplay_intensity": 0.6}},
        "character": {"name": "Zix", "style": "Alien", "role": "Pilot", "number": 3,
                      "goal": "Meet Cool Aliens", "equipment": ["Flight suit"],
                      "speech_patterns": ["Speaks of herself in the third person"],
                      "mannerisms": ["Hums while flying"]}}]}

* ``ship`` is optional and defaults to The Raptor (Fast, Nimble; Fuel Hog). Its two
  strengths are distinct, from Fast, Nimble, Well-Armed, Powerful Shields, Superior
  Sensors, Cloaking Device, Fightercraft; its problem is one of Fuel Hog, Only One
  Medical Pod, Horrible Circuit Breakers, Grim Reputation.
* ``players``: 1 to 4 entries. ``id`` is unique and matches ``^[a-z0-9][a-z0-9_-]{0,31}$``
  (it names queues and log files). Character names are unique.
* ``player`` is the simulated person at the table: a name, a goal, and nine personality
  traits, all required, each a number from 0.0 to 1.0.
* ``character``: style (Alien, Android, Dangerous, Heroic, Hot-Shot, Intrepid, Savvy),
  role (Doctor, Envoy, Engineer, Explorer, Pilot, Scientist, Soldier), number 2-5 (high:
  better at LASERS, low: better at FEELINGS), a goal, and optional lists of equipment,
  speech patterns and mannerisms.
* Sizes: names at most 80 characters, goals and each list item at most 200, at most 12
  items per list; no control characters (tabs, newlines, escape sequences) or bidirectional
  overrides anywhere: these texts reach prompts, terminals and logs. The file itself is read
  by :mod:`ttrpg.jsonfile` (at most 1 MB, no duplicate keys, no huge numbers).
"""

from __future__ import annotations

import re
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ttrpg.exceptions import CharactersFileError
from ttrpg.jsonfile import load_json_file, loads

STYLES = ("Alien", "Android", "Dangerous", "Heroic", "Hot-Shot", "Intrepid", "Savvy")
ROLES = ("Doctor", "Envoy", "Engineer", "Explorer", "Pilot", "Scientist", "Soldier")
SHIP_STRENGTHS = ("Fast", "Nimble", "Well-Armed", "Powerful Shields", "Superior Sensors",
                  "Cloaking Device", "Fightercraft")
SHIP_PROBLEMS = ("Fuel Hog", "Only One Medical Pod", "Horrible Circuit Breakers", "Grim Reputation")
TRAITS = ("analytical", "risk_tolerance", "detail_orientation", "emotional_memory", "assertiveness",
          "cooperativeness", "openness", "rule_adherence", "roleplay_intensity")
PLAYER_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MAX_PLAYERS = 4
NAME_MAX_CHARS = 80
TEXT_MAX_CHARS = 200
LIST_MAX_ITEMS = 12
# Unicode direction marks and overrides: they make a terminal show text in another order.
_BIDI = ({"\u200e", "\u200f", "\u061c"} | {chr(c) for c in range(0x202A, 0x202F)}
         | {chr(c) for c in range(0x2066, 0x206A)})


def _plain(value: str) -> str:
    """Refuse control characters (newlines, tabs, ESC...) and bidirectional overrides."""
    for i, ch in enumerate(value):
        if ch in _BIDI or unicodedata.category(ch) == "Cc":
            kind = "a direction override" if ch in _BIDI else "a control character"
            raise ValueError(f"must be plain text: {kind} (U+{ord(ch):04X}) is at position {i + 1}; remove it")
    return value


Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS), AfterValidator(_plain)]
Text = Annotated[str, Field(min_length=1, max_length=TEXT_MAX_CHARS), AfterValidator(_plain)]
TextList = Annotated[list[Text], Field(max_length=LIST_MAX_ITEMS)]

Style = Literal["Alien", "Android", "Dangerous", "Heroic", "Hot-Shot", "Intrepid", "Savvy"]
Role = Literal["Doctor", "Envoy", "Engineer", "Explorer", "Pilot", "Scientist", "Soldier"]
Strength = Literal["Fast", "Nimble", "Well-Armed", "Powerful Shields", "Superior Sensors",
                   "Cloaking Device", "Fightercraft"]
Problem = Literal["Fuel Hog", "Only One Medical Pod", "Horrible Circuit Breakers", "Grim Reputation"]

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)
Trait = Field(ge=0.0, le=1.0)


class Ship(BaseModel):
    """The crew's ship: a name, two distinct strengths and one problem."""

    model_config = _STRICT
    name: Name = "The Raptor"
    strengths: list[Strength] = Field(default_factory=lambda: ["Fast", "Nimble"], min_length=2, max_length=2)
    problem: Problem = "Fuel Hog"

    @field_validator("strengths")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"the two strengths must be different, got {value[0]!r} twice")
        return value


class Traits(BaseModel):
    """The simulated player's personality; shapes table talk and risk taking."""

    model_config = _STRICT
    analytical: float = Trait
    risk_tolerance: float = Trait
    detail_orientation: float = Trait
    emotional_memory: float = Trait
    assertiveness: float = Trait
    cooperativeness: float = Trait
    openness: float = Trait
    rule_adherence: float = Trait
    roleplay_intensity: float = Trait


class Player(BaseModel):
    """The person at the table (simulated), as distinct from the character they play."""

    model_config = _STRICT
    name: Name
    goal: Text
    traits: Traits


class Character(BaseModel):
    """A Lasers & Feelings character."""

    model_config = _STRICT
    name: Name
    style: Style
    role: Role
    number: int = Field(ge=2, le=5, strict=True)
    goal: Text
    equipment: TextList = Field(default_factory=list)
    speech_patterns: TextList = Field(default_factory=list)
    mannerisms: TextList = Field(default_factory=list)


class PartyMember(BaseModel):
    """One seat at the table: an id, the player and their character."""

    model_config = _STRICT
    id: str = Field(pattern=PLAYER_ID_PATTERN)
    player: Player
    character: Character


class Party(BaseModel):
    """The whole ``characters.json``: ship and 1-4 players with unique ids and names."""

    model_config = _STRICT
    ship: Ship = Field(default_factory=Ship)
    players: list[PartyMember] = Field(min_length=1, max_length=MAX_PLAYERS)

    @model_validator(mode="after")
    def _unique(self) -> "Party":
        for field, get in (("id", lambda m: m.id), ("character.name", lambda m: m.character.name)):
            first_seen: dict[str, int] = {}
            for i, member in enumerate(self.players):
                value = get(member)
                if value in first_seen:
                    raise ValueError(f"players[{i}].{field}: must be unique, {value!r} is also "
                                     f"players[{first_seen[value]}].{field}")
                first_seen[value] = i
        return self

    def to_state(self) -> dict[str, Any]:
        """A plain JSON dict for the game state: ``{"ship": {...}, "players": [...]}``."""
        return self.model_dump(mode="json")

    def member(self, player_id: str) -> PartyMember:
        """The seat with this id (KeyError if none)."""
        for p in self.players:
            if p.id == player_id:
                return p
        raise KeyError(player_id)


# --------------------------------------------------------------------------- errors

def _path(loc: tuple[int | str, ...]) -> str:
    """``("players", 1, "character", "number")`` -> ``players[1].character.number``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("literal["):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _allowed(path: str) -> str | None:
    """What a field accepts, by the last part of its path."""
    last = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1]
    choices = {"style": STYLES, "role": ROLES, "problem": SHIP_PROBLEMS, "strengths": SHIP_STRENGTHS}
    if last in choices:
        return "must be one of " + ", ".join(choices[last])
    if last == "number":
        return "must be 2-5"
    if last in TRAITS:
        return "must be a number from 0.0 to 1.0"
    if last == "id":
        return "must be 1-32 lower-case letters, digits, '_' or '-', starting with a letter or digit"
    if last == "players":
        return f"must be a list of 1 to {MAX_PLAYERS} players"
    return None


def _shown(value: Any) -> str:
    """``repr`` of a value given in the file, cut short (it may be megabytes); repr escapes
    control characters, so it stays on one line."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text):,} characters)"


def _error_line(error: dict[str, Any]) -> str:
    path = _path(tuple(error["loc"]))
    kind, given = error["type"], error.get("input")
    if kind == "string_too_long":
        return (f"{path}: must be at most {error['ctx']['max_length']} characters, got {len(given):,} "
                f"(shorten it)")
    if kind == "too_long" and isinstance(given, list) and not path.endswith(("strengths", "players")):
        return f"{path}: must have at most {error['ctx']['max_length']} items, got {len(given):,}"
    if kind == "missing":
        allowed = _allowed(path)
        return f"{path}: is required" + (f" ({allowed})" if allowed else "")
    if kind == "extra_forbidden":
        return f"{path}: unknown key (allowed keys are in examples/characters.json)"
    allowed = _allowed(path)
    if kind in ("too_short", "too_long") and path.endswith("strengths"):
        return f"{path}: must be exactly two of {', '.join(SHIP_STRENGTHS)}, got {len(given)}"
    if kind in ("too_short", "too_long") and path == "players":
        return f"{path}: must have 1 to {MAX_PLAYERS} players, got {len(given)}"
    if kind == "value_error":
        message = str(error["msg"]).removeprefix("Value error, ")
        return message if not error["loc"] else f"{path}: {message}"
    if allowed:
        return f"{path}: {allowed}, got {_shown(given)}"
    return f"{path}: {error['msg']}, got {_shown(given)}"


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [_error_line(e) for e in exc.errors()]
    if len(lines) == 1:
        return f"{source} is invalid: {lines[0]}"
    return f"{source} is invalid ({len(lines)} errors):\n" + "\n".join(f"  {line}" for line in lines)


# --------------------------------------------------------------------------- loading

def parse_party(data: dict[str, Any], source: str = "characters.json") -> Party:
    """Validate an already-parsed party dict; :class:`CharactersFileError` lists every problem."""
    if not isinstance(data, dict):
        raise CharactersFileError(f"{source} is invalid: the top level must be a JSON object "
                                  f"with \"players\" (and optionally \"ship\"), got {type(data).__name__}")
    try:
        return Party.model_validate(data)
    except ValidationError as exc:
        raise CharactersFileError(_format_errors(source, exc)) from None


def load_party(path: str | Path) -> Party:
    """Read (safely, :mod:`ttrpg.jsonfile`) and validate a ``characters.json``; every failure is
    a :class:`CharactersFileError` (exit 2)."""
    data = load_json_file(path, what="characters file", error=CharactersFileError)
    return parse_party(data, source=str(path))


def default_party() -> Party:
    """The shipped four-player crew (package data ``ttrpg/data/characters.json``)."""
    data = resources.files("ttrpg").joinpath("data/characters.json").read_bytes()
    return parse_party(loads(data, what="characters file", source="ttrpg/data/characters.json",
                             error=CharactersFileError), source="ttrpg/data/characters.json")
