"""The turn state: plain JSON-like data, typed for readers, checkpointed after every phase.

Plain dicts and lists only (no pydantic, enums, tuples or datetimes): they round-trip through
the Redis checkpointer unchanged in any process (pydantic models in the state would need an
allow-list on the serializer to load in a fresh process; enums and datetimes come back as strings).
Each phase returns only the keys it changes.
"""

from __future__ import annotations

from typing import Any, TypedDict


class Roll(TypedDict, total=False):
    player: str
    approach: str            # "lasers" | "feelings"
    number: int
    dice: list[int]          # as rolled (the base dice plus one per successful helper)
    helpers: list[dict]      # [{"player", "die", "success"}]
    overridden: bool
    result: dict             # ttrpg.game.dice.resolve_roll(...)


class TurnState(TypedDict, total=False):
    # session, fixed at start
    session_id: str
    campaign_id: str
    seed: int
    party: dict                      # characters.json as plain data: {"ship", "players": [...]}
    llm: dict                        # ttrpg.llm.config.LLMConfig (never the API key)
    max_turns: int | None
    # running
    turn: int
    phase: str
    ended: bool
    history: list[str]               # one line per finished turn, newest last
    whispers: dict[str, dict[str, list[str]]]   # pid -> {"player": [...], "character": [...]}
    # this turn
    narration: str
    memories: dict[str, dict[str, list[str]]]   # pid -> layer -> lines
    discussion: list[dict]           # [{"round", "player", "say", "proposal", "vote"}]
    consensus: dict                  # {"state", "plan", "dissent", "rounds"}
    intents: dict[str, dict]         # pid -> {"intent", "directive"}
    actions: dict[str, dict]         # pid -> {"text", "attempt", "violations", "autocorrected", "needs_review"}
    validation_round: int
    adjudication: dict               # {"rolls": [{"player", "approach", "dice", "helpers"}]}
    rolls: list[Roll]
    laser_feelings: list[dict]       # [{"player", "question", "answer"}] (answer None until the DM answers)
    outcome: str
    reactions: dict[str, str]
    skipped: list[str]               # players the DM chose to skip this turn
    manual: dict[str, dict[str, str]]   # phase -> pid -> line typed by the DM
    turn_ended: bool                 # DM ended the turn early: remaining phases pass
    tokens: dict[str, int]           # tokens used this turn
    answers: dict[str, dict]          # question kind -> {"value", "meta", "question"} (ttrpg.turn.phases.asking)
    dm_error: str | None              # why the DM's last answer was refused: the question is asked again
    extra: dict[str, Any]
