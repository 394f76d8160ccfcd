"""The two consoles: data on stdout, everything for humans on stderr.

Keeping spinners, panels and messages on stderr makes ``--json`` output a stable contract
for scripts (``ttrpg sessions --json | jq``). Rich honours NO_COLOR and non-TTY output.
"""

from __future__ import annotations

import functools


@functools.cache
def err():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@functools.cache
def out():
    from rich.console import Console

    return Console(highlight=False)


def print_json(data) -> None:
    """One JSON document on stdout, plain (no colour, no wrapping), for scripts."""
    import json
    import sys

    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
