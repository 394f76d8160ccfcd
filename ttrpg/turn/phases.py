"""The turn phases: one function per phase, each returning only the state it changes.

Two sorts of graph nodes (names in :mod:`ttrpg.vocabulary`):

* **ask nodes** (``ask_<kind>``, built by :func:`asking`) put one question to the DM with
  ``interrupt()``, check the answer against its contract (:mod:`ttrpg.turn.questions`) and store
  it in the state. A refused answer is asked again with the reason. They do no other work,
  so nothing that fails later can trap a DM answer in the checkpoint's pending writes (a
  node that consumed an ``interrupt()`` answer and then raised gets the same answer back on
  every later run, whatever the DM types next).
* **work nodes** (wrapped by :func:`phase`) do the phase's work: LLM jobs, dice, events.
  They log ``phase_started`` / ``phase_completed`` with deterministic event ids and receive
  the phase's attempt number (1 + failures recorded for this turn and phase, so a retried
  phase gets fresh job ids). A work node that finds a stored DM answer unusable (an old
  checkpoint, a hand-edited script) returns ``dm_error`` and the graph goes back to ask.

Failures are handled by the session driver (:mod:`ttrpg.session`), not here: it rolls back,
retries once and asks the DM to intervene after every second failure.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from ttrpg import defaults
from ttrpg.constants import SESSION_KEY
from ttrpg.dm.script import judge_approach
from ttrpg.exceptions import PhaseError
from ttrpg.game import consensus, dice, judge, validation
from ttrpg.jobs.fanout import run_jobs
from ttrpg.memory.recall import recall_for_turn
from ttrpg.memory.storing import store_turn
from ttrpg.prompts import builders, context, parsers
from ttrpg.research.events import EventLog
from ttrpg.turn import questions
from ttrpg.turn.state import TurnState
from ttrpg.vocabulary import ASK_NODES, PHASES, QUESTIONS


@dataclass
class TurnContext:
    """What phases need from the outside world; built by the session driver per process."""

    redis: Any
    queue: str
    events: EventLog
    memory: Any = None
    phase_timeout: float = 180.0
    extra: dict = field(default_factory=dict)
    fence: Any = None  # ttrpg.session.lock.Fence of the driver's session lock, when driven under one

    def check_lock(self) -> None:
        """Stop before any work if the driver lost its session lock (no Redis round trip)."""
        if self.fence is not None and self.fence.lock is not None:
            self.fence.lock.check()

    def failures(self, turn: int, phase: str) -> int:
        raw = self.redis.hget(SESSION_KEY.format(session_id=self.events.session_id), f"fail:{turn}:{phase}")
        return int(raw or 0)

    def failure_info(self, turn: int, phase: str) -> dict:
        raw = self.redis.hget(SESSION_KEY.format(session_id=self.events.session_id), f"failinfo:{turn}:{phase}")
        return json.loads(raw) if raw else {}


def phase(name: str) -> Callable:
    """Wrap a phase function ``fn(state, ctx, attempt) -> dict`` as a work node."""

    def deco(fn):
        # Not functools.wraps: LangGraph reads the node's own signature to pass ``runtime``.
        def node(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
            ctx = runtime.context
            ctx.check_lock()
            turn = state["turn"]
            if state.get("turn_ended") and name != "memory_storage":
                return {"phase": name, "dm_error": None}
            attempt = ctx.failures(turn, name) + 1
            ctx.events.emit("phase_started", f"{turn}:{name}:{attempt}", turn, phase=name, attempt=attempt)
            result = fn(state, ctx, attempt) or {}
            if not result.get("dm_error"):
                ctx.events.emit("phase_completed", f"{turn}:{name}:{attempt}", turn, phase=name, attempt=attempt)
            return {"dm_error": None, **result, "phase": name}

        node.__name__, node.__qualname__, node.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        node.phase_name = name
        return node

    return deco


def asking(kind: str) -> Callable:
    """Build the ask node of ``kind`` from ``build(state) -> question fields | None``.

    ``None`` means there is nothing to ask this time (no roll to check, nobody to review).
    The stored answer is ``state["answers"][kind] = {"value", "meta", "question"}``.
    """
    node_name = QUESTIONS[kind][0]

    def deco(build):
        def node(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
            if state.get("turn_ended") and kind != "narration":
                return {"phase": node_name, "dm_error": None}
            fields = build(state, runtime.context)
            if fields is None:
                return {"phase": node_name, "dm_error": None}
            question = {"kind": kind, "turn": state["turn"], **fields}
            if state.get("dm_error"):
                question["error"] = state["dm_error"]
            raw, meta = questions.open_envelope(interrupt(question))
            try:
                value = questions.check(raw, question, state)
            except questions.InvalidAnswer as exc:
                return {"phase": node_name, "dm_error": str(exc)}
            answers = {**(state.get("answers") or {}),
                       kind: {"value": value, "meta": meta, "question": {k: v for k, v in question.items()
                                                                          if k != "error"}}}
            return {"phase": node_name, "answers": answers, "dm_error": None}

        node.__name__ = node.__qualname__ = node_name
        node.__doc__ = build.__doc__
        node.ask_kind = kind
        return node

    return deco


def answer_of(state: TurnState, kind: str) -> tuple[dict | None, dict, str | None]:
    """``(value, meta, error)`` of the stored answer to ``kind``, checked again.

    A value that no longer passes its contract (an old checkpoint, a hand-edited state) gives
    an error: the work node returns it as ``dm_error`` and the graph asks again.
    """
    stored = (state.get("answers") or {}).get(kind)
    if not stored:
        return None, {}, f"The {kind} answer is missing; please answer again."
    try:
        value = questions.check(stored.get("value"), stored.get("question") or {"kind": kind}, state)
    except questions.InvalidAnswer as exc:
        return None, {}, str(exc)
    return value, stored.get("meta") or {}, None


def _refused(state: TurnState, kind: str, error: str) -> dict:
    answers = {k: v for k, v in (state.get("answers") or {}).items() if k != kind}
    return {"dm_error": error, "answers": answers}


def dm_input(ctx: TurnContext, state: TurnState, kind: str, event_id: str, meta: dict, **fields) -> None:
    """Every DM answer is a ``dm_input`` event: what was answered, by whom, after how long, and
    (an autopilot LLM DM) how often its model was asked again and whether the rules DM answered."""
    extra = {k: meta[k] for k in ("reasks", "fallback") if k in meta}
    ctx.events.emit("dm_input", event_id, state["turn"], kind=kind, source=meta.get("source") or "unknown",
                    wait_ms=meta.get("wait_ms"), **extra, **fields)


# --- helpers --------------------------------------------------------------------------------------

def active_players(state: TurnState) -> list[dict]:
    skipped = set(state.get("skipped") or [])
    return [p for p in state["party"]["players"] if p["id"] not in skipped]


def _whispers(state: TurnState, pid: str, layer: str) -> list[str]:
    return list(((state.get("whispers") or {}).get(pid) or {}).get(layer) or [])


def _memories(state: TurnState, pid: str, layer: str) -> list[str]:
    return list(((state.get("memories") or {}).get(pid) or {}).get(layer) or [])


def ask_players(state: TurnState, ctx: TurnContext, job_phase: str, attempt: int,
                messages_for: dict[str, list[dict]], max_tokens: int = defaults.LLM_MAX_TOKENS,
                manual_phase: str | None = None) -> dict[str, dict]:
    """Fan out one LLM job per player (``messages_for``: pid -> messages); lines typed by the
    DM in an intervention stand in for a player's job."""
    manual = (state.get("manual") or {}).get(manual_phase or job_phase) or {}
    llm_cfg = state["llm"]
    window = llm_cfg.get("context_window") or 8192
    requests = {}
    for pid, messages in messages_for.items():
        if pid in manual:
            continue
        messages, _ = context.fit_to_context(messages, window, max_tokens)
        requests[pid] = {"session_id": state["session_id"], "campaign_id": state["campaign_id"],
                         "turn": state["turn"], "phase": job_phase, "player_id": pid, "attempt": attempt,
                         "messages": messages, "llm": llm_cfg, "max_tokens": max_tokens}
    results = {}
    if requests:
        progress = {"on_progress": ctx.extra["on_progress"]} if ctx.extra.get("on_progress") else {}
        results = run_jobs(ctx.redis, ctx.queue, requests, session_id=state["session_id"], turn=state["turn"],
                           phase=job_phase, attempt=attempt, events=ctx.events, timeout=ctx.phase_timeout,
                           **progress).results
    for pid, text in manual.items():
        if pid in messages_for:
            results[pid] = {"ok": True, "text": text, "manual": True, "prompt_tokens": 0, "completion_tokens": 0}
    # Party order, not completion order: the state (and every prompt built from it) must not
    # depend on which worker finished first, or a replayed session would tell another story.
    return {pid: results[pid] for pid in messages_for if pid in results}


