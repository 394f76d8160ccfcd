"""Sessions: create, drive, resume, list. The driver loop lives here.

A session is one LangGraph thread (thread id = session id) plus a metadata hash in Redis
(campaign, status, DM script, model). The driver runs the graph until it needs the DM,
asks the DM (keyboard or script), resumes the graph with the answer, and so on.

When a phase raises, the graph is left at its last checkpoint, the one before the failed
phase: that is the rollback. The driver records the failure and runs the phase again; a
phase that failed twice asks the DM to intervene before it runs again (see
:func:`ttrpg.phases.phase`).

Only one process drives a session at a time: :class:`SessionLock` (``SET NX PX``, renewed
by a thread, released on exit, expiring after a crash).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from ttrpg import defaults
from ttrpg.constants import CAMPAIGN_SESSIONS, SESSION_KEY, SESSION_LOCK, SESSIONS_INDEX
from ttrpg.exceptions import ConfigError, PhaseError, RedisUnavailable, UnknownSession
from ttrpg.lock import SessionLock  # noqa: F401  (re-exported: callers import it from here)
from ttrpg.process import pid_alive

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def check_session_id(session_id: str) -> str:
    if not SESSION_ID_RE.match(session_id or ""):
        raise ConfigError(f"Session id {session_id!r} is not valid.",
                          hint="Use letters, digits, '-' and '_' (at most 64), starting with a letter or digit.")
    return session_id


# --- metadata -------------------------------------------------------------------------------------

def meta_key(session_id: str) -> str:
    return SESSION_KEY.format(session_id=session_id)


def load_meta(redis, session_id: str) -> dict:
    raw = redis.hgetall(meta_key(session_id))
    if not raw:
        raise UnknownSession(f"No session {session_id!r} in this Redis.")
    return {k.decode(): v.decode() for k, v in raw.items()}


def touch(redis, session_id: str, **fields) -> None:
    now = time.time()
    fields = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in fields.items()}
    fields["updated_at"] = str(now)
    pipe = redis.pipeline()
    pipe.hset(meta_key(session_id), mapping=fields)
    pipe.zadd(SESSIONS_INDEX, {session_id: now})
    pipe.execute()


def latest_session(redis) -> str:
    ids = redis.zrevrange(SESSIONS_INDEX, 0, 0)
    if not ids:
        raise UnknownSession("There are no sessions yet.", hint="Start one with `ttrpg play` or `ttrpg demo`.")
    return ids[0].decode()


def list_sessions(redis, limit: int = 50) -> list[dict]:
    rows = []
    for sid in redis.zrevrange(SESSIONS_INDEX, 0, limit - 1):
        sid = sid.decode()
        try:
            meta = load_meta(redis, sid)
        except UnknownSession:
            continue
        rows.append(_summary(redis, sid, meta))
    return rows


def _summary(redis, sid: str, meta: dict) -> dict:
    status = meta.get("status", "paused")
    if status == "active" and not redis.exists(SESSION_LOCK.format(session_id=sid)):
        status = "interrupted"  # its driver died without releasing the lock: resumable
    return {"session_id": sid, "campaign_id": meta.get("campaign_id"), "turn": int(meta.get("turn", 1)),
            "phase": meta.get("phase", ""), "status": status, "players": int(meta.get("players", 0)),
            "model": meta.get("model", ""), "updated_at": float(meta.get("updated_at", 0))}


# --- creating -------------------------------------------------------------------------------------

@dataclass
class SessionSpec:
    session_id: str
    campaign_id: str
    party: dict
    llm: dict
    seed: int = 1
    max_turns: int | None = None
    dm_script: dict | None = None


def create(redis, spec: SessionSpec) -> dict:
    """Record a new session's metadata and return its initial graph state."""
    check_session_id(spec.session_id)
    if redis.exists(meta_key(spec.session_id)):
        raise ConfigError(f"Session {spec.session_id!r} already exists.",
                          hint=f"Continue it with `ttrpg resume {spec.session_id}`, or choose another --session.")
    touch(redis, spec.session_id, campaign_id=spec.campaign_id, status="new", turn=1, phase="dm_narration",
          players=len(spec.party["players"]), model=spec.llm.get("model", ""), offline=int(spec.llm.get("offline", False)),
          seed=spec.seed, created_at=time.time(), created_host=socket.gethostname(),
          dm_script=spec.dm_script or "", max_turns=spec.max_turns or 0)
    redis.sadd(CAMPAIGN_SESSIONS.format(campaign_id=spec.campaign_id), spec.session_id)
    return {"session_id": spec.session_id, "campaign_id": spec.campaign_id, "seed": spec.seed,
            "party": spec.party, "llm": spec.llm, "max_turns": spec.max_turns, "turn": 1, "history": [],
            "whispers": {}, "ended": False}


