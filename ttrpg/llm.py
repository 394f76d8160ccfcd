"""Talking to any OpenAI-compatible endpoint (OpenAI, llama.cpp, vLLM, Ollama, LM Studio) or to
the offline model, through the real ``openai`` SDK.

Why the SDK and not raw HTTP: its request shapes, error classes and response parsing are
what every compatible server is tested against. Why our own retries (``max_retries=0`` on
the client, tenacity here): the design fixes the schedule (about 2 s, 5 s, 10 s, 10 s; at
most 5 attempts within about 35 s), every retry must be reported to the caller (the job
logs an ``llm_retry`` event), and RQ's job timeout must never be swallowed by a retry loop.
So only the SDK's *transient* error classes are retried; everything else is either mapped
to a permanent error at once or propagates untouched.

This module runs inside RQ work horses. :class:`LLMConfig` travels in job arguments as
plain JSON and never holds the API key: each worker reads the key from its own
environment and passes it to :func:`complete`; it is never logged and never put into an
exception message.
"""

from __future__ import annotations

import email.utils
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

import httpx
import openai
import tenacity

from ttrpg.offline import FAULT_KINDS, OFFLINE_MODEL, OfflineTransport
from ttrpg.prompts import estimate_text_tokens, estimate_tokens, fit_to_context
from ttrpg.exceptions import ContextLengthError, LLMError, LLMPermanentError, LLMTransientError

OFFLINE_BASE_URL = "http://offline.ttrpg.invalid/v1"
"""Base URL of the offline model. ``.invalid`` can never resolve, so a mis-wired offline
client fails loudly instead of talking to the internet."""

OFFLINE_API_KEY = "offline-no-key"
"""Dummy key for the offline model (the SDK insists on some key)."""

LOCAL_SERVER_API_KEY = "no-key-needed"
"""Sent to a custom ``base_url`` when no key is configured: local servers (llama.cpp without
``--api-key``, Ollama, LM Studio) accept anything, and the SDK insists on some key."""

BACKOFF_S: tuple[float, ...] = (2.0, 5.0, 10.0, 10.0)
"""Waits after failed attempts 1, 2, 3, 4 (times ``backoff_base``); see ttrpg.defaults.LLM_BACKOFF_S."""

MAX_ATTEMPTS = 5
"""Attempts per call, the first included."""

RETRY_BUDGET_S = 35.0
"""No retry is started whose wait would end more than this many seconds after the first
attempt began (tenacity's ``stop_before_delay``). Wall-clock, not scaled by backoff_base: it
keeps a call well inside the RQ job timeout (ttrpg.defaults.JOB_TIMEOUT_S)."""

RETRY_AFTER_CAP_S = 30.0
"""Longest ``Retry-After`` we honour (before scaling by backoff_base); a server asking for
minutes would otherwise blow the retry budget in one wait."""

DEFAULT_REQUEST_TIMEOUT_S = 30.0
"""Timeout of one HTTP request (see ttrpg.defaults.LLM_REQUEST_TIMEOUT_S)."""

TRANSIENT_ERRORS: tuple[type[openai.APIError], ...] = (
    openai.RateLimitError,       # 429
    openai.APITimeoutError,      # read/connect timeout (a subclass of APIConnectionError)
    openai.APIConnectionError,   # refused, reset, DNS
    openai.InternalServerError,  # any 5xx
)
"""The only errors worth retrying: the same request may succeed a few seconds later."""

_CONTEXT_MARKERS = ("exceed_context_size", "context_length_exceeded", "maximum context length",
                    "context size", "context window", "prompt is too long", "too many tokens")

RetryCallback = Callable[[int, float, str, str], None]
"""``on_retry(attempt, wait_s, error_class, message)``: called before each wait."""


