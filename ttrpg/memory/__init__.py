"""What the AI players remember, across the sessions of a campaign: memories on Redis.

A memory is one JSON document (``JSON.SET``) under ``ttrpg:memory:<campaign>:<id>``::

    {"id": "s1:3:narration:party", "campaign_id": "c1", "scope": "party", "pid": null,
     "text": "Galvin, the dock master of Port Kell, waves you in.", "entities": ["Galvin", "Port Kell"],
     "entity_keys": ["galvin", "port kell"], "turn": 3, "cturn": 3, "session_id": "s1",
     "source": "dm", "kind": "narration", "confidence": 1.0, "created_at": 1795000000.0,
     "status": "active", "superseded_by": null, "supersedes": []}

**Scopes.** ``party`` (everyone at the table knows it), ``player:<pid>`` (what one AI's
*player* layer knows: its intents, out-of-character plans) and ``character:<pid>`` (what one
AI's *character* knows: what it did and how it reacted). The player layer of ``pid`` recalls
party + player:<pid> + character:<pid>; the character layer recalls party +
character:<pid> only, never ``player:<pid>``. The scope filter is part of the RediSearch
query itself (not applied after ``LIMIT``).

**Confidence.** The base confidence comes from the source: the DM 1.0, a player 0.8 (0.7-0.9),
a character 0.6 (0.5-0.7). The *effective* confidence is computed at query time from the age
in turns: ``base * max(floor, 0.5 ** (age / half_life))``, with a shorter half-life for the
character layer (:mod:`ttrpg.defaults`, ``MEMORY_*``). Age counts on a *campaign clock*
(``cturn``): sessions restart at turn 1, so each session gets an offset (the campaign's
latest clock value when the session first stores or recalls) and ``cturn = offset + turn``.

**Search.** Our own RediSearch index (:data:`ttrpg.constants.MEMORY_INDEX`, ``FT.CREATE ...
ON JSON PREFIX 1 ttrpg:memory:``) over text (TEXT), entities / campaign / scope / source /
status / kind / session (TAG) and turn / cturn / created_at (NUMERIC). LangGraph's
RedisStore is not used (it has no full-text search without embeddings, and applies filters
after LIMIT). User text never reaches the query syntax: it is cut into plain alphanumeric words, stopwords are
dropped, tags are backslash-escaped, and a query with nothing left finds nothing (a
stopword-only ``@text:(the)`` would otherwise match every document). Results are ordered by
``relevance * effective confidence`` where relevance mixes the normalised BM25 score with the
share of the query's entities the memory names (``BM25STD``: the classic scorers gave
IDF 0 on small campaigns here).

**Entities** are extracted simply: runs of capitalised words (``Galvin``, ``Port Kell``,
``Unit K-7``) minus leading articles, sentence-initial common words and game terms, plus any
entity already known in the campaign when the text mentions it in lower case
(``what about galvin?``). The campaign's known entities live in a hash
(:data:`ttrpg.constants.MEMORY_ENTITIES`) with where each was first seen.

**Conflicts** (a deliberately simple heuristic): two memories conflict when they name a
shared entity in a sentence asserting opposite values of the same status -- opposite words
(alive/dead, friendly/hostile, open/locked, completed/failed, accepted/refused, found/lost,
intact/destroyed, safe/dangerous, loyal/traitor) or the same word negated (``not``,
``never``, ``isn't`` ... within three words before it). Only related scopes are compared
(the same scope, party with anything, ``player:X`` with ``character:X``); summaries are not
compared. Precedence DM > player > character decides which stays authoritative (equal
sources: the newer one); the other is marked ``superseded`` (never deleted) and no longer
recalled, and a ``memory_conflict`` event names both sources.

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
import statistics
import time
import weakref
from typing import Any, Iterable

from ttrpg import defaults
from ttrpg.constants import MEMORY_CLOCK, MEMORY_ENTITIES, MEMORY_INDEX, MEMORY_KEY, MEMORY_PREFIX
from ttrpg.exceptions import ConfigError

NOTHING_KNOWN = "Nothing known about this yet."
SOURCES = ("dm", "player", "character")
PRECEDENCE = {"dm": 3, "player": 2, "character": 1}
BASE_CONFIDENCE = {"dm": defaults.MEMORY_DM_CONFIDENCE, "player": defaults.MEMORY_PLAYER_CONFIDENCE,
                   "character": defaults.MEMORY_CHARACTER_CONFIDENCE}
SOURCE_LABEL = {"dm": "the DM", "player": "the player", "character": "the character"}
SUMMARY_KINDS = {"summary", "scene_end", "session_end"}
_SCOPE_RE = re.compile(r"^(party|(player|character):[A-Za-z0-9_.\-]+)$")


class MemoryInputError(ConfigError, ValueError):
    """A scope, source or confidence that memory cannot accept."""

    hint = "Scopes are party, player:<pid> or character:<pid>; sources are dm, player or character."


# --------------------------------------------------------------------------- text analysis

# RediSearch's default stopwords plus the function words of a question ("what do we know
# about ...") that would otherwise match half the campaign.
_STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren arent as at be because been before being
below between both but by can cannot could couldn did didn do does doesn doing don done down during each else
ever every few for from further get gets got had has hasn have haven having he her here hers herself him
himself his how i if in into is isn it its itself just know knew known let lets like me more most much must
my myself no nor not now of off on once one only or other our ours ourselves out over own please same say
says she should so some such tell than that thats the their theirs them themselves then there these they
this those through thus to too under until up upon us very was wasn we were weren what whats when where
whether which while who whom whose why will with won would yet you your yours yourself yourselves
anything something nothing everything thing things really still even ve ll re d s t m o y
""".split())

