"""Starting a batch (one session per matrix cell, driver jobs enqueued) and cancelling one.

:func:`submit` checks everything first (parties, models, ids), then creates the sessions
(deterministic ids ``<batch>-c<condition>-r<replicate>``), records the batch, and enqueues
one durable driver job per group of :data:`~ttrpg.defaults.BATCH_SESSIONS_PER_DRIVER`
sessions on the drivers queue (``<TTRPG_QUEUE>-drivers``): deterministic job ids, RQ
``Retry``, a job timeout of hours. Serve that queue with ``ttrpg worker --queues
ttrpg-drivers`` on workers apart from the player workers: a driver job waits on player
jobs, so a worker serving both could end up holding every slot with drivers.
"""

from __future__ import annotations

import time
import uuid

from ttrpg import defaults
from ttrpg.batch import record
from ttrpg.batch.spec import OFFLINE, Matrix, session_id
from ttrpg.exceptions import ConfigError

DRIVE_SESSIONS = "ttrpg.jobs.functions.drive_sessions"


def new_batch_id() -> str:
    return time.strftime("b%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def _party(path: str, players: int | None) -> dict:
    from ttrpg.game.characters import default_party, load_party
    from ttrpg.session.play import select_players

    party = (default_party() if path == "default" else load_party(path)).to_state()
    return select_players(party, players)


def _llm(model: str, seed: int, latency_ms: int, faults: str, settings) -> dict:
    from ttrpg.llm.config import make_config
    from ttrpg.session.play import parse_faults

    offline = model == OFFLINE
    return dict(make_config(None if offline else model, settings=settings, offline=offline,
                            latency_ms=latency_ms if offline else 0, faults=parse_faults(faults) if offline else None,
                            seed=seed))


def plan(matrix: Matrix, settings, batch_id: str | None = None) -> dict:
    """Everything :func:`submit` will create, checked, without touching Redis."""
    from ttrpg.prompts.builders import PROMPT_VERSION

    batch_id = record.check_batch_id(batch_id or matrix.batch_id or new_batch_id())
    parties = {c.party: _party(c.party, matrix.players) for c in matrix.conditions}
    sessions: dict[str, dict] = {}
    order: list[str] = []
    for ri, seed in enumerate(matrix.seeds):  # replicate-major: early sessions cover every condition
        for ci, cond in enumerate(matrix.conditions):
            sid = session_id(batch_id, ci, ri)
            llm = _llm(cond.model, seed, cond.latency_ms, cond.faults, settings)
            dm_llm = None
            if cond.dm == "llm":
                dm_llm = _llm(cond.dm_model, seed, cond.latency_ms if cond.dm_model == OFFLINE else 0, "", settings)
            initial = {"session_id": sid, "campaign_id": sid, "seed": seed, "party": parties[cond.party], "llm": llm,
                       "max_turns": matrix.turns, "turn": 1, "history": [], "whispers": {}, "ended": False}
            sessions[sid] = {"condition": ci, "seed": seed, "replicate": ri, "initial": initial,
                             "dm": {"kind": cond.dm, "seed": seed, "llm": dm_llm, "scenario": None}}
            order.append(sid)
    n = matrix.sessions_per_driver
    groups = [order[i:i + n] for i in range(0, len(order), n)]
    for g, members in enumerate(groups):
        for sid in members:
            sessions[sid]["group"] = g
    return {"batch_id": batch_id, "sessions": sessions, "order": order, "groups": groups,
            "prompt_version_in_code": PROMPT_VERSION}


def submit(matrix: Matrix, settings=None, batch_id: str | None = None) -> dict:
    """Create the batch's sessions, record the batch, enqueue its driver jobs; returns a summary."""
    from rq import Retry
    from rq.exceptions import DuplicateJobError

    from ttrpg.backend.connection import get_redis
    from ttrpg.constants import BATCH_KEY
    from ttrpg.jobs.allowlist import job_queue
    from ttrpg.session import store
    from ttrpg.session.play import check_log_dir
    from ttrpg.settings import get_settings

    settings = settings or get_settings()
    check_log_dir(settings)
    p = plan(matrix, settings, batch_id)
    batch_id = p["batch_id"]
    redis = get_redis(settings)
    if redis.exists(BATCH_KEY.format(batch_id=batch_id)):
        raise ConfigError(f"Batch {batch_id!r} already exists.", hint=f"See `ttrpg batch status {batch_id}`, or "
                                                                       "choose another --batch id.")
    taken = [sid for sid in p["order"] if redis.exists(store.meta_key(sid))]
    if taken:
        raise ConfigError(f"Session {taken[0]!r} already exists.", hint="Choose another --batch id.")
    players_queue = settings.queue
    drivers_queue = record.drivers_queue_of(players_queue)
    conditions = [{"index": i, "label": c.label, **c.__dict__} for i, c in enumerate(matrix.conditions)]
    record.save_batch(redis, batch_id, {
        "batch_id": batch_id, "spec": matrix.to_json(), "conditions": conditions, "sessions": p["order"],
        "groups": p["groups"], "players_queue": players_queue, "drivers_queue": drivers_queue,
        "created_at": time.time(), "cancelled": "0", "prompt_version_in_code": p["prompt_version_in_code"],
        "prompt_versions_note": "labels only: the project has one set of prompts"})
    for sid in p["order"]:
        s = p["sessions"][sid]
        init = s["initial"]
        s["initial"] = store.create(redis, store.SessionSpec(session_id=sid, campaign_id=sid, party=init["party"],
                                                             llm=init["llm"], seed=init["seed"],
                                                             max_turns=init["max_turns"]))
        store.touch(redis, sid, batch_id=batch_id)
    record.save_sessions(redis, batch_id, p["sessions"])
    queue = job_queue(drivers_queue, redis)
    jobs = []
    for g, members in enumerate(p["groups"]):
        jid = record.driver_job_id(batch_id, g)
        record.set_group(redis, batch_id, g, job_id=jid, status="queued", sessions=len(members), runs=0)
        try:
            queue.enqueue(DRIVE_SESSIONS, {"batch_id": batch_id, "group": g, "session_ids": members}, job_id=jid,
                          unique=True, job_timeout=defaults.BATCH_DRIVER_JOB_TIMEOUT_S,
                          result_ttl=defaults.JOB_RESULT_TTL_S, failure_ttl=defaults.JOB_FAILURE_TTL_S,
                          retry=Retry(max=defaults.BATCH_DRIVER_RETRIES),
                          description=f"batch {batch_id}: drive {len(members)} sessions (group {g})")
        except DuplicateJobError:
            pass
        jobs.append(jid)
    return {"batch_id": batch_id, "sessions": len(p["order"]), "conditions": len(conditions),
            "seeds": matrix.seeds, "driver_jobs": jobs, "players_queue": players_queue, "drivers_queue": drivers_queue,
            "prompt_version_in_code": p["prompt_version_in_code"]}


def cancel(redis, batch_id: str) -> dict:
    """Cancel a batch: queued driver jobs removed, running drivers stop their sessions at the
    next phase boundary (they mark them paused: resumable). Returns what was done."""
    from rq.exceptions import NoSuchJobError
    from rq.job import JobStatus

    from ttrpg.constants import BATCH_KEY
    from ttrpg.jobs.allowlist import AllowListedJob, job_queue
    from ttrpg.session.store import load_meta

    batch = record.load_batch(redis, batch_id)
    redis.hset(BATCH_KEY.format(batch_id=batch_id), mapping={"cancelled": "1", "cancelled_at": str(time.time())})
    queue = job_queue(batch["drivers_queue"], redis)
    removed, running = [], []
    for g, info in sorted(record.groups(redis, batch_id).items()):
        try:
            job = AllowListedJob.fetch(info.get("job_id") or record.driver_job_id(batch_id, g), connection=redis,
                                       serializer=queue.serializer)
        except NoSuchJobError:
            continue
        status = job.get_status(refresh=True)
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            job.cancel()
            record.set_group(redis, batch_id, g, status="cancelled")
            removed.append(job.id)
        elif status == JobStatus.STARTED:
            running.append(job.id)
    waiting = 0
    for sid in batch["sessions"]:
        try:
            status = load_meta(redis, sid).get("status")
        except Exception:
            continue
        if status == "new":
            record.set_outcome(redis, batch_id, sid, "cancelled")
            waiting += 1
    return {"batch_id": batch_id, "removed_jobs": removed, "running_jobs": running, "sessions_not_started": waiting}
