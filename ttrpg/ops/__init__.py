"""Measuring and proving: ``ttrpg bench`` (figures for the README) and ``ttrpg drill`` (fault drills).

* :mod:`ttrpg.ops.bench`: start-up, dispatch, fan-out, checkpoints, turn time, resume, memory.
* :mod:`ttrpg.ops.drill`: seeded sessions under SIGKILLs, worker kills, Redis restarts and LLM faults.
* :mod:`ttrpg.ops.referee`: a model as overreach referee, scored on labelled lines.
"""
