"""Talking to a model: any OpenAI-compatible endpoint or the offline model, through the ``openai`` SDK.

- :mod:`ttrpg.llm.config`: :class:`~ttrpg.llm.config.LLMConfig` and the one builder,
  :func:`~ttrpg.llm.config.make_config` (plain JSON that rides in RQ jobs, never the API key).
- :mod:`ttrpg.llm.client`: the SDK client, the endpoint a worker may send its key to, and
  :func:`~ttrpg.llm.client.complete` with retries and prompt shrinking.
- :mod:`ttrpg.llm.errors`: which SDK errors are transient or permanent, context-length
  refusals, and the one-line messages (the exception classes are in :mod:`ttrpg.exceptions`).
- :mod:`ttrpg.llm.model_info`: the context window a server runs a model with.
"""
