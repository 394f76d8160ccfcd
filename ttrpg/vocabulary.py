"""The words ttrpg shows for its phases, DM questions and session states, defined once.

The DM's prompt, ``ttrpg sessions``, ``ttrpg status``, ``ttrpg watch`` and the report all
name a phase through :func:`phase_label`, so the same moment of a turn reads the same
everywhere. Graph nodes come in two sorts: *work* nodes (the phases of the research log's
``phase`` field) and *ask* nodes (``ask_<kind>``), which only put a question to the DM and
belong, for the DM, to the phase whose work uses the answer.

This module imports nothing: ``--help`` and the docs read it.
"""

from __future__ import annotations

#: Work nodes of the turn graph, in turn order, with the label the DM sees.
PHASE_LABELS: dict[str, str] = {
    "dm_narration": "DM narration",
    "memory_query": "memory query",
    "party_discussion": "table talk",
    "strategic_intent": "strategic intent",
    "character_action": "character action",
    "validation": "validation",
    "action_retry": "validation retry",
    "dm_review": "DM review",
    "dm_adjudication": "DM adjudication",
    "dice_roll": "dice roll",
    "dice_resolution": "dice resolution",
    "laser_feelings": "LASER FEELINGS",
    "dm_outcome": "DM outcome",
    "character_reaction": "character reaction",
    "memory_storage": "memory storage",
}

#: The phases, in turn order (the ``phase`` of research-log events).
PHASES: tuple[str, ...] = tuple(PHASE_LABELS)

#: Each kind of DM question: (the ask node, the phase that uses the answer, what the DM is asked).
QUESTIONS: dict[str, tuple[str | None, str, str]] = {
    "narration": ("ask_narration", "dm_narration", "to describe the scene (or /end)"),
    "review": ("ask_review", "dm_review", "to accept or rewrite a character action that still overreached"),
    "adjudication": ("ask_adjudication", "dm_adjudication", "who rolls, LASERS or FEELINGS, and how many dice"),
    "dice": ("ask_dice", "dice_resolution", "to keep or override the dice rolled"),
    "laser_feelings": ("ask_laser_feelings", "laser_feelings",
                       "to answer a LASER FEELINGS question honestly"),
    "outcome": ("ask_outcome", "dm_outcome", "to say what happens"),
    "intervention": (None, "", "what to do about a phase that failed twice (retry, skip, type, end the turn)"),
}

QUESTION_KINDS: tuple[str, ...] = tuple(QUESTIONS)

#: Ask node -> question kind.
ASK_NODES: dict[str, str] = {node: kind for kind, (node, _, _) in QUESTIONS.items() if node}

#: Every node of the turn graph (work and ask nodes).
NODES: tuple[str, ...] = PHASES + tuple(ASK_NODES)

#: What a session's status means (``ttrpg sessions``, ``ttrpg status``).
SESSION_STATES: dict[str, str] = {
    "new": "created, not started yet",
    "active": "a live driver is playing it",
    "paused": "stopped cleanly (Ctrl-C, or waiting for the DM); `ttrpg resume` continues it",
    "interrupted": "its driver died (crash, kill -9); `ttrpg resume` continues it",
    "completed": "finished",
}


def phase_of(node: str | None) -> str:
    """The phase a graph node belongs to: an ask node belongs to the phase that uses its answer."""
    if not node:
        return ""
    if node in ASK_NODES:
        return QUESTIONS[ASK_NODES[node]][1]
    return node


def phase_label(node: str | None) -> str:
    """The DM-facing name of a node or phase (``ask_dice`` -> ``dice resolution``)."""
    if not node:
        return ""
    if node == "ended":
        return "ended"
    return PHASE_LABELS.get(phase_of(node), node.replace("_", " "))


def question_words(kind: str) -> str:
    """What the DM is being asked, in words (``ttrpg status``)."""
    return QUESTIONS.get(kind, (None, "", kind))[2]
