"""Driving a session: the loop that runs its graph, asks the DM, and handles failures.

The driver runs the graph until it needs the DM, asks the DM (keyboard or script), resumes
the graph with the answer, and so on. When a phase raises, the graph is left at its last
checkpoint, the one before the failed phase: that is the rollback. The driver records the
failure and runs the phase again, asking the DM to intervene after every second failure.

Only one process drives a session at a time: it holds the session's lock
(:class:`ttrpg.session.lock.SessionLock`), whose fence keeps a driver that lost it from writing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from contextlib import contextmanager

import redis as redis_lib
from langgraph.types import Command

from ttrpg import defaults
from ttrpg.exceptions import DMScriptError, EventSchemaError, LockLost, RedisUnavailable
from ttrpg.fleet.local import live_workers, local_workers
from ttrpg.memory.storing import store_session_end
from ttrpg.research.events import EventLog, Mirror
from ttrpg.session.retention import compact_on_finish
from ttrpg.session.store import PENDING_INTERVENTION, load_meta, meta_key, touch
from ttrpg.turn import phases, questions
from ttrpg.turn.checkpoint import make_saver
from ttrpg.turn.graph import compile_graph
from ttrpg.turn.phases import TurnContext

#: Errors that stop the driver instead of counting as a failed phase.
_STOPS: tuple[type[BaseException], ...] = (RedisUnavailable, DMScriptError, LockLost, EventSchemaError)


class Driver:
    """Runs one session's graph in this process until it ends or the DM stops.

    The loop: stream the graph until it stops; if it stopped at a question, ask the DM
    (keyboard or script) and resume with the answer; if a phase raised, record the failure
    and run it again from the last checkpoint (the rollback), asking the DM to intervene
    after every second failure of the same phase. The intervention is asked here, not in the
    graph, and stored in the session's metadata until answered, so ``resume`` of a session
    stopped at a failed phase asks at once and no earlier answer is ever reused.
    """

    def __init__(self, redis, session_id: str, dm, ui, settings, *, queue: str | None = None, fence=None):
        self.redis, self.session_id, self.dm, self.ui, self.settings = redis, session_id, dm, ui, settings
        self.meta = load_meta(redis, session_id)
        # The fence (from the session lock) keeps a driver that lost its lock from writing: events
        # and checkpoints check it in Redis; metadata writes go through :meth:`_touch`.
        self.fence = fence
        self.events = EventLog(redis, session_id, self.meta.get("campaign_id"), fence=fence)
        self.mirror = Mirror(redis, session_id, settings.log_dir)
        self.saver = make_saver(redis, fence=fence)
        self.graph = compile_graph(self.saver)
        self.config = {"configurable": {"thread_id": session_id}, "recursion_limit": 10_000}
        self.ctx = TurnContext(redis=redis, queue=queue or settings.queue, events=self.events, fence=fence)
        if hasattr(ui, "progress"):  # a live line per AI player while its job runs
            self.ctx.extra["on_progress"] = ui.progress
        self.dm_source = getattr(dm, "source", "keyboard")

    def state(self):
        return self.graph.get_state(self.config)

    def _check_lock(self) -> None:
        """Stop (LockLost) if this driver may have lost its lock: no Redis round trip."""
        if self.fence is not None and self.fence.lock is not None:
            self.fence.lock.check()

    def _fenced(self) -> None:
        """Before a write the checkpointer and the event log do not fence: check in Redis."""
        if self.fence is not None:
            self.fence.check()

    def _touch(self, **fields) -> None:
        self._fenced()
        touch(self.redis, self.session_id, **fields)

    def run(self, initial: dict | None = None) -> dict:
        """Drive the session to its end (or until KeyboardInterrupt); returns the final state."""
        snap = self.state()
        resumed = not (initial is not None and not snap.values)
        if not resumed:
            party = initial["party"]
            characters = {p["id"]: {"name": p["character"]["name"], "style": p["character"].get("style"),
                                    "role": p["character"].get("role"), "number": p["character"].get("number"),
                                    "player": (p.get("player") or {}).get("name")} for p in party["players"]}
            self.events.emit("session_started", "start", 1, players=[p["id"] for p in party["players"]],
                             characters=characters, ship=party.get("ship"),
                             model=initial["llm"].get("model"), offline=bool(initial["llm"].get("offline")),
                             overreach_judge=bool(initial["llm"].get("overreach_judge")), seed=initial["seed"],
                             max_turns=initial.get("max_turns"))
            inp = initial
        else:
            self._fenced()
            resumes = self.redis.hincrby(meta_key(self.session_id), "resumes", 1)
            turn = (snap.values or {}).get("turn", 1)
            self.events.emit("session_resumed", f"resume:{resumes}", turn, pending=list(snap.next),
                             model=(snap.values or {}).get("llm", {}).get("model"))
            inp = None
        self._touch(status="active", driver=f"{socket.gethostname()}:{os.getpid()}")
        self.ui.session_header(self, initial or snap.values or {})
        if resumed and hasattr(self.ui, "recap"):
            self.ui.recap(snap.values or {}, list(snap.next))
        pending = self._pending_intervention()
        if pending:
            self._intervene(pending)
        try:
            while True:
                self._check_lock()
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
                except _STOPS:
                    raise
                except Exception as exc:  # a failed phase: roll back, retry, ask the DM every second time
                    info = self._phase_failed(exc)
                    if info["failures"] % 2 == 0:
                        self._intervene(info)
                    inp = None
                    continue
                snap = self.state()
                if snap.interrupts:
                    question = snap.interrupts[0].value
                    inp = Command(resume=self._ask(question, snap.values))
                    continue
                if not snap.next:
                    break
                inp = None
        finally:
            self.mirror.sync()
        final = self.state().values
        self._fenced()
        store_session_end(self.ctx, final)
        self.events.emit("session_ended", "end", final.get("turn"), turns_played=final.get("turn", 1) - 1)
        self.mirror.sync()
        self._touch( status="completed", phase="ended")
        self.ui.session_end(self, final)
        compact_on_finish(self.redis, self.session_id, self.settings, fence=self.fence)  # never raises
        return final

    def _ask(self, question: dict, values: dict):
        """Put a question to the DM; the answer goes back with who answered and how long it took."""
        self.ui.question(question, values)
        started = time.monotonic()
        answer = self.dm.ask(question, values)
        self._check_lock()  # a closed laptop lid usually closes at a prompt
        envelope = questions.envelope(answer, source=self.dm_source,
                                      wait_ms=round((time.monotonic() - started) * 1000))
        answer_meta = getattr(self.dm, "answer_meta", None)  # autopilot DMs: re-asks, fallback
        if callable(answer_meta):
            envelope["meta"] = {**(answer_meta() or {}), **envelope["meta"]}
        return envelope

    # --- failures and interventions ---------------------------------------------------------------

    def _phase_failed(self, exc: Exception) -> dict:
        snap = self.state()
        phase = snap.next[0] if snap.next else "unknown"
        turn = (snap.values or {}).get("turn", 1)
        key = meta_key(self.session_id)
        self._fenced()
        count = self.redis.hincrby(key, f"fail:{turn}:{phase}", 1)
        reason = (str(exc) or type(exc).__name__)[:500]
        player = getattr(exc, "player_id", None)
        info = {"turn": turn, "phase": phase, "failures": count, "reason": reason, "player_id": player}
        self.redis.hset(key, f"failinfo:{turn}:{phase}", json.dumps({"reason": reason, "player_id": player}))
        if count % 2 == 0:  # recorded before the DM is asked, so `resume` asks at once after a crash
            self.redis.hset(key, PENDING_INTERVENTION, json.dumps(info))
        self.events.emit("phase_failed", f"{turn}:{phase}:{count}", turn, phase=phase, attempt=count, reason=reason,
                         error_class=type(exc).__name__, player_id=player)
        if count % 2 == 1:
            checkpoint = snap.config["configurable"].get("checkpoint_id")
            self.events.emit("rollback", f"{turn}:{phase}:{count}", turn, phase=phase, to_checkpoint=checkpoint,
                             reason=reason)
        self.ui.failure(phase, count, reason)
        return info

    def _pending_intervention(self) -> dict | None:
        raw = self.redis.hget(meta_key(self.session_id), PENDING_INTERVENTION)
        if not raw:
            return None
        try:
            info = json.loads(raw)
        except ValueError:
            return None
        return info if isinstance(info, dict) and info.get("phase") else None

    def _intervene(self, info: dict) -> None:
        """Ask the DM what to do about a phase that failed twice, and apply the answer to the state."""
        question = {"kind": "intervention", "turn": info["turn"], "phase": info["phase"],
                    "failures": info["failures"], "reason": info.get("reason", ""),
                    "player_id": info.get("player_id"), "options": list(questions.INTERVENTION_CHOICES)}
        snap = self.state()
        values = snap.values or {}
        self.redis.hset(meta_key(self.session_id), PENDING_INTERVENTION, json.dumps(info))
        self._touch( phase=info["phase"])
        while True:
            envelope = self._ask(question, values)
            try:
                answer = questions.check(envelope["answer"], question, values)
                break
            except questions.InvalidAnswer as exc:
                if self.dm_source != "keyboard":
                    raise DMScriptError(f"The DM script's intervention answer was refused: {exc}",
                                        hint=f"Fix the script, or continue at the keyboard: "
                                             f"ttrpg resume {self.session_id} --keyboard") from None
                question = {**question, "error": str(exc)}
        turn, phase, n = info["turn"], info["phase"], info["failures"]
        meta = envelope["meta"]
        self.events.emit("dm_intervention", f"{turn}:{phase}:{n}", turn, phase=phase, failures=n,
                         reason=info.get("reason", ""), choice=answer["choice"], player_id=answer.get("player_id"),
                         wait_ms=meta.get("wait_ms"))
        phases.dm_input(self.ctx, {"turn": turn}, "intervention", f"{turn}:intervention:{phase}:{n}", meta,
                        phase=phase, choice=answer["choice"], player_id=answer.get("player_id"),
                        text=answer.get("text"))
        update = self._intervention_update(values, phase, answer)
        if update and snap.next:
            self.graph.update_state(self.config, update)
        self._fenced()
        self.redis.hdel(meta_key(self.session_id), PENDING_INTERVENTION)

    @staticmethod
    def _intervention_update(values: dict, phase: str, answer: dict) -> dict:
        choice, pid = answer["choice"], answer.get("player_id")
        if choice == "skip":
            return {"skipped": sorted(set(values.get("skipped") or []) | {pid})}
        if choice == "type":
            manual = {k: dict(v) for k, v in (values.get("manual") or {}).items()}
            target = "character_action" if phase == "action_retry" else phase
            manual.setdefault(target, {})[pid] = answer["text"]
            return {"manual": manual}
        if choice == "end_turn":
            return {"turn_ended": True}
        return {}

    # --- steps and Redis ---------------------------------------------------------------------------

    def _wait_for_redis(self, exc: Exception) -> None:
        self.ui.failure("redis", 0, f"Redis unavailable ({exc}); waiting for it")
        deadline = time.monotonic() + defaults.REDIS_RECONNECT_S
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                if self.redis.ping():
                    self._check_lock()
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
            self._touch( turn=turn, phase=node)
            self.ui.step(node, values or {}, state)
            if node == "memory_storage":
                self.saver.prune([self.session_id], keep_last=defaults.CHECKPOINTS_KEPT)
            self.mirror.sync()
            _drill_kill(node, turn, self.settings.kill_after)


def _drill_kill(node: str, turn: int, target: str | None) -> None:
    """Fault drills (``ttrpg drill``, crash tests): ``TTRPG_KILL_AFTER=<phase>@<turn>`` makes this
    process SIGKILL itself right after that phase's checkpoint, a real crash at a known point."""
    if target and target == f"{node}@{turn}":
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def workers_for(settings, n: int, worker_class: str | None = None):
    """Start ``n`` local workers unless a live worker already serves the queue."""
    live = live_workers([settings.queue], settings)
    if live or n <= 0:
        yield 0
        return
    with local_workers(n, [settings.queue], worker_class or defaults.WORKER_CLASS, settings):
        yield n


