"""Consensus states from table talk: the labels decide, not polite words."""

from ttrpg.game.consensus import detect, vote


def _e(player, proposal, vote_word="agree", round_no=1):
    return {"round": round_no, "player": player, "proposal": proposal, "vote": vote_word}


def test_unanimous_when_everyone_backs_the_same_plan():
    v = detect([_e("p1", "Board the freighter"), _e("p2", "board the freighter!")], 1)
    assert v["state"] == "unanimous" and v["dissent"] == []


def test_different_plans_are_not_consensus_even_if_everyone_says_agree():
    v = detect([_e("p1", "board the freighter"), _e("p2", "scan the hull"), _e("p3", "hail galvin")], 1)
    assert v["state"] == "conflicted"


def test_majority_notes_the_dissent():
    v = detect([_e("p1", "scan the hull"), _e("p2", "scan the hull"), _e("p3", "scan the hull"),
                _e("p4", "open fire", "disagree")], 2)
    assert v["state"] == "majority" and v["dissent"] == ["p4"] and v["plan"] == "scan the hull"


def test_a_disagree_vote_is_dissent_even_on_the_leading_plan():
    v = detect([_e("p1", "scan the hull"), _e("p2", "scan the hull", "disagree")], 1)
    assert v["state"] == "conflicted"


def test_vote_decides_after_the_talk_runs_out():
    talk = [_e("p1", "a", round_no=5), _e("p2", "b", round_no=5), _e("p3", "a", round_no=5)]
    v = vote(talk)
    assert v["decided_by"] == "vote" and v["plan"] == "a" and v["dissent"] == ["p2"] and v["rounds"] == 5
