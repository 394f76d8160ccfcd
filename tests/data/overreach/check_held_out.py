"""Checks the held-out parts of the overreach data (``README.md`` here says what they are and
how each was made): fields, sources, kinds, notes, long lines, and no line shared with any
part made before it or with the data the rules were first written against.

Run from the repository root::

    .venv/bin/python tests/data/overreach/check_held_out.py            # every held-out part
    .venv/bin/python tests/data/overreach/check_held_out.py fresh5     # one
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
OTHERS = [HERE / "pool.jsonl", HERE / "dev.jsonl", HERE / "test.jsonl", HERE.parent / "overreach_corpus.jsonl"]
#: The held-out parts in the order they were made: each is checked against every part made before it.
HELD_OUT_ORDER = ("fresh", "fresh2", "fresh3", "fresh4", "fresh5")

FIELDS = {"text", "overreach", "kind", "source", "note"}
SOURCES = ("smollm2", "offline", "hand-first", "hand-third", "hand-dialogue", "hand-long")
KINDS = {"outcome", "other_reaction", "future"}
LONG_MIN_WORDS = 25


def key(text: str) -> str:
    """Case- and whitespace-insensitive form used for duplicate checks."""
    return " ".join(text.casefold().split())


def other_texts(others: list[Path] = OTHERS) -> dict[str, str]:
    """Normalised text -> file name, for every line of the existing overreach data."""
    seen: dict[str, str] = {}
    for path in others:  # a missing part raises: a check against fewer parts would pass too easily
        for raw in path.read_text(encoding="utf-8").splitlines():
            if raw.strip():
                text = json.loads(raw).get("text")
                if isinstance(text, str):
                    seen.setdefault(key(text), path.name)
    return seen


def check(path: Path, others: list[Path] = OTHERS) -> tuple[list[str], Counter]:
    """Problems found in the held-out file ``path`` (none shares a line with ``others``) and
    its count of lines per (source, label)."""
    problems: list[str] = []
    counts: Counter = Counter()
    existing = other_texts(others)
    first_line: dict[str, int] = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            problems.append(f"line {n}: blank line")
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc})")
            continue
        if not isinstance(row, dict) or set(row) != FIELDS:
            problems.append(f"line {n}: fields must be exactly {sorted(FIELDS)}")
            continue
        text, over, kind, source, note = (row[f] for f in ("text", "overreach", "kind", "source", "note"))
        if not isinstance(text, str) or not text.strip():
            problems.append(f"line {n}: text must be a non-empty string")
            continue
        if not isinstance(over, bool):
            problems.append(f"line {n}: overreach must be true or false")
        if not isinstance(source, str) or source not in SOURCES:
            problems.append(f"line {n}: unknown source {source!r}")
        if over is True and not (isinstance(kind, str) and kind in KINDS):
            problems.append(f"line {n}: overreach line needs kind in {sorted(KINDS)}, got {kind!r}")
        if over is False and kind is not None:
            problems.append(f"line {n}: clean line must have kind null, got {kind!r}")
        if not isinstance(note, str) or not note.strip():
            problems.append(f"line {n}: note must be a non-empty string")
        if source == "hand-long" and len(text.split()) < LONG_MIN_WORDS:
            problems.append(f"line {n}: hand-long line has {len(text.split())} words (< {LONG_MIN_WORDS})")
        k = key(text)
        if k in first_line:
            problems.append(f"line {n}: duplicate of line {first_line[k]}: {text!r}")
        else:
            first_line[k] = n
        if k in existing:
            problems.append(f"line {n}: also in {existing[k]}: {text!r}")
        counts[(source, "overreach" if over else "clean")] += 1
    return problems, counts


def report(path: Path, others: list[Path]) -> int:
    problems, counts = check(path, others)
    print(f"{'source':<14} {'overreach':>9} {'clean':>6} {'total':>6}")
    for source in SOURCES:
        o, c = counts[(source, "overreach")], counts[(source, "clean")]
        print(f"{source:<14} {o:>9} {c:>6} {o + c:>6}")
    o = sum(v for (s, lab), v in counts.items() if lab == "overreach")
    c = sum(v for (s, lab), v in counts.items() if lab == "clean")
    print(f"{'all':<14} {o:>9} {c:>6} {o + c:>6}")
    for p in problems:
        print("PROBLEM:", p)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def others_for(name: str) -> list[Path]:
    """The parts a held-out part must share no line with: the first data and every part before it."""
    return [*OTHERS, *(HERE / f"{part}.jsonl" for part in HELD_OUT_ORDER[:HELD_OUT_ORDER.index(name)])]


def main(argv: list[str]) -> int:
    names = argv or list(HELD_OUT_ORDER)
    unknown = [n for n in names if n not in HELD_OUT_ORDER]
    if unknown:
        print(f"unknown part {unknown[0]!r}; the held-out parts are {', '.join(HELD_OUT_ORDER)}")
        return 2
    failed = 0
    for name in names:
        print(f"{name}.jsonl")
        failed |= report(HERE / f"{name}.jsonl", others_for(name))
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