# Capitalised words that start sentences or address people but are not names.
_NOT_NAMES = frozenset("""
a about above across after afterwards again against ahead all almost along also although always among an and
another any anyone anything anyway anywhere are around as at away back be because before behind below
beneath beside besides between beyond both but by can cannot come could did do does doing don done down
during each either else elsewhere enough even ever every everybody everyone everything everywhere except
few finally first for from further go good great hello here hey hi how however i if in inside instead into
is it its just last later let lets like look many maybe me meanwhile mine more moreover most much must my
near nearly neither never nevertheless next no nobody none nor not nothing now nowhere of off oh ok okay on
once one only onto or other others otherwise our ours out outside over perhaps please quick quickly rather
right same second see seems several she should since so some somebody someone something sometimes
somewhere soon still stop such suddenly sure than thank thanks that the their them then there therefore
these they third this those though through throughout thus to today together tomorrow tonight too toward
towards under unfortunately unless until up upon us very wait was we well were what whatever when
whenever where wherever whether which while who whoever whom whose why will with within without wow yeah
yes yesterday yet you your yours he him his her hers they their theirs we our ours im ive youre
welcome listen hold careful quiet run watch come go stand sit get take give tell ask behold alas
turn outcome recap session scene intent directive plan reaction tried rolled roll dice die success
successes failure barely critical approach
captain commander doctor doc sir madam maam lieutenant chief boss mister miss mr mrs ms dr
""".split())
_TITLES = frozenset({"captain", "commander", "doctor", "lieutenant", "chief", "mister", "miss", "mr", "mrs",
                      "ms", "dr", "sir"})
_GAME_TERMS = frozenset({"lasers", "laser", "feelings", "feeling", "gm", "dm", "npc", "pc", "ooc"})
_ARTICLES = frozenset({"the", "a", "an", "this", "that", "these", "those", "our", "your", "my", "his", "her",
                       "their", "its"})
_WORD_RE = re.compile(r"[^\W_](?:[\w'’\-]*[^\W_])?", re.UNICODE)
_TERM_RE = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;:])\s+|\n+|[\"“”«»]|\s[-–—]+\s")
_MAX_ENTITY_WORDS = 4
_MAX_ENTITIES = 24
_MAX_QUERY_TERMS = 48


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(text or "") if s and s.strip()]


def _strip_possessive(word: str) -> str:
    for suffix in ("'s", "’s", "'", "’"):
        if word.endswith(suffix) and len(word) > len(suffix):
            return word[: -len(suffix)]
    return word