def script_of(meta: dict) -> dict | None:
    raw = meta.get("dm_script") or ""
    return json.loads(raw) if raw else None


# --- driving --------------------------------------------------------------------------------------

class Driver:
    """Runs one session's graph in this process until it ends or the DM stops."""

    def __init__(self, redis, session_id: str, dm, ui, settings, *, queue: str | None = None):
        from ttrpg.events import EventLog, Mirror
        from ttrpg.graph import compile_graph, make_saver
        from ttrpg.phases import TurnContext

        self.redis, self.session_id, self.dm, self.ui, self.settings = redis, session_id, dm, ui, settings
        self.meta = load_meta(redis, session_id)
        self.events = EventLog(redis, session_id, self.meta.get("campaign_id"))
        self.mirror = Mirror(redis, session_id, settings.log_dir)
        self.saver = make_saver(redis)
        self.graph = compile_graph(self.saver)
        self.config = {"configurable": {"thread_id": session_id}, "recursion_limit": 200}
        self.ctx = TurnContext(redis=redis, queue=queue or settings.queue, events=self.events)

    def state(self):
        return self.graph.get_state(self.config)

    def run(self, initial: dict | None = None) -> dict:
        """Drive the session to its end (or until KeyboardInterrupt); returns the final state."""
        from langgraph.types import Command
        import redis as redis_lib

        snap = self.state()
        if initial is not None and not snap.values:
            party = initial["party"]
            characters = {p["id"]: {"name": p["character"]["name"], "style": p["character"].get("style"),
                                    "role": p["character"].get("role"), "number": p["character"].get("number"),
                                    "player": (p.get("player") or {}).get("name")} for p in party["players"]}
            self.events.emit("session_started", "start", 1, players=[p["id"] for p in party["players"]],
                             characters=characters, ship=party.get("ship"),
                             model=initial["llm"].get("model"), offline=bool(initial["llm"].get("offline")),
                             seed=initial["seed"], max_turns=initial.get("max_turns"))
            inp = initial
        else:
            resumes = self.redis.hincrby(meta_key(self.session_id), "resumes", 1)
            turn = (snap.values or {}).get("turn", 1)
            self.events.emit("session_resumed", f"resume:{resumes}", turn, pending=list(snap.next),
                             model=(snap.values or {}).get("llm", {}).get("model"))
            inp = None
        touch(self.redis, self.session_id, status="active", driver=f"{socket.gethostname()}:{os.getpid()}")
        self.ui.session_header(self, initial or snap.values or {})
        try:
            while True:
                try:
                    for update in self.graph.stream(inp, self.config, context=self.ctx, stream_mode="updates",
                                                    durability="sync"):
                        self._after_step(update)
                except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
                    # Redis restarting (or loading its AOF): wait for it, then go on from the last
                    # checkpoint. The interrupted phase runs again; its jobs and events are found by id.
                    self._wait_for_redis(exc)
                    inp = None
                    continue
                except Exception as exc:  # a failed phase: roll back, retry, then ask the DM
                    self._phase_failed(exc)
                    inp = None
                    continue
                snap = self.state()
                if snap.interrupts:
                    question = snap.interrupts[0].value
                    self.ui.question(question, snap.values)
                    inp = Command(resume=self.dm.ask(question, snap.values))
                    continue
                if not snap.next:
                    break
                inp = None
        finally:
            self.mirror.sync()
        final = self.state().values
        from ttrpg import memory

        memory.store_session_end(self.ctx, final)
        self.events.emit("session_ended", "end", final.get("turn"), turns_played=final.get("turn", 1) - 1)
        self.mirror.sync()
        touch(self.redis, self.session_id, status="completed", phase="ended")
        self.ui.session_end(self, final)
        return final

    def _wait_for_redis(self, exc: Exception) -> None:
        import redis as redis_lib

        self.ui.failure("redis", 0, f"Redis unavailable ({exc}); waiting for it")
        deadline = time.monotonic() + defaults.REDIS_RECONNECT_S
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                if self.redis.ping():
                    return
            except (redis_lib.ConnectionError, redis_lib.TimeoutError):
                continue
        raise RedisUnavailable(f"Lost the connection to Redis for {defaults.REDIS_RECONNECT_S:.0f} s: {exc}. "
                               f"The session is saved up to its last phase; run `ttrpg resume {self.session_id}` "
                               "when Redis is back.")

    def _after_step(self, update: dict) -> None:
        for node, values in update.items():
            if node.startswith("__"):
                continue
            state = self.state().values
            turn = state.get("turn")
            touch(self.redis, self.session_id, turn=turn, phase=node)
            self.ui.step(node, values or {}, state)
            if node == "memory_storage":
                self.saver.prune([self.session_id], keep_last=defaults.CHECKPOINTS_KEPT)
            self.mirror.sync()
            _drill_kill(node, turn, self.settings.kill_after)

    def _phase_failed(self, exc: Exception) -> None:
        snap = self.state()
        phase = snap.next[0] if snap.next else "unknown"
        turn = (snap.values or {}).get("turn", 1)
        key = meta_key(self.session_id)
        count = self.redis.hincrby(key, f"fail:{turn}:{phase}", 1)
        reason = str(exc) or type(exc).__name__
        player = getattr(exc, "player_id", None)
        self.redis.hset(key, f"failinfo:{turn}:{phase}", json.dumps({"reason": reason, "player_id": player}))
        self.events.emit("phase_failed", f"{turn}:{phase}:{count}", turn, phase=phase, attempt=count, reason=reason,
                         error_class=type(exc).__name__, player_id=player)
        if count == 1:
            checkpoint = snap.config["configurable"].get("checkpoint_id")
            self.events.emit("rollback", f"{turn}:{phase}:{count}", turn, phase=phase, to_checkpoint=checkpoint,
                             reason=reason)
        self.ui.failure(phase, count, reason)
        if count >= defaults.PHASE_MAX_FAILURES:
            raise PhaseError(f"Phase {phase} of turn {turn} failed {count} times; last error: {reason}", phase=phase,
                             player_id=player)


