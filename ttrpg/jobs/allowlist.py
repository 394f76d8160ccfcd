"""The job allow-list: ttrpg workers run only ttrpg's own job functions.

Every ttrpg worker class (warm, spawn, fork, simple) executes only the functions named in
:data:`ALLOWED`. Any other function named in a job (say ``os.getpid``) is refused *before
its module is imported*; the job fails with a :class:`JobRefused` error, is not retried,
and the function is never called. Callbacks (``on_success`` & co.) outside
:data:`ALLOWED_CALLBACKS` are ignored the same way, RQ webhooks (HTTP requests to any URL a
job names, sent when it finishes or fails) are dropped when a job is read, refused jobs
included, and jobs are only ever read with RQ's JSON serializer (no pickle from Redis).
Where a job's LLM request (and the worker's API key) may go is decided by the worker, not
the job: see :func:`ttrpg.llm.client.endpoint_for_job`.
"""

from __future__ import annotations

import logging

from rq.exceptions import DeserializationError
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer

__all__ = ["ALLOWED", "ALLOWED_CALLBACKS", "AllowListedJob", "JobRefused", "job_queue", "refusal"]

log = logging.getLogger("rq.worker")

ALLOWED = frozenset({
    "ttrpg.jobs.functions.probe",
    "ttrpg.jobs.functions.sleep_for",
    "ttrpg.jobs.functions.ask_player",
    "ttrpg.jobs.functions.drive_sessions",
})
"""Dotted names of the functions a ttrpg worker accepts (see :mod:`ttrpg.jobs.functions`)."""

ALLOWED_CALLBACKS: frozenset[str] = frozenset()
"""Dotted names of the job callbacks a ttrpg worker calls: none."""


class JobRefused(Exception):
    """A job named a function (or callback) that ttrpg workers do not run."""


def refusal(job: Job) -> str | None:
    """Why ``job`` must not run, or None when it names an allow-listed function.

    Reads only the job's stored names: nothing is imported to decide.
    """
    try:
        name = job.func_name
        instance = job.instance
    except DeserializationError:
        return None  # RQ fails an unreadable job on its own
    if instance is not None:
        return f"refused: job {job.id} calls a method on an object; ttrpg workers run only {sorted(ALLOWED)}"
    if name not in ALLOWED:
        return f"refused: {name!r} is not a ttrpg job function; ttrpg workers run only {sorted(ALLOWED)}"
    return None


class AllowListedJob(Job):
    """An RQ job that resolves its function only when it is in :data:`ALLOWED`.

    RQ resolves ``job.func`` with ``import_attribute`` (importing any module named in the
    job); this class checks the name first and raises :class:`JobRefused` instead. Callbacks
    not listed in :data:`ALLOWED_CALLBACKS` are treated as absent.
    Webhooks (rq 3's ``Job.webhooks``: a URL, method and headers per terminal status) are
    dropped when the job is read and never sent: ttrpg uses none, and a job written into Redis
    must not make a worker, or the DM's registry sweep, send requests where it likes.
    """

    def restore(self, raw_data):
        result = super().restore(raw_data)
        if getattr(self, "webhooks", None):
            log.warning("Job %s: ignoring %d webhook(s); ttrpg workers send none", self.id, len(self.webhooks))
            self.webhooks = []
        return result

    def send_webhooks(self, status, *, exc_string=None) -> None:
        """Never sends anything (see the class docstring)."""
        return None

    @property
    def func(self):
        reason = refusal(self)
        if reason:
            raise JobRefused(reason)
        return super().func

    def _checked_callback(self, kind: str):
        name = getattr(self, f"_{kind}_callback_name", None)
        if name and name not in ALLOWED_CALLBACKS:
            log.warning("Job %s: ignoring %s callback %r, which is not allow-listed", self.id, kind, name)
            return None
        return getattr(Job, f"{kind}_callback").fget(self)

    @property
    def success_callback(self):
        return self._checked_callback("success")

    @property
    def failure_callback(self):
        return self._checked_callback("failure")

    @property
    def stopped_callback(self):
        return self._checked_callback("stopped")


def job_queue(name: str, connection) -> Queue:
    """The RQ queue ``name`` as ttrpg uses it: JSON serializer, allow-listed job class."""
    return Queue(name, connection=connection, serializer=JSONSerializer, job_class=AllowListedJob)
