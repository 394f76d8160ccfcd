"""Narrative overreach: the corpus numbers, tricky cases, retries and autocorrection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttrpg.defaults import VALIDATION_MAX_ATTEMPTS
from ttrpg.game.validation import (
    autocorrect,
    evaluate,
    find_overreach,
    strict_instructions,
)

CORPUS = Path(__file__).resolve().parent / "data" / "overreach_corpus.jsonl"


def test_corpus_is_big_varied_and_balanced():
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    assert len(rows) >= 160
    assert len({r["text"] for r in rows}) == len(rows)
    positives = [r for r in rows if r["overreach"]]
    assert 0.4 <= len(positives) / len(rows) <= 0.6
    assert {r["kind"] for r in positives} == {"outcome", "other_reaction", "future"}
    assert all(r["kind"] is None for r in rows if not r["overreach"])


def test_precision_and_recall_on_corpus():
    result = evaluate(CORPUS)
    print(f"\noverreach corpus: precision={result['precision']:.3f} recall={result['recall']:.3f} "
          f"tp={result['tp']} fp={result['fp']} fn={result['fn']} tn={result['tn']}")
    for error in result["errors"]:
        print(f"  {error['error']}: {error['text']}")
    assert result["precision"] >= 0.90
    assert result["recall"] >= 0.95


def test_evaluate_takes_a_path(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": "I kill the guard.", "overreach": True, "kind": "outcome"}) + "\n"
                      + json.dumps({"text": "I try to kill the guard.", "overreach": False, "kind": None}) + "\n")
    assert evaluate(corpus) | {"errors": []} == {"precision": 1.0, "recall": 1.0, "tp": 1, "fp": 0, "fn": 0,
                                                 "tn": 1, "errors": []}


@pytest.mark.parametrize("text,kind", [
    ("I fire and the guard drops.", "outcome"),
    ("I successfully reroute power to the shields.", "outcome"),
    ("I try to hack the door, and it opens.", "outcome"),
    ("Zix shoots the pirate captain, who falls to the deck.", "outcome"),
    ("The captain nods and agrees.", "other_reaction"),
    ("The alien is terrified.", "other_reaction"),
    ("Everyone is impressed by my piloting.", "other_reaction"),
    ("The guard screams.", "other_reaction"),
    ("I fire at the reactor, which will surely destroy the station.", "future"),
    ("I punch it and then the ship escapes into hyperspace.", "future"),
    ("This will end the fight.", "future"),
])
def test_detects(text, kind):
    found = find_overreach(text)
    assert kind in {v["kind"] for v in found}, found
    for v in found:
        assert text[v["start"]:v["end"]] == v["match"]
        assert v["reason"]


@pytest.mark.parametrize("text", [
    "I try to hit the guard.",
    "I want to strike before he draws.",
    "Zix aims her blaster at the guard.",
    "I want to hack the door.",
    "I fire at the pirate, aiming to kill.",
    "I shove the crate off the ledge, hoping it falls on the sentry.",
    "I attempt to defeat the champion with a feint.",
    "I kick the support beam so it might fall across the corridor.",
    "If it works, we can slip out the back.",
    "Can I knock him out without killing him?",
    "\"This will end the fight,\" Zix mutters, priming the grenade.",
    "Kaya drops to one knee and fires at the pirates.",
    "I hit the thrusters and pull up hard.",
    "Zix nods and agrees to take point.",
    "I cover Kaya while she works on the lock.",
])
def test_allows_intent(text):
    assert find_overreach(text) == []


def test_violation_fields():
    [v] = find_overreach("I kill the guard.")
    assert v == {"kind": "outcome", "match": "kill", "start": 2, "end": 6, "reason": v["reason"]}


def test_strict_instructions_grow():
    texts = [strict_instructions(a) for a in range(1, VALIDATION_MAX_ATTEMPTS + 1)]
    assert VALIDATION_MAX_ATTEMPTS == 3 and texts[0] == ""
    assert 0 < len(texts[1]) < len(texts[2])
    with pytest.raises(ValueError):
        strict_instructions(0)


@pytest.mark.parametrize("text,expected", [
    ("I try to hack the door, and it opens.", "I try to hack the door."),
    ("I successfully reroute power to the shields.", "I reroute power to the shields."),
    ("Kaya manages to slip past the sentries unseen.", "Kaya tries to slip past the sentries."),
    ("Zix shoots the pirate captain, who falls to the deck.", "Zix shoots the pirate captain."),
    ("I fire at the reactor, which will surely destroy the station.", "I fire at the reactor."),
    ("I tell the captain my plan and she nods and agrees.", "I tell the captain my plan."),
    ("I aim at the drone. Direct hit!", "I aim at the drone."),
])
def test_autocorrect_clean(text, expected):
    corrected, needs_review = autocorrect(text, find_overreach(text))
    assert (corrected, needs_review) == (expected, False)
    assert find_overreach(corrected) == []


@pytest.mark.parametrize("text", ["I kill the guard with one shot.", "The guard screams.",
                                  "I bluff, and soon the guards are all asleep."])
def test_autocorrect_needs_review_when_nothing_sensible_is_left(text):
    corrected, needs_review = autocorrect(text, find_overreach(text))
    assert needs_review is True


def test_autocorrect_without_violations_is_identity():
    assert autocorrect("I try to hit the guard.", []) == ("I try to hit the guard.", False)
