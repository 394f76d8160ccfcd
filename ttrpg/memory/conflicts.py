"""Memory conflicts (a deliberately simple heuristic) and which memory stays authoritative.

Two memories conflict when they name a shared entity in a sentence asserting opposite values
of the same status -- opposite words (alive/dead, friendly/hostile, open/locked,
completed/failed, accepted/refused, found/lost, intact/destroyed, safe/dangerous,
loyal/traitor) or the same word negated (``not``, ``never``, ``isn't`` ... within three
words before it). Only related scopes are compared (the same scope, party with anything,
``player:X`` with ``character:X``); summaries are not compared. Precedence DM > player >
character decides which stays authoritative (equal sources: the newer one); the other is
marked ``superseded`` (never deleted) and no longer recalled, and a ``memory_conflict``
event names both sources.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Iterable

from ttrpg.memory.store import SUMMARY_KINDS, search, supersede
from ttrpg.memory.text import entity_key, sentences, split_words, tags_clause

PRECEDENCE = {"dm": 3, "player": 2, "character": 1}

_STATUS_WORDS: dict[str, tuple[str, int]] = {}
for _concept, _pos, _neg in (
    ("life", "alive living survived survives lives", "dead died dies deceased killed slain"),
    ("attitude", "friendly ally allies allied helpful peaceful", "hostile enemy enemies unfriendly aggressive"),
    ("trust", "loyal trustworthy honest trusted", "traitor treacherous liar lying betrayed untrustworthy"),
    ("open", "open opened unlocked unsealed", "closed locked sealed shut"),
    ("done", "complete completed finished accomplished succeeded solved", "failed abandoned botched"),
    ("accepted", "accepted accepts agreed", "refused declined rejected"),
    ("found", "found recovered located", "lost missing stolen"),
    ("intact", "intact working repaired functional operational", "destroyed broken wrecked damaged disabled"),
    ("safety", "safe secure harmless", "dangerous unsafe deadly"),
    ("present", "present here arrived", "gone absent departed left"),
):
    for _w in _pos.split():
        _STATUS_WORDS[_w] = (_concept, 1)
    for _w in _neg.split():
        _STATUS_WORDS[_w] = (_concept, -1)
_NEGATORS = frozenset("not no never isn't wasn't aren't weren't hasn't hadn't haven't didn't doesn't don't won't "
                      "can't cannot couldn't isnt wasnt arent werent hasnt didnt doesnt dont wont cant nor "
                      "neither longer".split())


def claims(text: str, entities: Iterable[str]) -> dict[tuple[str, str], int]:
    """``{(entity_key, concept): polarity}`` asserted by ``text`` .

    A sentence naming an entity and a status word asserts that status of the entity; a negator
    up to three words before the status word flips it. A sentence asserting both polarities of
    one concept is ambiguous and asserts nothing about it.

    Memoized per ``(text, entities)``: conflict resolution compares each new memory with up
    to 200 stored ones, the same ones turn after turn, and parsing them again every turn made
    the memory storage phase grow with the campaign. The caller gets its own dict.
    """
    try:
        return dict(_claims(text, tuple(entities)))
    except TypeError:  # unhashable entities (a hand-edited memory): parse without the cache
        return dict(_parse_claims(text, entities))


@functools.lru_cache(maxsize=8192)
def _claims(text: str, entities: tuple) -> tuple[tuple[tuple[str, str], int], ...]:
    return _parse_claims(text, entities)


def _parse_claims(text: str, entities: Iterable[str]) -> tuple[tuple[tuple[str, str], int], ...]:
    keys = [entity_key(e) for e in entities if e]
    patterns = [(k, re.compile(r"(?<!\w)" + re.escape(k) + r"(?!\w)")) for k in dict.fromkeys(keys)]
    out: dict[tuple[str, str], int] = {}
    ambiguous: set[tuple[str, str]] = set()
    for sent in sentences(text):
        low = sent.casefold()
        named = [k for k, pattern in patterns if pattern.search(low)]
        if not named:
            continue
        words = [w.replace("’", "'") for w in split_words(low)]
        found: dict[str, set[int]] = {}
        for i, w in enumerate(words):
            if w not in _STATUS_WORDS:
                continue
            concept, pol = _STATUS_WORDS[w]
            if any(x in _NEGATORS for x in words[max(0, i - 3):i]):
                pol = -pol
            found.setdefault(concept, set()).add(pol)
        for concept, pols in found.items():
            for k in named:
                key = (k, concept)
                if len(pols) > 1 or (key in out and out[key] not in pols):
                    ambiguous.add(key)
                else:
                    out[key] = next(iter(pols))
    for key in ambiguous:
        out.pop(key, None)
    return tuple(out.items())


def related_scopes(scope: str) -> list[str] | None:
    """Scopes whose memories can conflict with one in ``scope`` (None: every scope)."""
    if scope == "party":
        return None
    layer, pid = scope.split(":", 1)
    return ["party", f"player:{pid}", f"character:{pid}"]


def resolve_conflicts(redis, doc: dict, key: str, is_new: bool, events) -> list[str]:
    """Find active memories that contradict ``doc`` and apply precedence.

    Updates ``doc`` in place (status, superseded_by, supersedes). For a new ``doc`` returns
    the keys of the memories it beats, to be superseded once ``doc`` is written; for an
    already stored one applies everything itself and returns [].
    """
    mine = claims(doc["text"], doc["entities"])
    if not mine:
        return []
    entity_keys = sorted({k for k, _ in mine})
    q = f"@campaign_id:{tags_clause([doc['campaign_id']])} @status:{{active}} @entities:{tags_clause(entity_keys)}"
    related = related_scopes(doc["scope"])
    if related:
        q += f" @scope:{tags_clause(related)}"
    _, rows = search(redis, q, "SORTBY", "cturn", "DESC", "LIMIT", "0", "200")
    rank = PRECEDENCE[doc["source"]]
    found = []
    for other_key, _, other in rows:
        if not other or other.get("id") == doc["id"] or other.get("kind") in SUMMARY_KINDS:
            continue
        theirs = claims(other.get("text", ""), other.get("entities") or [])
        clash = next(((e, c) for (e, c), pol in mine.items() if theirs.get((e, c), pol) != pol), None)
        if clash:
            found.append((other_key, other, clash))
    # The strongest opponent first: if it beats the new memory, the new memory is superseded.
    found.sort(key=lambda f: (PRECEDENCE[f[1]["source"]], f[1].get("cturn", 0)), reverse=True)
    losers = []
    for other_key, other, (entity, concept) in found:
        other_rank = PRECEDENCE[other["source"]]
        doc_wins = rank > other_rank or (rank == other_rank and doc.get("cturn", 0) >= other.get("cturn", 0))
        winner, loser = (doc, other) if doc_wins else (other, doc)
        if events is not None:
            events.emit("memory_conflict", f"{doc['turn']}:{doc['id']}:vs:{other['id']}", doc["turn"],
                        memory_id=doc["id"], conflicts_with=other["id"],
                        resolution=f"kept {winner['id']} ({winner['source']}), superseded {loser['id']} "
                                   f"({loser['source']})", entity=entity, concept=concept,
                        kept=winner["id"], kept_source=winner["source"], kept_text=winner["text"][:200],
                        superseded=loser["id"], superseded_source=loser["source"],
                        superseded_text=loser["text"][:200], new=doc["id"], new_source=doc["source"],
                        old=other["id"], old_source=other["source"])
        if doc_wins:
            losers.append(other_key)
            doc.setdefault("supersedes", []).append(other["id"])
            continue
        doc["status"], doc["superseded_by"] = "superseded", other["id"]
        if not is_new:
            supersede(redis, key, other["id"])
        break
    if is_new:
        return losers
    for loser in losers:
        supersede(redis, loser, doc["id"])
    if losers:
        redis.execute_command("JSON.SET", key, "$.supersedes", json.dumps(doc["supersedes"]))
    return []
