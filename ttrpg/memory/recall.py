"""Recall: which memories a query finds, how they rank, and what each AI layer hears of them.

**Who recalls what.** The player layer of ``pid`` recalls party + player:<pid> +
character:<pid>; the character layer recalls party + character:<pid> only, never
``player:<pid>``. The scope filter is part of the RediSearch query itself (not applied after
``LIMIT``).

**Confidence.** The base confidence comes from the source: the DM 1.0, a player 0.8 (0.7-0.9),
a character 0.6 (0.5-0.7). The *effective* confidence is computed at query time from the age
in turns on the campaign clock: ``base * max(floor, 0.5 ** (age / half_life))``, with a
shorter half-life for the character layer (:mod:`ttrpg.defaults`, ``MEMORY_*``).

**Ranking.** A query with nothing left after stopwords finds nothing (a stopword-only
``@text:(the)`` would otherwise match every document). Results are ordered by
``relevance * effective confidence`` where relevance mixes the share of the query's words
the memory contains with the share of the query's entities it names (RediSearch's
``BM25STD`` finds the candidates: the classic scorers gave IDF 0 on small campaigns here).
"""

from __future__ import annotations

from ttrpg import defaults
from ttrpg.memory.store import campaign_now, campaign_turn, check_scope, search
from ttrpg.memory.text import entity_key, extract_entities, query_terms, tags_clause, term_overlap
from ttrpg.prompts.context import estimate_text_tokens

NOTHING_KNOWN = "Nothing known about this yet."
SOURCE_LABEL = {"dm": "the DM", "player": "the player", "character": "the character"}

def effective_confidence(doc: dict, now_turn: int) -> float:
    """Base confidence decayed by age in campaign turns (character layer faster)."""
    age = max(0, int(now_turn) - int(doc.get("cturn") or doc.get("turn") or 0))
    half = (defaults.MEMORY_CHARACTER_HALF_LIFE_TURNS if str(doc.get("scope", "")).startswith("character:")
            else defaults.MEMORY_HALF_LIFE_TURNS)
    factor = max(defaults.MEMORY_DECAY_FLOOR, 0.5 ** (age / half))
    return round(float(doc.get("confidence", 0)) * factor, 4)


def learned(doc: dict, current_session: str | None = None) -> str:
    """Where a memory came from: ``turn 3 of session s1, from the DM``, or ``turn 3 of this
    session, from the DM`` for the session being played (what a player would say; it also
    keeps a session's prompts free of its id, so a replay with another id tells the same story)."""
    where = "this session" if current_session and doc.get("session_id") == current_session \
        else f"session {doc.get('session_id')}"
    return f"turn {doc.get('turn')} of {where}, from {SOURCE_LABEL.get(doc.get('source'), doc.get('source'))}"


def query(redis, campaign_id: str, text: str, *, scopes: list[str] | None,
          limit: int = defaults.MEMORY_QUERY_LIMIT, token_budget: int | None = defaults.MEMORY_QUERY_TOKEN_BUDGET,
          now_turn: int | None = None, include_superseded: bool = False) -> list[dict]:
    """Memories of ``campaign_id`` in ``scopes`` relevant to ``text``, best first.

    Full-text match on the words of ``text`` OR a match on the entities it names, filtered by
    campaign, scopes and status inside the query. Ordered by relevance (BM25STD score over the
    best candidate's, mixed with the share of query entities named) x effective confidence
    (``now_turn`` on the campaign clock, default its latest value; see :func:`campaign_turn`);
    at most ``limit`` results and ``token_budget`` estimated tokens of text. ``scopes=None``
    means every scope (the DM's view). Each result: id, text, source, turn, session_id, scope,
    kind, entities, confidence (effective), base_confidence, relevance, score, learned, status.
    """
    if scopes is not None:
        scopes = [check_scope(s) for s in scopes]
        if not scopes:
            return []
    terms = query_terms(text)
    qents = [entity_key(e) for e in extract_entities(text, redis, campaign_id)]
    qents = list(dict.fromkeys(qents))
    if not terms and not qents:
        return []
    # The match clauses weigh 10x: BM25STD also scores the filter tags, which would otherwise
    # flatten the differences in text relevance (measured: about half the score).
    match = []
    if terms:
        match.append("(@text:(" + "|".join(terms) + ")) => {$weight: 10.0;}")
    if qents:
        match.append(f"(@entities:{tags_clause(qents)}) => {{$weight: 10.0;}}")
    q = f"@campaign_id:{tags_clause([campaign_id])}"
    if scopes is not None:
        q += f" @scope:{tags_clause(scopes)}"
    if not include_superseded:
        q += " @status:{active}"
    q += " (" + " | ".join(match) + ")"
    candidates = min(defaults.MEMORY_MAX_CANDIDATES, max(defaults.MEMORY_MIN_CANDIDATES, limit * 4))
    _, rows = search(redis, q, "SCORER", "BM25STD", "LIMIT", "0", str(candidates))
    if not rows:
        return []
    now = campaign_now(redis, campaign_id) if now_turn is None else int(now_turn)
    results = []
    for _, score, doc in rows:
        if not doc:
            continue
        # Relevance is computed here from the document, not taken from BM25: BM25's term
        # statistics span the whole index (every campaign), so the same campaign would rank
        # its memories differently as others grow, and a replayed session would hear another
        # story. RediSearch finds the candidates; the order depends on them alone.
        text_rel = term_overlap(terms, doc.get("text", "")) if terms else 0.0
        if qents:
            ent_rel = len(set(qents) & set(doc.get("entity_keys") or [])) / len(qents)
            rel = 0.5 * text_rel + 0.5 * ent_rel if terms else ent_rel
        else:
            rel = text_rel
        rel = max(rel, 0.05)
        conf = effective_confidence(doc, now)
        results.append(_public(doc, conf, rel))
    results.sort(key=lambda m: (-m["score"], -(m.get("cturn") or 0), m.get("id") or ""))
    return _within_budget(results, limit, token_budget)



