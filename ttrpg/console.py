"""The two consoles: data on stdout, everything for humans on stderr.

Keeping spinners, panels and messages on stderr makes ``--json`` output a stable contract
for scripts (``ttrpg sessions --json | jq``). Rich honours NO_COLOR and non-TTY output.
"""

from __future__ import annotations

import functools
import json
import re
import sys

from rich.console import Console
from rich.text import Text

# ESC-introduced sequences first (CSI ``ESC [ ... final``, OSC/DCS/APC/PM/SOS strings ended by
# BEL or ``ESC \\``, two-byte escapes), so that their parameters go too, not just the ESC byte;
# then every other C0/C1 control character and DEL. Newlines and tabs are kept.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"                       # CSI
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"    # OSC, DCS, SOS, PM, APC strings
    r"|\x9b[0-?]*[ -/]*[@-~]?"                         # 8-bit CSI
    r"|[\x90\x9d\x98\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # 8-bit string controls
    r"|\x1b[ -/]*[0-~]?"                                # other escapes
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text) -> str:
    """Text from a model, a server, a file or the DM, safe to show on a terminal.

    Terminal escape sequences (colours, cursor moves, window titles, OSC 8 hyperlinks, OSC 52
    clipboard writes, screen clears) and other control characters are removed; newlines and
    tabs are kept. Markup is a separate matter: print the result as :class:`rich.text.Text`
    (see :func:`text`), never as a markup string. The research log keeps the original.

    >>> clean_text("hi\\x1b]0;pwned\\x07 there\\x1b[2J")
    'hi there'
    """
    s = text if isinstance(text, str) else str(text)
    return _CONTROLS.sub("", _ESCAPES.sub("", s))


def text(value, style: str = ""):
    """A :class:`rich.text.Text` of untrusted ``value``: printed as typed, never as markup."""
    return Text(clean_text(value), style=style)


def one_line(value, limit: int | None = None) -> str:
    """``value`` cleaned (:func:`clean_text`) and on one line: runs of whitespace, newlines
    included, become one space; cut to ``limit`` characters with an ellipsis."""
    s = " ".join(clean_text("" if value is None else value).split())
    if limit is not None and len(s) > limit:
        s = s[: max(0, limit - 1)] + "…"
    return s


def assemble(*parts):
    """A :class:`rich.text.Text` built from parts, none of them ever parsed as markup.

    Each part is a value (shown as typed, cleaned by :func:`clean_text`), a ``(value, style)``
    pair, or a ``Text`` already made by this module (appended as it is)::

        err().print(assemble(("Error: ", "bold red"), message))
    """
    out = Text()
    for part in parts:
        if isinstance(part, Text):
            out.append_text(part)
        elif isinstance(part, tuple):
            value, style = part
            out.append(clean_text("" if value is None else value), style=style or None)
        elif part is not None:
            out.append(clean_text(part))
    return out


def cell(value, style: str = ""):
    """A table cell of untrusted ``value`` (``None`` shows as ``-``): text, never markup.

    Rich parses plain ``str`` cells and titles of a ``Table`` as markup; pass these instead.
    """
    return text("-" if value is None or value == "" else value, style)


@functools.cache
def err():
    return Console(stderr=True, highlight=False)


@functools.cache
def out():
    return Console(highlight=False)


def print_json(data) -> None:
    """One JSON document on stdout, plain (no colour, no wrapping), for scripts."""
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
