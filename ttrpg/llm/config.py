"""The one LLM config builder: how to reach the model, as plain JSON that rides in RQ jobs.

Every config, the product's (``ttrpg play|demo``, the benchmarks) and the tests', is made by
:func:`make_config`; it never holds the API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from ttrpg import defaults
from ttrpg.exceptions import ConfigError, LLMConfigError
from ttrpg.llm.model_info import context_window as asked_context_window
from ttrpg.offline.transport import FAULT_KINDS
from ttrpg.settings import Settings


class LLMConfig(TypedDict):
    """How to reach the model; plain JSON so it can ride in RQ job arguments.

    Never put the API key here: job arguments are stored in Redis and visible to anyone who
    can read it. ``faults`` only matters offline (keys in :data:`ttrpg.offline.transport.FAULT_KINDS`).
    ``max_tokens``, when set, caps every reply below what each phase asks for (120-300
    tokens): a slow local model on a small CPU spends most of a turn writing, and a weak one
    uses every token it is given. ``reply_max_chars``, when set, lowers the character cap
    on a reply's text (:data:`ttrpg.defaults.LLM_REPLY_MAX_CHARS`; a job cannot raise it).
    ``overreach_judge``: the model also referees every action for narrative overreach
    (:mod:`ttrpg.game.judge`); never for the offline model.
    Configs built elsewhere may lack these keys: read them with ``.get``.

    ``base_url`` is only a *request* when the config comes from a job: a worker sends its
    requests, and its key, only to its own ``OPENAI_BASE_URL`` or to one listed in
    ``TTRPG_ALLOWED_BASE_URLS`` (see :func:`ttrpg.llm.client.endpoint_for_job`).
    """

    model: str
    base_url: str | None
    offline: bool
    latency_ms: int
    faults: dict[str, float]
    seed: int
    backoff_base: float
    context_window: int | None
    request_timeout_s: float
    max_tokens: int | None
    reply_max_chars: int | None
    overreach_judge: bool


def _whole(flag: str, value: object, high: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ConfigError(f"{flag} must be 0 to {high}{unit}, got {value!r}.")
    return value


def make_config(model: str | None = None, *, settings: Settings | None = None, offline: bool = False,
                base_url: str | None = None, latency_ms: int = 0, faults: Mapping[str, float] | None = None,
                seed: int = 1, backoff_base: float | None = None, context_window: int | None = None,
                request_timeout_s: float | None = None, max_tokens: int | None = None,
                reply_max_chars: int | None = None, overreach_judge: bool | None = None) -> LLMConfig:
    """A checked :class:`LLMConfig`: offline play gets the offline model's name.

    ``settings`` (the environment, :mod:`ttrpg.settings`) fills what is not given: the model
    (``TTRPG_MODEL``), ``base_url`` (``OPENAI_BASE_URL``), ``backoff_base`` and the context
    window (``TTRPG_CONTEXT_WINDOW``, else asked of a real server with
    :func:`ttrpg.llm.model_info.context_window`, else :data:`ttrpg.defaults.CONTEXT_WINDOW`);
    real play then also needs an API key or a base URL; ``overreach_judge`` defaults to
    ``TTRPG_OVERREACH_JUDGE`` and is always off offline. Without ``settings`` only the
    arguments count (no context window unless given: prompts are sent unfitted).

    Raises :class:`~ttrpg.exceptions.LLMConfigError` when real play has no model (or no key
    nor server), :class:`~ttrpg.exceptions.ConfigError` naming the flag for a latency or seed
    out of range, and ValueError for unknown fault kinds or rates outside [0, 1], so a typo
    in a demo or test configuration fails at once instead of silently playing without faults.
    """
    _whole("--latency", latency_ms, defaults.MAX_LATENCY_MS, " ms")
    _whole("--seed", seed, defaults.MAX_SEED)
    faults = dict(faults or {})
    for kind, rate in faults.items():
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}.")
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"Fault rate {kind}={rate} is not between 0 and 1.")
    if settings is not None:
        backoff_base = settings.backoff_base if backoff_base is None else backoff_base
        context_window = context_window or settings.context_window
        overreach_judge = settings.overreach_judge if overreach_judge is None else overreach_judge
    if offline:
        overreach_judge = False
        model, base_url = defaults.OFFLINE_MODEL, None
        if settings is not None:
            context_window = context_window or defaults.CONTEXT_WINDOW
    else:
        latency_ms, faults = 0, {}
        if settings is not None:
            model = model or settings.model
            base_url = base_url or settings.openai_base_url
        if not model:
            raise LLMConfigError("No model is configured for real AI players.",
                                 hint="Set TTRPG_MODEL (and OPENAI_API_KEY / OPENAI_BASE_URL), or pass --offline.")
        if settings is not None:
            if not settings.openai_api_key and not base_url:
                raise LLMConfigError("OPENAI_API_KEY is not set.", hint="Set OPENAI_API_KEY (or OPENAI_BASE_URL "
                                     "for a local server), or pass --offline.")
            context_window = (context_window or asked_context_window(base_url, model, settings.openai_api_key)
                              or defaults.CONTEXT_WINDOW)
    return LLMConfig(model=model, base_url=base_url, offline=bool(offline), latency_ms=int(latency_ms),
                     faults={k: float(v) for k, v in faults.items()}, seed=int(seed),
                     backoff_base=float(1.0 if backoff_base is None else backoff_base),
                     context_window=int(context_window) if context_window else None,
                     request_timeout_s=float(request_timeout_s or defaults.LLM_REQUEST_TIMEOUT_S),
                     max_tokens=int(max_tokens) if max_tokens else None,
                     reply_max_chars=int(reply_max_chars) if reply_max_chars else None,
                     overreach_judge=bool(overreach_judge))
