"""One safe loader for every JSON file a user hands ttrpg (characters, DM scripts, configs).

Why: ``json.loads`` on a hand-edited or hostile file can raise ``RecursionError`` (deep
nesting), build a 5000-digit integer, read ``NaN``, keep the last of two duplicate keys
without a word, or read a 10 GB file into memory. Each of those is refused here with one
line naming the file, the place (line and column where it can be known) and what to do::

    >>> load_json_file("party.json", what="characters file")       # doctest: +SKIP
    {'players': [...]}
    # or, e.g.
    CharactersFileError: characters file party.json: duplicate key "name" (lines 4 and 6);
    each key may appear once per object (the last one would silently win).

What is refused (limits in :mod:`ttrpg.defaults`):

* files larger than ``JSON_FILE_MAX_BYTES``, and anything that is not a regular file;
* bytes that are not UTF-8 (a leading UTF-8 byte-order mark is accepted);
* nesting deeper than ``JSON_MAX_DEPTH`` arrays/objects;
* duplicate keys in one object;
* integers longer than ``JSON_MAX_INT_DIGITS`` digits, ``NaN``, ``Infinity`` and numbers
  too large for a float (``1e999``);
* anything that is not JSON (with the line and column of the first error).

Errors are :class:`ttrpg.exceptions.ConfigError` (exit 2) unless the caller passes its own
subclass as ``error`` (e.g. ``CharactersFileError``, ``DMScriptError``).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from json import scanner
from pathlib import Path
from typing import Any

from ttrpg import defaults
from ttrpg.exceptions import ConfigError

# A JSON string (unrolled loop: fast on long strings) or one bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


class _Refused(Exception):
    """Raised from inside json's hooks; carries the message and a needle to locate."""

    def __init__(self, message: str, kind: str, needle: str | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.needle = needle


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _where(text: str, index: int) -> str:
    line, col = _line_col(text, index)
    return f"line {line}, column {col}"


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + f"... ({len(value)} characters)"


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for m in _TOKEN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > max_depth:
                raise _Refused(f"is nested more than {max_depth} levels deep (at {_where(text, m.start())})",
                               "depth")
        elif c in "]}":
            depth -= 1


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"has the key {json.dumps(_short(key))} twice in one object{{where}}", "dup",
                           needle=json.dumps(key))
        out[key] = value
    return out


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > defaults.JSON_MAX_INT_DIGITS:
        raise _Refused(f"has a {digits}-digit number{{where}}; at most {defaults.JSON_MAX_INT_DIGITS} digits "
                       "are allowed", "number", needle=literal)
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"has the number {_short(literal)}{{where}}, too large for a number", "number",
                       needle=literal)
    return value


def _parse_constant(name: str) -> float:
    raise _Refused(f"has {name}{{where}}, which is not a JSON number", "number", needle=name)


def _duplicate_at(text: str, key: str) -> int | None:
    """Index of the second occurrence of ``key`` in the first object that has it twice.

    Only on the error path: the C parser cannot say where an object starts, so the text is
    parsed again by the pure-Python scanner, whose ``parse_object`` knows.
    """
    decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_parse_int, parse_float=_parse_float,
                               parse_constant=_parse_constant)
    parse_object = decoder.parse_object
    start: list[int] = []

    def tracking(s_and_end, *args):
        try:
            return parse_object(s_and_end, *args)
        except _Refused as exc:
            if exc.kind == "dup" and not start:
                start.append(s_and_end[1])  # just after this object's "{"
            raise

    decoder.parse_object = tracking
    decoder.scan_once = scanner.py_make_scanner(decoder)
    try:
        decoder.decode(text)
    except (_Refused, ValueError, RecursionError):
        pass
    if not start:
        return None
    depth, seen = 1, 0
    for m in _TOKEN.finditer(text, start[0]):
        token = m.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and re.match(r"\s*:", text[m.end():m.end() + 64]):
            try:
                same = json.loads(token) == key
            except ValueError:
                same = False
            seen += same
            if seen == 2:
                return m.start()
    return None


def _locate(text: str, needle: str | None) -> str:
    """Where ``needle`` occurs (outside what it is part of), best effort: 'line 4' or 'lines 4 and 6'."""
    if not needle:
        return ""
    if needle.startswith('"'):  # a key: find it followed by a colon
        pattern = re.compile(re.escape(needle) + r"\s*:")
    else:  # a number or constant: not inside a longer token
        pattern = re.compile(r"(?<![\w.+-])" + re.escape(needle) + r"(?![\w.])")
    hits = [m.start() for m in pattern.finditer(text)]
    if not hits:
        return ""
    if len(hits) == 1 or not needle.startswith('"'):
        return f" at {_where(text, hits[0])}"
    lines = sorted({_line_col(text, i)[0] for i in hits})
    if len(lines) == 1:
        return f" (line {lines[0]})"
    shown = ", ".join(map(str, lines[:-1][:5])) + (", ..." if len(lines) > 6 else "")
    return f" (lines {shown} and {lines[-1]})"