def extract_names(text: str) -> list[str]:
    """Capitalised names in ``text`` (``Galvin``, ``Port Kell``, ``Unit K-7``), first-seen order.

    Runs of adjacent capitalised words form one name; leading articles are dropped, and so is a
    single word that is a common sentence opener, a pronoun, a title or a game term.
    """
    found: dict[str, str] = {}
    for sent in sentences(text):
        matches = list(_WORD_RE.finditer(sent))
        groups: list[list[tuple[str, bool]]] = []
        prev_end = None
        current: list[tuple[str, bool]] = []
        for i, m in enumerate(matches):
            word = m.group(0)
            is_cap = word[0].isupper()
            adjacent = prev_end is not None and sent[prev_end:m.start()].isspace() and not current == []
            if is_cap and (adjacent or not current):
                current.append((word, i == 0))
            elif is_cap:
                groups.append(current)
                current = [(word, i == 0)]
            else:
                if current:
                    groups.append(current)
                current = []
            prev_end = m.end() if is_cap else None
        if current:
            groups.append(current)
        for group in groups:
            words = [(_strip_possessive(w), initial) for w, initial in group]
            while words and (words[0][0].lower() in _ARTICLES or words[0][0].lower() in _NOT_NAMES
                             or words[0][0].lower() in _GAME_TERMS
                             or (words[0][1] and words[0][0].lower().endswith("ly"))):
                if len(words) > 1 and words[0][0].lower() in _TITLES:
                    break  # a title stays when a name follows it ("Captain Vex")
                words = words[1:]
            words = [w for w in words if w[0].lower() not in _GAME_TERMS]
            if not words:
                continue
            name = " ".join(w for w, _ in words[:_MAX_ENTITY_WORDS]).strip("'’-")
            if len(name) < 2 or name.isdigit():
                continue
            found.setdefault(name.casefold(), name)
    return list(found.values())[:_MAX_ENTITIES]


def entity_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _ngrams(text: str, n_max: int = 3) -> list[str]:
    words = [_strip_possessive(w).casefold() for w in _WORD_RE.findall(text or "")]
    out = []
    for n in range(1, n_max + 1):
        for i in range(len(words) - n + 1):
            out.append(" ".join(words[i:i + n]))
    return list(dict.fromkeys(out))


def known_entities_in(redis, campaign_id: str, text: str) -> list[str]:
    """Entities already known in the campaign that ``text`` mentions, in any letter case."""
    grams = [g for g in _ngrams(text) if g not in _STOPWORDS and len(g) > 1]
    if not grams:
        return []
    names = []
    for chunk_start in range(0, len(grams), 500):
        chunk = grams[chunk_start:chunk_start + 500]
        for raw in redis.hmget(MEMORY_ENTITIES.format(campaign_id=campaign_id), chunk):
            if raw:
                names.append(json.loads(raw)["name"])
    return names


def extract_entities(text: str, redis=None, campaign_id: str | None = None) -> list[str]:
    """Capitalised names in ``text`` plus (with a client) the campaign's known entities it mentions."""
    names = extract_names(text)
    if redis is not None and campaign_id:
        names += known_entities_in(redis, campaign_id, text)
    seen: dict[str, str] = {}
    for n in names:
        seen.setdefault(entity_key(n), n)
    return list(seen.values())[:_MAX_ENTITIES]


def query_terms(text: str) -> list[str]:
    """Plain lower-case words of ``text`` that are safe in a RediSearch query and worth matching."""
    terms = []
    for t in _TERM_RE.findall((text or "").casefold()):
        if len(t) < 2 or t in _STOPWORDS:
            continue
        terms.append(t)
    return list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS]


def escape_tag(value: str) -> str:
    """A TAG value escaped for the query syntax (every non-alphanumeric character)."""
    return "".join(c if (c.isalnum() or c == "_") else "\\" + c for c in value)


def _tags(values: Iterable[str]) -> str:
    return "{" + "|".join(escape_tag(v) for v in values) + "}"


def estimate_tokens(text: str) -> int:
    """About four characters per token (the same rule as ttrpg.prompts.estimate_text_tokens)."""
    return (len(text or "") + 3) // 4


# --------------------------------------------------------------------------- conflicts

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
    """``{(entity_key, concept): polarity}`` asserted by ``text`` (see the module docstring).

    A sentence naming an entity and a status word asserts that status of the entity; a negator
    up to three words before the status word flips it. A sentence asserting both polarities of
    one concept is ambiguous and asserts nothing about it.
    """
    keys = [entity_key(e) for e in entities if e]
    out: dict[tuple[str, str], int] = {}
    ambiguous: set[tuple[str, str]] = set()
    for sent in sentences(text):
        low = sent.casefold()
        named = [k for k in keys if re.search(r"(?<!\w)" + re.escape(k) + r"(?!\w)", low)]
        if not named:
            continue
        words = [w.replace("’", "'") for w in _WORD_RE.findall(low)]
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
    return out


