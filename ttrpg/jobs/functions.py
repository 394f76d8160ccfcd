"""The job functions RQ workers run: the only functions a ttrpg worker will execute.

Workers refuse any other function named in a job (:data:`ttrpg.jobs.allowlist.ALLOWED`
lists these by dotted name, ``ttrpg.jobs.functions.<name>``: RQ stores that name in Redis,
so renaming one is a change to stored data), so that write access to Redis is not code
execution on the fleet. Arguments and results are plain JSON (RQ's JSON serializer; no pickle).

Every warm work horse imports this module before its job arrives, together with ``openai``,
so that a job starts in milliseconds (see :mod:`ttrpg.fleet.horse`).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

from ttrpg.backend.connection import when_redis_is_up
from ttrpg.constants import JOB_EXECUTIONS, JOB_REPLY
from ttrpg.defaults import JOB_RESULT_TTL_S
from ttrpg.research.events import EventLog
from ttrpg.settings import get_settings

#: A value unique to this process: two jobs that report the same marker shared a process.
#: A forked process draws a new one (a fork server's children import nothing themselves).
PROCESS_MARKER = uuid.uuid4().hex

#: When this module was imported (by a warm horse or a fork-server template: before the job).
IMPORTED_AT = time.time()

#: Traces left by earlier :func:`probe` calls in this process (``leave_trace=True``).
_TRACES: list[str] = []
_TRACE_ENV = "TTRPG_PROBE_TRACE"


def _new_marker() -> None:
    global PROCESS_MARKER
    PROCESS_MARKER = uuid.uuid4().hex


os.register_at_fork(after_in_child=_new_marker)


def probe(leave_trace: bool = False) -> dict:
    """A zero-work job: who ran it and when. Used by ``ttrpg bench`` and the worker tests.

    ``traces_seen`` lists what earlier probes with ``leave_trace`` left in this process (a
    module global and an environment variable): a job that sees one did not start clean.
    """
    seen = list(_TRACES) + ([os.environ[_TRACE_ENV]] if _TRACE_ENV in os.environ else [])
    if leave_trace:
        _TRACES.append(PROCESS_MARKER)
        os.environ[_TRACE_ENV] = PROCESS_MARKER
    return {"pid": os.getpid(), "marker": PROCESS_MARKER, "started_at": time.time(), "imported_at": IMPORTED_AT,
            "traces_seen": seen}


def sleep_for(seconds: float) -> dict:
    """A job that takes ``seconds``: timeouts, graceful shutdown and crash drills use it."""
    started = time.time()
    time.sleep(seconds)
    return {"pid": os.getpid(), "marker": PROCESS_MARKER, "started_at": started, "ended_at": time.time()}


def scoped_faults(cfg: dict, player_id: str, phase: str, attempt: int) -> dict:
    """Apply the offline model's ``fault_scope``: faults for some players or job phases only,
    or only until a phase attempt (an outage that heals, as drills and tests need)."""
    scope = cfg.get("fault_scope") or {}
    players, phases, until = scope.get("players"), scope.get("phases"), scope.get("until_attempt")
    if (players and player_id not in players) or (phases and phase not in phases) or (until and attempt >= until):
        return {**cfg, "faults": {}}
    return {**cfg, "fault_salt": f"a{attempt}"} if attempt > 1 else cfg


_REASONS = {"RateLimitError": "rate limit", "InternalServerError": "server error", "APITimeoutError": "timeout",
            "APIConnectionError": "connection error"}
"""How a retry's cause reads on the DM's screen."""

def ask_player(request: dict) -> dict:
    """One LLM call for one AI player in one phase; the fan-out's unit of work.

    ``request`` (plain JSON, built by the orchestrator)::

        {"session_id", "campaign_id", "turn", "phase", "player_id", "attempt",
         "messages": [{"role", "content"}], "llm": LLMConfig, "max_tokens": 300}

    Returns ``{"ok": True, "text", "model", "prompt_tokens", "completion_tokens",
    "tokens_estimated", "latency_ms", "attempts", "truncated", "reply_chars", "pid", ...}``
    (see :func:`ttrpg.llm.client.complete`), or ``{"ok": False, "error_class", "message"}`` when the
    model could not be asked: an LLM failure is an answer for the phase to handle, not a job
    crash for RQ to retry (RQ's own retry is kept for workers that die under a job). Every
    attempt and retry is logged as an event from here, so the log is complete even when this
    worker runs on another machine.

    The API key comes from this worker's environment, never from the job, and goes only to
    this worker's own endpoint (``OPENAI_BASE_URL``) or one in ``TTRPG_ALLOWED_BASE_URLS``:
    a job naming another endpoint fails at once (``LLMPermanentError``, no request made; see
    :func:`ttrpg.llm.client.endpoint_for_job`).

    While it runs, the job's ``meta`` says how far it is, for the DM's screen
    (:func:`ttrpg.jobs.fanout.run_jobs` ``on_progress``): ``{"progress": "thinking" | "retrying",
    "detail": "rate limit, retry 2 in 5 s", "attempt": n}``, one small Redis write per HTTP
    attempt and per retry.
    """
    # Deferred: probe and sleep_for also run in plain spawn horses, which preload nothing;
    # openai (through ttrpg.llm.client), rq and redis at module top would add ~0.5 s to each of them.
    import redis
    from rq import get_current_job

    from ttrpg.exceptions import LLMError
    from ttrpg.llm.client import complete, endpoint_for_job

    job = get_current_job()
    log = EventLog(job.connection, request["session_id"], request.get("campaign_id")) if job else None
    turn, phase, pid, attempt = request["turn"], request["phase"], request["player_id"], request["attempt"]
    # Counting executions makes a second run of the same job visible in the log as a new
    # llm_call (x2) instead of being silently de-duplicated: drills count them.
    counter = JOB_EXECUTIONS.format(job_id=job.id) if job else None
    execution = job.connection.incr(counter) if job else 1
    if job:
        job.connection.expire(counter, JOB_RESULT_TTL_S)
    base_id = f"{turn}:{phase}:{pid}:{attempt}:x{execution}"
    retry_fields = {"phase": phase, "player_id": pid, "attempt": attempt}

    def progress(state: str, detail: str, n: int) -> None:
        """Record how far this job is in ``job.meta`` (one HSET); a Redis hiccup only loses the update."""
        if job is None:
            return
        job.meta.update({"progress": state, "detail": detail, "attempt": n})
        try:
            job.save_meta()
        except redis.RedisError:  # never anything wider: RQ's job timeout must propagate
            pass

    def on_retry(n: int, wait_s: float, error_class: str, message: str) -> None:
        progress("retrying", f"{_REASONS.get(error_class, error_class)}, retry {n} in {wait_s:.2g} s", n + 1)
        if log:
            log.emit("llm_retry", f"{base_id}:{n}", turn, **retry_fields, retry=n, wait_s=round(wait_s, 3),
                     error_class=error_class, message=message[:300])

    # A reply already paid for (the job ran, but Redis went away before RQ stored its result,
    # so RQ runs the job again) is reused instead of asking the model a second time.
    reply_key = JOB_REPLY.format(job_id=job.id) if job else None
    if job and (cached := _patiently(lambda: job.connection.get(reply_key))):
        if log:
            _patiently(lambda: log.emit("llm_reply_reused", base_id, turn, **retry_fields, job_id=job.id,
                                               execution=execution))
        return json.loads(cached)

    shrinks = 0

    def on_shrink(from_tokens: int, to_tokens: int) -> None:
        """The server refused the prompt as too long: we shrank it (never re-sent it as it was)."""
        nonlocal shrinks
        shrinks += 1
        if log:
            log.emit("context_shrunk", f"{base_id}:s{shrinks}", turn, **retry_fields, shrink=shrinks,
                     from_tokens=from_tokens, to_tokens=to_tokens, model=request["llm"].get("model"))

    started = time.monotonic()
    cfg = scoped_faults(request["llm"], pid, phase, attempt)
    settings = get_settings()
    progress("thinking", "", 1)
    try:
        if not cfg.get("offline"):  # the offline model never touches the network
            cfg = {**cfg, "base_url": endpoint_for_job(cfg.get("base_url"), settings.openai_base_url,
                                                        settings.allowed_base_urls)}
        reply = complete(cfg, request["messages"], api_key=settings.openai_api_key,
                         max_tokens=request.get("max_tokens") or 300, on_retry=on_retry, on_shrink=on_shrink,
                         on_attempt=lambda n: progress("thinking", f"attempt {n}", n))
        result = {"ok": True, "pid": os.getpid(), **reply}
        event = dict(model=reply["model"], latency_ms=reply["latency_ms"], prompt_tokens=reply["prompt_tokens"],
                     completion_tokens=reply["completion_tokens"], tokens_estimated=reply["tokens_estimated"],
                     attempts=reply["attempts"], outcome="ok", context_shrinks=reply.get("context_shrinks", 0),
                     empty=bool(reply.get("empty")), truncated=bool(reply.get("truncated")),
                     reply_chars=reply.get("reply_chars"))
        if reply.get("truncated"):
            logging.getLogger("rq.worker").warning(
                "Job %s: the model's reply was %d characters; kept the first %d", job.id if job else "-",
                reply["reply_chars"], len(reply["text"]))
    except LLMError as exc:
        result = {"ok": False, "error_class": type(exc).__name__, "message": str(exc)}
        event = dict(model=cfg.get("model"), latency_ms=round((time.monotonic() - started) * 1000, 1),
                     prompt_tokens=None, completion_tokens=None, outcome="error", error_class=type(exc).__name__,
                     attempts=getattr(exc, "attempts", None))
    if job:
        _patiently(lambda: job.connection.set(reply_key, json.dumps(result), ex=JOB_RESULT_TTL_S))
    if log:
        _patiently(lambda: log.emit("llm_call", base_id, turn, **retry_fields, **event, worker_pid=os.getpid()))
    return result


def _patiently(fn):
    """Run a Redis read or write, waiting out a Redis restart (up to 60 s) instead of losing a paid-for reply."""
    return when_redis_is_up(fn, patience_s=60.0, first_wait_s=0.5, max_wait_s=0.5)


def drive_sessions(request: dict) -> dict:
    """A session-driver job of a research batch (``ttrpg batch run``): drive some of the batch's
    sessions at once in this process, one thread per session, each with its autopilot DM.

    ``request`` (plain JSON): ``{"batch_id", "group", "session_ids": [...]}``; everything else
    (party, model, DM) is read from the batch's record in Redis, as data. Runs on the drivers
    queue (``<TTRPG_QUEUE>-drivers``), never on the player queue: a driver waits on player jobs.
    Returns ``{"completed", "cancelled", "failed", "left"}`` lists of session ids.
    See :func:`ttrpg.batch.drive.drive_group`.
    """
    from ttrpg.batch.drive import drive_group

    return drive_group(request)
