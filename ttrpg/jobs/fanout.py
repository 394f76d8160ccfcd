"""Fan-out: one RQ job per AI player, awaited together, re-attached after a crash.

Why jobs: four players think in parallel on any number of workers (on any machine), and a
crashed DM terminal or worker loses nothing. Each job has a deterministic id built from
session, turn, phase, player and attempt, so a phase that runs again after ``kill -9`` and
``ttrpg resume`` finds its jobs instead of paying for the same LLM call twice:

* missing → enqueued with ``unique=True`` (a racing duplicate raises and is fetched instead);
* finished → its result is reused, the LLM is not called again;
* queued / started / scheduled → awaited;
* failed → the phase fails (and the session rolls back, then asks the DM).

Waiting is one ``XREAD BLOCK`` over the result streams of all pending jobs: no polling,
woken within milliseconds of a job finishing. While waiting, the started-job registry is
swept every :data:`ttrpg.defaults.REGISTRY_CLEANUP_INTERVAL_S` so a job abandoned by a
SIGKILLed worker is re-queued (RQ ``Retry``) instead of stalling the turn. The sweep reads
jobs as :class:`ttrpg.jobs.allowlist.AllowListedJob`: RQ's own class would import and call any
failure callback, and send any webhook, that a job written into Redis names.

With ``on_progress``, the wait wakes every :data:`ttrpg.defaults.PROGRESS_INTERVAL_S` to
report each player's job (queued, thinking, retrying after a rate limit, done, failed) from
the job's status and the ``meta`` its worker keeps (see :func:`ttrpg.jobs.functions.ask_player`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from ttrpg import defaults
from ttrpg.backend.connection import text_of
from ttrpg.exceptions import PhaseError, PhaseTimeout

# rq is imported inside the functions: ttrpg.turn imports this module, and no `ttrpg ... --help`
# may load rq (tests/test_cli.py).

ASK_PLAYER = "ttrpg.jobs.functions.ask_player"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def job_id(session_id: str, turn: int, phase: str, player_id: str, attempt: int) -> str:
    """``<session>_t<turn>_<phase>_<player>_a<attempt>``: RQ ids allow only ``[A-Za-z0-9_-]``."""
    parts = [session_id, f"t{turn}", phase, player_id, f"a{attempt}"]
    return "_".join(_UNSAFE.sub("-", str(p)) for p in parts)


ProgressCallback = Callable[[dict[str, dict]], None]
"""``on_progress({player_id: {"status", "detail", "elapsed_s"}})``: ``status`` is ``queued``,
``thinking``, ``retrying``, ``done`` or ``failed``; ``detail`` a short text for the DM's screen
(``rate limit, retry 2 in 5 s``); ``elapsed_s`` the seconds since this phase started waiting
(frozen when the player's job ended)."""


@dataclass
class FanoutResult:
    results: dict[str, dict]
    enqueued: list[str]
    reattached: list[str]


def run_jobs(redis, queue_name: str, requests: dict[str, dict], *, session_id: str, turn: int, phase: str,
             attempt: int, events=None, timeout: float = defaults.PHASE_TIMEOUT_S,
             on_progress: ProgressCallback | None = None) -> FanoutResult:
    """Run ``ask_player(request)`` for every player at once; return each player's result.

    ``requests`` maps player id to the job's JSON argument. Raises :class:`PhaseError` when a
    job fails or returns ``ok: False`` and :class:`PhaseTimeout` when the phase's time runs out.

    ``on_progress`` (see :data:`ProgressCallback`), when given, is called about every
    :data:`ttrpg.defaults.PROGRESS_INTERVAL_S` while waiting, once more when every player is
    done, and once with the failed player before :class:`PhaseError` is raised. It must be
    quick and must not raise (an exception propagates). Without it the wait is as before: one
    blocking read per job result, no polling.
    """
    from rq import Queue, Retry
    from rq.exceptions import DuplicateJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    queue = Queue(queue_name, connection=redis, serializer=JSONSerializer)
    order = list(requests)
    reused = _answers_of_earlier_attempts(redis, requests, session_id, turn, phase, attempt)
    if reused and events:
        for pid in reused:
            events.emit("job_reattached", f"{turn}:{phase}:{pid}:{attempt}", turn, phase=phase, player_id=pid,
                        attempt=attempt, job_id=reused[pid]["job_id"], status="finished in an earlier attempt")
    requests = {pid: r for pid, r in requests.items() if pid not in reused}
    ids = {pid: job_id(session_id, turn, phase, pid, attempt) for pid in requests}
    existing = Job.fetch_many(list(ids.values()), connection=redis, serializer=JSONSerializer)
    jobs: dict[str, Job] = {}
    enqueued, reattached = [], []
    for (pid, jid), job in zip(ids.items(), existing):
        if job is None:
            try:
                job = queue.enqueue(
                    ASK_PLAYER, requests[pid], job_id=jid, unique=True,
                    job_timeout=defaults.JOB_TIMEOUT_S, result_ttl=defaults.JOB_RESULT_TTL_S,
                    failure_ttl=defaults.JOB_FAILURE_TTL_S, retry=Retry(max=defaults.JOB_ABANDONED_RETRIES),
                    description=f"{phase} for {pid} (turn {turn}, attempt {attempt})",
                )
                enqueued.append(pid)
                if events:
                    events.emit("job_enqueued", f"{turn}:{phase}:{pid}:{attempt}", turn, phase=phase,
                                player_id=pid, attempt=attempt, job_id=jid, queue=queue_name)
            except DuplicateJobError:
                job = Job.fetch(jid, connection=redis, serializer=JSONSerializer)
                reattached.append(pid)
        else:
            reattached.append(pid)
        if pid in reattached and events:
            events.emit("job_reattached", f"{turn}:{phase}:{pid}:{attempt}", turn, phase=phase, player_id=pid,
                        attempt=attempt, job_id=jid, status=str(job.get_status(refresh=False) or ""))
        jobs[pid] = job
    progress = _Progress(redis, order, jobs, set(reused), on_progress) if on_progress else None
    results = _wait(redis, queue, jobs, phase, timeout, progress) if jobs else {}
    if progress is not None:
        progress.report(final=True)
    results.update({pid: r["result"] for pid, r in reused.items()})
    return FanoutResult({pid: results[pid] for pid in order}, enqueued, reattached + list(reused))


def _answers_of_earlier_attempts(redis, requests: dict, session_id: str, turn: int, phase: str,
                                 attempt: int) -> dict[str, dict]:
    """When a phase runs again after a failure, the players whose call succeeded in an earlier
    attempt keep that answer: only the calls that failed are made again."""
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    if attempt <= 1:
        return {}
    found: dict[str, dict] = {}
    for pid in requests:
        ids = [job_id(session_id, turn, phase, pid, a) for a in range(attempt - 1, 0, -1)]
        for job in Job.fetch_many(ids, connection=redis, serializer=JSONSerializer):
            if job is None or job.get_status(refresh=False) != JobStatus.FINISHED:
                continue
            value = job.return_value()
            if isinstance(value, dict) and value.get("ok"):
                found[pid] = {"job_id": job.id, "result": value}
                break
    return found


class _Progress:
    """Each player's job as the DM's screen shows it, read from Redis in one round trip."""

    def __init__(self, redis, order: list[str], jobs: dict, reused: set[str], callback: ProgressCallback):
        self.redis, self.order, self.jobs, self.callback = redis, order, jobs, callback
        self.started = time.monotonic()
        self.ended: dict[str, tuple[str, str, float]] = {pid: ("done", "answered in an earlier attempt", 0.0)
                                                         for pid in reused}
        self.next_at = self.started

    def end(self, pid: str, status: str, detail: str = "") -> None:
        self.ended.setdefault(pid, (status, detail, time.monotonic() - self.started))

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def report(self, final: bool = False) -> None:
        now = time.monotonic()
        self.next_at = now + defaults.PROGRESS_INTERVAL_S
        running = [pid for pid in self.order if pid in self.jobs and pid not in self.ended]
        states: dict[str, tuple] = {}
        if running and not final:
            with self.redis.pipeline(transaction=False) as pipe:
                for pid in running:
                    pipe.hmget(self.jobs[pid].key, "status", "meta")
                for pid, (status, meta) in zip(running, pipe.execute()):
                    states[pid] = (text_of(status), _meta(meta))
        snapshot: dict[str, dict] = {}
        for pid in self.order:
            if pid in self.ended:
                status, detail, elapsed = self.ended[pid]
            elif pid in states:
                status, detail = _status_of(*states[pid])
                elapsed = now - self.started
            else:
                continue
            snapshot[pid] = {"status": status, "detail": detail, "elapsed_s": round(elapsed, 2)}
        self.callback(snapshot)


def _meta(raw) -> dict:
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _status_of(rq_status: str, meta: dict) -> tuple[str, str]:
    """(status, detail) of a job that has not ended, from RQ's status and the worker's meta."""
    if rq_status == "started":
        state = meta.get("progress")
        detail = meta.get("detail")
        return ("retrying" if state == "retrying" else "thinking"), (str(detail)[:120] if detail else "")
    if rq_status == "scheduled":
        return "queued", "re-queued after its worker died"
    return "queued", "waiting for a worker"


def _wait(redis, queue, jobs: dict, phase: str, timeout: float, progress: _Progress | None = None) -> dict[str, dict]:
    from rq.job import JobStatus
    from rq.results import Result

    pending = dict(jobs)
    results: dict[str, dict] = {}
    cursors = {Result.get_key(job.id): "0-0" for job in pending.values()}
    key_to_pid = {Result.get_key(job.id): pid for pid, job in pending.items()}
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic() + defaults.REGISTRY_CLEANUP_INTERVAL_S
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if progress is not None:
                for pid in pending:
                    progress.end(pid, "failed", f"no answer within {timeout:.0f} s")
                progress.report(final=True)
            raise PhaseTimeout(f"{phase}: no answer from {', '.join(sorted(pending))} within {timeout:.0f} s "
                               "(are workers running? see `ttrpg workers`)", phase=phase,
                               player_id=sorted(pending)[0])
        if progress is None:
            block_ms = int(max(1, min(remaining, defaults.REGISTRY_CLEANUP_INTERVAL_S, 5.0)) * 1000)
        else:
            if progress.due():
                progress.report()
            wake = min(remaining, defaults.REGISTRY_CLEANUP_INTERVAL_S, defaults.PROGRESS_INTERVAL_S)
            block_ms = max(1, int(wake * 1000))
        reply = redis.xread({k: cursors[k] for k in cursors if key_to_pid[k] in pending}, block=block_ms)
        for key, entries in reply or []:
            key = text_of(key)
            cursors[key] = entries[-1][0]
            pid = key_to_pid[key]
            job = pending[pid]
            latest = job.latest_result()
            if latest is None:
                continue
            if latest.type == Result.Type.SUCCESSFUL:
                value = latest.return_value
                if not isinstance(value, dict) or not value.get("ok"):
                    reason = value.get("message") if isinstance(value, dict) else repr(value)
                    if progress is not None:
                        progress.end(pid, "failed", str(reason)[:120])
                        progress.report(final=True)
                    raise PhaseError(f"{phase}: {pid}'s model call failed: {reason}", phase=phase, player_id=pid)
                results[pid] = value
                del pending[pid]
                if progress is not None:
                    progress.end(pid, "done")
            elif latest.type in (Result.Type.FAILED, Result.Type.STOPPED):
                if job.get_status(refresh=True) == JobStatus.FAILED:
                    if progress is not None:
                        progress.end(pid, "failed", _last_line(latest.exc_string)[:120])
                        progress.report(final=True)
                    raise PhaseError(f"{phase}: {pid}'s job failed: {_last_line(latest.exc_string)}",
                                     phase=phase, player_id=pid)
            # RETRIED: the job was re-queued; keep waiting for its next result.
        if time.monotonic() >= next_sweep:
            sweep_abandoned(queue)
            next_sweep = time.monotonic() + defaults.REGISTRY_CLEANUP_INTERVAL_S
    return results


def sweep_abandoned(queue) -> None:
    """Re-queue (RQ ``Retry``) or fail the jobs of ``queue`` whose worker died under them.

    Jobs are read as :class:`ttrpg.jobs.allowlist.AllowListedJob`: RQ's default class would import and
    call the failure callback, and send the webhooks, named by any job left in the registry.
    """
    from rq.registry import StartedJobRegistry

    from ttrpg.jobs.allowlist import AllowListedJob

    StartedJobRegistry(queue=queue, job_class=AllowListedJob).cleanup()


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
