"""Storing memories: one memory (with its conflicts resolved), what a turn stores, session recaps.

**Storage triggers** (:func:`store_turn`, once per turn in the memory storage phase): a
turn is stored when something critical happened -- a capitalised name not seen before in
the campaign (an NPC, place or item introduced), a roll outcome / DM outcome, a party
decision (the consensus plan), a quest status change, an end of scene. Then the DM's
narration and outcome become ``party`` memories (source dm), the plan a ``party`` memory
(source player, 0.9), each player's intent a ``player:<pid>`` memory and each character's
action + reaction a ``character:<pid>`` memory. Every ``MEMORY_SUMMARY_EVERY`` turns a recap
of recent history is stored, and :func:`store_session_end` stores a recap of the session.
Memory ids are deterministic (session, turn, kind, player) and written with ``NX``, so a
phase re-run after a crash stores nothing twice; events carry deterministic ids too.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

from ttrpg import defaults
from ttrpg.constants import MEMORY_KEY
from ttrpg.memory.conflicts import resolve_conflicts
from ttrpg.memory.store import (
    SOURCES,
    SUMMARY_KINDS,
    MemoryInputError,
    campaign_turn,
    check_scope,
    ensure_index,
    get_doc,
    memory_id,
    register_entities,
    supersede,
)
from ttrpg.memory.text import MAX_ENTITIES, entity_key, extract_entities, extract_names, sentences

BASE_CONFIDENCE = {"dm": defaults.MEMORY_DM_CONFIDENCE, "player": defaults.MEMORY_PLAYER_CONFIDENCE,
                   "character": defaults.MEMORY_CHARACTER_CONFIDENCE}

def store(redis, campaign_id: str, *, scope: str, text: str, source: str, turn: int, session_id: str,
          entities: list[str] | None = None, confidence: float | None = None, kind: str = "note",
          id: str | None = None, events=None) -> dict:
    """Store one memory (idempotent: the same id is written once) and resolve conflicts.

    ``id`` defaults to a hash of (session, turn, scope, source, text), so storing the same
    thing twice keeps one memory. ``entities`` default to :func:`extract_entities` of the
    text. ``confidence`` defaults to the source's base. ``events`` (an
    :class:`ttrpg.research.events.EventLog`) receives ``memory_conflict`` events. Returns the stored
    document (the existing one when the id was already stored).
    """
    check_scope(scope)
    if source not in SOURCES:
        raise MemoryInputError(f"Bad memory source {source!r}: use dm, player or character.")
    text = (text or "").strip()
    if not text:
        raise MemoryInputError("A memory needs some text.")
    if confidence is None:
        confidence = BASE_CONFIDENCE[source]
    if not 0.0 <= float(confidence) <= 1.0:
        raise MemoryInputError(f"Confidence must be between 0 and 1, got {confidence!r}.")
    ensure_index(redis)
    if id is None:
        digest = hashlib.sha1(json.dumps([session_id, int(turn), scope, source, text]).encode()).hexdigest()
        id = "m-" + digest[:20]
    key = MEMORY_KEY.format(campaign_id=campaign_id, memory_id=id)
    doc = get_doc(redis, key)
    is_new = doc is None
    if is_new:
        if entities is None:
            entities = extract_entities(text, redis, campaign_id)
        entities = list(dict.fromkeys(e.strip() for e in entities if e and e.strip()))[:MAX_ENTITIES]
        doc = {
            "id": id, "campaign_id": campaign_id, "scope": scope,
            "pid": None if scope == "party" else scope.split(":", 1)[1],
            "text": text, "entities": entities, "entity_keys": list(dict.fromkeys(entity_key(e) for e in entities)),
            "turn": int(turn), "cturn": campaign_turn(redis, campaign_id, session_id, turn),
            "session_id": session_id, "source": source, "kind": kind, "confidence": round(float(confidence), 4),
            "created_at": round(time.time(), 6), "status": "active", "superseded_by": None, "supersedes": [],
        }
    losers = []
    if doc.get("status") == "active" and doc.get("kind") not in SUMMARY_KINDS:
        losers = resolve_conflicts(redis, doc, key, is_new, events)
    if is_new:
        written = redis.execute_command("JSON.SET", key, "$", json.dumps(doc), "NX")
        if not written:  # another process stored it meanwhile: that one counts
            return get_doc(redis, key) or doc
        register_entities(redis, campaign_id, doc["entities"], session_id, turn, kind)
        for loser in losers:  # after the winner is written, so a crash in between re-resolves
            supersede(redis, loser, doc["id"])
    return doc


_QUEST_WORD = re.compile(r"\b(quests?|missions?|jobs?|contracts?|bount(?:y|ies)|tasks?|errands?)\b", re.I)
_QUEST_STATUS = [
    ("completed", re.compile(r"\b(complete[ds]?|finish(?:ed)?|done|accomplished|succeed(?:ed|s)?)\b", re.I)),
    ("failed", re.compile(r"\b(fail(?:ed|s|ure)?|botched|abandon(?:ed)?|lost)\b", re.I)),
    ("accepted", re.compile(r"\b(accept(?:ed|s)?|took|take[ns]?|signed on|agree[ds]?|begins?|started)\b", re.I)),
]
_SCENE_END = re.compile(r"\b(end of (?:the |this )?scene|scene (?:ends|is over|closes)|fade to black)\b", re.I)


def quest_changes(text: str) -> list[tuple[str, str]]:
    """``[(status, sentence)]`` for sentences naming a quest/mission/job and a status change."""
    out = []
    for sent in sentences(text):
        if not _QUEST_WORD.search(sent):
            continue
        for status, pattern in _QUEST_STATUS:
            if pattern.search(sent):
                out.append((status, sent))
                break
    return out


def _pc_names(state: dict) -> set[str]:
    names = set()
    for p in (state.get("party") or {}).get("players") or []:
        name = (p.get("character") or {}).get("name") or ""
        names.add(entity_key(name))
        names.update(entity_key(w) for w in name.split())
    ship = ((state.get("party") or {}).get("ship") or {}).get("name") or ""
    names.add(entity_key(ship))
    names.update(entity_key(n) for n in extract_names(ship))
    return {n for n in names if n}


def _char_name(state: dict, pid: str) -> str:
    for p in (state.get("party") or {}).get("players") or []:
        if p.get("id") == pid:
            return (p.get("character") or {}).get("name") or pid
    return pid


def _roll_line(state: dict, r: dict) -> str:
    res = r.get("result") or {}
    n = res.get("successes", 0)
    helped = [h["player"] for h in r.get("helpers") or [] if h.get("success")]
    text = (f"{_char_name(state, r['player'])} rolled {str(r.get('approach', '')).upper()} "
            f"({len(r.get('dice') or [])} dice against {r.get('number')}): {n} success{'es' if n != 1 else ''}, "
            f"{res.get('band', '?')}")
    if helped:
        text += " with help from " + ", ".join(_char_name(state, h) for h in helped)
    if res.get("laser_feelings"):
        text += ", LASER FEELINGS"
    return text + "."


def _turn_line(state: dict) -> str:
    parts = [f"Turn {state['turn']}: {(state.get('narration') or '')[:160]}"]
    for pid, a in (state.get("actions") or {}).items():
        parts.append(f"{_char_name(state, pid)}: {(a.get('text') or '')[:100]}")
    for r in state.get("rolls") or []:
        if r.get("result"):
            parts.append(f"{_char_name(state, r['player'])} rolled {r['result'].get('band')}")
    if state.get("outcome"):
        parts.append(f"Outcome: {state['outcome'][:160]}")
    return " | ".join(parts)


def _recap(lines: list[str], per_line: int, total: int) -> str:
    kept = [ln if len(ln) <= per_line else ln[: per_line - 3].rstrip() + "..." for ln in lines]
    text = " / ".join(kept)
    return text if len(text) <= total else "..." + text[-(total - 3):]


def _recent_history(state: dict, n: int) -> list[str]:
    history = list(state.get("history") or [])
    turn = state.get("turn")
    if not history or not str(history[-1]).startswith(f"Turn {turn}:"):
        history.append(_turn_line(state))
    return history[-n:]


def store_turn(ctx, state: dict) -> list[dict]:
    """The memory storage phase: store this turn's memories if a trigger fired (see the module docstring).

    Returns the memories stored (or already stored by an earlier run of this phase). Emits
    one ``memory_stored`` event per memory (id ``<turn>:<memory id>``) with the turn's counts
    per scope (``stored_this_turn``, ``by_scope``) and what triggered storage.
    """
    redis, events = ctx.redis, ctx.events
    cid, sid, turn = state["campaign_id"], state["session_id"], int(state["turn"])
    narration = (state.get("narration") or "").strip()
    outcome = (state.get("outcome") or "").strip()
    pcs = _pc_names(state)

    def put(kind: str, pid: str | None, scope: str, text: str, source: str, confidence=None, entities=None):
        if text and text.strip():
            stored.append(store(redis, cid, scope=scope, text=text, source=source, turn=turn, session_id=sid,
                                entities=entities, confidence=confidence, kind=kind,
                                id=memory_id(sid, turn, kind, pid or "party"), events=events))

    stored: list[dict] = []
    triggers: list[str] = []
    narr_entities = extract_entities(narration, redis, cid)
    new = register_entities(redis, cid, narr_entities, sid, turn, "narration")
    npcs = [e for e in new if entity_key(e) not in pcs]
    if npcs:
        triggers.append("new_entity")
    rolls = [r for r in state.get("rolls") or [] if r.get("result")]
    if rolls or outcome:
        triggers.append("roll_outcome")
    plan = ((state.get("consensus") or {}).get("plan") or "").strip()
    if plan and (state.get("consensus") or {}).get("state") != "solo":
        triggers.append("party_decision")
    quests = quest_changes(narration + "\n" + outcome)
    if quests:
        triggers.append("quest")
    scene_end = bool((state.get("extra") or {}).get("scene_end")) or bool(_SCENE_END.search(narration + " " + outcome))
    if scene_end:
        triggers.append("scene_end")

    if triggers:
        put("narration", None, "party", narration, "dm", entities=narr_entities or None)
        facts = [outcome] if outcome else []
        facts += [_roll_line(state, r) for r in rolls]
        put("outcome", None, "party", " ".join(facts), "dm")
        for i, lf in enumerate(state.get("laser_feelings") or []):
            if lf.get("answer"):
                put(f"laser_feelings{i}", lf.get("player"), "party",
                    f"{_char_name(state, lf.get('player'))} asked: {lf.get('question', '')} The GM answered: "
                    f"{lf['answer']}", "dm")
        if "party_decision" in triggers:
            put("decision", None, "party", f"The party decided: {plan}", "player",
                confidence=defaults.MEMORY_DECISION_CONFIDENCE)
        for i, (status, sentence) in enumerate(quests):
            put(f"quest{i}", None, "party", f"Quest {status}: {sentence}", "dm")
        for p in state["party"]["players"]:
            pid = p["id"]
            intent = (state.get("intents") or {}).get(pid) or {}
            intent_text = (intent.get("intent") or "").strip()
            if intent.get("directive") and intent.get("directive") != intent_text:
                intent_text = f"{intent_text} Directive: {intent['directive']}".strip()
            put("intent", pid, f"player:{pid}", f"My plan on turn {turn}: {intent_text}" if intent_text else "",
                "player")
            action = ((state.get("actions") or {}).get(pid) or {}).get("text") or ""
            reaction = (state.get("reactions") or {}).get(pid) or ""
            parts = []
            if action:
                parts.append(f"{_char_name(state, pid)} tried: {action.strip()}")
            if reaction:
                parts.append(f"Reaction: {reaction.strip()}")
            put("action", pid, f"character:{pid}", " ".join(parts), "character")
    every = defaults.MEMORY_SUMMARY_EVERY
    if every and turn % every == 0:
        triggers.append("summary")
        lines = _recent_history(state, every)
        put("summary", None, "party", f"Recap of turns {max(1, turn - every + 1)}-{turn}: "
                                       f"{_recap(lines, 240, defaults.MEMORY_SUMMARY_CHARS)}",
            "dm", confidence=defaults.MEMORY_SUMMARY_CONFIDENCE)
    if scene_end:
        recap = _recap(_recent_history(state, every or 10), 240, defaults.MEMORY_SUMMARY_CHARS)
        put("scene_end", None, "party", f"End of scene at turn {turn}: {recap}", "dm",
            confidence=defaults.MEMORY_SUMMARY_CONFIDENCE)
    _emit_stored(events, f"{turn}", turn, stored, triggers, new_entities=npcs)
    return stored


def store_session_end(ctx, state: dict) -> list[dict]:
    """At the end of a session: store a recap of the session as a party memory (idempotent)."""
    cid, sid = state["campaign_id"], state["session_id"]
    history = list(state.get("history") or [])
    turn = int(state.get("turn") or 1)
    if history:
        m = re.match(r"Turn (\d+):", str(history[-1]))
        turn = int(m.group(1)) if m else turn
    stored = []
    if history:
        recap = _recap(history, 200, defaults.MEMORY_SESSION_SUMMARY_CHARS)
        text = f"Session recap (turns 1-{turn}): {recap}"  # the session is in the memory, not its text
        stored.append(store(ctx.redis, cid, scope="party", text=text, source="dm", turn=turn, session_id=sid,
                            confidence=defaults.MEMORY_SUMMARY_CONFIDENCE, kind="session_end",
                            id=memory_id(sid, "end", "session_end", "party"), events=ctx.events))
    _emit_stored(ctx.events, "end", turn, stored, ["session_end"])
    return stored


def _emit_stored(events, prefix: str, turn: int, stored: list[dict], triggers: list[str],
                 new_entities: list[str] | None = None) -> None:
    """One ``memory_stored`` event per memory (id ``<prefix>:<memory id>``, the schema of
    ttrpg.research.schema), each carrying the counts of the whole turn."""
    by_scope: dict[str, int] = {}
    for m in stored:
        by_scope[m["scope"]] = by_scope.get(m["scope"], 0) + 1
    for m in stored:
        layer = "both" if m["scope"] == "party" else m["scope"].split(":", 1)[0]
        events.emit("memory_stored", f"{prefix}:{m['id']}", turn, memory_id=m["id"], player_id=m.get("pid"),
                    layer=layer, scope=m["scope"], kind=m.get("kind"), source=m["source"],
                    confidence=m["confidence"], status=m.get("status"), text=m["text"][:300],
                    entities=m.get("entities") or [], stored_this_turn=len(stored), by_scope=by_scope,
                    triggers=triggers, new_entities=new_entities or [])