def _add_tokens(state: TurnState, results: dict[str, dict]) -> dict[str, int]:
    tokens = dict(state.get("tokens") or {"prompt": 0, "completion": 0})
    for r in results.values():
        tokens["prompt"] = tokens.get("prompt", 0) + int(r.get("prompt_tokens") or 0)
        tokens["completion"] = tokens.get("completion", 0) + int(r.get("completion_tokens") or 0)
    return tokens


def _player(state: TurnState, pid: str) -> dict:
    return next(p for p in state["party"]["players"] if p["id"] == pid)


def _name(state: TurnState, pid: str) -> str:
    return _player(state, pid)["character"]["name"]


def _clean(state: TurnState, pid: str, result: dict) -> str:
    """A character's line without the wrappers weak models add; a DM-typed line as typed."""
    if result.get("manual"):
        return result["text"].strip()
    return parsers.clean_character_text(result["text"], _name(state, pid))


# --- the phases -----------------------------------------------------------------------------------

@asking("narration")
def ask_narration(state: TurnState, ctx: TurnContext) -> dict:
    """The DM describes the scene (whispers and /end ride along)."""
    return {}


@phase("dm_narration")
def dm_narration(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    answer, meta, error = answer_of(state, "narration")
    if error:
        return _refused(state, "narration", error)
    turn = state["turn"]
    dm_input(ctx, state, "narration", f"{turn}:narration", meta, text=answer["text"], end=answer["end"])
    if answer["end"]:
        return {"ended": True, "answers": {}}
    whispers = {pid: {k: list(v) for k, v in layers.items()} for pid, layers in (state.get("whispers") or {}).items()}
    for i, w in enumerate(answer["whispers"]):
        layers = ("player", "character") if w["layer"] == "both" else (w["layer"],)
        for layer in layers:
            whispers.setdefault(w["to"], {}).setdefault(layer, []).append(w["text"])
        ctx.events.emit("whisper", f"{turn}:{i}", turn, player_id=w["to"], layer=w["layer"], text=w["text"])
    return {
        "narration": answer["text"], "whispers": whispers, "memories": {}, "discussion": [],
        "consensus": {}, "intents": {}, "actions": {}, "validation_round": 1, "adjudication": {}, "rolls": [],
        "laser_feelings": [], "outcome": "", "reactions": {}, "skipped": [], "manual": {}, "turn_ended": False,
        "tokens": {"prompt": 0, "completion": 0}, "answers": {},
    }


@phase("memory_query")
def memory_query(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    found = recall_for_turn(ctx, state)
    return {"memories": found}


@phase("party_discussion")
def party_discussion(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """Out-of-character table talk (2+ players): rounds until consensus, then a vote."""
    players = active_players(state)
    if len(players) < 2:
        return {"discussion": [], "consensus": {"state": "solo", "plan": "", "dissent": [], "rounds": 0}}
    talk: list[dict] = []
    verdict: dict = {}
    tokens = dict(state.get("tokens") or {})
    ship = state["party"]["ship"]
    started = time.monotonic()
    for round_no in range(1, consensus.MAX_ROUNDS + 1):
        msgs = {p["id"]: builders.discussion_messages(p, ship, state["narration"], _memories(state, p["id"], "player"),
                                                    _whispers(state, p["id"], "player"), state.get("history") or [],
                                                    talk, round_no) for p in players}
        results = ask_players(state, ctx, f"discussion-r{round_no}", attempt, msgs, max_tokens=200,
                              manual_phase="party_discussion")
        tokens = _add_tokens({"tokens": tokens}, results)
        for p in players:
            parsed = parsers.parse_discussion(results[p["id"]]["text"])
            talk.append({"round": round_no, "player": p["id"], **parsed})
        verdict = consensus.detect([t for t in talk if t["round"] == round_no], round_no)
        ctx.events.emit("consensus", f"{state['turn']}:{attempt}:r{round_no}", state["turn"], round=round_no,
                        state=verdict["state"], plan=verdict["plan"], dissent=verdict["dissent"],
                        final=verdict["state"] != "conflicted")
        if verdict["state"] != "conflicted":
            break
        if time.monotonic() - started > consensus.MAX_SECONDS:
            break  # the table has talked long enough: vote
    if verdict["state"] == "conflicted":
        verdict = consensus.vote(talk)
        ctx.events.emit("consensus", f"{state['turn']}:{attempt}:vote", state["turn"], round=verdict["rounds"],
                        state=verdict["state"], plan=verdict["plan"], dissent=verdict["dissent"], final=True,
                        decided_by="vote")
    return {"discussion": talk, "consensus": verdict, "tokens": tokens}


@phase("strategic_intent")
def strategic_intent(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    ship = state["party"]["ship"]
    msgs = {p["id"]: builders.player_intent_messages(p, ship, state["narration"], _memories(state, p["id"], "player"),
                                                   _whispers(state, p["id"], "player"), state.get("history") or [],
                                                   state.get("discussion") or [])
            for p in active_players(state)}
    results = ask_players(state, ctx, "intent", attempt, msgs, manual_phase="strategic_intent")
    intents = {pid: {**parsers.parse_intent(r["text"]), "raw": r["text"]} for pid, r in results.items()}
    return {"intents": intents, "tokens": _add_tokens(state, results)}


def _action_messages(state: TurnState, p: dict, round_no: int, violations: list[str]) -> list[dict]:
    pid = p["id"]
    directive = (state.get("intents") or {}).get(pid, {}).get("directive", "")
    return builders.character_action_messages(p, state["party"]["ship"], state["narration"], directive,
                                             _whispers(state, pid, "character"), state.get("history") or [],
                                             attempt=round_no, violations=violations,
                                             extra_instructions=validation.strict_instructions(round_no),
                                             character_memories=_memories(state, pid, "character"))


@phase("character_action")
def character_action(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    msgs = {p["id"]: _action_messages(state, p, 1, []) for p in active_players(state)}
    results = ask_players(state, ctx, "action-v1", attempt, msgs, manual_phase="character_action")
    actions = {pid: {"text": _clean(state, pid, r), "attempt": 1, "violations": [], "autocorrected": False,
                     "needs_review": False, "manual": bool(r.get("manual"))} for pid, r in results.items()}
    return {"actions": actions, "validation_round": 1, "tokens": _add_tokens(state, results)}


@phase("validation")
def validate(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """Check every action for narrative overreach; after the last attempt, auto-correct.

    The rules (:func:`ttrpg.game.validation.find_overreach`) check every action; with the
    referee on (``state["llm"]["overreach_judge"]``) the player's model gives a second
    opinion and :func:`ttrpg.game.judge.decide` combines the two.
    """
    round_no = state.get("validation_round") or 1
    actions = {pid: dict(a) for pid, a in (state.get("actions") or {}).items()}
    pending = {pid: a for pid, a in actions.items() if not (a.get("manual") or a.get("valid"))}
    verdicts, tokens = _referee(state, ctx, attempt, round_no, pending)
    for pid, action in pending.items():
        found = validation.find_overreach(action["text"])
        if not action["text"].strip():  # a weak model that said nothing gets the same retries
            found = [{"kind": "empty", "match": "", "start": 0, "end": 0, "reason": "the reply was empty"}]
        elif pid in verdicts:
            found = _judged(state, ctx, pid, round_no, found, verdicts[pid])
        if not found:
            action.update(valid=True, violations=[])
            continue
        kinds = [judge.describe(v) for v in found]
        action["violations"] = kinds
        ctx.events.emit("validation_failed", f"{state['turn']}:{pid}:{round_no}", state["turn"], player_id=pid,
                        attempt=round_no, violations=kinds, text=action["text"])
        if round_no >= defaults.VALIDATION_MAX_ATTEMPTS:
            spans = [v for v in found if v["end"] > v["start"]]
            fixed, needs_review = validation.autocorrect(action["text"], spans) if spans else (action["text"], True)
            ctx.events.emit("validation_autocorrected", f"{state['turn']}:{pid}", state["turn"], player_id=pid,
                            original=action["text"], corrected=fixed, needs_review=needs_review)
            # autocorrected: words were cut (a line only the referee flags has no words to cut)
            action.update(text=fixed, autocorrected=bool(spans), needs_review=needs_review, valid=not needs_review)
    return {"actions": actions, **({"tokens": tokens} if tokens else {})}


def _referee(state: TurnState, ctx: TurnContext, attempt: int, round_no: int,
             pending: dict[str, dict]) -> tuple[dict[str, dict], dict | None]:
    """Ask each player's model to referee its character's action (when the referee is on):
    ``({pid: job result}, tokens)``. A failed referee job is no lost turn: the rules decide,
    and ``_judged`` logs that the referee could not answer."""
    asked = {pid: a for pid, a in pending.items() if a["text"].strip()}
    if not (state["llm"].get("overreach_judge") and asked):
        return {}, None
    msgs = {pid: builders.overreach_judge_messages(a["text"], state["narration"], _name(state, pid))
            for pid, a in asked.items()}
    try:
        results = ask_players(state, ctx, f"judge-v{round_no}", attempt, msgs, max_tokens=defaults.JUDGE_MAX_TOKENS)
    except PhaseError as exc:
        return {pid: {"ok": False, "error": str(exc)} for pid in asked}, None
    return results, _add_tokens(state, results)


def _judged(state: TurnState, ctx: TurnContext, pid: str, round_no: int, found: list, result: dict) -> list:
    """The violations that count once the referee has spoken, logged as ``overreach_judged``."""
    reply = result.get("text") if result.get("ok", True) else None
    verdict = parsers.parse_verdict(reply)
    decided, decided_by = judge.decide(found, verdict)
    ctx.events.emit("overreach_judged", f"{state['turn']}:{pid}:{round_no}", state["turn"], player_id=pid,
                    attempt=round_no, rules=[judge.describe(v) for v in found],
                    verdict=None if verdict is None else verdict["overreach"],
                    kind=None if verdict is None else verdict["kind"],
                    reason=None if verdict is None else verdict["reason"],
                    reply=(reply or "")[:defaults.JUDGE_REPLY_LOG_CHARS], decided_by=decided_by,
                    **({"error": result["error"][:300]} if result.get("error") else {}))
    return decided


def after_validation(state: TurnState) -> str:
    if state.get("turn_ended"):
        return "ask_adjudication"
    actions = state.get("actions") or {}
    if any(not a.get("valid") and not a.get("manual") and not a.get("needs_review") for a in actions.values()):
        return "action_retry"
    if any(a.get("needs_review") for a in actions.values()):
        return "ask_review"
    return "ask_adjudication"


@phase("action_retry")
def action_retry(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """Ask again, with stricter instructions, only the characters whose action overreached."""
    round_no = (state.get("validation_round") or 1) + 1
    retry = [p for p in active_players(state)
             if not (state["actions"].get(p["id"]) or {}).get("valid") and p["id"] in state["actions"]]
    msgs = {p["id"]: _action_messages(state, p, round_no, state["actions"][p["id"]].get("violations") or [])
            for p in retry}
    results = ask_players(state, ctx, f"action-v{round_no}", attempt, msgs, manual_phase="character_action")
    actions = {pid: dict(a) for pid, a in state["actions"].items()}
    for pid, r in results.items():
        actions[pid].update(text=_clean(state, pid, r), attempt=round_no, manual=bool(r.get("manual")))
    return {"actions": actions, "validation_round": round_no, "tokens": _add_tokens(state, results)}


def _needing_review(state: TurnState) -> str | None:
    return next((pid for pid, a in (state.get("actions") or {}).items() if a.get("needs_review")), None)


@asking("review")
def ask_review(state: TurnState, ctx: TurnContext) -> dict | None:
    """Accept or rewrite an auto-corrected action that may not read well (one player at a time)."""
    pid = _needing_review(state)
    if pid is None:
        return None
    action = state["actions"][pid]
    return {"player_id": pid, "text": action["text"], "violations": action.get("violations") or [],
            "corrected": bool(action.get("autocorrected"))}


@phase("dm_review")
def dm_review(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    pid = _needing_review(state)
    if pid is None:
        return {}
    answer, meta, error = answer_of(state, "review")
    if error or answer.get("player_id") != pid:
        return _refused(state, "review", error or f"The review answer is for another player; review {pid}.")
    dm_input(ctx, state, "review", f"{state['turn']}:review:{pid}", meta, player_id=pid, text=answer["text"])
    actions = {k: dict(a) for k, a in state["actions"].items()}
    actions[pid].update(text=answer["text"], needs_review=False, valid=True, reviewed=True)
    answers = {k: v for k, v in (state.get("answers") or {}).items() if k != "review"}
    return {"actions": actions, "answers": answers}


def after_review(state: TurnState) -> str:
    if state.get("dm_error") or _needing_review(state):
        return "ask_review"
    return "ask_adjudication"


@asking("adjudication")
def ask_adjudication(state: TurnState, ctx: TurnContext) -> dict:
    """Who rolls, LASERS or FEELINGS, and how many dice; the DM sees the actions first."""
    actions = state.get("actions") or {}
    for pid, a in actions.items():
        ctx.events.emit("character_action", f"{state['turn']}:{pid}", state["turn"], player_id=pid,
                        character=_name(state, pid), text=a["text"], attempt=a.get("attempt", 1),
                        autocorrected=bool(a.get("autocorrected")), reviewed=bool(a.get("reviewed")),
                        manual=bool(a.get("manual")))
    active = {p["id"] for p in active_players(state)}
    acting = {pid: a["text"] for pid, a in actions.items() if pid in active}
    return {"actions": acting, "suggested": {pid: judge_approach(text) for pid, text in acting.items()}}


@phase("dm_adjudication")
def dm_adjudication(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    answer, meta, error = answer_of(state, "adjudication")
    if error:
        return _refused(state, "adjudication", error)
    dm_input(ctx, state, "adjudication", f"{state['turn']}:adjudication", meta, rolls=answer["rolls"])
    return {"adjudication": {"rolls": answer["rolls"]}}


@phase("dice_roll")
def dice_roll(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """Roll every die once, from the session's seeded RNG, and keep the dice in the state."""
    rolls = []
    for r in (state.get("adjudication") or {}).get("rolls") or []:
        rng = dice.seeded_rng(state["seed"], state["turn"], r["player"], "roll")
        number = _player(state, r["player"])["character"]["number"]
        helpers = []
        for h in r.get("helpers") or []:
            hdie = dice.roll_dice(1, dice.seeded_rng(state["seed"], state["turn"], h, "help", r["player"]))
            hnum = _player(state, h)["character"]["number"]
            helpers.append({"player": h, "die": hdie[0], "success": bool(dice.helper_bonus(hdie, hnum, r["approach"]))})
        count = r["dice"] + sum(1 for h in helpers if h["success"])
        rolls.append({"player": r["player"], "approach": r["approach"], "number": number,
                      "dice": dice.roll_dice(count, rng), "helpers": helpers, "overridden": False})
    return {"rolls": rolls}


@asking("dice")
def ask_dice(state: TurnState, ctx: TurnContext) -> dict | None:
    """Keep the dice as rolled, or type the dice rolled at the table."""
    rolls = state.get("rolls") or []
    return {"rolls": rolls} if rolls else None


@phase("dice_resolution")
def dice_resolution(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    rolls = [dict(r) for r in state.get("rolls") or []]
    if not rolls:
        return {}
    answer, meta, error = answer_of(state, "dice")
    if error:
        return _refused(state, "dice", error)
    overrides = answer["override"]
    for r in rolls:
        if overrides.get(r["player"]):
            r["dice"] = dice.apply_override(r["dice"], overrides[r["player"]])
            r["overridden"] = True
        r["result"] = dice.resolve_roll(r["dice"], r["number"], r["approach"])
        ctx.events.emit("dice_roll", f"{state['turn']}:{r['player']}", state["turn"], player_id=r["player"],
                        approach=r["approach"], number=r["number"], dice=r["dice"], helpers=r["helpers"],
                        overridden=r["overridden"], successes=r["result"]["successes"], band=r["result"]["band"],
                        laser_feelings=r["result"]["laser_feelings"])
    dm_input(ctx, state, "dice_override" if overrides else "dice", f"{state['turn']}:dice", meta, override=overrides)
    return {"rolls": rolls}


def after_dice(state: TurnState) -> str:
    if state.get("dm_error"):
        return "ask_dice"
    if any((r.get("result") or {}).get("laser_feelings") for r in state.get("rolls") or []):
        return "laser_feelings"
    return "ask_outcome"


def _unanswered_question(state: TurnState) -> dict | None:
    return next((q for q in state.get("laser_feelings") or [] if q.get("answer") is None), None)


@phase("laser_feelings")
def laser_feelings(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """LASER FEELINGS: the player asks the GM a question, which the GM answers honestly.

    Runs twice or more: first to get each lucky player's question (LLM jobs), then once after
    each answer of the DM, which it records.
    """
    asked = [dict(q) for q in state.get("laser_feelings") or []]
    update: dict = {}
    if not asked:
        lucky = [r for r in state["rolls"] if r["result"]["laser_feelings"]]
        ship = state["party"]["ship"]
        msgs = {r["player"]: builders.laser_feelings_question_messages(
            _player(state, r["player"]), ship, state["narration"],
            (state["actions"].get(r["player"]) or {}).get("text", "")) for r in lucky}
        results = ask_players(state, ctx, "lf-question", attempt, msgs, max_tokens=120, manual_phase="laser_feelings")
        asked = [{"player": r["player"], "question": parsers.parse_question(results[r["player"]]["text"]),
                  "answer": None} for r in lucky]
        update["tokens"] = _add_tokens(state, results)
    elif (state.get("answers") or {}).get("laser_feelings"):
        answer, meta, error = answer_of(state, "laser_feelings")
        pending = next((q for q in asked if q["answer"] is None), None)
        question = ((state.get("answers") or {}).get("laser_feelings") or {}).get("question") or {}
        if error or pending is None or question.get("player_id") != pending["player"]:
            return _refused(state, "laser_feelings", error or "That answer was for another question; answer again.")
        pending["answer"] = answer["text"]
        dm_input(ctx, state, "laser_feelings", f"{state['turn']}:lf:{pending['player']}", meta,
                 player_id=pending["player"], text=answer["text"])
        ctx.events.emit("laser_feelings", f"{state['turn']}:{pending['player']}", state["turn"],
                        player_id=pending["player"], question=pending["question"], answer=answer["text"])
        update["answers"] = {k: v for k, v in (state.get("answers") or {}).items() if k != "laser_feelings"}
    return {**update, "laser_feelings": asked}


def after_laser_feelings(state: TurnState) -> str:
    if state.get("dm_error") or _unanswered_question(state):
        return "ask_laser_feelings"
    return "ask_outcome"


@asking("laser_feelings")
def ask_laser_feelings(state: TurnState, ctx: TurnContext) -> dict | None:
    """The DM answers a LASER FEELINGS question honestly."""
    q = _unanswered_question(state)
    return {"player_id": q["player"], "question": q["question"]} if q else None


@asking("outcome")
def ask_outcome(state: TurnState, ctx: TurnContext) -> dict:
    """The DM says what happens."""
    return {"rolls": state.get("rolls") or [],
            "actions": {pid: a["text"] for pid, a in (state.get("actions") or {}).items()}}


@phase("dm_outcome")
def dm_outcome(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    answer, meta, error = answer_of(state, "outcome")
    if error:
        return _refused(state, "outcome", error)
    dm_input(ctx, state, "outcome", f"{state['turn']}:outcome", meta, text=answer["text"])
    return {"outcome": answer["text"]}


@phase("character_reaction")
def character_reaction(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    ship = state["party"]["ship"]
    msgs = {p["id"]: builders.character_reaction_messages(p, ship, state["narration"], state.get("outcome") or "",
                                                        _whispers(state, p["id"], "character"),
                                                        state.get("history") or [],
                                                        character_memories=_memories(state, p["id"], "character"))
            for p in active_players(state)}
    results = ask_players(state, ctx, "reaction", attempt, msgs, max_tokens=200, manual_phase="character_reaction")
    reactions = {pid: _clean(state, pid, r) for pid, r in results.items()}
    for pid, text in reactions.items():
        ctx.events.emit("character_reaction", f"{state['turn']}:{pid}", state["turn"], player_id=pid,
                        character=_name(state, pid), text=text, manual=bool(results[pid].get("manual")))
    return {"reactions": reactions, "tokens": _add_tokens(state, results)}


@phase("memory_storage")
def memory_storage(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    # A turn the DM ended after this phase failed twice moves on without its memories.
    if not (state.get("turn_ended") and attempt > 1):
        store_turn(ctx, state)
    turn = state["turn"]
    line = summarize_turn(state)
    history = (list(state.get("history") or []) + [line])[-defaults.HISTORY_TURNS_KEPT:]
    tokens = state.get("tokens") or {}
    ctx.events.emit("turn_completed", f"{turn}", turn, ended_early=bool(state.get("turn_ended")),
                    prompt_tokens=tokens.get("prompt", 0), completion_tokens=tokens.get("completion", 0),
                    consensus=(state.get("consensus") or {}).get("state"))
    ended = bool(state.get("max_turns")) and turn >= state["max_turns"]
    return {"history": history, "turn": turn + 1, "ended": ended}


def summarize_turn(state: TurnState) -> str:
    """One line a later prompt can carry instead of the whole turn."""
    parts = [f"Turn {state['turn']}: {state.get('narration', '')[:160]}"]
    for pid, a in (state.get("actions") or {}).items():
        parts.append(f"{_name(state, pid)}: {a['text'][:100]}")
    for r in state.get("rolls") or []:
        parts.append(f"{_name(state, r['player'])} rolled {r['result']['band']}")
    if state.get("outcome"):
        parts.append(f"Outcome: {state['outcome'][:160]}")
    return " | ".join(parts)


def after_turn(state: TurnState) -> str:
    return "end" if state.get("ended") else "ask_narration"


def after_narration(state: TurnState) -> str:
    if state.get("dm_error"):
        return "ask_narration"
    return "end" if state.get("ended") else "memory_query"


def back_to_ask_or(kind: str, then: str) -> Callable[[TurnState], str]:
    """Routing after a work node that uses a DM answer: back to its question if refused."""
    ask = QUESTIONS[kind][0]

    def route(state: TurnState) -> str:
        return ask if state.get("dm_error") else then

    route.__name__ = f"after_{kind}"
    return route


def after_ask(kind: str, then: str) -> Callable[[TurnState], str]:
    """Routing after an ask node: ask again while the answer is refused."""
    return back_to_ask_or(kind, then)


#: Every node of the turn graph: work nodes by phase name, ask nodes by ``ask_<kind>``.
NODES: dict[str, Callable] = {
    **{name: globals()["validate" if name == "validation" else name] for name in PHASES},
    **{node: globals()[node] for node in ASK_NODES},
}
