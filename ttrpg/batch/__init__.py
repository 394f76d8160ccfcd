"""Research batches: many seeded sessions played without a person, driven by the worker fleet.

``spec`` (the matrix), ``record`` (the batch in Redis), ``run`` (create and enqueue, cancel),
``drive`` (the session-driver job), ``watchdog`` (dead drivers re-queued), ``status``,
``report`` (per condition, with bootstrap intervals) and ``measure`` (the scale measurement).
"""
