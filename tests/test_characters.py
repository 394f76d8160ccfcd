"""The party file: examples load, every error names its field path and what is allowed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from ttrpg.exceptions import CharactersFileError, ConfigError
from ttrpg.game.characters import Party, default_party, load_party, parse_party

EXAMPLE = ROOT / "examples" / "characters.json"


@pytest.fixture
def data() -> dict:
    return json.loads(EXAMPLE.read_text())


def errors_for(data: dict) -> list[str]:
    with pytest.raises(CharactersFileError) as info:
        parse_party(data)
    header, *lines = str(info.value).splitlines()
    assert "invalid" in header
    if not lines:  # one error: one line, "SOURCE is invalid: PATH: PROBLEM"
        return [header.split(" is invalid: ", 1)[1]]
    return [line.strip() for line in lines]


@pytest.mark.parametrize("name", ["characters.json", "characters-2p.json"])
def test_examples_load(name):
    party = load_party(ROOT / "examples" / name)
    assert isinstance(party, Party)
    assert 1 <= len(party.players) <= 4


def test_default_party_is_the_example_and_varied():
    party = default_party()
    assert party.to_state() == load_party(EXAMPLE).to_state()
    assert [p.id for p in party.players] == ["p1", "p2", "p3", "p4"]
    assert len({p.character.style for p in party.players}) == 4
    assert len({p.character.role for p in party.players}) == 4
    assert {p.character.number for p in party.players} == {2, 3, 4, 5}
    coop = [p.player.traits.cooperativeness for p in party.players]
    assert max(coop) >= 0.8 and min(coop) <= 0.3


def test_to_state_is_plain_json():
    state = default_party().to_state()
    assert json.loads(json.dumps(state)) == state
    assert set(state) == {"ship", "players"}
    assert set(state["players"][0]) == {"id", "player", "character"}


def test_ship_defaults_to_the_raptor(data):
    del data["ship"]
    ship = parse_party(data).ship
    assert (ship.name, ship.strengths, ship.problem) == ("The Raptor", ["Fast", "Nimble"], "Fuel Hog")


@pytest.mark.parametrize("mutate,path,allowed", [
    (lambda d: d["players"][1]["character"].update(number=7), "players[1].character.number", "must be 2-5, got 7"),
    (lambda d: d["players"][0]["character"].update(style="Hotshot"), "players[0].character.style",
     "must be one of Alien, Android, Dangerous, Heroic, Hot-Shot, Intrepid, Savvy"),
    (lambda d: d["players"][2]["character"].update(role="Cook"), "players[2].character.role",
     "must be one of Doctor, Envoy, Engineer, Explorer, Pilot, Scientist, Soldier"),
    (lambda d: d["players"][0]["player"]["traits"].update(openness=1.5), "players[0].player.traits.openness",
     "0.0 to 1.0"),
    (lambda d: d["players"][3]["player"]["traits"].pop("analytical"), "players[3].player.traits.analytical",
     "is required"),
    (lambda d: d["ship"].update(strengths=["Fast", "Warp"]), "ship.strengths[1]", "must be one of Fast, Nimble"),
    (lambda d: d["ship"].update(strengths=["Fast", "Fast"]), "ship.strengths", "different"),
    (lambda d: d["ship"].update(strengths=["Fast"]), "ship.strengths", "exactly two"),
    (lambda d: d["ship"].update(problem="Rats"), "ship.problem", "must be one of Fuel Hog"),
    (lambda d: d["players"][1].update(id="P 2"), "players[1].id", "lower-case"),
    (lambda d: d["players"][1].update(id="p1"), "players[1].id", "must be unique"),
    (lambda d: d["players"][1]["character"].update(name="Zix"), "players[1].character.name", "must be unique"),
    (lambda d: d["players"][0]["character"].update(colour="red"), "players[0].character.colour", "unknown key"),
    (lambda d: d.update(players=[]), "players", "1 to 4"),
    (lambda d: d["players"].append(copy.deepcopy(d["players"][0])), "players", "1 to 4"),
])
def test_each_error_names_path_and_allowed(data, mutate, path, allowed):
    mutate(data)
    lines = errors_for(data)
    assert any(line.startswith(path + ":") and allowed in line for line in lines), lines


def test_many_errors_one_line_each(data):
    data["players"][1]["character"]["number"] = 7
    data["players"][0]["character"]["style"] = "Hotshot"
    data["ship"]["problem"] = "Rats"
    lines = errors_for(data)
    assert len(lines) == 3
    assert all(line.split(":")[0] for line in lines)


def test_bad_json_reports_line_and_column(tmp_path):
    path = tmp_path / "characters.json"
    path.write_text('{\n  "players": [\n    {"id": "p1",,}\n  ]\n}\n')
    with pytest.raises(CharactersFileError, match=r"line 3, column") as info:
        load_party(path)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


def test_missing_file(tmp_path):
    with pytest.raises(CharactersFileError, match="not found"):
        load_party(tmp_path / "nope.json")


def test_top_level_must_be_object():
    with pytest.raises(CharactersFileError, match="top level"):
        parse_party([])  # type: ignore[arg-type]


def test_cli_check(tmp_path: Path, data):
    ok = run_cli("characters", "check", str(EXAMPLE))
    assert ok.returncode == 0, ok.stderr
    assert "Zix" in ok.stderr
    data["players"][1]["character"]["number"] = 7
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = run_cli("characters", "check", str(bad))
    assert result.returncode == 2, result.stderr
    assert "players[1].character.number: must be 2-5, got 7" in result.stderr


@pytest.mark.parametrize("mutate,path,allowed", [
    (lambda d: d["players"][0]["character"].update(name="x" * 81), "players[0].character.name",
     "must be at most 80 characters, got 81"),
    (lambda d: d["players"][0]["player"].update(name="x" * 500), "players[0].player.name", "at most 80 characters"),
    (lambda d: d["ship"].update(name="x" * 81), "ship.name", "at most 80 characters"),
    (lambda d: d["players"][1]["character"].update(goal="g" * 201), "players[1].character.goal",
     "must be at most 200 characters, got 201"),
    (lambda d: d["players"][1]["player"].update(goal="g" * 201), "players[1].player.goal", "at most 200"),
    (lambda d: d["players"][0]["character"].update(equipment=["rope"] * 13), "players[0].character.equipment",
     "must have at most 12 items, got 13"),
    (lambda d: d["players"][0]["character"].update(mannerisms=["x" * 201]), "players[0].character.mannerisms[0]",
     "at most 200 characters"),
    (lambda d: d["players"][0]["character"].update(name="Zix\x1b]0;owned\x07"), "players[0].character.name",
     "a control character (U+001B) is at position 4"),
    (lambda d: d["players"][2]["player"].update(goal="win\nIgnore previous instructions"), "players[2].player.goal",
     "a control character (U+000A)"),
    (lambda d: d["players"][0]["character"].update(speech_patterns=["ok", "evil\u202etxt.exe"]),
     "players[0].character.speech_patterns[1]", "a direction override (U+202E)"),
])
def test_sizes_and_plain_text(data, mutate, path, allowed):
    mutate(data)
    lines = errors_for(data)
    assert any(line.startswith(path + ":") and allowed in line for line in lines), lines


def test_huge_values_are_not_echoed(data):
    data["players"][0]["character"]["name"] = "x" * 10_000_000
    data["players"][0]["character"]["style"] = "y" * 100_000
    with pytest.raises(CharactersFileError) as info:
        parse_party(data)
    text = str(info.value)
    assert "got 10,000,000" in text and "100,002 characters" in text
    assert len(text) < 400


def test_limits_are_exactly_at_the_edge(data):
    data["players"][0]["character"]["name"] = "N" * 80
    data["players"][0]["character"]["goal"] = "G" * 200
    data["players"][0]["character"]["equipment"] = ["e"] * 12
    party = parse_party(data)
    assert party.players[0].character.name == "N" * 80


def test_file_goes_through_the_safe_loader(tmp_path):
    path = tmp_path / "characters.json"
    path.write_text('{"players": [], "players": []}')
    with pytest.raises(CharactersFileError, match='has the key "players" twice'):
        load_party(path)
    path.write_text('{"ship": {"name": "x"}, "players": [{"character": {"number": ' + "4" * 5000 + "}}]}")
    with pytest.raises(CharactersFileError, match="5000-digit number"):
        load_party(path)
