"""A session's events as data: reading a known session's log, the sessions of a campaign,
and exports as JSON Lines (byte-for-byte the ``research_logs`` mirror) or CSV (one row per
event, the union of all fields as columns). Exports keep every text exactly as logged."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Iterable

from ttrpg.constants import CAMPAIGN_SESSIONS, SESSION_KEY
from ttrpg.exceptions import ConfigError
from ttrpg.research import events
from ttrpg.research.schema import COMMON_NAMES, EVENT_TYPES
from ttrpg.session.store import load_meta

FORMATS = ("jsonl", "csv")


def check_session(redis, session_id: str) -> dict:
    """The session's metadata; raises :class:`~ttrpg.exceptions.UnknownSession` if there is none."""
    return load_meta(redis, session_id)


def session_events(redis, session_id: str) -> list[dict]:
    """Every event of a known session, in log order."""
    check_session(redis, session_id)
    return events.all_events(redis, session_id)


def campaign_sessions(redis, campaign_id: str) -> list[str]:
    """The ids of a campaign's sessions, oldest first (by creation time)."""
    ids = sorted(v.decode() if isinstance(v, bytes) else v
                 for v in redis.smembers(CAMPAIGN_SESSIONS.format(campaign_id=campaign_id)))

    def created(sid: str) -> float:
        raw = redis.hget(SESSION_KEY.format(session_id=sid), "created_at")
        try:
            return float(raw) if raw is not None else math.inf
        except ValueError:
            return math.inf

    return sorted(ids, key=lambda sid: (created(sid), sid))


def parse_event_types(event_types: str | Iterable[str] | None) -> list[str] | None:
    """``"dice_roll,llm_call"`` or a list → checked list of event types (None: all)."""
    if event_types is None:
        return None
    if isinstance(event_types, str):
        event_types = event_types.split(",")
    wanted = [t.strip() for t in event_types if t and t.strip()]
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise ConfigError(f"Unknown event type(s): {', '.join(unknown)}.",
                          hint=f"Known types: {', '.join(EVENT_TYPES)} (see docs/events.md).")
    return wanted or None


def export(redis, session_ids: str | Iterable[str], fmt: str = "jsonl",
           event_types: str | Iterable[str] | None = None) -> str:
    """The events of ``session_ids`` (in that order, each in log order) as one text.

    ``jsonl``: one JSON object per line, exactly as ``research_logs/<session>.jsonl`` has them.
    ``csv``: a header of the union of all fields (the common fields first, then in order of
    first appearance) and one row per event; arrays and objects JSON-encoded, booleans
    ``true``/``false``, null as an empty cell. ``event_types`` keeps only those types.
    Raises UnknownSession for a session that does not exist, ConfigError for a bad format or type.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}.", hint=f"Use one of: {', '.join(FORMATS)}.")
    if isinstance(session_ids, str):
        session_ids = [session_ids]
    wanted = parse_event_types(event_types)
    rows: list[dict] = []
    for sid in session_ids:
        rows += [e for e in session_events(redis, sid) if wanted is None or e.get("event_type") in wanted]
    if fmt == "jsonl":
        return "".join(json.dumps(e, default=str) + "\n" for e in rows)
    return to_csv(rows)


def csv_columns(rows: list[dict]) -> list[str]:
    cols = list(COMMON_NAMES)
    seen = set(cols)
    for e in rows:
        for k in e:
            if k not in seen:
                seen.add(k)
                cols.append(k)
    return cols


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = csv_columns(rows)
    writer = csv.writer(buf)
    writer.writerow(cols)
    for e in rows:
        writer.writerow([csv_cell(e.get(c)) for c in cols])
    return buf.getvalue()
