"""ttrpg.prompts: the layer boundary, the prompt structure, the tolerant parsers, context fitting.

The sample table (ZIX, REX, SHIP, NARRATION) is imported by test_offline and test_llm too.
"""

from __future__ import annotations

import copy
import json

import pytest

from ttrpg.prompts.builders import (
    PROMPT_VERSION,
    character_action_messages,
    character_reaction_messages,
    discussion_messages,
    laser_feelings_question_messages,
    player_intent_messages,
)
from ttrpg.prompts.context import estimate_tokens, fit_to_context
from ttrpg.prompts.parsers import (
    clean_character_text,
    consensus_label,
    parse_discussion,
    parse_intent,
    parse_question,
)

ZIX = {
    "id": "p1",
    "player": {"name": "Alice", "goal": "See the crew become legends",
               "traits": {"analytical": 0.8, "risk_tolerance": 0.3, "detail_orientation": 0.7,
                          "emotional_memory": 0.4, "assertiveness": 0.4, "cooperativeness": 0.8,
                          "openness": 0.6, "rule_adherence": 0.7, "roleplay_intensity": 0.9}},
    "character": {"name": "Zix", "style": "Alien", "role": "Scientist", "number": 5,
                  "goal": "Solve Weird Space Mysteries", "equipment": ["quantum scanner", "sample kit"],
                  "speech_patterns": ["Speaks in measured sentences", "Often says \"Fascinating.\""],
                  "mannerisms": ["tilts her head when curious"]},
}
REX = {
    "id": "p2",
    "player": {"name": "Bob", "goal": "Cause glorious chaos",
               "traits": {"analytical": 0.2, "risk_tolerance": 0.9, "assertiveness": 0.9,
                          "cooperativeness": 0.3, "roleplay_intensity": 0.6}},
    "character": {"name": "Rex Calloway", "style": "Hot-Shot", "role": "Pilot", "number": 2,
                  "goal": "Prove Yourself", "equipment": ["lucky dice"],
                  "speech_patterns": ["Calls everyone 'pal'", "Brags about \"Nobody flies like Rex!\""],
                  "mannerisms": ["spins a coin across his knuckles"]},
}
SHIP = {"name": "The Raptor", "strengths": ["Fast", "Superior Sensors"], "problem": "Fuel Hog"}
NARRATION = ("The Raptor drops out of hyperspace beside the derelict freighter. A distress beacon pulses "
             "from its cargo bay, and Galvin, the smuggler, hails you on an open channel.")
WHISPER = "The freighter's reactor core is leaking and will blow in ten minutes"
HISTORY = ["Turn 1: the crew left Port Kessel in a hurry", "Turn 2: Rex outran a customs cutter"]
TABLE_TALK = [{"round": 1, "player_id": "p1", "name": "Alice", "say": "Let's be careful with the reactor thing",
               "proposal": "scan the freighter first", "vote": "agree"}]


def _all_text(messages):
    return "\n".join(m["content"] for m in messages)


def _char_messages(attempt=1, violations=(), extra=""):
    return character_action_messages(ZIX, SHIP, NARRATION, "Scan the derelict freighter for life signs.",
                                             ["You hear a faint knocking from the cargo bay"], HISTORY,
                                             attempt, list(violations), extra_instructions=extra)


def test_player_layer_gets_player_knowledge():
    msgs = player_intent_messages(ZIX, SHIP, NARRATION, ["Galvin cheated us once"], [WHISPER],
                                          HISTORY, TABLE_TALK)
    text = _all_text(msgs)
    assert [m["role"] for m in msgs] == ["system", "user"]
    for expected in (WHISPER, "See the crew become legends", "risk_tolerance 0.3", "Galvin cheated us once",
                     "scan the freighter first", "Layer: player", "Task: intent", "INTENT:", "DIRECTIVE:"):
        assert expected in text


def test_character_layer_never_sees_player_only_knowledge():
    player_only = [WHISPER, "See the crew become legends", "Alice", "risk_tolerance", "cooperativeness",
                   "Let's be careful with the reactor thing", "scan the freighter first", "Galvin cheated us once"]
    builds = [
        _char_messages(),
        _char_messages(attempt=3, violations=["narrated an outcome: 'the door opens'"], extra="Be strict."),
        character_reaction_messages(ZIX, SHIP, NARRATION, "The scan shows three life signs.",
                                            ["You hear a faint knocking from the cargo bay"], HISTORY),
    ]
    for msgs in builds:
        text = _all_text(msgs)
        for secret in player_only:
            assert secret not in text, secret
        assert "Layer: character" in text
    # ...while what the character may know is there
    text = _all_text(builds[0])
    for expected in ("Character: Zix", "Style: Alien", "Role: Scientist", "Number: 5", "Attempt: 1",
                     "Character goal: Solve Weird Space Mysteries", "quantum scanner", "Fascinating.",
                     "tilts her head", "faint knocking", "Scan the derelict freighter", NARRATION, HISTORY[0]):
        assert expected in text, expected