def _related_scopes(scope: str) -> list[str] | None:
    """Scopes whose memories can conflict with one in ``scope`` (None: every scope)."""
    if scope == "party":
        return None
    layer, pid = scope.split(":", 1)
    return ["party", f"player:{pid}", f"character:{pid}"]


# --------------------------------------------------------------------------- index and clock

_ready: "weakref.WeakSet" = weakref.WeakSet()  # connection pools known to have the index

_CLOCK = """
local off = redis.call('HGET', KEYS[1], 's:' .. ARGV[1])
if not off then
  off = redis.call('HGET', KEYS[1], 'max') or '0'
  redis.call('HSET', KEYS[1], 's:' .. ARGV[1], off)
end
local c = tonumber(off) + tonumber(ARGV[2])
if c > tonumber(redis.call('HGET', KEYS[1], 'max') or '0') then redis.call('HSET', KEYS[1], 'max', c) end
return c
"""


def index_schema() -> list[str]:
    return [
        "$.text", "AS", "text", "TEXT",
        "$.entity_keys[*]", "AS", "entities", "TAG",
        "$.campaign_id", "AS", "campaign_id", "TAG", "CASESENSITIVE",
        "$.scope", "AS", "scope", "TAG", "CASESENSITIVE",
        "$.source", "AS", "source", "TAG",
        "$.status", "AS", "status", "TAG",
        "$.kind", "AS", "kind", "TAG",
        "$.session_id", "AS", "session_id", "TAG", "CASESENSITIVE",
        "$.turn", "AS", "turn", "NUMERIC", "SORTABLE",
        "$.cturn", "AS", "cturn", "NUMERIC", "SORTABLE",
        "$.created_at", "AS", "created_at", "NUMERIC", "SORTABLE",
    ]


def ensure_index(redis, wait_s: float = defaults.MEMORY_INDEX_WAIT_S) -> None:
    """Create the memory index unless it exists; wait while the server (re)builds it.

    Idempotent and cheap after the first call per connection pool. After a restart RediSearch
    re-indexes existing documents in the background: queries wait for that (up to ``wait_s``)
    so a fresh process does not see half the memories.
    """
    pool = redis.connection_pool
    if pool in _ready:
        return
    import redis as redis_lib

    try:
        redis.execute_command("FT.CREATE", MEMORY_INDEX, "ON", "JSON", "PREFIX", "1", MEMORY_PREFIX,
                              "SCHEMA", *index_schema())
    except redis_lib.ResponseError as exc:
        if "already exists" not in str(exc).lower():
            raise
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        info = _info(redis)
        if not int(float(_s(info.get("indexing", 0)) or 0)) and float(_s(info.get("percent_indexed", 1)) or 1) >= 1:
            break
        time.sleep(0.05)
    _ready.add(pool)


def _info(redis) -> dict:
    raw = redis.execute_command("FT.INFO", MEMORY_INDEX)
    if isinstance(raw, dict):
        return {_s(k): v for k, v in raw.items()}
    return {_s(raw[i]): raw[i + 1] for i in range(0, len(raw) - 1, 2)}


def campaign_turn(redis, campaign_id: str, session_id: str, turn: int) -> int:
    """The campaign clock value of ``turn`` of ``session_id`` (see the module docstring)."""
    return int(redis.eval(_CLOCK, 1, MEMORY_CLOCK.format(campaign_id=campaign_id), session_id, int(turn)))


def campaign_now(redis, campaign_id: str) -> int:
    """The latest campaign clock value (0 for a campaign with no memories)."""
    raw = redis.hget(MEMORY_CLOCK.format(campaign_id=campaign_id), "max")
    return int(float(raw)) if raw else 0


def _search(redis, query: str, *args) -> tuple[int, list[tuple[str, float, dict]]]:
    """``FT.SEARCH`` on the memory index; ``(total, [(key, score, doc)])``, RESP2 or RESP3."""
    import redis as redis_lib

    ensure_index(redis)
    cmd = ("FT.SEARCH", MEMORY_INDEX, query, "WITHSCORES", *args, "DIALECT", "2")
    try:
        raw = redis.execute_command(*cmd)
    except redis_lib.ResponseError as exc:
        if "no such index" not in str(exc).lower() and "unknown index" not in str(exc).lower():
            raise
        _ready.discard(redis.connection_pool)  # dropped (e.g. FLUSHALL): create it again
        ensure_index(redis)
        raw = redis.execute_command(*cmd)
    rows = []
    if isinstance(raw, dict):
        raw = {_s(k): v for k, v in raw.items()}
        for item in raw.get("results") or []:
            item = {_s(k): v for k, v in item.items()}
            attrs = {_s(k): v for k, v in (item.get("extra_attributes") or {}).items()}
            rows.append((_s(item["id"]), float(item.get("score") or 0), _doc(attrs.get("$"))))
        return int(raw.get("total_results") or 0), rows
    total = int(raw[0])
    for i in range(1, len(raw), 3):
        fields = raw[i + 2] or []
        attrs = {_s(fields[j]): fields[j + 1] for j in range(0, len(fields) - 1, 2)}
        rows.append((_s(raw[i]), float(_s(raw[i + 1]) or 0), _doc(attrs.get("$"))))
    return total, rows