def _drill_kill(node: str, turn: int, target: str | None) -> None:
    """Fault drills (``ttrpg drill``, crash tests): ``TTRPG_KILL_AFTER=<phase>@<turn>`` makes this
    process SIGKILL itself right after that phase's checkpoint, a real crash at a known point."""
    if target and target == f"{node}@{turn}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def workers_for(settings, n: int, worker_class: str | None = None):
    """Start ``n`` local workers unless a live worker already serves the queue."""
    from ttrpg import worker

    live = worker.live_workers([settings.queue], settings)
    if live or n <= 0:
        yield 0
        return
    with worker.local_workers(n, [settings.queue], worker_class or "warm", settings):
        yield n


def session_status(redis, session_id: str) -> dict:
    """Pending phase, pending DM question and the session's in-flight jobs."""
    from rq import Queue
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from ttrpg.graph import compile_graph, make_saver
    from ttrpg.settings import get_settings

    meta = load_meta(redis, session_id)
    info = _summary(redis, session_id, meta)
    snap = compile_graph(make_saver(redis)).get_state({"configurable": {"thread_id": session_id}})
    info["pending_phase"] = snap.next[0] if snap.next else None
    info["pending_question"] = snap.interrupts[0].value if snap.interrupts else None
    queue = Queue(get_settings().queue, connection=redis, serializer=JSONSerializer)
    ids = [jid for jid in queue.get_job_ids() + queue.started_job_registry.get_job_ids()
           if jid.startswith(session_id + "_")]
    info["jobs"] = [{"id": job.id, "status": str(job.get_status())}
                    for job in Job.fetch_many(ids, connection=redis, serializer=JSONSerializer) if job]
    return info
