"""The turn phases: one function per phase, each returning only the state it changes.

Phases are wrapped by :func:`phase`, which logs ``phase_started`` / ``phase_completed`` with
deterministic event ids, passes the phase's attempt number (1 + failures recorded for this
turn and phase) and, after two failures, asks the DM to intervene before running again.

I/O happens through :class:`TurnContext` (Redis, the job queue, the event log); DM input
through ``interrupt()``. A phase that calls ``interrupt()`` runs again from its start when
the DM answers, so everything before an interrupt is idempotent: jobs are re-attached by
id, events de-duplicated by id, and dice rolled in a node of their own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from ttrpg import dice, prompts, validation
from ttrpg.constants import SESSION_KEY
from ttrpg.events import EventLog
from ttrpg.fanout import run_jobs
from ttrpg.state import TurnState

PHASES = (
    "dm_narration", "memory_query", "party_discussion", "strategic_intent", "character_action",
    "validation", "action_retry", "dm_review", "dm_adjudication", "dice_roll", "dice_resolution",
    "laser_feelings", "dm_outcome", "character_reaction", "memory_storage",
)
"""Every node of the turn graph, in turn order (retry and question nodes included)."""

INTERVENTION_OPTIONS = ("retry", "skip", "type", "end_turn")
HISTORY_KEPT = 30


@dataclass
class TurnContext:
    """What phases need from the outside world; built by the session driver per process."""

    redis: Any
    queue: str
    events: EventLog
    memory: Any = None
    phase_timeout: float = 180.0
    extra: dict = field(default_factory=dict)

    def failures(self, turn: int, phase: str) -> int:
        raw = self.redis.hget(SESSION_KEY.format(session_id=self.events.session_id), f"fail:{turn}:{phase}")
        return int(raw or 0)

    def failure_info(self, turn: int, phase: str) -> dict:
        import json

        raw = self.redis.hget(SESSION_KEY.format(session_id=self.events.session_id), f"failinfo:{turn}:{phase}")
        return json.loads(raw) if raw else {}


def phase(name: str) -> Callable:
    """Wrap a phase function ``fn(state, ctx, attempt) -> dict`` as a graph node."""

    def deco(fn):
        # Not functools.wraps: LangGraph reads the node's own signature to pass ``runtime``.
        def node(state: TurnState, runtime: Runtime[TurnContext]) -> dict:
            ctx = runtime.context
            turn = state["turn"]
            if state.get("turn_ended") and name != "memory_storage":
                return {"phase": name}
            fails = ctx.failures(turn, name)
            update: dict = {}
            if fails >= 2:
                update = _intervene(state, ctx, name, fails)
                state = {**state, **update}
                if state.get("turn_ended") and name != "memory_storage":
                    return {**update, "phase": name}
            attempt = fails + 1
            ctx.events.emit("phase_started", f"{turn}:{name}:{attempt}", turn, phase=name, attempt=attempt)
            result = fn(state, ctx, attempt) or {}
            ctx.events.emit("phase_completed", f"{turn}:{name}:{attempt}", turn, phase=name, attempt=attempt)
            return {**update, **result, "phase": name}

        node.__name__, node.__qualname__, node.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        node.phase_name = name
        return node

    return deco


def _intervene(state: TurnState, ctx: TurnContext, name: str, fails: int) -> dict:
    info = ctx.failure_info(state["turn"], name)
    answer = interrupt({"kind": "intervention", "turn": state["turn"], "phase": name, "failures": fails,
                        "reason": info.get("reason", ""), "player_id": info.get("player_id"),
                        "options": list(INTERVENTION_OPTIONS)})
    choice = answer.get("choice") if isinstance(answer, dict) else str(answer)
    pid = (answer.get("player_id") if isinstance(answer, dict) else None) or info.get("player_id")
    ctx.events.emit("dm_intervention", f"{state['turn']}:{name}:{fails}", state["turn"], phase=name,
                    failures=fails, reason=info.get("reason", ""), choice=choice, player_id=pid)
    if choice == "skip" and pid:
        return {"skipped": sorted(set(state.get("skipped") or []) | {pid})}
    if choice == "type" and pid:
        manual = {k: dict(v) for k, v in (state.get("manual") or {}).items()}
        manual.setdefault(name, {})[pid] = answer.get("text", "") if isinstance(answer, dict) else ""
        return {"manual": manual}
    if choice == "end_turn":
        return {"turn_ended": True}
    return {}


# --- helpers --------------------------------------------------------------------------------------

def active_players(state: TurnState) -> list[dict]:
    skipped = set(state.get("skipped") or [])
    return [p for p in state["party"]["players"] if p["id"] not in skipped]


def _whispers(state: TurnState, pid: str, layer: str) -> list[str]:
    return list(((state.get("whispers") or {}).get(pid) or {}).get(layer) or [])


def _memories(state: TurnState, pid: str, layer: str) -> list[str]:
    return list(((state.get("memories") or {}).get(pid) or {}).get(layer) or [])


def ask_players(state: TurnState, ctx: TurnContext, job_phase: str, attempt: int,
                messages_for: dict[str, list[dict]], max_tokens: int = 300,
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
        messages, _ = prompts.fit_to_context(messages, window, max_tokens)
        requests[pid] = {"session_id": state["session_id"], "campaign_id": state["campaign_id"],
                         "turn": state["turn"], "phase": job_phase, "player_id": pid, "attempt": attempt,
                         "messages": messages, "llm": llm_cfg, "max_tokens": max_tokens}
    results = {}
    if requests:
        results = run_jobs(ctx.redis, ctx.queue, requests, session_id=state["session_id"], turn=state["turn"],
                           phase=job_phase, attempt=attempt, events=ctx.events, timeout=ctx.phase_timeout).results
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
    return prompts.clean_character_text(result["text"], _name(state, pid))


# --- the phases -----------------------------------------------------------------------------------

@phase("dm_narration")
def dm_narration(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    answer = interrupt({"kind": "narration", "turn": state["turn"]})
    if isinstance(answer, str):
        answer = {"text": answer}
    turn = state["turn"]
    ctx.events.emit("dm_input", f"{turn}:narration", turn, kind="narration", text=answer.get("text", ""),
                    end=bool(answer.get("end")))
    if answer.get("end"):
        return {"ended": True}
    whispers = {pid: {k: list(v) for k, v in layers.items()} for pid, layers in (state.get("whispers") or {}).items()}
    for i, w in enumerate(answer.get("whispers") or []):
        layers = ("player", "character") if w.get("layer", "both") == "both" else (w["layer"],)
        for layer in layers:
            whispers.setdefault(w["to"], {}).setdefault(layer, []).append(w["text"])
        ctx.events.emit("whisper", f"{turn}:{i}", turn, player_id=w["to"], layer=w.get("layer", "both"),
                        text=w["text"])
    return {
        "narration": answer.get("text", ""), "whispers": whispers, "memories": {}, "discussion": [],
        "consensus": {}, "intents": {}, "actions": {}, "validation_round": 1, "adjudication": {}, "rolls": [],
        "laser_feelings": [], "outcome": "", "reactions": {}, "skipped": [], "manual": {}, "turn_ended": False,
        "tokens": {"prompt": 0, "completion": 0},
    }


@phase("memory_query")
def memory_query(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    from ttrpg import memory

    found = memory.recall_for_turn(ctx, state)
    return {"memories": found}


@phase("party_discussion")
def party_discussion(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """Out-of-character table talk (2+ players): rounds until consensus, then a vote."""
    from ttrpg import consensus

    players = active_players(state)
    if len(players) < 2:
        return {"discussion": [], "consensus": {"state": "solo", "plan": "", "dissent": [], "rounds": 0}}
    talk: list[dict] = []
    verdict: dict = {}
    tokens = dict(state.get("tokens") or {})
    ship = state["party"]["ship"]
    started = time.monotonic()
    for round_no in range(1, consensus.MAX_ROUNDS + 1):
        msgs = {p["id"]: prompts.discussion_messages(p, ship, state["narration"], _memories(state, p["id"], "player"),
                                                    _whispers(state, p["id"], "player"), state.get("history") or [],
                                                    talk, round_no) for p in players}
        results = ask_players(state, ctx, f"discussion-r{round_no}", attempt, msgs, max_tokens=200,
                              manual_phase="party_discussion")
        tokens = _add_tokens({"tokens": tokens}, results)
        for p in players:
            parsed = prompts.parse_discussion(results[p["id"]]["text"])
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
    msgs = {p["id"]: prompts.player_intent_messages(p, ship, state["narration"], _memories(state, p["id"], "player"),
                                                   _whispers(state, p["id"], "player"), state.get("history") or [],
                                                   state.get("discussion") or [])
            for p in active_players(state)}
    results = ask_players(state, ctx, "intent", attempt, msgs, manual_phase="strategic_intent")
    intents = {pid: {**prompts.parse_intent(r["text"]), "raw": r["text"]} for pid, r in results.items()}
    return {"intents": intents, "tokens": _add_tokens(state, results)}


def _action_messages(state: TurnState, p: dict, round_no: int, violations: list[str]) -> list[dict]:
    pid = p["id"]
    directive = (state.get("intents") or {}).get(pid, {}).get("directive", "")
    return prompts.character_action_messages(p, state["party"]["ship"], state["narration"], directive,
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
    """Check every action for narrative overreach; after the last attempt, auto-correct."""
    round_no = state.get("validation_round") or 1
    actions = {pid: dict(a) for pid, a in (state.get("actions") or {}).items()}
    for pid, action in actions.items():
        if action.get("manual") or action.get("valid"):
            continue
        found = validation.find_overreach(action["text"])
        if not action["text"].strip():  # a weak model that said nothing gets the same retries
            found = [{"kind": "empty", "match": "", "start": 0, "end": 0, "reason": "the reply was empty"}]
        if not found:
            action.update(valid=True, violations=[])
            continue
        kinds = [f"{v['kind']}: {v['match']}" for v in found]
        action["violations"] = kinds
        ctx.events.emit("validation_failed", f"{state['turn']}:{pid}:{round_no}", state["turn"], player_id=pid,
                        attempt=round_no, violations=kinds, text=action["text"])
        if round_no >= validation.MAX_ATTEMPTS:
            fixed, needs_review = validation.autocorrect(action["text"], found)
            ctx.events.emit("validation_autocorrected", f"{state['turn']}:{pid}", state["turn"], player_id=pid,
                            original=action["text"], corrected=fixed, needs_review=needs_review)
            action.update(text=fixed, autocorrected=True, needs_review=needs_review, valid=not needs_review)
    return {"actions": actions}


def after_validation(state: TurnState) -> str:
    if state.get("turn_ended"):
        return "dm_adjudication"
    actions = state.get("actions") or {}
    if any(not a.get("valid") and not a.get("manual") and not a.get("needs_review") for a in actions.values()):
        return "action_retry"
    if any(a.get("needs_review") for a in actions.values()):
        return "dm_review"
    return "dm_adjudication"


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


@phase("dm_review")
def dm_review(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    actions = {pid: dict(a) for pid, a in state["actions"].items()}
    for pid, action in actions.items():
        if not action.get("needs_review"):
            continue
        answer = interrupt({"kind": "review", "turn": state["turn"], "player_id": pid, "text": action["text"],
                            "violations": action.get("violations") or []})
        text = answer.get("text") if isinstance(answer, dict) else answer
        ctx.events.emit("dm_input", f"{state['turn']}:review:{pid}", state["turn"], kind="review", player_id=pid,
                        text=text or action["text"])
        action.update(text=text or action["text"], needs_review=False, valid=True, reviewed=True)
    return {"actions": actions}


@phase("dm_adjudication")
def dm_adjudication(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    if state.get("turn_ended"):
        return {}
    for pid, a in (state.get("actions") or {}).items():
        ctx.events.emit("character_action", f"{state['turn']}:{pid}", state["turn"], player_id=pid,
                        character=_name(state, pid), text=a["text"], attempt=a.get("attempt", 1),
                        autocorrected=bool(a.get("autocorrected")), reviewed=bool(a.get("reviewed")),
                        manual=bool(a.get("manual")))
    answer = interrupt({"kind": "adjudication", "turn": state["turn"],
                        "actions": {pid: a["text"] for pid, a in (state.get("actions") or {}).items()}})
    rolls = []
    valid_ids = {p["id"] for p in active_players(state)}
    for r in (answer or {}).get("rolls") or []:
        if r.get("player") not in valid_ids:
            continue
        rolls.append({"player": r["player"], "approach": r.get("approach", "lasers"),
                      "dice": dice.validate_dice_count(int(r.get("dice", 1))),
                      "helpers": [h for h in r.get("helpers") or [] if h in valid_ids and h != r["player"]]})
    ctx.events.emit("dm_input", f"{state['turn']}:adjudication", state["turn"], kind="adjudication", rolls=rolls)
    return {"adjudication": {"rolls": rolls}}


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


@phase("dice_resolution")
def dice_resolution(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    rolls = [dict(r) for r in state.get("rolls") or []]
    if not rolls:
        return {}
    answer = interrupt({"kind": "dice", "turn": state["turn"], "rolls": rolls}) or {}
    overrides = answer.get("override") or {} if isinstance(answer, dict) else {}
    for r in rolls:
        if overrides.get(r["player"]):
            r["dice"] = dice.apply_override(r["dice"], [int(d) for d in overrides[r["player"]]])
            r["overridden"] = True
        r["result"] = dice.resolve_roll(r["dice"], r["number"], r["approach"])
        ctx.events.emit("dice_roll", f"{state['turn']}:{r['player']}", state["turn"], player_id=r["player"],
                        approach=r["approach"], number=r["number"], dice=r["dice"], helpers=r["helpers"],
                        overridden=r["overridden"], successes=r["result"]["successes"], band=r["result"]["band"],
                        laser_feelings=r["result"]["laser_feelings"])
    if overrides:
        ctx.events.emit("dm_input", f"{state['turn']}:dice", state["turn"], kind="dice_override", override=overrides)
    return {"rolls": rolls}


def after_dice(state: TurnState) -> str:
    if any((r.get("result") or {}).get("laser_feelings") for r in state.get("rolls") or []):
        return "laser_feelings"
    return "dm_outcome"


@phase("laser_feelings")
def laser_feelings(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    """LASER FEELINGS: the player asks the GM a question, which the GM answers honestly."""
    lucky = [r for r in state["rolls"] if r["result"]["laser_feelings"]]
    ship = state["party"]["ship"]
    msgs = {r["player"]: prompts.laser_feelings_question_messages(
        _player(state, r["player"]), ship, state["narration"],
        (state["actions"].get(r["player"]) or {}).get("text", "")) for r in lucky}
    results = ask_players(state, ctx, "lf-question", attempt, msgs, max_tokens=120, manual_phase="laser_feelings")
    answered = []
    for r in lucky:
        pid = r["player"]
        question = prompts.parse_question(results[pid]["text"])
        answer = interrupt({"kind": "laser_feelings", "turn": state["turn"], "player_id": pid, "question": question})
        text = answer.get("text") if isinstance(answer, dict) else str(answer or "")
        ctx.events.emit("laser_feelings", f"{state['turn']}:{pid}", state["turn"], player_id=pid, question=question,
                        answer=text)
        answered.append({"player": pid, "question": question, "answer": text})
    return {"laser_feelings": answered, "tokens": _add_tokens(state, results)}


@phase("dm_outcome")
def dm_outcome(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    answer = interrupt({"kind": "outcome", "turn": state["turn"], "rolls": state.get("rolls") or [],
                        "actions": {pid: a["text"] for pid, a in (state.get("actions") or {}).items()}})
    text = answer.get("text") if isinstance(answer, dict) else str(answer or "")
    ctx.events.emit("dm_input", f"{state['turn']}:outcome", state["turn"], kind="outcome", text=text)
    return {"outcome": text}


@phase("character_reaction")
def character_reaction(state: TurnState, ctx: TurnContext, attempt: int) -> dict:
    ship = state["party"]["ship"]
    msgs = {p["id"]: prompts.character_reaction_messages(p, ship, state["narration"], state.get("outcome") or "",
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
    from ttrpg import memory

    memory.store_turn(ctx, state)
    turn = state["turn"]
    line = summarize_turn(state)
    history = (list(state.get("history") or []) + [line])[-HISTORY_KEPT:]
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
    return "end" if state.get("ended") else "dm_narration"


def after_narration(state: TurnState) -> str:
    return "end" if state.get("ended") else "memory_query"