def _doc(raw) -> dict:
    if raw is None:
        return {}
    data = json.loads(_s(raw))
    return data[0] if isinstance(data, list) and data else data


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else ("" if v is None else str(v))


def _get(redis, key: str) -> dict | None:
    raw = redis.execute_command("JSON.GET", key, "$")
    return _doc(raw) if raw else None


# --------------------------------------------------------------------------- store

def check_scope(scope: str) -> str:
    if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
        raise MemoryInputError(f"Bad memory scope {scope!r}: use party, player:<pid> or character:<pid>.")
    return scope


def memory_id(*parts: Any) -> str:
    """A deterministic memory id from its parts (``session, turn, kind, pid`` in store_turn)."""
    return ":".join(str(p) for p in parts)


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


def _register_entities(redis, campaign_id: str, names: list[str], session_id: str, turn: int,
                       kind: str = "") -> list[str]:
    """Record first sightings; returns the names first seen at this very session and turn
    (so a re-run of the same turn still reports them as new)."""
    if not names:
        return []
    key = MEMORY_ENTITIES.format(campaign_id=campaign_id)
    pipe = redis.pipeline(transaction=False)
    for n in names:
        pipe.hsetnx(key, entity_key(n), json.dumps({"name": n, "session_id": session_id, "turn": int(turn),
                                                     "kind": kind}))
    pipe.execute()
    raws = redis.hmget(key, [entity_key(n) for n in names])
    new = []
    for n, raw in zip(names, raws):
        first = json.loads(raw) if raw else {}
        if first.get("session_id") == session_id and int(first.get("turn", -1)) == int(turn):
            new.append(n)
    return new


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
    doc = _get(redis, key)
    is_new = doc is None
    if is_new:
        if entities is None:
            entities = extract_entities(text, redis, campaign_id)
        entities = list(dict.fromkeys(e.strip() for e in entities if e and e.strip()))[:_MAX_ENTITIES]
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
        losers = _resolve_conflicts(redis, doc, key, is_new, events)
    if is_new:
        written = redis.execute_command("JSON.SET", key, "$", json.dumps(doc), "NX")
        if not written:  # another process stored it meanwhile: that one counts
            return _get(redis, key) or doc
        _register_entities(redis, campaign_id, doc["entities"], session_id, turn, kind)
        for loser in losers:  # after the winner is written, so a crash in between re-resolves
            _supersede(redis, loser, doc["id"])
    return doc


def _resolve_conflicts(redis, doc: dict, key: str, is_new: bool, events) -> list[str]:
    """Find active memories that contradict ``doc`` and apply precedence (module docstring).

    Updates ``doc`` in place (status, superseded_by, supersedes). For a new ``doc`` returns
    the keys of the memories it beats, to be superseded once ``doc`` is written; for an
    already stored one applies everything itself and returns [].
    """
    mine = claims(doc["text"], doc["entities"])
    if not mine:
        return []
    entity_keys = sorted({k for k, _ in mine})
    q = f"@campaign_id:{_tags([doc['campaign_id']])} @status:{{active}} @entities:{_tags(entity_keys)}"
    related = _related_scopes(doc["scope"])
    if related:
        q += f" @scope:{_tags(related)}"
    _, rows = _search(redis, q, "SORTBY", "cturn", "DESC", "LIMIT", "0", "200")
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
            _supersede(redis, key, other["id"])
        break
    if is_new:
        return losers
    for loser in losers:
        _supersede(redis, loser, doc["id"])
    if losers:
        redis.execute_command("JSON.SET", key, "$.supersedes", json.dumps(doc["supersedes"]))
    return []


