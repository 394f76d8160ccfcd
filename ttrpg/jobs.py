"""The job functions RQ workers run: the only functions a ttrpg worker will execute.

Workers refuse any other function named in a job (:data:`ALLOWED`), so that write access
to Redis is not code execution on the fleet. Arguments and results are plain JSON (RQ's
JSON serializer; no pickle).

This module is imported by every warm work horse before its job arrives, together with
``openai``, so that a job starts in milliseconds (see :mod:`ttrpg.worker`).
"""

from __future__ import annotations

import os
import time
import uuid

#: A value unique to this interpreter: two jobs that report the same marker shared a process.
PROCESS_MARKER = uuid.uuid4().hex

#: Set when this interpreter was a pre-spawned (warm) horse; reported by :func:`probe`.
IMPORTED_AT = time.time()


def probe() -> dict:
    """A zero-work job: who ran it and when. Used by ``ttrpg bench`` and the worker tests."""
    return {"pid": os.getpid(), "marker": PROCESS_MARKER, "started_at": time.time(), "imported_at": IMPORTED_AT}


def sleep_for(seconds: float) -> dict:
    """A job that takes ``seconds``: timeouts, graceful shutdown and crash drills use it."""
    started = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "marker": PROCESS_MARKER, "started_at": started, "ended_at": time.time()}


ALLOWED = frozenset({"ttrpg.jobs.probe", "ttrpg.jobs.sleep_for", "ttrpg.jobs.ask_player"})
"""Dotted names of the functions a ttrpg worker accepts."""
