"""The safe JSON loader: every hostile or broken file is one ConfigError naming file, place and fix."""

from __future__ import annotations

import pytest

from ttrpg import defaults
from ttrpg.exceptions import CharactersFileError, ConfigError, DMScriptError
from ttrpg.jsonfile import load_json_file, loads


def refused(data, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(data, source="f.json", what="characters file", **kw)
    err = info.value
    assert err.exit_code == 2
    assert "\n" not in str(err) and err.hint and "\n" not in err.hint
    assert str(err).startswith("Characters file f.json ")
    return err


def test_plain_json_loads():
    assert loads('{"a": [1, -2, 2.5, "x[{", {"b": null, "c": true}]}') == \
        {"a": [1, -2, 2.5, "x[{", {"b": None, "c": True}]}


def test_deep_nesting_is_refused_before_the_parser_recurses():
    err = refused("[" * 100_000 + "]" * 100_000)
    assert f"nested more than {defaults.JSON_MAX_DEPTH} levels deep" in str(err)
    assert f"line 1, column {defaults.JSON_MAX_DEPTH + 1}" in str(err)
    # brackets inside strings do not count
    assert loads('{"a": "' + "[" * 500 + '"}') == {"a": "[" * 500}


def test_big_integer_is_refused_with_its_place():
    err = refused('{\n  "number": ' + "9" * 5000 + "\n}")
    assert "5000-digit number at line 2, column 13" in str(err)
    assert "9" * 100 not in str(err)  # the number itself is not echoed


def test_twenty_digit_integer_is_fine():
    assert loads('{"a": 18446744073709551615}') == {"a": 2**64 - 1}


def test_duplicate_key_is_refused_at_its_second_occurrence():
    text = '{\n  "name": "A",\n  "x": {"name": "B"},\n  "name": "C"\n}'
    err = refused(text)
    assert 'the key "name" twice in one object (again at line 4, column 3)' in str(err)
    assert "silently win" in err.hint


def test_duplicate_key_in_a_nested_object_is_located():
    err = refused('[{"x": 1}, {"y": {"q": 1,\n "q": 2}}]')
    assert '"q" twice' in str(err) and "line 2, column 2" in str(err)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_numbers_are_refused(literal):
    err = refused('{"a": [1,\n ' + literal + "]}")
    assert f"has {literal} at line 2, column 2" in str(err)


def test_float_overflow_is_refused():
    err = refused('{"a": 1e999}')
    assert "1e999" in str(err) and "too large" in str(err)


def test_non_utf8_is_refused_with_line_and_column():
    err = refused(b'{\n "a": "caf\xe9"\n}')
    assert "not UTF-8 text (byte 0xe9 at line 2, column 11)" in str(err)
    assert "UTF-8" in err.hint


def test_utf8_bom_is_accepted():
    assert loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_syntax_error_has_line_and_column():
    err = refused('{\n  "a": 1,,\n}')
    assert "is not valid JSON at line 2, column 10" in str(err)


def test_size_limit(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * 2000 + '"}')
    with pytest.raises(ConfigError, match=r"is 2,\d+ bytes; the limit is 1,000"):
        load_json_file(big, what="DM script", max_bytes=1000)
    assert loads('{"a": 1}', max_bytes=1000) == {"a": 1}


def test_file_errors_use_the_callers_class_and_name(tmp_path):
    with pytest.raises(DMScriptError, match=r"^DM script not found: .*nope\.json$"):
        load_json_file(tmp_path / "nope.json", what="DM script", error=DMScriptError)
    with pytest.raises(CharactersFileError, match="is a directory"):
        load_json_file(tmp_path, what="characters file", error=CharactersFileError)
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_json_file("/dev/zero")  # never read: it would never end


def test_file_round_trip(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text('{"turns": [{"narration": "x"}]}', encoding="utf-8")
    assert load_json_file(path, what="DM script") == {"turns": [{"narration": "x"}]}
