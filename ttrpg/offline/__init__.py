"""The offline model: deterministic, seeded AI players that need no API key and no server.

Why it exists: the demo, the test suite and CI must play whole sessions on a machine with
no model, and a researcher must be able to replay a session exactly. Like a real model it
only has the prompt: it reads the text :mod:`ttrpg.prompts` builds and answers in the
character's voice, behind a real HTTP transport under the ``openai`` SDK.

Modules:

- :mod:`ttrpg.offline.reader`: reading a prompt (who, which layer and task, the sections:
  narration, directive, outcome, table talk) and the nouns of a narration.
- :mod:`ttrpg.offline.voice`: the replies (intent, discussion, question, action, reaction)
  in each character's voice.
- :mod:`ttrpg.offline.transport`: :class:`~ttrpg.offline.transport.OfflineTransport`, the
  OpenAI-compatible httpx transport: latency, seeded fault injection, usage.
- :mod:`ttrpg.offline.hashing`: :func:`~ttrpg.offline.hashing.stable_hash`, the
  process-independent hash every seeded choice comes from.
"""
