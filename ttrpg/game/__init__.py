"""The rules of Lasers & Feelings, free of I/O.

* :mod:`ttrpg.game.characters`: characters.json, checked field by field; the built-in crew.
* :mod:`ttrpg.game.dice`: rolls, successes, bands, LASER FEELINGS, helpers, DM overrides.
* :mod:`ttrpg.game.consensus`: whether the table agrees on a plan, and the vote.
* :mod:`ttrpg.game.validation`: narrative overreach in a character's action, retries, auto-correction.
"""
