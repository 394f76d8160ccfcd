"""The Lasers & Feelings dice rules, exactly, and nothing else.

Why a module of its own: the rules are the one part of the game that must never be
"interpreted" by a model, so they live here as small pure functions that the graph, the
DM's override prompt and the tests all share. Every result is a plain JSON-able dict
because it is stored in the checkpointed game state and in the research log.

The rules (John Harper's Lasers & Feelings):

* A character has a **number** from 2 to 5.
* A risky action rolls 1d6, +1d6 if prepared, +1d6 if expert (the GM says how many:
  1 to 3 dice), plus +1d6 for every helper whose own roll succeeded.
* Each die is compared with the number. **LASERS** (technology, science, calm precise
  action): a die succeeds if it is *under* the number. **FEELINGS** (intuition,
  diplomacy, passion): a die succeeds if it is *over* the number.
* A die *equal* to the number is **LASER FEELINGS**: it counts as a success and the
  player may ask the GM a question that the GM answers honestly.
* 0 successes: it goes wrong, the GM says how things get worse. 1: barely, with a
  complication, harm or cost. 2: done well. 3 or more: critical, the GM adds an extra
  effect.

Randomness is always passed in (a :class:`random.Random`), and :func:`seeded_rng`
derives one from stable parts with SHA-256, so that a roll for (session seed, turn,
player) is the same in every process: a phase that is rolled back and replayed, or
resumed on another machine, rolls the same dice instead of giving the table a re-roll.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Literal, TypedDict, cast

Approach = Literal["lasers", "feelings"]
Band = Literal["failure", "barely", "success", "critical"]

APPROACHES: tuple[Approach, ...] = ("lasers", "feelings")
MIN_NUMBER = 2
MAX_NUMBER = 5
MIN_BASE_DICE = 1
MAX_BASE_DICE = 3
MAX_HELPERS = 3
"""At most four characters: one acts, up to three help."""
MAX_TOTAL_DICE = MAX_BASE_DICE + MAX_HELPERS
"""3 base dice (1 + prepared + expert) plus one die per successful helper."""

BAND_TEXT: dict[Band, str] = {
    "failure": "it goes wrong; the GM says how things get worse",
    "barely": "they barely manage it, with a complication, harm or cost",
    "success": "they do it well",
    "critical": "critical success; the GM adds an extra effect",
}
"""What each band means at the table, in the words of the rules."""


class RollResult(TypedDict):
    """The outcome of one resolved roll, as stored in the game state and the log."""

    dice: list[int]
    number: int
    approach: Approach
    successes: int
    laser_feelings: bool
    band: Band
    summary: str


def normalize_approach(approach: str) -> Approach:
    """Return ``"lasers"`` or ``"feelings"`` for any casing/spacing of either word.

    The DM types the approach, so "LASERS" or " Feelings " must be accepted; anything
    else is a mistake worth a clear message rather than a silent default.
    """
    if isinstance(approach, str):
        cleaned = approach.strip().lower()
        if cleaned in APPROACHES:
            return cast(Approach, cleaned)
    raise ValueError(f"The approach must be LASERS or FEELINGS, got {approach!r}.")


def validate_number(number: int) -> int:
    """Check a character number is 2-5 (the only numbers the rules allow)."""
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"A character's number must be a whole number from 2 to 5, got {number!r}.")
    if not MIN_NUMBER <= number <= MAX_NUMBER:
        raise ValueError(f"A character's number must be from 2 to 5, got {number}.")
    return number


def validate_dice_count(count: int) -> int:
    """Check the number of dice the GM grants for an action: 1, +1 prepared, +1 expert.

    Helper dice are added later and are not part of this count, so it is always 1-3.
    """
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"The number of dice must be a whole number from 1 to 3, got {count!r}.")
    if not MIN_BASE_DICE <= count <= MAX_BASE_DICE:
        raise ValueError(
            f"The GM can grant 1 to 3 dice (1, +1 if prepared, +1 if expert), got {count}."
        )
    return count


def base_dice_count(prepared: bool, expert: bool) -> int:
    """Dice for an action before helpers: 1, +1 if prepared, +1 if expert."""
    return 1 + int(bool(prepared)) + int(bool(expert))


def _validate_die(value: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 6:
        raise ValueError(f"{where} must be a die value from 1 to 6, got {value!r}.")
    return value


def _validate_dice(dice: list[int], max_count: int = MAX_TOTAL_DICE) -> list[int]:
    if not isinstance(dice, (list, tuple)) or not dice:
        raise ValueError("A roll needs at least one die.")
    if len(dice) > max_count:
        raise ValueError(f"A roll can have at most {max_count} dice, got {len(dice)}.")
    return [_validate_die(d, f"Die {i + 1}") for i, d in enumerate(dice)]


def die_succeeds(die: int, number: int, approach: str) -> bool:
    """Whether one die succeeds: LASERS under the number, FEELINGS over it, equal always."""
    _validate_die(die, "The die")
    validate_number(number)
    mode = normalize_approach(approach)
    if die == number:
        return True
    return die < number if mode == "lasers" else die > number


def band_for(successes: int) -> Band:
    """The result band for a count of successes (3 or more is critical)."""
    if successes < 0:
        raise ValueError(f"Successes cannot be negative, got {successes}.")
    if successes == 0:
        return "failure"
    if successes == 1:
        return "barely"
    if successes == 2:
        return "success"
    return "critical"


def _summary(dice: list[int], number: int, mode: Approach, successes: int,
             laser_feelings: bool, band: Band) -> str:
    shown = ", ".join(str(d) for d in dice)
    noun = "success" if successes == 1 else "successes"
    text = (f"{mode.upper()} roll against {number}: rolled {shown} -> {successes} {noun}. "
            f"{band.capitalize()}: {BAND_TEXT[band]}.")
    if laser_feelings:
        text += (f" LASER FEELINGS (a {number} was rolled): the player may ask the GM a question, "
                 "and the GM answers honestly.")
    return text


def resolve_roll(dice: list[int], number: int, approach: str) -> RollResult:
    """Resolve already-rolled dice (including helper dice) into successes and a band.

    Takes the dice rather than rolling them so that automatic rolls, replays and DM
    overrides all go through the same rule code.
    """
    values = _validate_dice(dice)
    validate_number(number)
    mode = normalize_approach(approach)
    successes = sum(1 for d in values if die_succeeds(d, number, mode))
    laser_feelings = any(d == number for d in values)
    band = band_for(successes)
    return {
        "dice": list(values),
        "number": number,
        "approach": mode,
        "successes": successes,
        "laser_feelings": laser_feelings,
        "band": band,
        "summary": _summary(values, number, mode, successes, laser_feelings, band),
    }


def seeded_rng(seed: int, *parts: str | int) -> random.Random:
    """A :class:`random.Random` determined only by ``seed`` and ``parts``.

    Python's ``hash()`` of a str is salted per process, so it cannot be used; the parts
    are encoded as JSON (which keeps ``1`` and ``"1"`` apart) and hashed with SHA-256.
    """
    for part in (seed, *parts):
        if isinstance(part, bool) or not isinstance(part, (int, str)):
            raise ValueError(f"Seed parts must be int or str, got {part!r}.")
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def roll_dice(count: int, rng: random.Random) -> list[int]:
    """Roll ``count`` six-sided dice with the given generator."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_TOTAL_DICE:
        raise ValueError(f"Can roll 1 to {MAX_TOTAL_DICE} dice at once, got {count!r}.")
    return [rng.randint(1, 6) for _ in range(count)]


def helper_bonus(helper_dice: list[int], helper_number: int, approach: str) -> int:
    """+1 die for the helped roll if the helper's own roll (normally 1d6) has any success.

    The helper rolls with *their own* number but the same approach as the action.
    """
    values = _validate_dice(helper_dice, MAX_BASE_DICE)
    return int(any(die_succeeds(d, helper_number, approach) for d in values))


def apply_override(dice: list[int], override: list[int]) -> list[int]:
    """Replace rolled dice with the DM's values, after checking they could be a real roll.

    The DM may roll physical dice at the table; the override must have the same number
    of dice (the GM already decided how many) and every value must be 1-6.
    """
    rolled = _validate_dice(dice)
    if not isinstance(override, (list, tuple)):
        raise ValueError(f"The override must be a list of die values, got {override!r}.")
    if len(override) != len(rolled):
        raise ValueError(
            f"The override must have exactly {len(rolled)} dice (as many as were rolled), "
            f"got {len(override)}."
        )
    return [_validate_die(v, f"Override die {i + 1}") for i, v in enumerate(override)]