def test_builders_take_no_player_only_arguments():
    """The character-layer builders cannot be handed player knowledge: their signatures lack it."""
    import inspect

    for fn in (character_action_messages, character_reaction_messages):
        params = set(inspect.signature(fn).parameters)
        assert not params & {"player_whispers", "memories", "discussion", "discussion_so_far"}


def test_system_prompt_structure_is_machine_readable():
    system = _char_messages(attempt=2, violations=["x"])[0]["content"]
    lines = system.splitlines()
    for key, value in (("Layer", "character"), ("Task", "action"), ("Attempt", "2"), ("Character", "Zix"),
                       ("Style", "Alien"), ("Role", "Scientist"), ("Character goal", "Solve Weird Space Mysteries")):
        assert f"{key}: {value}" in lines
    assert any(line.startswith("Number: 5 - better at LASERS") for line in lines)
    assert "Ship: The Raptor (strengths: Fast, Superior Sensors; problem: Fuel Hog)" in lines
    low = character_action_messages(REX, SHIP, NARRATION, "", [], [], 1, [])[0]["content"]
    assert "Number: 2 - better at FEELINGS" in low


def test_retry_attempts_are_stricter():
    first = _all_text(_char_messages())
    assert "rejected" not in first
    second = _char_messages(attempt=2, violations=["narrated an outcome: 'the guard falls'"],
                            extra="Describe only the attempt. No results.")
    text = _all_text(second)
    assert "Describe only the attempt. No results." in second[0]["content"]
    assert "the guard falls" in text and "Attempt: 2" in text
    # no validation text given: a built-in stricter wording is used anyway
    third = _all_text(_char_messages(attempt=3, violations=[]))
    assert "FINAL ATTEMPT" in third and "Attempt: 3" in third


def test_discussion_and_question_messages():
    msgs = discussion_messages(REX, SHIP, NARRATION, [], [WHISPER], HISTORY, TABLE_TALK, 2)
    text = _all_text(msgs)
    assert "Task: discussion" in text and "Round: 2" in text
    assert "PROPOSAL: scan the freighter first" in text and "VOTE: agree" in text
    assert "SAY:" in msgs[0]["content"]
    q = laser_feelings_question_messages(ZIX, SHIP, NARRATION, "Zix rolled LASER FEELINGS on a scan")
    qtext = _all_text(q)
    assert "Task: question" in qtext and "QUESTION:" in qtext and "rolled LASER FEELINGS" in qtext


def test_messages_are_plain_json_and_builders_tolerate_sparse_entries():
    sparse = {"id": "p9", "character": {"name": "Nox"}}
    for msgs in (
        player_intent_messages(sparse, None, "", [], [], [], []),
        discussion_messages(sparse, {}, "x", [], [], [], [{"say": "hi"}, "free text"], 1),
        character_action_messages(sparse, None, "x", "", [], [], 1, []),
        character_reaction_messages({}, None, "x", "", [], []),
        laser_feelings_question_messages({"character": {"number": "many"}}, None, "x", ""),
    ):
        json.dumps(msgs)
        assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in msgs)
    assert PROMPT_VERSION == "1"


@pytest.mark.parametrize("text,intent,directive", [
    ("INTENT: Scout first.\nDIRECTIVE: Scan the freighter.", "Scout first.", "Scan the freighter."),
    ("**Intent:** play it safe\n**Directive:** hold position", "play it safe", "hold position"),
    ("INTENT: go loud DIRECTIVE: ram the hatch", "go loud", "ram the hatch"),
    ("intent - be sneaky\ndirective - crawl through the vent", "be sneaky", "crawl through the vent"),
    ("We should be careful. Zix ought to scan the ship.", "We should be careful.", "Zix ought to scan the ship."),
    ("Just scan it", "Just scan it", "Just scan it"),
    ("DIRECTIVE: fly!", "fly!", "fly!"),
    ("", "", ""),
    (None, "", ""),
])
def test_parse_intent_tolerates_off_format(text, intent, directive):
    assert parse_intent(text) == {"intent": intent, "directive": directive}


