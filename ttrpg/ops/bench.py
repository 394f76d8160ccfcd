"""``ttrpg bench``: the figures behind our speed claims, measured on your Redis and machine.

Every figure is a median over repeated runs with its spread (p10-p90 or p50/p99), so a
reader can tell a real difference from noise. Wall-clock speed is measured here, not
asserted in unit tests (shared 2-core machines make timed tests flaky).

Figures:

* ``cli_startup``: ``ttrpg --help`` in a fresh process.
* ``dispatch``: enqueue → job running, zero-work job, per worker class, with the worker idle
  before each job; and the memory an idle worker holds (with its template or waiting horse).
* ``back_to_back``: the same when each job is enqueued the moment the previous one's result
  is seen (how the phases of a turn follow each other), per worker class.
* ``turn``: one turn of a session at zero model latency (the offline model), 2 and 4
  players, per worker class: what the orchestration itself costs; ``ratio_to_simple`` compares
  each class with ``simple`` (jobs inside the worker, no isolation) measured in the same run
  (the default class and ``simple`` play three alternating sessions each, turns pooled).
* ``fanout``: 4 players, 1000 ms offline latency each, 4 workers of the default class: wall
  time and the ratio to the ideal 1000 ms (sequential would be 4000 ms).
* ``checkpoint_put``: one RedisSaver checkpoint write with a realistic turn state, p50/p99.
* ``turn_overhead``: one session, zero-latency model, 2 players: per-turn wall time at the
  first turns and at the last turns (turn 100 in the full run), and their ratio.
* ``resume``: time for ``ttrpg resume`` to load a session and be ready to ask the DM, at
  turn 3 and at the last turn.
* ``overreach_check``: the overreach check on one character action (it runs on every one).
* ``memory_query``: query latency with 10,000 memories in a campaign.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime

from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

from ttrpg import defaults
from ttrpg.backend.connection import get_redis
from ttrpg.constants import EVENTS_SEEN, EVENTS_STREAM, SESSION_KEY, SESSIONS_INDEX
from ttrpg.dm.script import ScriptDM, builtin_script
from ttrpg.fleet.bench import measure_dispatch
from ttrpg.fleet.local import local_workers
from ttrpg.game.characters import default_party
from ttrpg.jobs.fanout import run_jobs
from ttrpg.llm.config import make_config
from ttrpg.memory import benchmark as memory_benchmark
from ttrpg.research import events
from ttrpg.research.stats import percentile
from ttrpg.session import play
from ttrpg.session.driver import Driver
from ttrpg.settings import Settings, get_settings
from ttrpg.turn.checkpoint import make_saver


def _stats(samples: list[float], digits: int = 1) -> dict:
    return {"median": round(statistics.median(samples), digits), "p10": round(percentile(samples, 0.10), digits),
            "p90": round(percentile(samples, 0.90), digits), "n": len(samples)}


def cli_startup(runs: int = 10) -> dict:
    exe = shutil.which("ttrpg")
    argv = [exe, "--help"] if exe else [sys.executable, "-m", "ttrpg", "--help"]
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        samples.append((time.perf_counter() - t) * 1000)
    return {"unit": "ms", **_stats(samples)}


#: Every worker class, the default first.
CLASSES = (defaults.WORKER_CLASS, *(c for c in ("forkserver", "warm", "spawn", "fork", "simple")
                                    if c != defaults.WORKER_CLASS))


def dispatch(classes=CLASSES, n: int = 15, settings: Settings | None = None, back_to_back: bool = False) -> dict:
    return {cls: measure_dispatch(cls, n, settings, back_to_back=back_to_back) for cls in classes}


def _bench_session(settings: Settings | None, players: int, tag: str, seed: int):
    """What a benchmark session needs: Redis, the default party cut to ``players``, the built-in
    DM script, a new session id, settings with a queue of its own, the zero-latency offline model."""
    settings = settings or get_settings()
    party = default_party().to_state()
    party["players"] = party["players"][:players]
    settings_q = Settings(**{**settings.__dict__, "queue": f"bench-{uuid.uuid4().hex[:8]}"})
    return (get_redis(settings), party, builtin_script(), f"bench-{tag}-{uuid.uuid4().hex[:8]}", settings_q,
            make_config(settings=settings_q, offline=True, seed=seed))


def _turn_times_ms(redis, sid: str) -> list[float]:
    """Wall time of each turn after the first: between consecutive ``turn_completed`` events."""
    done = [e for e in events.all_events(redis, sid) if e["event_type"] == "turn_completed"]
    stamps = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in done]
    return [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]


def _turn_samples(worker_class: str, players: int, turns: int, settings: Settings | None) -> list[float]:
    """Per-turn wall times (ms) of one zero-latency session on ``players`` fresh workers of ``worker_class``."""
    redis, party, script, sid, settings_q, llm = _bench_session(settings, players, "turn", seed=5)
    try:
        with local_workers(players, [settings_q.queue], worker_class, settings_q):
            play.start(session_id=sid, campaign_id=sid, party=party, llm=llm, dm=ScriptDM(script), ui=_Quiet(),
                       dm_script=script, max_turns=turns, seed=5, workers=0, settings=settings_q)
        return _turn_times_ms(redis, sid)
    finally:
        _forget_session(redis, sid, checkpoints=True)


def turns_per_class(classes=CLASSES, party_sizes=(2, 4), turns: int = 4, settings: Settings | None = None,
                    progress=None, rounds: int = 1) -> dict:
    """Wall time of one turn at zero model latency, per class and party size (``players`` AI players,
    as many workers), and each class's ratio to ``simple``.

    A session plays ``turns`` turns of the built-in DM script with the offline model; the time
    between consecutive ``turn_completed`` events is one sample (the first turn, which also starts
    the workers' processes, is left out).

    The default class and ``simple``, whose ratio is the figure that matters, play ``rounds``
    sessions each, alternating (default, simple, default, simple...), and their turns are
    pooled: a slow spell of a shared machine then weighs on both alike instead of on one.
    Every other class plays one session.
    """
    say = progress or (lambda msg: None)
    compared = [cls for cls in (defaults.WORKER_CLASS, "simple") if cls in classes]
    out: dict = {}
    for players in party_sizes:
        samples: dict[str, list[float]] = {cls: [] for cls in classes}
        sessions: dict[str, int] = {cls: 0 for cls in classes}
        order = [cls for cls in classes if cls not in compared] + compared * max(1, rounds)
        for cls in order:
            say(f"zero-latency turn, {players} players, {cls} workers (session {sessions[cls] + 1})")
            samples[cls] += _turn_samples(cls, players, turns, settings)
            sessions[cls] += 1
        row = {cls: {"worker_class": cls, "players": players, "sessions": sessions[cls],
                     "turn_ms": _stats(samples[cls], 0)} for cls in classes}
        simple = row.get("simple", {}).get("turn_ms", {}).get("median")
        for figures in row.values():
            figures["ratio_to_simple"] = round(figures["turn_ms"]["median"] / simple, 2) if simple else None
        out[f"{players}_players"] = row
    return out


def fanout(players: int = 4, latency_ms: int = 1000, runs: int = 5, settings: Settings | None = None) -> dict:
    settings = settings or get_settings()
    redis = get_redis(settings)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    llm = make_config(settings=settings, offline=True, latency_ms=latency_ms, seed=1)
    walls = []
    with local_workers(players, [queue], defaults.WORKER_CLASS, settings):
        for run in range(runs + 1):
            sid = f"bench-fanout-{uuid.uuid4().hex[:8]}"
            reqs = {f"p{i}": {"session_id": sid, "campaign_id": sid, "turn": 1, "phase": "intent",
                              "player_id": f"p{i}", "attempt": 1, "llm": llm, "max_tokens": 60,
                              "messages": [{"role": "user", "content": f"Player {i}: what now?"}]}
                    for i in range(1, players + 1)}
            t = time.perf_counter()
            run_jobs(redis, queue, reqs, session_id=sid, turn=1, phase="intent", attempt=1)
            if run:  # the first run warms the workers' horses and connections
                walls.append((time.perf_counter() - t) * 1000)
            _forget_session(redis, sid)
            time.sleep(0.8)  # let every worker have its next horse ready, as between phases
    stats = _stats(walls)
    return {"players": players, "latency_ms": latency_ms, "wall_ms": stats,
            "ratio_to_ideal": round(stats["median"] / latency_ms, 2),
            "sequential_ms": players * latency_ms,
            "ratio_to_sequential": round(stats["median"] / (players * latency_ms), 2)}


def checkpoint_put(n: int = 200, settings: Settings | None = None) -> dict:
    saver = make_saver(get_redis(settings or get_settings()))
    thread = f"bench-ckpt-{uuid.uuid4().hex[:8]}"
    state = {"party": default_party().to_state(), "history": ["Turn %d: " % i + "x" * 400 for i in range(30)],
             "narration": "y" * 600}
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    samples = []
    ckpt = empty_checkpoint()
    for i in range(n):
        ckpt = create_checkpoint(ckpt, None, i)
        ckpt["channel_values"] = dict(state, turn=i)
        t = time.perf_counter()
        config = saver.put(config, ckpt, {"source": "loop", "step": i, "parents": {}}, {})
        samples.append((time.perf_counter() - t) * 1000)
    saver.delete_thread(thread)
    return {"unit": "ms", "p50": round(percentile(samples, 0.50), 2), "p99": round(percentile(samples, 0.99), 2),
            "n": n}


class _StopAt:
    """A script DM that pauses the session (as Ctrl-C would) at a given turn's narration."""

    def __init__(self, script: dict, stop_turn: int):
        self.inner, self.stop_turn = ScriptDM(script), stop_turn

    def ask(self, question, state):
        if question["kind"] == "narration" and question["turn"] >= self.stop_turn:
            raise KeyboardInterrupt
        return self.inner.ask(question, state)


class _Quiet:
    def session_header(self, *a): pass
    def question(self, *a): pass
    def step(self, *a): pass
    def failure(self, *a): pass
    def session_end(self, *a): pass


def turns_and_resume(turns: int = 100, players: int = 2, settings: Settings | None = None) -> dict:
    """One long session, zero-latency model: per-turn wall time early vs late, and resume cost."""
    redis, party, script, sid, settings_q, llm = _bench_session(settings, players, "turns", seed=3)
    queue = settings_q.queue
    resume_ms: dict[str, float] = {}
    with local_workers(players, [queue], defaults.WORKER_CLASS, settings_q):
        try:
            play.start(session_id=sid, campaign_id=sid, party=party, llm=llm, dm=_StopAt(script, 3), ui=_Quiet(),
                       dm_script=script, max_turns=turns, seed=3, workers=0, settings=settings_q)
        except KeyboardInterrupt:
            pass
        resume_ms["turn_3"] = _resume_cost(redis, sid, settings_q)
        storage = {"turn_3": _checkpoint_bytes(redis, sid)}
        for stop in sorted({max(4, turns // 2), turns}):
            try:
                play.resume(sid, dm=_StopAt(script, stop), ui=_Quiet(), workers=0, settings=settings_q)
            except KeyboardInterrupt:
                pass
            resume_ms[f"turn_{stop}"] = _resume_cost(redis, sid, settings_q)
            storage[f"turn_{stop}"] = _checkpoint_bytes(redis, sid)
    per_turn = _turn_times_ms(redis, sid)
    k = max(3, min(5, len(per_turn) // 4))
    early, late = _stats(per_turn[:k]), _stats(per_turn[-k:])
    _forget_session(redis, sid)
    return {
        "turn_overhead": {"turns": turns, "players": players, "early_turns_ms": early, "late_turns_ms": late,
                          "ratio_late_to_early": round(late["median"] / early["median"], 2),
                          "checkpoint_storage_bytes": storage},
        "resume": {"unit": "ms", **{k2: round(v, 1) for k2, v in resume_ms.items()}},
    }


def _resume_cost(redis, sid: str, settings: Settings, runs: int = 5) -> float:
    """Median time to build the driver and load the session's pending question."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        driver = Driver(redis, sid, None, _Quiet(), settings)
        snap = driver.state()
        assert snap.interrupts or snap.next
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def _checkpoint_bytes(redis, sid: str) -> int:
    total = 0
    for pattern in (f"checkpoint:{sid}:*", f"checkpoint_write:{sid}:*"):
        for key in redis.scan_iter(match=pattern, count=500):
            total += redis.memory_usage(key) or 0
    return total


def _forget_session(redis, sid: str, checkpoints: bool = False) -> None:
    redis.delete(EVENTS_STREAM.format(session_id=sid), EVENTS_SEEN.format(session_id=sid),
                 SESSION_KEY.format(session_id=sid))
    redis.zrem(SESSIONS_INDEX, sid)
    if checkpoints:
        make_saver(redis).delete_thread(sid)


def memory_query(n: int = 10_000, settings: Settings | None = None) -> dict:
    return memory_benchmark.bench_query(get_redis(settings or get_settings()), n=n)


def overreach_check(lines: int = 200, passes: int = 5) -> dict:
    """Time of the overreach check on one character action, in ms (it runs on every action).

    The actions are the offline model's, each with its own seed, scene and directive, and each
    is checked with :func:`ttrpg.game.validation.find_overreach`; the median pass gives the
    time per line (p90 is over the passes).
    """
    from ttrpg.game.validation import find_overreach
    from ttrpg.offline.voice import offline_reply
    from ttrpg.prompts import builders

    players = default_party().to_state()["players"]
    scenes = ["Sirens wail as the pirate corvette docks beside the Raptor.",
              "The ambassador's yacht drifts, lights dark, a single hatch open.",
              "A mining drone swarm circles the cargo bay doors."]
    texts = []
    for i in range(lines):
        entry = players[i % len(players)]
        messages = builders.character_action_messages(entry, None, scenes[i % len(scenes)],
                                                      "Get the crew to safety.", [], [])
        texts.append(offline_reply(messages, seed=i))
    find_overreach(texts[0])
    per_line = []
    for _ in range(passes):
        start = time.perf_counter()
        for text in texts:
            find_overreach(text)
        per_line.append((time.perf_counter() - start) * 1000 / len(texts))
    return {**_stats(per_line, 3), "lines": len(texts)}


def run(quick: bool = False, settings: Settings | None = None, progress=None) -> dict:
    """All figures; ``quick`` shrinks repetitions and the long session (for tests and CI)."""
    settings = settings or get_settings()
    say = progress or (lambda msg: None)
    out: dict = {"quick": quick, "python": sys.version.split()[0]}
    say("CLI start-up")
    out["cli_startup"] = cli_startup(3 if quick else 10)
    classes = (defaults.WORKER_CLASS, "simple") if quick else CLASSES
    say("dispatch overhead per worker class")
    out["dispatch"] = dispatch(CLASSES, n=4 if quick else 15, settings=settings)
    say("back-to-back dispatch per worker class")
    out["back_to_back"] = dispatch(classes, n=8 if quick else 40, settings=settings, back_to_back=True)
    out["turn"] = turns_per_class(classes, turns=2 if quick else 5, settings=settings, progress=say,
                                 rounds=1 if quick else 3)
    say("fan-out efficiency")
    out["fanout"] = fanout(runs=2 if quick else 5, settings=settings)
    say("checkpoint writes")
    out["checkpoint_put"] = checkpoint_put(40 if quick else 200, settings)
    say("turn overhead and resume (one long session)")
    out.update(turns_and_resume(turns=8 if quick else 100, settings=settings))
    say("overreach check")
    out["overreach_check"] = overreach_check(50 if quick else 200, 3 if quick else 5)
    say("memory query latency")
    out["memory_query"] = memory_query(1_000 if quick else 10_000, settings)
    return out
