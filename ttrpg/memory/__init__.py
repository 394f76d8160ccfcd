"""What the AI players remember, across the sessions of a campaign: memories on Redis.

Each memory is a JSON document in our own RediSearch index, in one scope (``party``,
``player:<pid>``, ``character:<pid>``), from one source (DM, player, character) whose
confidence decays with age in turns; conflicting memories are resolved by precedence.

Modules:

- :mod:`ttrpg.memory.text`: sentences, words, entity extraction, query words and tag escaping.
- :mod:`ttrpg.memory.store`: the document format, the RediSearch index, the campaign clock,
  the entities hash, raw reads, search, supersede and delete.
- :mod:`ttrpg.memory.conflicts`: the contradiction heuristic and precedence between sources.
- :mod:`ttrpg.memory.storing`: storing one memory, what a turn stores (the storage
  triggers), and the session-end recap.
- :mod:`ttrpg.memory.recall`: query and ranking (relevance x effective confidence), the
  token budget, and what each AI layer recalls on a turn.
- :mod:`ttrpg.memory.benchmark`: ``ttrpg memory bench``, query timings on synthetic memories.
"""
