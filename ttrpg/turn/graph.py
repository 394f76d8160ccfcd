"""The turn graph: phases wired in order, compiled with a Redis checkpointer.

::

    ask_narration ─► dm_narration ─► memory_query ─► party_discussion ─► strategic_intent
         ▲                                                                     │
         │        action_retry ◄─► validation ◄─ character_action ◄────────────┘
         │                            │   └─► ask_review ⇄ dm_review ─┐
         │                            ▼                                ▼
         │                      ask_adjudication ─► dm_adjudication ─► dice_roll ─► ask_dice
         │                                                                            │
         │   ┌──────────────────────── dice_resolution ◄──────────────────────────────┘
         │   ▼                            └─► laser_feelings ⇄ ask_laser_feelings
         │  ask_outcome ─► dm_outcome ─► character_reaction ─► memory_storage ─┐
         └──────────────────────────────────────────────────────────────────────┘

An ``ask_*`` node only asks the DM and checks the answer (it loops to itself while the answer
is refused); the work node after it uses the answer and goes back to the question if the
stored answer turns out unusable (:mod:`ttrpg.turn.phases`).

One LangGraph thread per session id. Every step is checkpointed synchronously
(``durability="sync"``): with async durability a SIGKILL can lose the checkpoint of the step
that just ran.
"""

from __future__ import annotations

from langgraph.graph import END, StateGraph

from ttrpg.turn import phases
from ttrpg.turn.checkpoint import make_saver  # noqa: F401  (re-exported)
from ttrpg.turn.state import TurnState


def build_graph():
    g = StateGraph(TurnState, context_schema=phases.TurnContext)
    for name, fn in phases.NODES.items():
        g.add_node(name, fn)
    ask, route = phases.after_ask, phases.back_to_ask_or
    g.set_entry_point("ask_narration")
    g.add_conditional_edges("ask_narration", ask("narration", "dm_narration"), ["ask_narration", "dm_narration"])
    g.add_conditional_edges("dm_narration", phases.after_narration, {"end": END, "memory_query": "memory_query",
                                                                     "ask_narration": "ask_narration"})
    g.add_edge("memory_query", "party_discussion")
    g.add_edge("party_discussion", "strategic_intent")
    g.add_edge("strategic_intent", "character_action")
    g.add_edge("character_action", "validation")
    g.add_conditional_edges("validation", phases.after_validation,
                            ["action_retry", "ask_review", "ask_adjudication"])
    g.add_edge("action_retry", "validation")
    g.add_conditional_edges("ask_review", ask("review", "dm_review"), ["ask_review", "dm_review"])
    g.add_conditional_edges("dm_review", phases.after_review, ["ask_review", "ask_adjudication"])
    g.add_conditional_edges("ask_adjudication", ask("adjudication", "dm_adjudication"),
                            ["ask_adjudication", "dm_adjudication"])
    g.add_conditional_edges("dm_adjudication", route("adjudication", "dice_roll"), ["ask_adjudication", "dice_roll"])
    g.add_edge("dice_roll", "ask_dice")
    g.add_conditional_edges("ask_dice", ask("dice", "dice_resolution"), ["ask_dice", "dice_resolution"])
    g.add_conditional_edges("dice_resolution", phases.after_dice, ["ask_dice", "laser_feelings", "ask_outcome"])
    g.add_conditional_edges("laser_feelings", phases.after_laser_feelings, ["ask_laser_feelings", "ask_outcome"])
    g.add_conditional_edges("ask_laser_feelings", ask("laser_feelings", "laser_feelings"),
                            ["ask_laser_feelings", "laser_feelings"])
    g.add_conditional_edges("ask_outcome", ask("outcome", "dm_outcome"), ["ask_outcome", "dm_outcome"])
    g.add_conditional_edges("dm_outcome", route("outcome", "character_reaction"), ["ask_outcome", "character_reaction"])
    g.add_edge("character_reaction", "memory_storage")
    g.add_conditional_edges("memory_storage", phases.after_turn, {"end": END, "ask_narration": "ask_narration"})
    return g


def compile_graph(saver):
    return build_graph().compile(checkpointer=saver)