@pytest.mark.parametrize("text,expected", [
    ("SAY: Let's scan.\nPROPOSAL: scan the freighter\nVOTE: agree",
     {"say": "Let's scan.", "proposal": "scan the freighter", "vote": "agree"}),
    ("SAY: No way.\nPROPOSAL: ram it\nVOTE: Disagree, too slow",
     {"say": "No way.", "proposal": "ram it", "vote": "disagree"}),
    ("SAY: fine\nVOTE: agree with 'scan the freighter'",
     {"say": "fine", "proposal": "scan the freighter", "vote": "agree"}),
    ("SAY: I want to talk to Galvin\nPROPOSAL: talk to Galvin",
     {"say": "I want to talk to Galvin", "proposal": "talk to Galvin", "vote": "disagree"}),
    ("Sounds good to me, let's do it!", {"say": "Sounds good to me, let's do it!", "proposal": "", "vote": "agree"}),
    ("I have nothing to add.", {"say": "I have nothing to add.", "proposal": "", "vote": "agree"}),
    (None, {"say": "", "proposal": "", "vote": "agree"}),
])
def test_parse_discussion_tolerates_off_format(text, expected):
    assert parse_discussion(text) == expected


def test_parse_question_and_clean_text():
    assert parse_question("QUESTION: What does Galvin want?") == "What does Galvin want?"
    assert parse_question("Hmm. Is the reactor stable? Also who knows.") == "Is the reactor stable?"
    assert parse_question("what is in the cargo bay") == "what is in the cargo bay?"
    assert parse_question(None) == ""
    assert clean_character_text('Zix: "I try to scan it."', "Zix") == "I try to scan it."
    assert clean_character_text("ACTION: I try.", "Zix") == "I try."


def test_consensus_label():
    agree_same = [{"proposal": "Scan the freighter!", "vote": "agree"}, {"proposal": "scan freighter", "vote": "disagree"}]
    assert consensus_label(agree_same) == "Scan the freighter!"
    split = [{"proposal": "scan the freighter", "vote": "agree"}, {"proposal": "ram it", "vote": "disagree"}]
    assert consensus_label(split) is None
    all_agree = [{"proposal": "ram it", "vote": "agree"}, {"proposal": "scan", "vote": "agree"},
                 {"proposal": "scan", "vote": "agree"}, {"proposal": "", "vote": "agree"}]
    assert consensus_label(all_agree) == "scan"
    assert consensus_label([]) is None


def _long_request(lines=120):
    history = [f"Turn {i}: the crew argued about fuel at station {i} and Galvin laughed at them again" for i in range(lines)]
    memories = [f"Memory {i}: " + "long ago " * 60 for i in range(10)]
    return player_intent_messages(ZIX, SHIP, NARRATION, memories, [WHISPER], history, TABLE_TALK)


def test_fit_to_context_shrinks_keeping_system_and_narration():
    msgs = _long_request()
    before = copy.deepcopy(msgs)
    assert estimate_tokens(msgs) > 2000
    fitted, shrank = fit_to_context(msgs, context_window=2048, reserve=300)
    assert shrank is True
    assert msgs == before, "input must not be modified"
    assert estimate_tokens(fitted) <= int(2048 * 0.8) - 300
    assert fitted[0] == msgs[0], "system prompt kept whole"
    user = fitted[1]["content"]
    assert NARRATION in user, "latest narration kept whole"
    assert "- Earlier: Turn 0:" in user
    assert "Turn 119:" in user, "newest history kept"
    assert WHISPER in user


def test_fit_to_context_leaves_small_requests_alone():
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], HISTORY, 1, [])
    fitted, shrank = fit_to_context(msgs, context_window=8192, reserve=300)
    assert shrank is False and fitted == msgs


def test_fit_to_context_drops_older_chat_turns_and_cuts_narration_last():
    chat = [{"role": "system", "content": "You are terse."}]
    chat += [{"role": "user" if i % 2 == 0 else "assistant", "content": "blah " * 200} for i in range(10)]
    chat.append({"role": "user", "content": "## GM narration\n" + "x" * 4000})
    fitted, shrank = fit_to_context(chat, context_window=1024, reserve=100)
    assert shrank and fitted[0] == chat[0] and fitted[-1]["content"].startswith("## GM narration\n...")
    assert estimate_tokens(fitted) <= int(1024 * 0.8) - 100
    assert fitted[-1]["content"].endswith("x" * 100), "the end of the narration (the newest part) stays"
