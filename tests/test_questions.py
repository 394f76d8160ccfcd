"""The DM question contracts: what each kind accepts, how leniently, and what each refusal says."""

from __future__ import annotations

import pytest

from ttrpg.turn import questions
from ttrpg.turn.questions import InvalidAnswer, check

STATE = {"turn": 2, "party": {"players": [
    {"id": "p1", "character": {"name": "Zee Vex"}},
    {"id": "p2", "character": {"name": "Kaya Moon"}},
    {"id": "p3", "character": {"name": "Rex Calloway"}},
]}}
NAMES = questions.party_names(STATE)


def q(kind, **fields):
    return {"kind": kind, "turn": 2, **fields}


@pytest.mark.parametrize("typed, pid", [("p1", "p1"), ("P2", "p2"), ("  p3 ", "p3"), ("zee vex", "p1"),
                                        ("Kaya", "p2"), ("REX", "p3"), ("kaya moon", "p2")])
def test_players_by_id_or_name_in_any_case(typed, pid):
    assert questions.parse_player(typed, NAMES) == pid


@pytest.mark.parametrize("typed", ["banana", "p9", "", "p1 p2", "42"])
def test_an_unknown_player_is_refused_with_the_players_listed(typed):
    with pytest.raises(InvalidAnswer) as exc:
        questions.parse_player(typed, NAMES)
    assert "not one of the players" in str(exc.value)
    assert "p1 (Zee Vex), p2 (Kaya Moon), p3 (Rex Calloway)" in str(exc.value)


@pytest.mark.parametrize("typed, approach", [("L", "lasers"), ("l", "lasers"), ("LASERS", "lasers"),
                                             ("laser", "lasers"), ("F", "feelings"), ("Feelings", "feelings")])
def test_approach_spellings(typed, approach):
    assert questions.parse_approach(typed) == approach


@pytest.mark.parametrize("typed", ["banana", "x", "", "3", "lasersss"])
def test_a_wrong_approach_says_what_to_type(typed):
    with pytest.raises(InvalidAnswer, match=r"neither LASERS nor FEELINGS\. Type lasers \(L\) or feelings \(F\)"):
        questions.parse_approach(typed)


@pytest.mark.parametrize("typed, n", [("1", 1), (" 2 ", 2), ("3", 3), (2, 2)])
def test_dice_counts(typed, n):
    assert questions.parse_dice_count(typed) == n


@pytest.mark.parametrize("typed", ["0", "4", "7", "-1", "two", "", "1.5", True])
def test_a_wrong_dice_count_says_1_2_or_3(typed):
    with pytest.raises(InvalidAnswer, match=r"Type 1, 2 or 3"):
        questions.parse_dice_count(typed)


@pytest.mark.parametrize("typed, dice", [("6 2", [6, 2]), ("6, 2", [6, 2]), ("6,2", [6, 2]), ("62", [6, 2]),
                                         (" 1  6 ", [1, 6]), ([3, 4], [3, 4]), ("5;5", [5, 5])])
def test_dice_values_spellings(typed, dice):
    assert questions.parse_dice(typed, 2) == dice


def test_one_die_for_two_is_refused_with_the_count_and_an_example():
    with pytest.raises(InvalidAnswer) as exc:
        questions.parse_dice("3", 2)
    assert str(exc.value) == ("1 die typed, but 2 were rolled: type 2 numbers from 1 to 6, e.g. `6 2`, "
                              "or Enter to keep.")


@pytest.mark.parametrize("typed", ["banana", "7 7", "0, 1", "6 x"])
def test_a_value_that_is_not_a_die_is_named(typed):
    with pytest.raises(InvalidAnswer, match=r"is not a die: type 2 numbers from 1 to 6"):
        questions.parse_dice(typed, 2)


def test_too_many_dice_and_overlong_input_are_refused():
    with pytest.raises(InvalidAnswer, match="3 dice typed, but 2 were rolled"):
        questions.parse_dice("1 2 3", 2)
    with pytest.raises(InvalidAnswer, match="That is not a roll"):
        questions.parse_dice("1 " * 100, 2)


def test_helpers_exclude_the_roller_and_unknown_players():
    assert questions.parse_helpers("p2, kaya p3", NAMES, "p1") == ["p2", "p3"]
    assert questions.parse_helpers("", NAMES, "p1") == []
    with pytest.raises(InvalidAnswer, match="p1 rolls and cannot also help"):
        questions.parse_helpers("p1", NAMES, "p1")
    with pytest.raises(InvalidAnswer, match="cannot help here"):
        questions.parse_helpers("p7", NAMES, "p1")


@pytest.mark.parametrize("typed, choice", [("retry", "retry"), ("R", "retry"), ("skip", "skip"), ("s", "skip"),
                                           ("type", "type"), ("t", "type"), ("end", "end_turn"),
                                           ("End Turn", "end_turn"), ("e", "end_turn"), ("end_turn", "end_turn")])
def test_intervention_choices(typed, choice):
    assert questions.parse_choice(typed) == choice


def test_a_wrong_intervention_choice_lists_the_choices():
    with pytest.raises(InvalidAnswer, match=r"Type retry \(r\), skip \(s\), type \(t\) or end \(e\)"):
        questions.parse_choice("banana")


# --- whole answers, as scripts and the graph give them ---------------------------------------------

