"""The RQ worker fleet that runs ttrpg's jobs (:mod:`ttrpg.jobs`).

* :mod:`ttrpg.fleet.workers`: the worker classes (warm spawn, spawn, fork, simple), all
  allow-listed and tolerant of Redis outages; ``WORKER_CLASSES``.
* :mod:`ttrpg.fleet.horse`: the work horse of the spawn and warm workers: its code, how it
  is spawned and handed its job, and how to find horses in ``/proc``.
* :mod:`ttrpg.fleet.run`: ``run_worker``, one worker in this process (``ttrpg worker``).
* :mod:`ttrpg.fleet.local`: worker processes started for a session (``local_workers``) and
  the workers serving a queue right now (``live_workers``).
* :mod:`ttrpg.fleet.monitor`: fleet status, failed jobs and requeueing (``ttrpg workers``);
  also the foreground Redis of ``systemd/ttrpg-redis.service``.
* :mod:`ttrpg.fleet.bench`: ``measure_dispatch``, the dispatch overhead of a worker class.
"""
