"""``ttrpg memory bench``: time memory queries against many synthetic memories."""

from __future__ import annotations

import json
import random
import statistics
import time
import uuid

from ttrpg import defaults
from ttrpg.constants import MEMORY_CLOCK, MEMORY_ENTITIES, MEMORY_KEY
from ttrpg.memory.recall import layer_scopes, query, recall
from ttrpg.memory.store import delete_campaign, ensure_index
from ttrpg.memory.storing import BASE_CONFIDENCE
from ttrpg.memory.text import entity_key
from ttrpg.research.stats import percentile

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
            found = query(redis, campaign, text, scopes=layer_scopes(pid, "player"),
                          limit=defaults.MEMORY_RECALL_LIMIT, token_budget=defaults.MEMORY_RECALL_TOKEN_BUDGET)
            times.append((time.perf_counter() - t) * 1000)
            hits.append(len(found))
        turn_times = []  # a whole memory query phase: 4 AIs x 2 layers
        for _ in range(min(queries, 10)):
            text = f"{rng.choice(names)} hails you from {rng.choice(places)} about the {rng.choice(_NOUNS)}."
            t = time.perf_counter()
            for pid in ("p1", "p2", "p3", "p4"):
                for layer in ("player", "character"):
                    recall(redis, campaign, text, layer_scopes(pid, layer))
            turn_times.append((time.perf_counter() - t) * 1000)
    finally:
        deleted = delete_campaign(redis, campaign)
    times.sort()
    p95 = percentile(times, 0.95)
    return {"n": n, "queries": queries, "median_ms": round(statistics.median(times), 2) if times else None,
            "p95_ms": round(p95, 2) if p95 is not None else None, "max_ms": round(max(times), 2) if times else None,
            "mean_results": round(sum(hits) / len(hits), 2) if hits else 0, "load_s": round(load_s, 2),
            "turn_recall_median_ms": round(statistics.median(turn_times), 2) if turn_times else None,
            "deleted": deleted}
