"""Bad input from the DM: one or two lines naming the problem and the fix, exit 2, nothing created.

Every case runs the real CLI in a subprocess against the test run's embedded Redis, with a
session id of its own and a log directory that does not exist yet; afterwards the session
is not in Redis (no key mentions its id, the session index did not grow) and the log
directory was never created.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import ROOT, run_cli
from ttrpg.constants import SESSIONS_INDEX
from ttrpg.llm.config import make_config

EXAMPLE = ROOT / "examples" / "characters.json"


@pytest.fixture
def clean(tmp_path, redis_client):
    """Runs a command and checks that it was refused and left nothing behind."""

    class Checker:
        sid = "in-" + uuid.uuid4().hex[:10]
        logs = tmp_path / "logs"

        def refused(self, *args: str, env: dict | None = None, expect: tuple[str, ...] = ()):
            before = redis_client.zcard(SESSIONS_INDEX)
            result = run_cli(*args, env={"TTRPG_LOG_DIR": str(self.logs), **(env or {})}, timeout=60)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert result.returncode == 2, result.stderr
            assert "Traceback" not in result.stderr
            assert 1 <= len(lines) <= 2, lines
            assert lines[0].startswith("Error: ")
            for fragment in expect:
                assert fragment in result.stderr, (fragment, result.stderr)
            assert list(redis_client.scan_iter(match=f"*{self.sid}*")) == []
            assert redis_client.zcard(SESSIONS_INDEX) == before
            assert not self.logs.exists()
            return lines

    return Checker()


def _party_file(tmp_path, text: str | bytes):
    path = tmp_path / "characters.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _play(checker, *extra: str) -> tuple[str, ...]:
    return ("play", "--offline", "--session", checker.sid, "--turns", "1",
            "--dm-script", str(ROOT / "ttrpg" / "data" / "demo_script.json"), *extra)


# --------------------------------------------------------------------------- characters.json

def test_deeply_nested_characters_file(clean, tmp_path):
    path = _party_file(tmp_path, '{"players": ' + "[" * 50_000 + "]" * 50_000 + "}")
    clean.refused(*_play(clean, "--characters", str(path)), expect=("nested more than 64 levels deep",
                                                                   "line 1, column 76"))


def test_5000_digit_number_in_characters_file(clean, tmp_path):
    data = json.loads(EXAMPLE.read_text())
    text = json.dumps(data, indent=1).replace('"number": 3', '"number": ' + "3" * 5000, 1)
    path = _party_file(tmp_path, text)
    lines = clean.refused(*_play(clean, "--characters", str(path)), expect=("5000-digit number at line",))
    assert "3" * 50 not in lines[0]


def test_10_mb_name_fails_check_and_play(clean, tmp_path):
    data = json.loads(EXAMPLE.read_text())
    data["players"][0]["character"]["name"] = "Z" * 10_000_000
    path = _party_file(tmp_path, json.dumps(data))
    clean.refused("characters", "check", str(path), expect=("the limit is 1,000,000",))
    clean.refused(*_play(clean, "--characters", str(path)), expect=("the limit is 1,000,000",))


def test_long_name_under_the_size_limit(clean, tmp_path):
    data = json.loads(EXAMPLE.read_text())
    data["players"][0]["character"]["name"] = "Z" * 500_000
    path = _party_file(tmp_path, json.dumps(data))
    lines = clean.refused("characters", "check", str(path),
                          expect=("players[0].character.name: must be at most 80 characters, got 500,000",))
    assert len(lines[0]) < 300


def test_duplicate_keys_in_characters_file(clean, tmp_path):
    data = json.loads(EXAMPLE.read_text())
    text = json.dumps(data, indent=1).replace('"style": "Alien",', '"style": "Alien", "style": "Android",', 1)
    path = _party_file(tmp_path, text)
    clean.refused(*_play(clean, "--characters", str(path)), expect=('has the key "style" twice', "again at line"))


def test_nan_and_non_utf8_in_characters_file(clean, tmp_path):
    path = _party_file(tmp_path, '{"players": [{"x": NaN}]}')
    clean.refused("characters", "check", str(path), expect=("has NaN at line 1, column 20",))
    path = _party_file(tmp_path, b'{"players": [{"name": "Zo\xeb"}]}')
    clean.refused(*_play(clean, "--characters", str(path)), expect=("not UTF-8", "Save the file as UTF-8"))


# --------------------------------------------------------------------------- environment

@pytest.mark.parametrize("name,value,expect", [
    ("TTRPG_LOG_DIR", "/dev/null", "TTRPG_LOG_DIR='/dev/null' is not a directory"),
    ("TTRPG_HOME", "/dev/null", "TTRPG_HOME='/dev/null' is not a directory"),
    ("TTRPG_REDIS_URL", "bogus://x", "TTRPG_REDIS_URL='bogus://x' is not a usable Redis URL"),
])
def test_bad_environment(clean, name, value, expect):
    clean.refused("demo", "--session", clean.sid, "--turns", "1", "--players", "1", env={name: value},
                  expect=(expect,))


def test_bad_redis_url_never_shows_the_password(clean):
    lines = clean.refused("sessions", env={"TTRPG_REDIS_URL": "redis://:hunter2/x@host:abc/0"},
                          expect=("redis://:***@host:abc/0", "percent-encoded"))
    assert "hunter2" not in "\n".join(lines)


# --------------------------------------------------------------------------- numeric options

@pytest.mark.parametrize("args,expect", [
    (("--turns", "0"), "--turns must be 1 to 10000, got 0."),
    (("--turns", "-1"), "--turns must be 1 to 10000, got -1."),
    (("--workers", "-3"), "--workers must be 0 to 16, got -3."),
    (("--latency", "-5"), "--latency must be 0 to 60000 ms, got -5."),
    (("--seed", str(2**64)), "--seed must be 0 to 9223372036854775807, got 18446744073709551616."),
    (("--seed", "9" * 400), "got a 400-digit number"),
    (("--players", "0"), "--players must be 1 to 4, got 0."),
    (("--characters", str(ROOT / "examples" / "characters-2p.json"), "--players", "3"),
     "--players 3 asks for more AI players than the party has (2)"),
])
def test_play_numeric_options(clean, args, expect):
    clean.refused("play", "--offline", "--session", clean.sid, *args, expect=(expect,))


@pytest.mark.parametrize("args,expect", [
    (("--turns", "0"), "--turns must be 1 to 10000"),
    (("--players", "5"), "--players must be 1 to 4, got 5."),
    (("--workers", "17"), "--workers must be 0 to 16"),
    (("--latency", "60001"), "--latency must be 0 to 60000 ms"),
    (("--seed", "-1"), "--seed must be 0 to"),
])
def test_demo_numeric_options(clean, args, expect):
    clean.refused("demo", "--session", clean.sid, *args, expect=(expect,))


def test_resume_workers(clean):
    clean.refused("resume", clean.sid, "--workers", "-3", expect=("--workers must be 0 to 16, got -3.",))


def test_turns_help_says_what_leaving_it_out_means():
    result = run_cli("play", "--help")
    assert "1-10000; default: play until the DM types /end" in " ".join(result.stdout.split())
    assert "--players" in result.stdout


def test_library_functions_check_too():
    from ttrpg.exceptions import ConfigError
    from ttrpg.session import play

    with pytest.raises(ConfigError, match="--turns must be 1"):
        play.demo(turns=0)
    with pytest.raises(ConfigError, match="--workers must be 0"):
        play.resume("nope", workers=-3)
    with pytest.raises(ConfigError, match="--latency must be 0"):
        make_config(offline=True, latency_ms=-5)
    party = {"ship": {}, "players": [{"id": "p1"}, {"id": "p2"}, {"id": "p3"}]}
    assert [p["id"] for p in play.select_players(party, 2)["players"]] == ["p1", "p2"]
    assert play.select_players(party, None) is party


# --------------------------------------------------------------------------- DM scripts

def _script(tmp_path, data) -> str:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


@pytest.mark.parametrize("script, expect", [
    ({"turns": [{"narration": "x", "rolls": [1]}]}, ("turns[0].rolls[0] must be {player, approach, dice, helpers}",)),
    ({"turns": [{"narration": "x", "rolls": [{"dice": "abc"}]}]}, ("turns[0].rolls[0].dice", "Type 1, 2 or 3")),
    ({"turns": [{"narration": "x", "rolls": [{"dice": 2, "approach": "charm"}]}]},
     ("turns[0].rolls[0].approach", "neither LASERS nor FEELINGS")),
    ({"turns": [{"narration": "x", "outcomes": {"success": "{name} wins {foo}"}}]},
     ("turns[0].outcomes.success", "uses {foo}", "only {name}, {dice} and {band}")),
    ({"turns": [{"narration": "x", "outcome": "unclosed {name"}]}, ("turns[0].outcome", "not a valid template")),
    ({"turns": [{"narration": "x"}], "end_after": "abc"}, ("end_after must be a whole number",)),
    ({"turns": [{"narration": "x"}], "end_after": 0}, ("end_after must be a whole number",)),
    ({"turns": [{"narration": "x", "whispers": [{"to": 9, "layer": "player", "text": "s"}]}]},
     ("turns[0].whispers[0].to must be a player id",)),
    ({"turns": [{"narration": "x", "dice_override": {"p1": [7, 1]}}]}, ("dice_override['p1']", "is not a die")),
    ({"turns": [{"narration": ""}]}, ("turns[0].narration", "is empty")),
    ({"turns": [{"narration": "x", "narattion": "typo"}]}, ("unknown key(s) 'narattion'",)),
    ({"turns": []}, ("non-empty \"turns\" list",)),
    ({"turns": [{"narration": "x"}], "intervention": "maybe"}, ("intervention must be retry, skip, end_turn",)),
    ('{"turns": [{"narration": "x"}], "turns": []}', ("twice",)),
])
def test_bad_dm_scripts_are_refused_before_anything_is_created(clean, tmp_path, script, expect):
    lines = clean.refused("play", "--offline", "--session", clean.sid, "--turns", "1", "--players", "2",
                          "--dm-script", _script(tmp_path, script), expect=expect)
    assert "DM script" in lines[0]


def test_the_shipped_demo_script_and_example_scripts_pass(tmp_path):
    from ttrpg.dm.script import builtin_script, load_script, validate_script

    validate_script(builtin_script())
    for path in (ROOT / "examples").glob("*script*.json"):
        load_script(path)
