"""Classifying what the ``openai`` SDK raises: what a retry can fix, what it cannot, and the
one line a DM reads about it.

Only :data:`TRANSIENT_ERRORS` (rate limits, timeouts, broken connections, 5xx) are worth
asking again; a prompt longer than the server's context is a refusal that shrinking the
prompt can fix (:func:`is_context_refusal`), never sending it again unchanged; everything
else becomes an :class:`~ttrpg.exceptions.LLMPermanentError` at once
(:func:`permanent_error`). The exception classes live in :mod:`ttrpg.exceptions`. Every
message goes through :func:`redact`: no API key ever reaches a log or an exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from rq.timeouts import BaseTimeoutException

from ttrpg import defaults
from ttrpg.exceptions import ContextLengthError, LLMPermanentError, LLMTransientError
from ttrpg.prompts.context import estimate_tokens

TRANSIENT_ERRORS: tuple[type[openai.APIError], ...] = (
    openai.RateLimitError,       # 429
    openai.APITimeoutError,      # read/connect timeout (a subclass of APIConnectionError)
    openai.APIConnectionError,   # refused, reset, DNS
    openai.InternalServerError,  # any 5xx
)
"""The only errors worth retrying: the same request may succeed a few seconds later."""

_CONTEXT_MARKERS = ("exceed_context_size", "context_length_exceeded", "maximum context length",
                    "context size", "context window", "prompt is too long", "too many tokens")


def job_timeout_in(exc: BaseException) -> BaseException | None:
    """RQ's job timeout hidden inside an SDK error, if any.

    RQ raises ``JobTimeoutException`` from a signal handler, possibly while httpx is blocked in
    a socket read; should a layer below wrap it as a connection error, retrying would swallow
    the timeout (the job would run on past its limit). We dig it out and re-raise it instead.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, BaseTimeoutException):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def redact(text: str, api_key: str | None) -> str:
    """One line, no API key in it, not too long: fit for logs and exception messages."""
    text = " ".join(str(text).split())
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "[redacted]")
    text = re.sub(r"\b(sk|rk|pk)-[A-Za-z0-9_\-]{8,}", "[redacted]", text)
    return text[:300]


def server_label(cfg: Mapping[str, Any], client: openai.OpenAI | None = None) -> str:
    """Where a call goes, fit for a message: the base URL without credentials or query."""
    if cfg.get("offline"):
        return "the offline model"
    raw = cfg.get("base_url") or (str(client.base_url) if client is not None else None) \
        or os.environ.get("OPENAI_BASE_URL") or ""
    if not raw:
        return "the OpenAI API"
    parts = urlsplit(str(raw))
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")) or "the configured server"


def describe(exc: BaseException | None) -> str:
    """The most useful short text of an error: the server's own message for an HTTP status
    (``503: loading model``), else the innermost cause (``[Errno 111] Connection refused``
    rather than the SDK's ``Connection error.``). Not redacted: pass it through :func:`redact`."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, openai.APIStatusError):
        return f"{exc.status_code}: {server_message(exc)}"
    seen: set[int] = set()
    cur: BaseException | None = exc
    best = str(exc)
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if str(cur).strip():
            best = str(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return best


def context_numbers(exc: BaseException) -> tuple[int | None, int | None]:
    """``(n_ctx, n_prompt_tokens)`` from a llama.cpp context refusal (None where not given)."""
    body = getattr(exc, "body", None)
    inner = body.get("error") if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping) else body
    if not isinstance(inner, Mapping):
        return None, None

    def num(key: str) -> int | None:
        value = inner.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    return num("n_ctx"), num("n_prompt_tokens")


def server_message(exc: openai.APIError) -> str:
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
    parts = [str(getattr(exc, "code", "") or ""), str(getattr(exc, "type", "") or ""), server_message(exc)]
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        parts += [str(body.get("type", "")), str(body.get("code", ""))]
    blob = " ".join(parts).lower()
    return any(marker in blob for marker in _CONTEXT_MARKERS)


def is_context_refusal(exc: BaseException) -> bool:
    """A refusal that shrinking the prompt can fix: a 4xx context-length error, or llama.cpp's
    500 ``Context size has been exceeded.``, which is what its unified KV cache (the default
    with automatic slots) answers when concurrent requests *together* outgrow ``--ctx-size``
    although each fits ``/props``' ``n_ctx``."""
    if not isinstance(exc, openai.APIStatusError):
        return False
    if 400 <= exc.status_code < 500:
        return is_context_length_error(exc)
    return exc.status_code >= 500 and "context size has been exceeded" in server_message(exc).lower()


