"""``ttrpg drill``: fault drills that prove a session never loses a turn.

Each trial plays a seeded demo session in a real ``ttrpg`` process while something breaks:

* ``dm_kill``: the DM process is SIGKILLed right after a random phase's checkpoint, then
  ``ttrpg resume`` finishes the session;
* ``worker_kill``: a worker process is SIGKILLed while it runs a player's job;
* ``redis_restart``: the embedded Redis is shut down and restarted (AOF) mid-session, then
  the session is resumed (embedded Redis only);
* ``llm_faults``: the offline model returns rate limits, 5xx and timeouts
  (``rate_limit=0.2,server_error=0.1,timeout=0.05``), which the jobs retry.

After each trial its event log is compared with a clean run of the same seed: the story
events (DM input, dice, consensus, validation, completed turns, LLM calls per player, phase
and attempt) must be equal, no turn may be missing (turns lost) and no job may have run its
model call twice (duplicated LLM calls, counted from each job's execution counter).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

from ttrpg import defaults
from ttrpg.backend import embedded
from ttrpg.backend.connection import get_redis
from ttrpg.fleet.local import live_workers, local_workers
from ttrpg.process import pid_alive
from ttrpg.research import events
from ttrpg.settings import Settings, get_settings

KINDS = ("dm_kill", "worker_kill", "redis_restart", "llm_faults")
KILL_POINTS = ("dm_narration", "memory_query", "party_discussion", "strategic_intent", "character_action",
               "validation", "dm_adjudication", "dice_roll", "dice_resolution", "dm_outcome",
               "character_reaction", "memory_storage")
STORY_EVENTS = {"dm_input", "dice_roll", "consensus", "validation_failed", "validation_autocorrected",
                "laser_feelings", "turn_completed", "whisper", "session_started"}
#: Fields that differ between two runs of one seed: times (``wait_ms`` is how long the DM, or
#: the script, took to answer), processes, ids.
VOLATILE = {"timestamp", "latency_ms", "worker_pid", "pid", "to_checkpoint", "attempts", "session_id",
            "campaign_id", "job_id", "wait_ms"}


def _demo_argv(sid: str, seed: int, turns: int, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "ttrpg", "demo", "--session", sid, "--seed", str(seed), "--turns", str(turns),
            "--players", "2", *extra]


def _run(argv, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def story(log: list[dict], sid: str) -> list[str]:
    """The parts of a log that must not change under faults, as comparable strings."""
    out = []
    for e in log:
        if e["event_type"] in STORY_EVENTS:
            fields = {k: v for k, v in e.items() if k not in VOLATILE}
            out.append(json.dumps(fields, sort_keys=True, default=str).replace(sid, "SID"))
        elif e["event_type"] == "llm_call":
            out.append(f"llm_call {e['turn_number']} {e['phase']} {e['player_id']} {e['attempt']}")
    return sorted(out)


def duplicated_calls(log: list[dict]) -> int:
    """Model calls beyond the first for one player, phase and attempt (a job that ran again
    and asked the model again instead of reusing its reply)."""
    calls = Counter((e["turn_number"], e["phase"], e["player_id"], e["attempt"])
                    for e in log if e["event_type"] == "llm_call")
    return sum(n - 1 for n in calls.values())


def turns_done(log: list[dict]) -> int:
    return len({e["turn_number"] for e in log if e["event_type"] == "turn_completed"})


class Drill:
    def __init__(self, settings: Settings, turns: int = 2, progress=None):
        self.settings, self.turns = settings, turns
        self.say = progress or (lambda msg: None)
        self.redis = get_redis(settings)
        self.clean: dict[int, list[dict]] = {}

    def _log(self, sid):
        return events.all_events(self.redis, sid)

    def clean_log(self, seed: int) -> tuple[list[dict], str]:
        if seed not in self.clean:
            sid = f"drill-clean-{seed}-{uuid.uuid4().hex[:6]}"
            result = _run(_demo_argv(sid, seed, self.turns))
            if result.returncode != 0:
                raise RuntimeError(f"clean run failed: {result.stderr[-500:]}")
            self.clean[seed] = (self._log(sid), sid)
        return self.clean[seed]

    def trial(self, kind: str, seed: int, rng: random.Random, fleet) -> dict:
        clean, clean_sid = self.clean_log(seed)
        sid = f"drill-{kind.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
        detail = ""
        if kind == "dm_kill":
            point = f"{rng.choice(KILL_POINTS)}@{rng.randint(1, self.turns)}"
            if point.startswith("memory_storage"):
                point = f"memory_storage@{rng.randint(2, self.turns + 1)}"
            detail = f"SIGKILL after {point}"
            first = _run(_demo_argv(sid, seed, self.turns), env={"TTRPG_KILL_AFTER": point})
            final = _run([sys.executable, "-m", "ttrpg", "resume", sid]) if first.returncode != 0 else first
        elif kind == "worker_kill":
            proc = subprocess.Popen(_demo_argv(sid, seed, self.turns, ["--latency", "700"]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            victim = self._kill_busy_worker(sid, fleet, rng)
            detail = f"SIGKILL of worker pid {victim}" if victim else "no busy worker found to kill"
            _, err = proc.communicate(timeout=600)
            final = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
            fleet.replace_dead()
        elif kind == "redis_restart":
            if self.settings.redis_url:
                return {"kind": kind, "seed": seed, "skipped": "external Redis: not restarted by a drill"}
            proc = subprocess.Popen(_demo_argv(sid, seed, self.turns, ["--latency", "300"]),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self._wait_for(sid, lambda log: any(e["event_type"] == "phase_completed" for e in log), 120)
            time.sleep(rng.uniform(0.0, 1.5))
            embedded.stop(self.settings.home)
            embedded.ensure_running(self.settings.home)
            detail = "Redis shut down and restarted mid-session"
            _, err = proc.communicate(timeout=600)
            final = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
            if proc.returncode != 0:  # the session gave up waiting for Redis: resume it
                detail += "; resumed"
                final = _run([sys.executable, "-m", "ttrpg", "resume", sid])
        else:
            faults = "rate_limit=0.2,server_error=0.1,timeout=0.05"
            detail = f"LLM faults {faults}"
            final = _run(_demo_argv(sid, seed, self.turns, ["--faults", faults]), env={"TTRPG_BACKOFF_BASE": "0.01"})
        log = self._log(sid)
        mine, ref = story(log, sid), story(clean, clean_sid)
        same = mine == ref
        diff = "" if same else f"first difference: {sorted(set(mine) ^ set(ref))[:1]}"
        lost = max(0, turns_done(clean) - turns_done(log))
        dups = duplicated_calls(log)
        retries = sum(1 for e in log if e["event_type"] == "llm_retry")
        passed = final.returncode == 0 and same and lost == 0 and dups == 0
        return {"kind": kind, "seed": seed, "session_id": sid, "detail": detail, "passed": passed,
                "turns_lost": lost, "duplicated_llm_calls": dups, "story_equal": same, "llm_retries": retries,
                "exit_code": final.returncode,
                "error": "" if passed else f"{diff} {(final.stderr or '')[-300:]}".strip()[:800]}

    def _wait_for(self, sid, predicate, timeout) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self._log(sid)):
                return True
            time.sleep(0.05)
        return False

    def _kill_busy_worker(self, sid, fleet, rng) -> int | None:
        self._wait_for(sid, lambda log: sum(e["event_type"] == "job_enqueued" for e in log) >= 2, 120)
        time.sleep(rng.uniform(0.1, 0.4))
        for w in live_workers([self.settings.queue], self.settings):
            if w.get("state") == "busy" and w.get("pid") in fleet.pids:
                os.kill(w["pid"], signal.SIGKILL)
                return w["pid"]
        return None


class _Fleet:
    """Local workers for the drill that can replace one killed by a trial."""

    def __init__(self, n, settings):
        self.n, self.settings = n, settings
        self._stack = []
        self.pids: set[int] = set()

    def __enter__(self):
        self._start(self.n)
        return self

    def _start(self, n):
        cm = local_workers(n, [self.settings.queue], defaults.WORKER_CLASS, self.settings)
        fleet = cm.__enter__()
        self._stack.append((cm, fleet))
        self.pids |= set(fleet.pids)

    def replace_dead(self):
        dead = [p for p in self.pids if not pid_alive(p)]
        self.pids -= set(dead)
        if dead:
            self._start(len(dead))

    def __exit__(self, *exc):
        for cm, _ in reversed(self._stack):
            cm.__exit__(None, None, None)


def run(trials: int = 20, seed: int = 1, turns: int = 2, kinds=KINDS, settings: Settings | None = None,
        progress=None) -> dict:
    settings = settings or get_settings()
    queue = f"drill-{uuid.uuid4().hex[:8]}"
    os.environ["TTRPG_QUEUE"] = queue  # the demo and resume processes inherit it
    settings = Settings(**{**settings.__dict__, "queue": queue})
    rng = random.Random(seed)
    drill = Drill(settings, turns=turns, progress=progress)
    results = []
    with _Fleet(4, settings) as fleet:
        for i in range(trials):
            kind = kinds[i % len(kinds)]
            trial_seed = seed + (i % 3)
            (progress or (lambda m: None))(f"trial {i + 1}/{trials}: {kind} (seed {trial_seed})")
            results.append(drill.trial(kind, trial_seed, rng, fleet))
    ran = [r for r in results if "skipped" not in r]
    return {"trials": len(results), "passed": sum(r["passed"] for r in ran), "skipped": len(results) - len(ran),
            "turns_lost": sum(r["turns_lost"] for r in ran),
            "duplicated_llm_calls": sum(r["duplicated_llm_calls"] for r in ran),
            "by_kind": dict(Counter(r["kind"] for r in ran)), "results": results}
