"""Entry point of a fleet worker, run from a checkout: ``python workers/run_worker.py``.

Not an installed package (``ttrpg worker`` is the installed equivalent).

Everything comes from the environment (see ``workers/worker.env.example``); it is the same
worker as ``ttrpg worker``. Run it exec-form / as the unit's main process so that SIGTERM
reaches it: the first SIGTERM finishes the job in flight and exits 0, a second one kills it.
"""

from __future__ import annotations

import sys


def main() -> int:
    from ttrpg.cli import private_umask, report_error
    from ttrpg.exceptions import TTRPGError
    from ttrpg.fleet.run import run_worker
    from ttrpg.fleet.workers import DEFAULT_WORKER_CLASS
    from ttrpg.settings import get_settings

    private_umask()
    try:
        settings = get_settings()
        queues = [q.strip() for q in settings.queue.split(",") if q.strip()]
        return run_worker(queues, worker_class=settings.worker_class or DEFAULT_WORKER_CLASS,
                          name=settings.worker_name, settings=settings)
    except TTRPGError as exc:
        return report_error(exc)


if __name__ == "__main__":
    sys.exit(main())