def retryable(exc: BaseException) -> bool:
    """Worth asking again unchanged: a transient error that is not a context refusal."""
    return isinstance(exc, TRANSIENT_ERRORS) and not is_context_refusal(exc)


def permanent_error(exc: openai.OpenAIError, cfg: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
                    api_key: str | None = None, shrinks: int = 0) -> LLMPermanentError:
    """The :class:`LLMPermanentError` for a non-transient SDK error, its message naming the fix."""
    model = cfg.get("model") or "?"
    where = server_label(cfg)
    detail = redact(server_message(exc), api_key) if isinstance(exc, openai.APIError) else redact(str(exc), api_key)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.AuthenticationError):
        return LLMPermanentError(f"The LLM server at {where} rejected the API key (401). Set OPENAI_API_KEY to a "
                                 "valid key for it (every worker reads its own), or use --offline.", status)
    if isinstance(exc, openai.PermissionDeniedError):
        return LLMPermanentError(f"The LLM server refused access to model {model!r} (403). Use a key with access "
                                 "to it, or choose another model with TTRPG_MODEL.", status)
    if isinstance(exc, openai.NotFoundError):
        return LLMPermanentError(f"The LLM server at {where} does not know model {model!r} or the endpoint (404). "
                                 "Check TTRPG_MODEL, and that OPENAI_BASE_URL ends in /v1.", status)
    if isinstance(exc, openai.APIStatusError) and is_context_length_error(exc):
        n_ctx, _ = context_numbers(exc)
        size = f"{n_ctx} tokens" if n_ctx else "its context window"
        shrunk = f", after shrinking it {shrinks} time(s)," if shrinks else ""
        return ContextLengthError(f"The prompt (about {estimate_tokens(messages)} tokens{shrunk}) is still longer than "
                                  f"model {model!r} at {where} accepts ({size}; {status}: {detail}). The character "
                                  "sheet and task alone do not fit: give the server a larger context (llama-server "
                                  "--ctx-size) or use a model with a larger window; set TTRPG_CONTEXT_WINDOW if the "
                                  "server cannot tell its size.", status)
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


def transient_error(last: BaseException | None, cfg: Mapping[str, Any], where: str, attempts: int,
                     elapsed: float, api_key: str | None) -> LLMTransientError:
    """The one line a DM reads when every attempt failed transiently: which server, what went
    wrong last, how long we tried, what to check."""
    name = type(last).__name__
    cause = redact(describe(last), api_key)
    tried = f"{attempts} attempts in {elapsed:.1f} s"
    if cfg.get("offline"):
        return LLMTransientError(
            f"The offline model kept failing ({tried}), the last with {name} ({cause}). These are its simulated "
            "faults; lower their rates to fail less often.", attempts=attempts, last_error_class=name)
    if isinstance(last, openai.APITimeoutError):
        limit = float(cfg.get("request_timeout_s") or defaults.LLM_REQUEST_TIMEOUT_S)
        text = (f"The LLM server at {where} did not answer within {limit:g} s ({tried}). Check that it is not "
                "overloaded, or use a faster model, then retry.")
    elif isinstance(last, openai.APIConnectionError):
        text = (f"Cannot reach the LLM server at {where} ({cause}; {tried}). Check that it is running and that "
                "OPENAI_BASE_URL is right, then retry.")
    elif isinstance(last, openai.RateLimitError):
        text = (f"The LLM server at {where} kept refusing with a rate limit ({cause}; {tried}). Wait, or use a "
                "key with a higher limit, then retry.")
    elif isinstance(last, openai.APIStatusError):
        text = (f"The LLM server at {where} kept failing with HTTP {cause} ({tried}). Check that it "
                "is up and healthy, then retry.")
    else:
        text = f"The LLM server at {where} kept failing with {name} ({cause}; {tried}). Check that it is up, then retry."
    return LLMTransientError(text, attempts=attempts, last_error_class=name)