def test_narration_with_whispers_is_normalized():
    got = check({"text": " A scene. ", "whispers": [{"to": "KAYA", "layer": "Player", "text": "psst"}]},
                q("narration"), STATE)
    assert got == {"text": "A scene.", "whispers": [{"to": "p2", "layer": "player", "text": "psst"}], "end": False}
    assert check({"end": True}, q("narration"), STATE)["end"] is True


@pytest.mark.parametrize("answer, message", [
    ({"text": ""}, "The narration is empty"),
    ({"text": "x" * 5000}, "at most 4000"),
    ({"text": 5}, "must be text"),
    ({"text": "ok", "whispers": [{"to": "p9", "layer": "player", "text": "x"}]}, "not one of the players"),
    ({"text": "ok", "whispers": [{"to": "p1", "layer": "soul", "text": "x"}]}, "is not one of player"),
    ({"text": "ok", "whispers": "nope"}, "whispers must be a list"),
    ("", "The narration is empty"),
])
def test_narration_refusals(answer, message):
    with pytest.raises(InvalidAnswer, match=message):
        check(answer, q("narration"), STATE)


ADJ = q("adjudication", actions={"p1": "I scan.", "p2": "I talk."})


def test_adjudication_is_normalized():
    got = check({"rolls": [{"player": "Zee", "approach": "L", "dice": "2", "helpers": ["kaya"]}]}, ADJ, STATE)
    assert got == {"rolls": [{"player": "p1", "approach": "lasers", "dice": 2, "helpers": ["p2"]}]}
    assert check({"rolls": []}, ADJ, STATE) == {"rolls": []}


@pytest.mark.parametrize("rolls, message", [
    ([{"player": "p1"}, {"player": "P1"}], "p1 already rolls this turn: each player rolls at most once per turn"),
    ([{"player": "p3"}], "not one of the players here"),  # p3 did not act
    ([{"player": "p1", "dice": 4}], "Type 1, 2 or 3"),
    ([{"player": "p1", "dice": "abc"}], "Type 1, 2 or 3"),
    ([{"player": "p1", "approach": "charm"}], "neither LASERS nor FEELINGS"),
    ([1], "Each roll is"),
])
def test_adjudication_refusals(rolls, message):
    with pytest.raises(InvalidAnswer, match=message):
        check({"rolls": rolls}, ADJ, STATE)


DICE = q("dice", rolls=[{"player": "p1", "dice": [5, 5]}, {"player": "p2", "dice": [3]}])


def test_dice_override_is_checked_against_what_was_rolled():
    assert check({"override": {"p1": "6 2"}}, DICE, STATE) == {"override": {"p1": [6, 2]}}
    assert check({"override": {"p1": []}}, DICE, STATE) == {"override": {}}
    with pytest.raises(InvalidAnswer, match="1 die typed, but 2 were rolled"):
        check({"override": {"p1": [3]}}, DICE, STATE)
    with pytest.raises(InvalidAnswer, match="did not roll this turn"):
        check({"override": {"p3": [3]}}, DICE, STATE)


@pytest.mark.parametrize("kind", ["outcome", "laser_feelings"])
def test_text_answers_must_not_be_empty(kind):
    assert check({"text": " It works. "}, q(kind), STATE) == {"text": "It works."}
    with pytest.raises(InvalidAnswer, match="is empty"):
        check({"text": "  "}, q(kind), STATE)


def test_review_enter_accepts_the_corrected_action():
    question = q("review", player_id="p1", text="I try to open it.")
    assert check({"text": ""}, question, STATE) == {"text": "I try to open it.", "player_id": "p1"}
    assert check({"text": "I pry it."}, question, STATE)["text"] == "I pry it."


INTERVENTION = q("intervention", phase="party_discussion", failures=2, reason="boom", player_id="p2",
                 options=list(questions.INTERVENTION_CHOICES))


def test_intervention_answers():
    assert check({"choice": "R"}, INTERVENTION, STATE) == {"choice": "retry", "player_id": None}
    assert check({"choice": "skip"}, INTERVENTION, STATE) == {"choice": "skip", "player_id": "p2"}
    assert check({"choice": "t", "player_id": "zee", "text": "I wait."}, INTERVENTION, STATE) == \
        {"choice": "type", "player_id": "p1", "text": "I wait."}
    with pytest.raises(InvalidAnswer, match="player's line is empty"):
        check({"choice": "type"}, INTERVENTION, STATE)
    with pytest.raises(InvalidAnswer, match="Say which player to skip"):
        check({"choice": "skip"}, dict(INTERVENTION, player_id=None), STATE)


def test_check_never_raises_anything_but_invalid_answer():
    for kind in questions.QUESTION_KINDS:
        for junk in (None, 5, [], "x", {"rolls": "x"}, {"override": [1]}, {"text": {"a": 1}}):
            try:
                check(junk, q(kind, rolls=[{"player": "p1"}], actions={"p1": "x"}, options=["retry"]), STATE)
            except InvalidAnswer:
                pass


def test_envelope_round_trip():
    value = questions.envelope({"text": "hi"}, source="keyboard", wait_ms=12)
    assert questions.open_envelope(value) == ({"text": "hi"}, {"source": "keyboard", "wait_ms": 12})
    assert questions.open_envelope({"text": "hi"}) == ({"text": "hi"}, {})