class LLMConfig(TypedDict):
    """How to reach the model; plain JSON so it can ride in RQ job arguments.

    Never put the API key here: job arguments are stored in Redis and visible to anyone who
    can read it. ``faults`` only matters offline (keys in :data:`ttrpg.offline.FAULT_KINDS`).
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


def make_config(model: str | None = None, *, base_url: str | None = None, offline: bool = False,
                latency_ms: int = 0, faults: Mapping[str, float] | None = None, seed: int = 0,
                backoff_base: float = 1.0, context_window: int | None = None,
                request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> LLMConfig:
    """A checked :class:`LLMConfig`; offline play defaults the model name to ``ttrpg-offline``.

    Raises ValueError for unknown fault kinds or rates outside [0, 1], so a typo in a demo or
    test configuration fails at once instead of silently playing without faults.
    """
    faults = dict(faults or {})
    for kind, rate in faults.items():
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}.")
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"Fault rate {kind}={rate} is not between 0 and 1.")
    if not model and not offline:
        raise ValueError("A model name is needed for real play (TTRPG_MODEL), or use offline=True.")
    return LLMConfig(model=model or OFFLINE_MODEL, base_url=base_url, offline=offline, latency_ms=int(latency_ms),
                     faults={k: float(v) for k, v in faults.items()}, seed=int(seed),
                     backoff_base=float(backoff_base), context_window=context_window,
                     request_timeout_s=float(request_timeout_s))


def make_client(cfg: LLMConfig, api_key: str | None) -> openai.OpenAI:
    """An ``openai.OpenAI`` client for ``cfg``: no SDK retries, an explicit timeout.

    Offline, the client talks to :class:`~ttrpg.offline.OfflineTransport` through a real
    ``httpx.Client`` and a dummy key. Online without a key, a custom ``base_url`` gets a
    placeholder key (local servers need none); OpenAI itself gets :class:`LLMPermanentError`.
    """
    timeout = float(cfg.get("request_timeout_s") or DEFAULT_REQUEST_TIMEOUT_S)
    if cfg.get("offline"):
        # openai 3.x annotates http_client as httpx2.Client but accepts a legacy httpx.Client
        # too (it checks for either at runtime); the offline transport is an httpx transport.
        http_client = httpx.Client(transport=OfflineTransport(cfg), timeout=timeout)
        return openai.OpenAI(api_key=OFFLINE_API_KEY, base_url=OFFLINE_BASE_URL, max_retries=0, timeout=timeout,
                             http_client=http_client)  # type: ignore[arg-type]
    base_url = cfg.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
    if not api_key:
        if not base_url:
            raise LLMPermanentError("No API key for the OpenAI API. Set OPENAI_API_KEY (or OPENAI_BASE_URL for a "
                                    "local server), or use --offline.")
        api_key = LOCAL_SERVER_API_KEY
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)


# --------------------------------------------------------------------------- retry machinery


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds a server asked us to wait (``retry-after-ms``, ``retry-after`` seconds or HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return max(0.0, value) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_wait_s(attempt: int, exc: BaseException | None, backoff_base: float) -> float:
    """Wait after failed attempt ``attempt`` (1-based): the schedule, or a longer Retry-After.

    A Retry-After is honoured as a floor (we never come back sooner than asked), capped at
    :data:`RETRY_AFTER_CAP_S`; both are scaled by ``backoff_base`` so tests stay fast.
    """
    scheduled = BACKOFF_S[min(max(attempt, 1), len(BACKOFF_S)) - 1]
    asked = retry_after_s(exc) if exc is not None else None
    if asked is not None:
        scheduled = max(scheduled, min(asked, RETRY_AFTER_CAP_S))
    return scheduled * backoff_base


def _job_timeout_in(exc: BaseException) -> BaseException | None:
    """RQ's job timeout hidden inside an SDK error, if any.

    RQ raises ``JobTimeoutException`` from a signal handler, possibly while httpx is blocked in
    a socket read; should a layer below wrap it as a connection error, retrying would swallow
    the timeout (the job would run on past its limit). We dig it out and re-raise it instead.
    """
    try:
        from rq.timeouts import BaseTimeoutException
    except ImportError:  # rq is a dependency, but llm.py must work in a plain interpreter too
        return None
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, BaseTimeoutException):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _redact(text: str, api_key: str | None) -> str:
    """One line, no API key in it, not too long: fit for logs and exception messages."""
    text = " ".join(str(text).split())
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "[redacted]")
    text = re.sub(r"\b(sk|rk|pk)-[A-Za-z0-9_\-]{8,}", "[redacted]", text)
    return text[:300]


def _server_message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error") if isinstance(body.get("error"), Mapping) else body
        msg = inner.get("message") if isinstance(inner, Mapping) else None
        if msg:
            return str(msg)
    return getattr(exc, "message", "") or str(exc)


def is_context_length_error(exc: openai.APIError) -> bool:
    """True for a "prompt too long" refusal (llama.cpp ``exceed_context_size_error``, OpenAI
    ``context_length_exceeded``, vLLM "maximum context length")."""
    parts = [str(getattr(exc, "code", "") or ""), str(getattr(exc, "type", "") or ""), _server_message(exc)]
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        parts += [str(body.get("type", "")), str(body.get("code", ""))]
    blob = " ".join(parts).lower()
    return any(marker in blob for marker in _CONTEXT_MARKERS)


def permanent_error(exc: openai.OpenAIError, cfg: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
                    api_key: str | None = None) -> LLMPermanentError:
    """The :class:`LLMPermanentError` for a non-transient SDK error, its message naming the fix."""
    model = cfg.get("model") or "?"
    where = cfg.get("base_url") or ("the offline model" if cfg.get("offline") else "the OpenAI API")
    detail = _redact(_server_message(exc), api_key) if isinstance(exc, openai.APIError) else _redact(str(exc), api_key)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.AuthenticationError):
        return LLMPermanentError("The LLM server rejected the API key (401). Set OPENAI_API_KEY to a valid key, "
                                 "or use --offline.", status)
    if isinstance(exc, openai.PermissionDeniedError):
        return LLMPermanentError(f"The LLM server refused access to model {model!r} (403). Use a key with access "
                                 "to it, or choose another model with TTRPG_MODEL.", status)
    if isinstance(exc, openai.NotFoundError):
        return LLMPermanentError(f"The LLM server at {where} does not know model {model!r} or the endpoint (404). "
                                 "Check TTRPG_MODEL, and that OPENAI_BASE_URL ends in /v1.", status)
    if isinstance(exc, openai.APIStatusError) and is_context_length_error(exc):
        return ContextLengthError(f"The prompt (about {estimate_tokens(messages)} tokens) exceeds the context "
                                  f"window of model {model!r} ({status}: {detail}). Set TTRPG_CONTEXT_WINDOW to the "
                                  "server's context size so prompts are trimmed to fit.", status)
    if isinstance(exc, openai.BadRequestError):
        return LLMPermanentError(f"The LLM server rejected the request (400: {detail}). Check that TTRPG_MODEL "
                                 f"names a chat model served at {where}.", status)
    if isinstance(exc, openai.APIStatusError):
        return LLMPermanentError(f"The LLM server answered {status} ({detail}). Check OPENAI_BASE_URL and "
                                 "TTRPG_MODEL, or use --offline.", status)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMPermanentError(f"The LLM server's reply is not valid OpenAI JSON ({detail}). Check that "
                                 "OPENAI_BASE_URL points at an OpenAI-compatible /v1 endpoint.", status)
    return LLMPermanentError(f"The LLM client failed: {type(exc).__name__}: {detail}. Check OPENAI_BASE_URL, "
                             "TTRPG_MODEL and OPENAI_API_KEY, or use --offline.", status)


def _create(client: openai.OpenAI, cfg: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
            max_tokens: int) -> Any:
    """One chat-completions request. Newer OpenAI models refuse ``max_tokens`` and want
    ``max_completion_tokens``; that refusal is answered by asking again once with the new name."""
    kwargs: dict[str, Any] = {"model": cfg.get("model") or OFFLINE_MODEL,
                              "messages": [dict(m) for m in messages], "seed": int(cfg.get("seed") or 0)}
    try:
        return client.chat.completions.create(max_tokens=max_tokens, **kwargs)
    except openai.BadRequestError as exc:
        if "max_completion_tokens" not in _server_message(exc):
            raise
    return client.chat.completions.create(max_completion_tokens=max_tokens, **kwargs)


def complete(cfg: LLMConfig, messages: Sequence[Mapping[str, Any]], *, api_key: str | None = None,
             max_tokens: int = 300, on_retry: RetryCallback | None = None,
             client: openai.OpenAI | None = None) -> dict[str, Any]:
    """Ask the model once, retrying transient failures; the reply and its accounting.

    Returns ``{"text", "model", "prompt_tokens", "completion_tokens", "tokens_estimated",
    "latency_ms", "attempts", "finish_reason", "context_trimmed"}``. ``latency_ms`` is the
    whole call, waits included; tokens are estimated (``tokens_estimated`` True) when the
    server reports no usage. With ``cfg["context_window"]`` set, the prompt is first trimmed
    with :func:`ttrpg.prompts.fit_to_context` (``context_trimmed`` says whether it was).

    Raises :class:`LLMTransientError` once retries are exhausted, :class:`LLMPermanentError`
    (or :class:`ContextLengthError`) at once for errors a retry cannot fix. Anything else,
    RQ's ``JobTimeoutException`` above all, propagates untouched: only the SDK's transient
    classes are ever caught for retrying.

    A client made here (``client=None``) is closed on return; a client passed in is the
    caller's. Offline, a fresh client means fresh fault bookkeeping (see :mod:`ttrpg.offline`).
    """
    backoff_base = float(cfg.get("backoff_base", 1.0))
    window = cfg.get("context_window")
    msgs: list[dict[str, str]] = [dict(m) for m in messages]
    trimmed = False
    if window:
        msgs, trimmed = fit_to_context(msgs, int(window), reserve=max_tokens)
    own_client = client is None
    if client is None:
        client = make_client(cfg, api_key)
    attempts = 0

    def attempt_once() -> Any:
        nonlocal attempts
        attempts += 1
        try:
            return _create(client, cfg, msgs, max_tokens)
        except TRANSIENT_ERRORS as exc:
            hidden = _job_timeout_in(exc)
            if hidden is not None:
                raise hidden from None
            raise

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_wait_s(state.attempt_number, exc, backoff_base)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is None:
            return
        exc = state.outcome.exception() if state.outcome else None
        wait_s = state.next_action.sleep if state.next_action else 0.0
        on_retry(state.attempt_number, float(wait_s), type(exc).__name__, _redact(str(exc), api_key))

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS),
        stop=tenacity.stop_after_attempt(MAX_ATTEMPTS) | tenacity.stop_before_delay(RETRY_BUDGET_S),
        wait=wait,
        before_sleep=before_sleep,
        reraise=False,
    )
    started = time.monotonic()
    try:
        response = retrying(attempt_once)
    except tenacity.RetryError as err:
        last = err.last_attempt.exception()
        elapsed = time.monotonic() - started
        name = type(last).__name__
        fix = ("These are the offline model's simulated faults; lower their rates to fail less often."
               if cfg.get("offline") else
               f"Check that the server at {cfg.get('base_url') or 'the OpenAI API'} is up, then retry.")
        raise LLMTransientError(
            f"The LLM server kept failing: {attempts} attempt(s) in {elapsed:.1f} s, the last with {name} "
            f"({_redact(str(last), api_key)}). {fix}", attempts=attempts, last_error_class=name) from last
    except openai.OpenAIError as exc:
        raise permanent_error(exc, cfg, msgs, api_key) from exc
    finally:
        if own_client:
            client.close()
    latency_ms = round((time.monotonic() - started) * 1000.0, 1)

    choice = response.choices[0] if getattr(response, "choices", None) else None
    message = getattr(choice, "message", None)
    text = (getattr(message, "content", None) or getattr(message, "refusal", None) or "") if message else ""
    usage = getattr(response, "usage", None)
    prompt_tokens = getattr(usage, "prompt_tokens", None) if usage else None
    completion_tokens = getattr(usage, "completion_tokens", None) if usage else None
    estimated = prompt_tokens is None or completion_tokens is None
    if prompt_tokens is None:
        prompt_tokens = estimate_tokens(msgs)
    if completion_tokens is None:
        completion_tokens = estimate_text_tokens(text)
    return {
        "text": text,
        "model": getattr(response, "model", None) or cfg.get("model") or "",
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "tokens_estimated": estimated,
        "latency_ms": latency_ms,
        "attempts": attempts,
        "finish_reason": getattr(choice, "finish_reason", None) if choice else None,
        "context_trimmed": trimmed,
    }
