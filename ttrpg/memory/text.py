"""Memory text: sentences, words, entities and the safe words of a RediSearch query.

**Entities** are extracted simply: runs of capitalised words (``Galvin``, ``Port Kell``,
``Unit K-7``) minus leading articles, sentence-initial common words and game terms, plus any
entity already known in the campaign when the text mentions it in lower case
(``what about galvin?``). The campaign's known entities live in a hash
(:data:`ttrpg.constants.MEMORY_ENTITIES`) with where each was first seen.

User text never reaches the query syntax: it is cut into plain alphanumeric words,
stopwords are dropped and tags are backslash-escaped.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from typing import Iterable

from ttrpg.constants import MEMORY_ENTITIES

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
MAX_ENTITIES = 24
_MAX_QUERY_TERMS = 48


def split_words(text: str) -> list[str]:
    """The words of ``text`` (apostrophes and hyphens inside a word kept)."""
    return _WORD_RE.findall(text or "")


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
    return list(found.values())[:MAX_ENTITIES]


def entity_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _ngrams(text: str, n_max: int = 3) -> list[str]:
    words = [_strip_possessive(w).casefold() for w in split_words(text)]
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
    return list(seen.values())[:MAX_ENTITIES]


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


def tags_clause(values: Iterable[str]) -> str:
    """``{a|b}``: a TAG clause matching any of ``values`` (each escaped)."""
    return "{" + "|".join(escape_tag(v) for v in values) + "}"



def term_overlap(terms: list[str], text: str) -> float:
    """Share of the query's terms found among the document's words (prefix match, so
    "freighter" finds "freighters")."""
    words = _sorted_words(text)
    hits = 0
    for t in terms:  # t is a word of the text, or a prefix of one: the first word >= t tells
        i = bisect.bisect_left(words, t)
        hits += i < len(words) and words[i].startswith(t)
    return hits / len(terms)


@functools.lru_cache(maxsize=8192)
def _sorted_words(text: str) -> tuple[str, ...]:
    """The distinct words of a memory's text, casefolded and sorted (memoized: recall scores
    the same stored memories turn after turn)."""
    return tuple(sorted(set(_TERM_RE.findall(text.casefold()))))
