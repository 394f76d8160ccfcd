"""The scale measurement of research batches (a script, not a test)::

    .venv/bin/python -c "from ttrpg.batch.measure import main; main()"            # the full run
    .venv/bin/python -c "from ttrpg.batch.measure import main; main(sessions=10)"  # a smoke run

For each player-worker count it runs one batch on this machine (local workers: the player
workers, plus one driver worker per driver job), offline model at ``latency_ms``, and
reports turns per minute, turns lost or doubled (``turn_completed`` events per turn of each
session), duplicated model calls (``llm_call`` executions beyond the first), Redis memory
per session (``INFO memory`` delta, and ``MEMORY USAGE`` of the session's own keys), and
the driver processes' peak RSS and CPU time per session.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter

from ttrpg import defaults


def _session_bytes(redis, sid: str) -> int:
    total = 0
    for key in redis.scan_iter(match=f"*{sid}*", count=1000):
        total += int(redis.memory_usage(key) or 0)
    return total


def _lost_doubled(redis, sids: list[str], turns: int) -> dict:
    from ttrpg.ops.drill import duplicated_calls
    from ttrpg.research.events import all_events

    lost = doubled = dup_calls = 0
    for sid in sids:
        log = all_events(redis, sid)
        per_turn = Counter(e["turn_number"] for e in log if e["event_type"] == "turn_completed")
        lost += sum(1 for t in range(1, turns + 1) if per_turn.get(t, 0) == 0)
        doubled += sum(n - 1 for n in per_turn.values() if n > 1)
        dup_calls += duplicated_calls(log)
    return {"turns_lost": lost, "turns_doubled": doubled, "duplicated_llm_calls": dup_calls}


def measure_once(player_workers: int, *, sessions: int, turns: int, players: int, latency_ms: int,
                 sessions_per_driver: int, settings=None, progress=None) -> dict:
    """One batch with ``player_workers`` local player workers; its figures."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.batch.record import groups, load_batch
    from ttrpg.batch.run import submit
    from ttrpg.batch.spec import build_matrix
    from ttrpg.batch.status import summary_line, wait
    from ttrpg.fleet.local import local_workers
    from ttrpg.settings import Settings, get_settings

    queue = f"measure-{uuid.uuid4().hex[:6]}"
    os.environ["TTRPG_QUEUE"] = queue  # local workers inherit it
    settings = Settings(**{**(settings or get_settings()).__dict__, "queue": queue})
    redis = get_redis(settings)
    before = int(redis.info("memory")["used_memory"])
    matrix = build_matrix({"seeds": f"1-{sessions}", "turns": turns, "players": players, "latency_ms": latency_ms,
                           "sessions_per_driver": sessions_per_driver, "batch_id": f"m{player_workers}w-{queue[-6:]}"})
    summary = submit(matrix, settings)
    bid = summary["batch_id"]
    started = time.monotonic()
    with local_workers(player_workers, [summary["players_queue"]], defaults.WORKER_CLASS, settings), \
            local_workers(len(summary["driver_jobs"]), [summary["drivers_queue"]], defaults.WORKER_CLASS, settings):
        final = wait(redis, bid, on_update=(lambda s: progress(summary_line(s))) if progress else None)
    wall = time.monotonic() - started
    sids = load_batch(redis, bid)["sessions"]
    after = int(redis.info("memory")["used_memory"])
    keys = [_session_bytes(redis, sid) for sid in sids]
    drivers = list(groups(redis, bid).values())
    per_driver = [d for d in drivers if d.get("rss_kb") and d.get("sessions")]
    return {
        "player_workers": player_workers, "sessions": sessions, "turns": turns, "players": players,
        "latency_ms": latency_ms, "sessions_per_driver": sessions_per_driver, "driver_jobs": len(drivers),
        "done": final["done"], "failed": final["failed"], "wall_s": round(wall, 1),
        "turns_per_minute": round(final["turns_played"] / (wall / 60), 2) if wall else None,
        **_lost_doubled(redis, sids, turns),
        "redis_used_memory_delta_per_session_kb": round((after - before) / sessions / 1024, 1),
        "redis_session_keys_per_session_kb": round(sum(keys) / len(keys) / 1024, 1) if keys else None,
        "driver_peak_rss_mb": round(max((d["rss_kb"] for d in per_driver), default=0) / 1024, 1),
        "driver_rss_per_session_mb": round(sum(d["rss_kb"] / d["sessions"] for d in per_driver)
                                           / len(per_driver) / 1024, 1) if per_driver else None,
        "driver_cpu_s_per_turn": round(sum(d.get("cpu_s", 0) for d in drivers) / max(1, final["turns_played"]), 3),
        "batch_id": bid,
    }


def measure(*, sessions: int = 100, turns: int = 3, players: int = 4, latency_ms: int = 1000,
            worker_counts=(2, 4, 8), sessions_per_driver: int = defaults.BATCH_SESSIONS_PER_DRIVER,
            settings=None, progress=None) -> list[dict]:
    """The scale measurement: one batch per player-worker count (see the module docstring)."""
    return [measure_once(n, sessions=sessions, turns=turns, players=players, latency_ms=latency_ms,
                         sessions_per_driver=sessions_per_driver, settings=settings, progress=progress)
            for n in worker_counts]


def main(**kw) -> None:
    """Run :func:`measure` with progress on stderr and the figures as JSON lines on stdout."""
    import sys

    for row in measure(progress=lambda line: print(line, file=sys.stderr, flush=True), **kw):
        print(json.dumps(row), flush=True)