def _supersede(redis, key: str, by: str) -> None:
    pipe = redis.pipeline(transaction=True)
    pipe.execute_command("JSON.SET", key, "$.status", json.dumps("superseded"))
    pipe.execute_command("JSON.SET", key, "$.superseded_by", json.dumps(by))
    pipe.execute()


# --------------------------------------------------------------------------- query

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
        match.append(f"(@entities:{_tags(qents)}) => {{$weight: 10.0;}}")
    q = f"@campaign_id:{_tags([campaign_id])}"
    if scopes is not None:
        q += f" @scope:{_tags(scopes)}"
    if not include_superseded:
        q += " @status:{active}"
    q += " (" + " | ".join(match) + ")"
    candidates = min(defaults.MEMORY_MAX_CANDIDATES, max(defaults.MEMORY_MIN_CANDIDATES, limit * 4))
    _, rows = _search(redis, q, "SCORER", "BM25STD", "LIMIT", "0", str(candidates))
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
        text_rel = _term_overlap(terms, doc.get("text", "")) if terms else 0.0
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


def _term_overlap(terms: list[str], text: str) -> float:
    """Share of the query's terms found among the document's words (prefix match, so
    "freighter" finds "freighters")."""
    words = set(query_terms(text)) | {w for w in _TERM_RE.findall(text.casefold())}
    hits = sum(1 for t in terms if t in words or any(w.startswith(t) for w in words))
    return hits / len(terms)


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
        cost = estimate_tokens(m["text"])
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
    q = f"@campaign_id:{_tags([campaign_id])}"
    if scope:
        q += f" @scope:{_tags([check_scope(scope)])}"
    _, rows = _search(redis, q, "SORTBY", "cturn", "DESC", "LIMIT", "0", str(int(limit)))
    now = campaign_now(redis, campaign_id)
    return [_public(doc, effective_confidence(doc, now)) for _, _, doc in rows if doc]


def delete_campaign(redis, campaign_id: str) -> int:
    """Delete every memory of a campaign (and its clock and entities); returns how many."""
    pattern = MEMORY_KEY.format(campaign_id=re.sub(r"([*?\[\]\\])", r"\\\1", campaign_id), memory_id="*")
    keys = list(redis.scan_iter(match=pattern, count=1000))
    n = 0
    for i in range(0, len(keys), 1000):
        n += redis.delete(*keys[i:i + 1000])
    redis.delete(MEMORY_CLOCK.format(campaign_id=campaign_id), MEMORY_ENTITIES.format(campaign_id=campaign_id))
    return n


# --------------------------------------------------------------------------- the turn phases

