"""A session's record in Redis: ids, the metadata hash, the index of sessions, creating one,
and reading where it stands (``ttrpg sessions``, ``ttrpg status``).

A session is one LangGraph thread (thread id = session id) plus a metadata hash in Redis
(campaign, status, turn, phase, DM script, model, failure counters, a pending intervention).
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from dataclasses import dataclass

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from ttrpg.constants import CAMPAIGN_SESSIONS, SESSION_KEY, SESSION_LOCK, SESSIONS_INDEX
from ttrpg.exceptions import ConfigError, UnknownSession
from ttrpg.session.lock import dead_here, parse_holder
from ttrpg.settings import get_settings
from ttrpg.turn import questions
from ttrpg.turn.checkpoint import make_saver
from ttrpg.turn.graph import compile_graph
from ttrpg.vocabulary import phase_label, phase_of, question_words

#: Session metadata field holding an intervention the DM has not answered yet (JSON).
PENDING_INTERVENTION = "pending_intervention"

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def check_session_id(session_id: str, what: str = "Session id") -> str:
    """Ids travel into Redis keys, RQ job ids, file names and terminals: a small alphabet only."""
    if not isinstance(session_id, str) or not SESSION_ID_RE.match(session_id):
        shown = repr(session_id if not isinstance(session_id, str) or len(session_id) <= 70 else session_id[:70] + "…")
        raise ConfigError(f"{what} {shown} is not valid.",
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


def driver_of(redis, sid: str) -> dict | None:
    """The live driver holding the session's lock: ``{"host", "pid"}``, or None.

    A lock whose holder is a dead process of this host (kill -9) does not count: the
    session is interrupted and ``resume`` takes the lock over at once.
    """
    holder = redis.get(SESSION_LOCK.format(session_id=sid))
    if not holder:
        return None
    host, pid = parse_holder(holder)
    if pid is None or dead_here(host, pid):
        return None
    return {"host": host, "pid": pid}


def _summary(redis, sid: str, meta: dict) -> dict:
    status = meta.get("status", "paused")
    driver = driver_of(redis, sid)
    if status == "active" and driver is None:
        status = "interrupted"  # its driver died without releasing the lock: resumable
    phase = meta.get("phase", "")
    return {"session_id": sid, "campaign_id": meta.get("campaign_id"), "turn": _int(meta.get("turn"), 1),
            "phase": phase, "phase_label": phase_label(phase), "status": status,
            "players": _int(meta.get("players"), 0), "model": meta.get("model", ""),
            "updated_at": _float(meta.get("updated_at")), "driver": driver}


def _int(raw, default: int) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


def _float(raw) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0


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
    check_session_id(spec.campaign_id, "Campaign id")
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


def session_status(redis, session_id: str, queue_name: str | None = None) -> dict:
    """Where a session stands, in words: status, the live driver, the phase, what the DM is
    being asked, and the session's in-flight jobs. Plain JSON (``ttrpg status --json``)."""
    meta = load_meta(redis, session_id)
    info = _summary(redis, session_id, meta)
    snap = compile_graph(make_saver(redis)).get_state({"configurable": {"thread_id": session_id}})
    pending_node = snap.next[0] if snap.next else None
    info["pending_phase"] = phase_of(pending_node) if pending_node else None
    info["pending_phase_label"] = phase_label(pending_node) if pending_node else None
    question = snap.interrupts[0].value if snap.interrupts else None
    intervention = None
    raw = meta.get(PENDING_INTERVENTION)
    if raw:
        try:
            intervention = json.loads(raw)
        except ValueError:
            intervention = None
    if isinstance(intervention, dict) and intervention.get("phase"):
        question = {"kind": "intervention", **intervention}
        info["pending_phase"] = intervention["phase"]
        info["pending_phase_label"] = phase_label(intervention["phase"])
    info["pending_question"] = question
    info["asking"] = describe_question(question, (snap.values or {})) if question else None
    queue = Queue(queue_name or get_settings().queue, connection=redis, serializer=JSONSerializer)
    ids = [jid for jid in queue.get_job_ids() + queue.started_job_registry.get_job_ids()
           if jid.startswith(session_id + "_")]
    info["jobs"] = [{"id": job.id, "status": getattr(job.get_status(), "value", str(job.get_status()))}
                    for job in Job.fetch_many(ids, connection=redis, serializer=JSONSerializer) if job]
    return info


def describe_question(question: dict, values: dict) -> str:
    """What the DM is being asked, in one sentence (``ttrpg status``)."""
    kind = question.get("kind", "")
    names = questions.party_names(values)
    turn = question.get("turn", values.get("turn"))
    who = question.get("player_id")
    whose = f" for {names.get(who, who)} ({who})" if who else ""
    if kind == "intervention":
        return (f"Turn {turn}: phase {phase_label(question.get('phase'))} failed {question.get('failures')} times "
                f"({question.get('reason', '')}); the DM is asked what to do: retry, skip a player, type the "
                "player's line, or end the turn.")
    return f"Turn {turn}: the DM is asked {question_words(kind)}{whose}."
