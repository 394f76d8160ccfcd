"""What the AI players remember (session scope: the turn history kept in the state).

The memory query phase gives each AI the lines of earlier turns that mention what the DM
just narrated, newest first, within a small budget, or an explicit "nothing known" so a
player says "we don't know" instead of inventing. Player-layer and character-layer lists
are kept apart so knowledge stays with the layer that has it.
"""

from __future__ import annotations

import re

NOTHING_KNOWN = "Nothing known about this yet."
MAX_LINES = 6
_STOP = {"the", "and", "you", "your", "with", "that", "this", "from", "into", "have", "are", "for", "its",
         "his", "her", "they", "their", "there", "what", "when", "where", "which", "while", "turn", "outcome"}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z'-]{2,}", text.lower()) if w not in _STOP}


def relevant_lines(lines: list[str], query: str, limit: int = MAX_LINES) -> list[str]:
    """Lines sharing words with ``query``, best overlap first, newest first among equals."""
    q = _words(query)
    scored = [(len(q & _words(line)), i, line) for i, line in enumerate(lines)]
    hits = [s for s in scored if s[0] > 0]
    hits.sort(key=lambda s: (-s[0], -s[1]))
    return [line for _, _, line in hits[:limit]]


def recall_for_turn(ctx, state: dict) -> dict:
    narration = state.get("narration") or ""
    lines = relevant_lines(list(state.get("history") or []), narration) or [NOTHING_KNOWN]
    found = {p["id"]: {"player": list(lines), "character": list(lines)} for p in state["party"]["players"]}
    ctx.events.emit("memory_query", f"{state['turn']}", state["turn"], query=narration[:200],
                    results=0 if lines == [NOTHING_KNOWN] else len(lines))
    return found

