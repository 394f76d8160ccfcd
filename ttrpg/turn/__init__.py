"""One turn of play as a LangGraph state machine, checkpointed to Redis after every step.

* :mod:`ttrpg.turn.state`: the turn state (plain JSON-like data).
* :mod:`ttrpg.turn.questions`: what the DM may answer to each kind of question (the contracts).
* :mod:`ttrpg.turn.phases`: ask nodes and work nodes, one function per phase.
* :mod:`ttrpg.turn.graph`: the wiring of the nodes.
* :mod:`ttrpg.turn.checkpoint`: the Redis checkpointer, strict about what it loads.
"""
