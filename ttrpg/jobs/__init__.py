"""Jobs: the work AI players do on the RQ fleet, and who may ask for it.

* :mod:`ttrpg.jobs.functions`: the job functions workers run (``ask_player``, ``probe``,
  ``sleep_for``); RQ stores them by dotted name, ``ttrpg.jobs.functions.<name>``.
* :mod:`ttrpg.jobs.allowlist`: :data:`~ttrpg.jobs.allowlist.ALLOWED`, ``AllowListedJob``
  (refuses any other function, callback or webhook) and ``job_queue``.
* :mod:`ttrpg.jobs.fanout`: one ``ask_player`` job per AI player, awaited together,
  re-attached after a crash.

The workers that run them are in :mod:`ttrpg.fleet`.
"""
