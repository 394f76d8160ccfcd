"""Every prompt ttrpg sends to a model, and the reading of the replies.

- :mod:`ttrpg.prompts.builders`: the messages of each phase, per layer (player, character);
  the player/character boundary is enforced there.
- :mod:`ttrpg.prompts.parsers`: tolerant parsers of the replies (intent, table talk, question,
  character text) and plan labels; they never raise.
- :mod:`ttrpg.prompts.context`: token estimates and :func:`~ttrpg.prompts.context.fit_to_context`,
  which shrinks a request to a model's context window.
"""
