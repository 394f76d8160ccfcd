"""A batch's record in Redis: the batch hash, its sessions, its driver groups, what became of
sessions a driver gave up on, and the cancel flag. Every value is JSON (data, never code).
"""

from __future__ import annotations

import json
import time

from ttrpg.batch.spec import BATCH_ID_RE
from ttrpg.constants import (
    BATCH_DRIVER_ALIVE,
    BATCH_DRIVERS,
    BATCH_KEY,
    BATCH_OUTCOMES,
    BATCH_SESSIONS,
    BATCHES_INDEX,
    DRIVERS_QUEUE_SUFFIX,
)
from ttrpg.exceptions import ConfigError


def check_batch_id(batch_id: str) -> str:
    if not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id):
        raise ConfigError(f"Batch id {str(batch_id)[:60]!r} is not valid.",
                          hint="Use letters, digits, '-' and '_' (at most 40), starting with a letter or digit.")
    return batch_id


def drivers_queue_of(player_queue: str) -> str:
    """The drivers' queue that goes with a player queue: ``ttrpg`` -> ``ttrpg-drivers``."""
    return player_queue.split(",")[0].strip() + DRIVERS_QUEUE_SUFFIX


def driver_job_id(batch_id: str, group: int) -> str:
    return f"{batch_id}_drive_g{group:03d}"


def alive_key(batch_id: str, group: int) -> str:
    return BATCH_DRIVER_ALIVE.format(batch_id=batch_id, group=f"g{group}")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _json(raw, default=None):
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def load_batch(redis, batch_id: str) -> dict:
    """The batch hash, JSON fields decoded; ConfigError (exit 2) for an unknown batch."""
    raw = redis.hgetall(BATCH_KEY.format(batch_id=check_batch_id(batch_id)))
    if not raw:
        raise ConfigError(f"No batch {batch_id!r} in this Redis.", hint="`ttrpg batch status` lists nothing without "
                          "an id; start one with `ttrpg batch run`.")
    out = {_text(k): _text(v) for k, v in raw.items()}
    for key in ("spec", "conditions", "sessions", "groups"):
        out[key] = _json(out.get(key), [] if key != "spec" else {})
    out["cancelled"] = out.get("cancelled") == "1"
    for key in ("created_at", "started_at", "cancelled_at"):
        out[key] = float(out[key]) if out.get(key) else None
    return out


def save_batch(redis, batch_id: str, fields: dict) -> None:
    values = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in fields.items()}
    pipe = redis.pipeline()
    pipe.hset(BATCH_KEY.format(batch_id=batch_id), mapping=values)
    pipe.zadd(BATCHES_INDEX, {batch_id: float(fields.get("created_at") or time.time())}, nx=True)
    pipe.execute()


def mark_started(redis, batch_id: str) -> None:
    """The batch's clock starts when its first driver starts (turns per minute count from there)."""
    redis.hsetnx(BATCH_KEY.format(batch_id=batch_id), "started_at", str(time.time()))


def is_cancelled(redis, batch_id: str) -> bool:
    return redis.hget(BATCH_KEY.format(batch_id=batch_id), "cancelled") == b"1"


def session_records(redis, batch_id: str) -> dict[str, dict]:
    raw = redis.hgetall(BATCH_SESSIONS.format(batch_id=batch_id))
    return {_text(k): _json(v, {}) for k, v in raw.items()}


def session_record(redis, batch_id: str, sid: str) -> dict | None:
    return _json(redis.hget(BATCH_SESSIONS.format(batch_id=batch_id), sid))


def save_sessions(redis, batch_id: str, records: dict[str, dict]) -> None:
    if records:
        redis.hset(BATCH_SESSIONS.format(batch_id=batch_id), mapping={k: json.dumps(v) for k, v in records.items()})


def groups(redis, batch_id: str) -> dict[int, dict]:
    raw = redis.hgetall(BATCH_DRIVERS.format(batch_id=batch_id))
    out: dict[int, dict] = {}
    for k, v in raw.items():
        name = _text(k)
        if name.startswith("g") and name[1:].isdigit():
            out[int(name[1:])] = _json(v, {})
    return out


def set_group(redis, batch_id: str, group: int, **fields) -> dict:
    """Merge ``fields`` into a group's record (its driver is the only writer while it runs)."""
    key = BATCH_DRIVERS.format(batch_id=batch_id)
    current = _json(redis.hget(key, f"g{group}"), {}) or {}
    current.update(fields)
    redis.hset(key, f"g{group}", json.dumps(current))
    return current


def outcomes(redis, batch_id: str) -> dict[str, dict]:
    raw = redis.hgetall(BATCH_OUTCOMES.format(batch_id=batch_id))
    return {_text(k): _json(v, {}) for k, v in raw.items()}


def set_outcome(redis, batch_id: str, sid: str, status: str, error: str = "") -> None:
    redis.hset(BATCH_OUTCOMES.format(batch_id=batch_id), sid,
               json.dumps({"status": status, "error": error[:500], "at": time.time()}))


def clear_outcome(redis, batch_id: str, sid: str) -> None:
    redis.hdel(BATCH_OUTCOMES.format(batch_id=batch_id), sid)


def list_batches(redis, limit: int = 50) -> list[str]:
    return [_text(b) for b in redis.zrevrange(BATCHES_INDEX, 0, limit - 1)]
