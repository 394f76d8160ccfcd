"""The turn graph: phases wired in order, compiled with a Redis checkpointer.

::

    dm_narration ─► memory_query ─► party_discussion ─► strategic_intent ─► character_action
         ▲                                                                         │
         │                   ┌──────────── action_retry ◄──┐                      ▼
         │                   └────────────────────────────► validation ─► dm_review
         │                                                      │              │
         │                                                      ▼              ▼
    memory_storage ◄─ character_reaction ◄─ dm_outcome ◄─ dice_resolution ◄─ dice_roll ◄─ dm_adjudication
                                                 ▲              │
                                                 └─ laser_feelings

One LangGraph thread per session id. Every step is checkpointed synchronously
(``durability="sync"``): with async durability a SIGKILL can lose the checkpoint of the
step that just ran (DESIGN.md).
"""

from __future__ import annotations

from langgraph.graph import END, StateGraph

from ttrpg import phases
from ttrpg.checkpoint import make_saver  # noqa: F401  (re-exported)
from ttrpg.state import TurnState


def build_graph():
    g = StateGraph(TurnState, context_schema=phases.TurnContext)
    for name in phases.PHASES:
        g.add_node(name, getattr(phases, _fn(name)))
    g.set_entry_point("dm_narration")
    g.add_conditional_edges("dm_narration", phases.after_narration, {"end": END, "memory_query": "memory_query"})
    g.add_edge("memory_query", "party_discussion")
    g.add_edge("party_discussion", "strategic_intent")
    g.add_edge("strategic_intent", "character_action")
    g.add_edge("character_action", "validation")
    g.add_conditional_edges("validation", phases.after_validation,
                            ["action_retry", "dm_review", "dm_adjudication"])
    g.add_edge("action_retry", "validation")
    g.add_edge("dm_review", "dm_adjudication")
    g.add_edge("dm_adjudication", "dice_roll")
    g.add_edge("dice_roll", "dice_resolution")
    g.add_conditional_edges("dice_resolution", phases.after_dice, ["laser_feelings", "dm_outcome"])
    g.add_edge("laser_feelings", "dm_outcome")
    g.add_edge("dm_outcome", "character_reaction")
    g.add_edge("character_reaction", "memory_storage")
    g.add_conditional_edges("memory_storage", phases.after_turn, {"end": END, "dm_narration": "dm_narration"})
    return g


def _fn(name: str) -> str:
    return "validate" if name == "validation" else name


def compile_graph(saver):
    return build_graph().compile(checkpointer=saver)