def _layer_scopes(pid: str, layer: str) -> list[str]:
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
        cost = estimate_tokens(line)
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
            lines = recall(ctx.redis, campaign_id, narration, _layer_scopes(pid, layer), now_turn=now,
                           current_session=session_id)
            counts[pid][layer] = len(lines)
            found[pid][layer] = lines or [NOTHING_KNOWN]
    ctx.events.emit("memory_query", f"{turn}", turn, query=narration[:200], counts=counts,
                    results=sum(c["player"] + c["character"] for c in counts.values()))
    return found


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
    """The memory storage phase: store this turn's memories if a trigger fired (module docstring).

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
    new = _register_entities(redis, cid, narr_entities, sid, turn, "narration")
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


# --------------------------------------------------------------------------- benchmark

_SYL = ("ka", "ro", "vel", "mir", "tan", "zu", "gal", "vin", "dra", "lo", "ser", "qua", "nix", "bel", "tor", "ya")
_NOUNS = ("ship", "station", "reactor", "fuel", "cargo", "pirates", "signal", "nebula", "beacon", "crystal",
          "engine", "shield", "map", "artifact", "treaty", "captain", "merchant", "smuggler", "outpost", "moon",
          "asteroid", "drone", "medkit", "blaster", "contract", "bounty", "ambassador", "colony", "wormhole",
          "virus", "sensor", "hangar", "docking", "console", "relic", "alliance", "mutiny", "distress", "ore")
_VERBS = ("repairs", "steals", "hides", "sells", "scans", "guards", "trades", "fixes", "loses", "finds",
          "attacks", "protects", "decodes", "boards", "follows", "warns", "bribes", "hacks", "escorts", "trusts")


def bench_query(redis, n: int = 10000, queries: int = 50, seed: int = 7) -> dict:
    """Load ``n`` synthetic memories into a throwaway campaign, time ``queries`` queries, clean up.

    Each query is one :func:`query` call as the memory phase makes it (a narration-length text,
    the player layer's three scopes). Returns median / p95 / max in ms, the load time, and the
    median time of a whole memory query phase for 4 AIs (8 recalls, ``turn_recall_median_ms``).
    """
    import random
    import uuid

    rng = random.Random(seed)
    campaign = "bench-" + uuid.uuid4().hex[:10]
    names = list(dict.fromkeys(
        (rng.choice(_SYL) + rng.choice(_SYL) + rng.choice(_SYL)).capitalize() for _ in range(600)))[:300]
    places = [f"Port {rng.choice(names)}" for _ in range(60)]
    scopes = ["party"] + [f"{layer}:p{i}" for i in range(1, 5) for layer in ("player", "character")]
    source_of = {"party": "dm", "player": "player", "character": "character"}
    ensure_index(redis)
    t0 = time.perf_counter()
    try:
        pipe = redis.pipeline(transaction=False)
        ent_key = MEMORY_ENTITIES.format(campaign_id=campaign)
        for i in range(n):
            who, where = rng.choice(names), rng.choice(places)
            text = (f"{who} {rng.choice(_VERBS)} the {rng.choice(_NOUNS)} near {where} while the "
                    f"{rng.choice(_NOUNS)} {rng.choice(_VERBS)} a {rng.choice(_NOUNS)}.")
            scope = rng.choice(scopes)
            turn = 1 + i // 10
            doc = {"id": f"b{i}", "campaign_id": campaign, "scope": scope,
                   "pid": None if scope == "party" else scope.split(":")[1], "text": text,
                   "entities": [who, where], "entity_keys": [entity_key(who), entity_key(where)], "turn": turn,
                   "cturn": turn, "session_id": "bench", "source": source_of[scope.split(":")[0]], "kind": "note",
                   "confidence": BASE_CONFIDENCE[source_of[scope.split(":")[0]]], "created_at": time.time(),
                   "status": "active", "superseded_by": None, "supersedes": []}
            pipe.execute_command("JSON.SET", MEMORY_KEY.format(campaign_id=campaign, memory_id=f"b{i}"), "$",
                                 json.dumps(doc))
            if i % 500 == 499:
                pipe.execute()
        for nm in names + places:
            pipe.hset(ent_key, entity_key(nm), json.dumps({"name": nm, "session_id": "bench", "turn": 1}))
        pipe.hset(MEMORY_CLOCK.format(campaign_id=campaign), "max", 1 + n // 10)
        pipe.execute()
        load_s = time.perf_counter() - t0
        times, hits = [], []
        for q in range(queries):
            text = (f"You dock at {rng.choice(places)}. {rng.choice(names)} meets you by the {rng.choice(_NOUNS)} "
                    f"and asks about the {rng.choice(_NOUNS)} that {rng.choice(names).lower()} "
                    f"{rng.choice(_VERBS)}. What do we know?")
            pid = f"p{1 + q % 4}"
            t = time.perf_counter()
            found = query(redis, campaign, text, scopes=_layer_scopes(pid, "player"),
                          limit=defaults.MEMORY_RECALL_LIMIT, token_budget=defaults.MEMORY_RECALL_TOKEN_BUDGET)
            times.append((time.perf_counter() - t) * 1000)
            hits.append(len(found))
        turn_times = []  # a whole memory query phase: 4 AIs x 2 layers
        for _ in range(min(queries, 10)):
            text = f"{rng.choice(names)} hails you from {rng.choice(places)} about the {rng.choice(_NOUNS)}."
            t = time.perf_counter()
            for pid in ("p1", "p2", "p3", "p4"):
                for layer in ("player", "character"):
                    recall(redis, campaign, text, _layer_scopes(pid, layer))
            turn_times.append((time.perf_counter() - t) * 1000)
    finally:
        deleted = delete_campaign(redis, campaign)
    times.sort()
    p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))] if times else None
    return {"n": n, "queries": queries, "median_ms": round(statistics.median(times), 2) if times else None,
            "p95_ms": round(p95, 2) if p95 is not None else None, "max_ms": round(max(times), 2) if times else None,
            "mean_results": round(sum(hits) / len(hits), 2) if hits else 0, "load_s": round(load_s, 2),
            "turn_recall_median_ms": round(statistics.median(turn_times), 2) if turn_times else None,
            "deleted": deleted}
