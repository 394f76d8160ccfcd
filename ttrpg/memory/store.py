"""The memory store: our RediSearch index over memory documents, the campaign clock, raw access.

A memory is one JSON document (``JSON.SET``) under ``ttrpg:memory:<campaign>:<id>``::

    {"id": "s1:3:narration:party", "campaign_id": "c1", "scope": "party", "pid": null,
     "text": "Galvin, the dock master of Port Kell, waves you in.", "entities": ["Galvin", "Port Kell"],
     "entity_keys": ["galvin", "port kell"], "turn": 3, "cturn": 3, "session_id": "s1",
     "source": "dm", "kind": "narration", "confidence": 1.0, "created_at": 1795000000.0,
     "status": "active", "superseded_by": null, "supersedes": []}

**Scopes.** ``party`` (everyone at the table knows it), ``player:<pid>`` (what one AI's
*player* layer knows: its intents, out-of-character plans) and ``character:<pid>`` (what one
AI's *character* knows: what it did and how it reacted).

**Index.** :data:`ttrpg.constants.MEMORY_INDEX` (``FT.CREATE ... ON JSON PREFIX 1
ttrpg:memory:``) over text (TEXT), entities / campaign / scope / source / status / kind /
session (TAG) and turn / cturn / created_at (NUMERIC). LangGraph's RedisStore is not used
(it has no full-text search without embeddings, and applies filters after LIMIT).

**Campaign clock.** Sessions restart at turn 1, so each session gets an offset (the
campaign's latest clock value when the session first stores or recalls) and
``cturn = offset + turn``: memory age counts turns across sessions.
"""

from __future__ import annotations

import json
import re
import time
import weakref
from typing import Any

import redis as redis_lib

from ttrpg import defaults
from ttrpg.constants import MEMORY_CLOCK, MEMORY_ENTITIES, MEMORY_INDEX, MEMORY_KEY, MEMORY_PREFIX
from ttrpg.exceptions import ConfigError
from ttrpg.memory.text import entity_key

SOURCES = ("dm", "player", "character")
SUMMARY_KINDS = {"summary", "scene_end", "session_end"}
_SCOPE_RE = re.compile(r"^(party|(player|character):[A-Za-z0-9_.\-]+)$")


class MemoryInputError(ConfigError, ValueError):
    """A scope, source or confidence that memory cannot accept."""

    hint = "Scopes are party, player:<pid> or character:<pid>; sources are dm, player or character."


_ready: "weakref.WeakSet" = weakref.WeakSet()  # connection pools known to have the index

_CLOCK = """
local off = redis.call('HGET', KEYS[1], 's:' .. ARGV[1])
if not off then
  off = redis.call('HGET', KEYS[1], 'max') or '0'
  redis.call('HSET', KEYS[1], 's:' .. ARGV[1], off)
end
local c = tonumber(off) + tonumber(ARGV[2])
if c > tonumber(redis.call('HGET', KEYS[1], 'max') or '0') then redis.call('HSET', KEYS[1], 'max', c) end
return c
"""


def index_schema() -> list[str]:
    return [
        "$.text", "AS", "text", "TEXT",
        "$.entity_keys[*]", "AS", "entities", "TAG",
        "$.campaign_id", "AS", "campaign_id", "TAG", "CASESENSITIVE",
        "$.scope", "AS", "scope", "TAG", "CASESENSITIVE",
        "$.source", "AS", "source", "TAG",
        "$.status", "AS", "status", "TAG",
        "$.kind", "AS", "kind", "TAG",
        "$.session_id", "AS", "session_id", "TAG", "CASESENSITIVE",
        "$.turn", "AS", "turn", "NUMERIC", "SORTABLE",
        "$.cturn", "AS", "cturn", "NUMERIC", "SORTABLE",
        "$.created_at", "AS", "created_at", "NUMERIC", "SORTABLE",
    ]


def ensure_index(redis, wait_s: float = defaults.MEMORY_INDEX_WAIT_S) -> None:
    """Create the memory index unless it exists; wait while the server (re)builds it.

    Idempotent and cheap after the first call per connection pool. After a restart RediSearch
    re-indexes existing documents in the background: queries wait for that (up to ``wait_s``)
    so a fresh process does not see half the memories.
    """
    pool = redis.connection_pool
    if pool in _ready:
        return
    try:
        redis.execute_command("FT.CREATE", MEMORY_INDEX, "ON", "JSON", "PREFIX", "1", MEMORY_PREFIX,
                              "SCHEMA", *index_schema())
    except redis_lib.ResponseError as exc:
        if "already exists" not in str(exc).lower():
            raise
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        info = _info(redis)
        if not int(float(_s(info.get("indexing", 0)) or 0)) and float(_s(info.get("percent_indexed", 1)) or 1) >= 1:
            break
        time.sleep(0.05)
    _ready.add(pool)


