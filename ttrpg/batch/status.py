"""Where a batch stands: sessions done / running / failed / queued / cancelled, turns played,
turns per minute and an ETA (``ttrpg batch status``), and a live view of it (``--watch``).

Read from the sessions' own metadata (status, turn) and locks, plus what the drivers
recorded for the sessions they gave up on. Reading it also re-queues the job of a driver
that died (:func:`ttrpg.batch.watchdog.rescue`), so watching a batch keeps it going.
"""

from __future__ import annotations

import time

from ttrpg import defaults
from ttrpg.batch import record
from ttrpg.batch.watchdog import rescue
from ttrpg.constants import SESSION_LOCK
from ttrpg.session.lock import dead_here, parse_holder
from ttrpg.session.store import meta_key

#: States that do not change any more (unless the batch is run again).
FINAL = ("done", "failed", "cancelled", "left")


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def session_states(redis, batch: dict) -> dict[str, dict]:
    """Per session: ``{"state", "turn", "turns_played", "error"}``; state is one of done,
    running, failed, cancelled, left (a live driver elsewhere holds it) or queued."""
    sids = batch["sessions"]
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.hmget(meta_key(sid), "status", "turn", "max_turns")
        pipe.get(SESSION_LOCK.format(session_id=sid))
    replies = pipe.execute()
    outs = record.outcomes(redis, batch["batch_id"])
    out: dict[str, dict] = {}
    for i, sid in enumerate(sids):
        (status, turn, max_turns), holder = replies[2 * i], replies[2 * i + 1]
        status = _text(status)
        turn = int(_text(turn) or 1) if _text(turn).isdigit() else 1
        cap = int(_text(max_turns)) if _text(max_turns).isdigit() and int(_text(max_turns)) else None
        played = max(0, turn - 1) if cap is None else min(cap, max(0, turn - 1))
        live = False
        if holder:
            host, pid = parse_holder(holder)
            live = pid is not None and not dead_here(host, pid)
        outcome = outs.get(sid) or {}
        if status == "completed":
            state = "done"
            played = cap if cap is not None else played
        elif live:
            state = "running"
        elif outcome.get("status") in ("failed", "cancelled", "left"):
            state = outcome["status"]
        elif batch["cancelled"]:
            state = "cancelled"
        else:
            state = "queued"
        out[sid] = {"state": state, "turn": turn, "turns_played": played, "error": outcome.get("error") or ""}
    return out


def batch_status(redis, batch_id: str, *, rescue_dead: bool = True) -> dict:
    """The batch's progress as plain JSON (``ttrpg batch status --json``)."""
    batch = record.load_batch(redis, batch_id)
    rescued = rescue(redis, batch) if rescue_dead else []
    states = session_states(redis, batch)
    counts = {k: 0 for k in ("done", "running", "queued", "failed", "cancelled", "left")}
    for s in states.values():
        counts[s["state"]] += 1
    turns_per_session = int((batch.get("spec") or {}).get("turns") or 0)
    played = sum(s["turns_played"] for s in states.values())
    total = turns_per_session * len(states)
    finished = all(s["state"] in FINAL for s in states.values())
    started = batch.get("started_at")
    groups = record.groups(redis, batch_id)
    ended = max((g.get("ended_at") or 0 for g in groups.values()), default=0) if finished else 0
    elapsed = ((ended or time.time()) - started) if started else 0.0
    rate = played / (elapsed / 60) if elapsed > 0 and played else 0.0
    remaining = sum(max(0, turns_per_session - s["turns_played"]) for s in states.values()
                    if s["state"] not in FINAL)
    eta = round(remaining / rate * 60, 1) if rate and not finished else (0.0 if finished else None)
    return {"batch_id": batch_id, "sessions": len(states), **counts, "finished": finished,
            "cancel_requested": batch["cancelled"], "turns_played": played, "turns_total": total,
            "turns_per_minute": round(rate, 2), "elapsed_s": round(elapsed, 1), "eta_s": eta,
            "conditions": len(batch.get("conditions") or []), "drivers_queue": batch.get("drivers_queue"),
            "players_queue": batch.get("players_queue"),
            "drivers": [{"group": g, **{k: v for k, v in info.items() if k in (
                "job_id", "status", "runs", "rescued", "host", "pid", "sessions", "rss_kb")}}
                for g, info in sorted(groups.items())],
            "rescued_now": rescued,
            "failed_sessions": {sid: s["error"] for sid, s in states.items() if s["state"] == "failed"}}


def wait(redis, batch_id: str, *, timeout: float | None = None, on_update=None) -> dict:
    """Poll until the batch is finished (every session done, failed, cancelled or left), rescuing
    dead drivers on the way; ``on_update(status)`` after each poll. Returns the last status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = batch_status(redis, batch_id)
        if on_update:
            on_update(status)
        if status["finished"] or (status["cancel_requested"] and not status["running"]):
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(defaults.BATCH_WATCH_INTERVAL_S)


def eta_text(seconds) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def summary_line(s: dict) -> str:
    return (f"{s['done']}/{s['sessions']} done, {s['running']} running, {s['queued']} queued, {s['failed']} failed"
            + (f", {s['cancelled']} cancelled" if s["cancelled"] else "")
            + (f", {s['left']} left to another driver" if s["left"] else "")
            + f"; turns {s['turns_played']}/{s['turns_total']}, {s['turns_per_minute']:g}/min, ETA {eta_text(s['eta_s'])}")


def watch(redis, batch_id: str, console) -> dict:
    """A live progress bar and counts on ``console`` (stderr) until the batch is finished."""
    from rich.live import Live
    from rich.progress import BarColumn, Progress, TextColumn

    from ttrpg.console import text

    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} turns"),
                        console=console, transient=False)
    task = progress.add_task(f"batch {batch_id}", total=1)
    from rich.console import Group

    line = text("")

    def render():
        return Group(progress, line)

    with Live(render(), console=console, refresh_per_second=4) as live:
        def update(s):
            nonlocal line
            progress.update(task, total=max(1, s["turns_total"]), completed=s["turns_played"])
            line = text(summary_line(s))
            live.update(render())

        return wait(redis, batch_id, on_update=update)