_HINTS = {
    "size": "A {what} is a few kilobytes: check that this is the right file.",
    "type": "Pass the path of a regular JSON file.",
    "utf8": "Save the file as UTF-8 (any editor's \"Save with encoding\").",
    "depth": "Flatten the structure: no {what} needs more than a few levels.",
    "dup": "Each key may appear once per object (the last one would silently win): remove one.",
    "number": "Use an ordinary number (the {what} format is described in the README).",
    "json": "Fix the JSON syntax at that place (a missing comma or quote is the usual cause).",
}


def _fail(error: type[ConfigError], what: str, source: str, message: str, hint: str) -> ConfigError:
    return error(f"{_cap(what)} {source} {message}.", hint=_HINTS[hint].format(what=what))


def _cap(what: str) -> str:
    return what[:1].upper() + what[1:]


def loads(data: bytes | str, *, what: str = "JSON file", source: str = "<input>",
          error: type[ConfigError] = ConfigError, max_bytes: int | None = None,
          max_depth: int | None = None) -> Any:
    """Parse ``data`` with every check of :func:`load_json_file`; ``source`` names it in errors."""
    max_bytes = defaults.JSON_FILE_MAX_BYTES if max_bytes is None else max_bytes
    max_depth = defaults.JSON_MAX_DEPTH if max_depth is None else max_depth
    if isinstance(data, str):
        text = data
        if len(text) > max_bytes:
            raise _fail(error, what, source, f"is {len(text):,} characters; the limit is {max_bytes:,} bytes",
                        "size")
    else:
        if len(data) > max_bytes:
            raise _fail(error, what, source, f"is larger than the limit of {max_bytes:,} bytes", "size")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise _fail(error, what, source, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, "
                        f"column {col})", "utf8") from None
    text = text.removeprefix("\ufeff")
    try:
        _check_depth(text, max_depth)
        return json.loads(text, object_pairs_hook=_pairs, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant)
    except _Refused as exc:
        where = _locate(text, exc.needle)
        if exc.kind == "dup":
            at = _duplicate_at(text, json.loads(exc.needle))
            where = f" (again at {_where(text, at)})" if at is not None else where
        raise _fail(error, what, source, exc.message.replace("{where}", where), exc.kind) from None
    except json.JSONDecodeError as exc:
        raise _fail(error, what, source, f"is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    "json") from None
    except RecursionError:  # the depth check should make this unreachable; never a traceback
        raise _fail(error, what, source, "is nested too deeply", "depth") from None
    except ValueError as exc:  # e.g. Python's own limit on integer digits
        raise _fail(error, what, source, f"holds a value that cannot be read ({_short(str(exc), 120)})",
                    "number") from None


def load_json_file(path: str | os.PathLike, what: str = "JSON file", *, error: type[ConfigError] = ConfigError,
                   max_bytes: int | None = None, max_depth: int | None = None) -> Any:
    """Read and parse the JSON file at ``path`` safely; every failure is one ``error`` (exit 2).

    ``what`` names the file in messages ("characters file", "DM script"); ``error`` is the
    :class:`ConfigError` subclass to raise. The file is read at most ``max_bytes`` + 1 bytes.
    """
    file = Path(path)
    max_bytes = defaults.JSON_FILE_MAX_BYTES if max_bytes is None else max_bytes
    try:
        st = os.stat(file)
    except FileNotFoundError:
        raise error(f"{_cap(what)} not found: {file}",
                    hint=f"Check the path; the {what} must exist and be readable.") from None
    except OSError as exc:
        raise error(f"Cannot read {what} {file}: {exc.strerror or exc}.",
                    hint=f"Check the path; the {what} must exist and be readable.") from None
    if stat.S_ISDIR(st.st_mode):
        raise _fail(error, what, str(file), "is a directory, not a file", "type")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(error, what, str(file), "is not a regular file", "type")
    if st.st_size > max_bytes:
        raise _fail(error, what, str(file), f"is {st.st_size:,} bytes; the limit is {max_bytes:,}", "size")
    try:
        with open(file, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"Cannot read {what} {file}: {exc.strerror or exc}.",
                    hint=f"Check the path and its permissions; the {what} must be readable.") from None
    return loads(data, what=what, source=str(file), error=error, max_bytes=max_bytes, max_depth=max_depth)


def unknown_keys(data: dict, allowed, what: str = "key") -> str | None:
    """``None`` when every key of ``data`` is in ``allowed``; else the message naming the
    strangers and what is allowed, for a loader's one-line error::

        >>> unknown_keys({"turns": [], "narative": 1}, {"turns", "repeat"})
        "unknown key(s) 'narative'; allowed: repeat, turns."
    """
    unknown = set(data) - set(allowed)
    if not unknown:
        return None
    return f"unknown {what}(s) {', '.join(sorted(map(repr, unknown)))}; allowed: {', '.join(sorted(allowed))}."