def _info(redis) -> dict:
    raw = redis.execute_command("FT.INFO", MEMORY_INDEX)
    if isinstance(raw, dict):
        return {_s(k): v for k, v in raw.items()}
    return {_s(raw[i]): raw[i + 1] for i in range(0, len(raw) - 1, 2)}


def campaign_turn(redis, campaign_id: str, session_id: str, turn: int) -> int:
    """The campaign clock value of ``turn`` of ``session_id`` (see the module docstring)."""
    return int(redis.eval(_CLOCK, 1, MEMORY_CLOCK.format(campaign_id=campaign_id), session_id, int(turn)))


def campaign_now(redis, campaign_id: str) -> int:
    """The latest campaign clock value (0 for a campaign with no memories)."""
    raw = redis.hget(MEMORY_CLOCK.format(campaign_id=campaign_id), "max")
    return int(float(raw)) if raw else 0


def search(redis, query: str, *args) -> tuple[int, list[tuple[str, float, dict]]]:
    """``FT.SEARCH`` on the memory index; ``(total, [(key, score, doc)])``, RESP2 or RESP3."""
    ensure_index(redis)
    cmd = ("FT.SEARCH", MEMORY_INDEX, query, "WITHSCORES", *args, "DIALECT", "2")
    try:
        raw = redis.execute_command(*cmd)
    except redis_lib.ResponseError as exc:
        if "no such index" not in str(exc).lower() and "unknown index" not in str(exc).lower():
            raise
        _ready.discard(redis.connection_pool)  # dropped (e.g. FLUSHALL): create it again
        ensure_index(redis)
        raw = redis.execute_command(*cmd)
    rows = []
    if isinstance(raw, dict):
        raw = {_s(k): v for k, v in raw.items()}
        for item in raw.get("results") or []:
            item = {_s(k): v for k, v in item.items()}
            attrs = {_s(k): v for k, v in (item.get("extra_attributes") or {}).items()}
            rows.append((_s(item["id"]), float(item.get("score") or 0), _doc(attrs.get("$"))))
        return int(raw.get("total_results") or 0), rows
    total = int(raw[0])
    for i in range(1, len(raw), 3):
        fields = raw[i + 2] or []
        attrs = {_s(fields[j]): fields[j + 1] for j in range(0, len(fields) - 1, 2)}
        rows.append((_s(raw[i]), float(_s(raw[i + 1]) or 0), _doc(attrs.get("$"))))
    return total, rows


def _doc(raw) -> dict:
    if raw is None:
        return {}
    data = json.loads(_s(raw))
    return data[0] if isinstance(data, list) and data else data


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else ("" if v is None else str(v))


def get_doc(redis, key: str) -> dict | None:
    raw = redis.execute_command("JSON.GET", key, "$")
    return _doc(raw) if raw else None



def check_scope(scope: str) -> str:
    if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
        raise MemoryInputError(f"Bad memory scope {scope!r}: use party, player:<pid> or character:<pid>.")
    return scope


def memory_id(*parts: Any) -> str:
    """A deterministic memory id from its parts (``session, turn, kind, pid`` in store_turn)."""
    return ":".join(str(p) for p in parts)


def register_entities(redis, campaign_id: str, names: list[str], session_id: str, turn: int,
                       kind: str = "") -> list[str]:
    """Record first sightings; returns the names first seen at this very session and turn
    (so a re-run of the same turn still reports them as new)."""
    if not names:
        return []
    key = MEMORY_ENTITIES.format(campaign_id=campaign_id)
    pipe = redis.pipeline(transaction=False)
    for n in names:
        pipe.hsetnx(key, entity_key(n), json.dumps({"name": n, "session_id": session_id, "turn": int(turn),
                                                     "kind": kind}))
    pipe.execute()
    raws = redis.hmget(key, [entity_key(n) for n in names])
    new = []
    for n, raw in zip(names, raws):
        first = json.loads(raw) if raw else {}
        if first.get("session_id") == session_id and int(first.get("turn", -1)) == int(turn):
            new.append(n)
    return new


def supersede(redis, key: str, by: str) -> None:
    """Mark the memory at ``key`` superseded by memory ``by`` (it stays stored)."""
    pipe = redis.pipeline(transaction=True)
    pipe.execute_command("JSON.SET", key, "$.status", json.dumps("superseded"))
    pipe.execute_command("JSON.SET", key, "$.superseded_by", json.dumps(by))
    pipe.execute()


def delete_campaign(redis, campaign_id: str) -> int:
    """Delete every memory of a campaign (and its clock and entities); returns how many."""
    pattern = MEMORY_KEY.format(campaign_id=re.sub(r"([*?\[\]\\])", r"\\\1", campaign_id), memory_id="*")
    keys = list(redis.scan_iter(match=pattern, count=1000))
    n = 0
    for i in range(0, len(keys), 1000):
        n += redis.delete(*keys[i:i + 1000])
    redis.delete(MEMORY_CLOCK.format(campaign_id=campaign_id), MEMORY_ENTITIES.format(campaign_id=campaign_id))
    return n
