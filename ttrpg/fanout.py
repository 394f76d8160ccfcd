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
SIGKILLed worker is re-queued (RQ ``Retry``) instead of stalling the turn.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from ttrpg import defaults
from ttrpg.exceptions import PhaseError, PhaseTimeout

ASK_PLAYER = "ttrpg.jobs.ask_player"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def job_id(session_id: str, turn: int, phase: str, player_id: str, attempt: int) -> str:
    """``<session>_t<turn>_<phase>_<player>_a<attempt>``: RQ ids allow only ``[A-Za-z0-9_-]``."""
    parts = [session_id, f"t{turn}", phase, player_id, f"a{attempt}"]
    return "_".join(_UNSAFE.sub("-", str(p)) for p in parts)


@dataclass
class FanoutResult:
    results: dict[str, dict]
    enqueued: list[str]
    reattached: list[str]


def run_jobs(redis, queue_name: str, requests: dict[str, dict], *, session_id: str, turn: int, phase: str,
             attempt: int, events=None, timeout: float = defaults.PHASE_TIMEOUT_S) -> FanoutResult:
    """Run ``ask_player(request)`` for every player at once; return each player's result.

    ``requests`` maps player id to the job's JSON argument. Raises :class:`PhaseError` when a
    job fails or returns ``ok: False`` and :class:`PhaseTimeout` when the phase's time runs out.
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
    results = _wait(redis, queue, jobs, phase, timeout) if jobs else {}
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


def _wait(redis, queue, jobs: dict, phase: str, timeout: float) -> dict[str, dict]:
    from rq.job import JobStatus
    from rq.registry import StartedJobRegistry
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
            raise PhaseTimeout(f"{phase}: no answer from {', '.join(sorted(pending))} within {timeout:.0f} s "
                               "(are workers running? see `ttrpg workers`)", phase=phase,
                               player_id=sorted(pending)[0])
        block_ms = int(max(1, min(remaining, defaults.REGISTRY_CLEANUP_INTERVAL_S, 5.0)) * 1000)
        reply = redis.xread({k: cursors[k] for k in cursors if key_to_pid[k] in pending}, block=block_ms)
        for key, entries in reply or []:
            key = key.decode() if isinstance(key, bytes) else key
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
                    raise PhaseError(f"{phase}: {pid}'s model call failed: {reason}", phase=phase, player_id=pid)
                results[pid] = value
                del pending[pid]
            elif latest.type in (Result.Type.FAILED, Result.Type.STOPPED):
                if job.get_status(refresh=True) == JobStatus.FAILED:
                    raise PhaseError(f"{phase}: {pid}'s job failed: {_last_line(latest.exc_string)}",
                                     phase=phase, player_id=pid)
            # RETRIED: the job was re-queued; keep waiting for its next result.
        if time.monotonic() >= next_sweep:
            StartedJobRegistry(queue=queue).cleanup()
            next_sweep = time.monotonic() + defaults.REGISTRY_CLEANUP_INTERVAL_S
    return results


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