def _public(doc: dict, conf: float, rel: float | None = None) -> dict:
    out = {
        "id": doc.get("id"), "text": doc.get("text", ""), "source": doc.get("source"), "turn": doc.get("turn"),
        "session_id": doc.get("session_id"), "scope": doc.get("scope"), "kind": doc.get("kind"),
        "entities": doc.get("entities") or [], "confidence": conf, "base_confidence": doc.get("confidence"),
        "learned": learned(doc), "status": doc.get("status"), "superseded_by": doc.get("superseded_by"),
        "cturn": doc.get("cturn"), "created_at": doc.get("created_at"), "campaign_id": doc.get("campaign_id"),
    }
    if rel is not None:
        out["relevance"] = round(rel, 4)
        out["score"] = round(rel * conf, 4)
    return out


def _within_budget(results: list[dict], limit: int, token_budget: int | None) -> list[dict]:
    kept, used = [], 0
    for m in results:
        if len(kept) >= limit:
            break
        cost = estimate_text_tokens(m["text"])
        if token_budget is not None and used + cost > token_budget:
            if kept:
                continue  # a shorter memory further down may still fit
            m = {**m, "text": m["text"][: max(0, token_budget * 4 - 3)].rstrip() + "...", "truncated": True}
            cost = token_budget
        kept.append(m)
        used += cost
    return kept


def list_memories(redis, campaign_id: str, scope: str | None = None, limit: int = 100) -> list[dict]:
    """A campaign's memories (superseded ones included), newest first, optionally of one scope."""
    q = f"@campaign_id:{tags_clause([campaign_id])}"
    if scope:
        q += f" @scope:{tags_clause([check_scope(scope)])}"
    _, rows = search(redis, q, "SORTBY", "cturn", "DESC", "LIMIT", "0", str(int(limit)))
    now = campaign_now(redis, campaign_id)
    return [_public(doc, effective_confidence(doc, now)) for _, _, doc in rows if doc]



def layer_scopes(pid: str, layer: str) -> list[str]:
    """The scopes one layer (``player`` or ``character``) of AI ``pid`` recalls."""
    if layer == "player":
        return ["party", f"player:{pid}", f"character:{pid}"]
    return ["party", f"character:{pid}"]  # the character layer never sees player:<pid>


def _line(m: dict, current_session: str | None = None) -> str:
    text = m["text"]
    if len(text) > defaults.MEMORY_LINE_CHARS:
        text = text[: defaults.MEMORY_LINE_CHARS - 3].rstrip() + "..."
    return f"{text} ({learned(m, current_session)}; confidence {m['confidence']:.2f})"


def recall(redis, campaign_id: str, text: str, scopes: list[str], now_turn: int | None = None,
           limit: int = defaults.MEMORY_RECALL_LIMIT, token_budget: int = defaults.MEMORY_RECALL_TOKEN_BUDGET,
           current_session: str | None = None) -> list[str]:
    """Prompt lines for one layer: memories as text with where they came from, within a budget."""
    found = query(redis, campaign_id, text, scopes=scopes, limit=limit * 2, token_budget=None, now_turn=now_turn)
    lines, used = [], 0
    for m in found:
        line = _line(m, current_session)
        cost = estimate_text_tokens(line)
        if used + cost > token_budget:
            continue
        lines.append(line)
        used += cost
        if len(lines) >= limit:
            break
    return lines


def recall_for_turn(ctx, state: dict) -> dict:
    """``{pid: {"player": [lines], "character": [lines]}}`` for the memory query phase.

    The player layer sees party + player:<pid> + character:<pid>; the character layer sees
    party + character:<pid> only. An empty list is never returned: nothing found is said
    explicitly (:data:`NOTHING_KNOWN`). Emits one ``memory_query`` event per turn.
    """
    narration = state.get("narration") or ""
    campaign_id, session_id, turn = state["campaign_id"], state["session_id"], int(state["turn"])
    now = campaign_turn(ctx.redis, campaign_id, session_id, turn)
    found, counts = {}, {}
    for p in state["party"]["players"]:
        pid = p["id"]
        found[pid], counts[pid] = {}, {}
        for layer in ("player", "character"):
            lines = recall(ctx.redis, campaign_id, narration, layer_scopes(pid, layer), now_turn=now,
                           current_session=session_id)
            counts[pid][layer] = len(lines)
            found[pid][layer] = lines or [NOTHING_KNOWN]
    ctx.events.emit("memory_query", f"{turn}", turn, query=narration[:200], counts=counts,
                    results=sum(c["player"] + c["character"] for c in counts.values()))
    return found
