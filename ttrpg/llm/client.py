"""Asking any OpenAI-compatible endpoint (OpenAI, llama.cpp, vLLM, Ollama, LM Studio) or the
offline model, through the real ``openai`` SDK: the client, the endpoint a worker may use,
and :func:`complete` with its retries.

Why the SDK and not raw HTTP: its request shapes, error classes and response parsing are
what every compatible server is tested against. Why our own retries (``max_retries=0`` on
the client, tenacity here): the schedule is fixed (:data:`ttrpg.defaults.LLM_BACKOFF_S`, at
most :data:`ttrpg.defaults.LLM_MAX_ATTEMPTS` attempts within :data:`ttrpg.defaults.LLM_RETRY_BUDGET_S`), every
retry must be reported to the caller (the job logs an ``llm_retry`` event), and RQ's job
timeout must never be swallowed by a retry loop. So only the SDK's *transient* error classes
are retried (:mod:`ttrpg.llm.errors`); everything else is either mapped to a permanent error
at once or propagates untouched.

A real server's context limit is met twice: prompts are fitted to ``cfg["context_window"]``
before sending (the window asked of the server by :mod:`ttrpg.llm.model_info` when
``TTRPG_CONTEXT_WINDOW`` is unset), and a refusal anyway (token estimates are rough) is
answered by shrinking the prompt, never by sending it again unchanged.

This module runs inside RQ work horses. The config (:class:`ttrpg.llm.config.LLMConfig`)
never holds the API key: each worker reads the key from its own environment and passes it
to :func:`complete`; it is never logged and never put into an exception message.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
import tenacity

from ttrpg import defaults
from ttrpg.exceptions import LLMError, LLMPermanentError
from ttrpg.llm.config import LLMConfig
from ttrpg.llm.errors import (
    TRANSIENT_ERRORS,
    context_numbers,
    describe,
    is_context_refusal,
    job_timeout_in,
    permanent_error,
    redact,
    retryable,
    server_label,
    server_message,
    transient_error,
)
from ttrpg.offline.transport import OfflineTransport
from ttrpg.prompts.context import estimate_text_tokens, estimate_tokens, fit_to_context

OFFLINE_BASE_URL = "http://offline.ttrpg.invalid/v1"
"""Base URL of the offline model. ``.invalid`` can never resolve, so a mis-wired offline
client fails loudly instead of talking to the internet."""

OFFLINE_API_KEY = "offline-no-key"
"""Dummy key for the offline model (the SDK insists on some key)."""

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Where the SDK sends requests (and the key) when neither the config nor ``OPENAI_BASE_URL`` names a server."""

LOCAL_SERVER_API_KEY = "no-key-needed"
"""Sent to a custom ``base_url`` when no key is configured: local servers (llama.cpp without
``--api-key``, Ollama, LM Studio) accept anything, and the SDK insists on some key."""
RetryCallback = Callable[[int, float, str, str], None]
"""``on_retry(attempt, wait_s, error_class, message)``: called before each wait."""

AttemptCallback = Callable[[int], None]
"""``on_attempt(n)``: HTTP request ``n`` (2, 3, ...) of a call is about to be sent (after a wait,
a shrink or an empty reply); not called for the first."""

ShrinkCallback = Callable[[int, int], None]
"""``on_shrink(from_tokens, to_tokens)``: the server refused a prompt of about ``from_tokens``
tokens as longer than its context; it is asked again with a prompt of about ``to_tokens``
(both estimated with :func:`ttrpg.prompts.context.estimate_tokens`, so they compare)."""

_MIN_SHRINK_WINDOW = 64
"""Smallest window (estimated tokens) a prompt is shrunk for; below it nothing useful is left."""


def normalize_base_url(url: str | None) -> str | None:
    """``scheme://host:port/path`` of an http(s) base URL, for comparing endpoints: scheme and
    host lower-cased, the default port made explicit, no trailing slash; credentials, query and
    fragment left out. None for anything that is not an http(s) URL with a host."""
    if not url:
        return None
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}{parts.path.rstrip('/')}"


def _url_label(url: Any) -> str:
    """A URL fit for a one-line message: no credentials, query or control characters, not too long."""
    parts = urlsplit(re.sub(r"[\x00-\x20\x7f-\x9f]", "", str(url)))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    label = urlunsplit((parts.scheme, host + (f":{port}" if port else ""), parts.path.rstrip("/"), "", ""))
    return (label or "an unreadable URL")[:120]


def endpoint_for_job(job_base_url: str | None, own_base_url: str | None,
                     allowed: Sequence[str] = ()) -> str | None:
    """The base URL a worker sends a job's request (and its API key) to.

    The worker's own ``OPENAI_BASE_URL`` (``own_base_url``; None: the SDK's default, OpenAI)
    is where its key goes. A job naming no endpoint gets that one. A job naming one gets it
    only if it is, once normalized (:func:`normalize_base_url`), the worker's own endpoint or
    one of ``allowed`` (``TTRPG_ALLOWED_BASE_URLS``); the worker's own spelling of the URL is
    returned, never the job's. Anything else raises :class:`~ttrpg.exceptions.LLMPermanentError` before any
    request is made: whoever can write a job into Redis must not get a worker's key sent, or
    any request made, to a server of their choosing.
    """
    own = own_base_url or None
    if not job_base_url:
        return own
    wanted = normalize_base_url(job_base_url)
    if wanted is not None:
        if normalize_base_url(own or OPENAI_DEFAULT_BASE_URL) == wanted:
            return own
        for candidate in allowed:
            if normalize_base_url(candidate) == wanted:
                return candidate.strip()
    raise LLMPermanentError(f"This worker does not send its key to {_url_label(job_base_url)} (the job's "
                            "endpoint); set OPENAI_BASE_URL or TTRPG_ALLOWED_BASE_URLS on the worker to allow it.")


def make_client(cfg: LLMConfig, api_key: str | None) -> openai.OpenAI:
    """An ``openai.OpenAI`` client for ``cfg``: no SDK retries, an explicit timeout.

    Offline, the client talks to :class:`~ttrpg.offline.transport.OfflineTransport` through a real
    ``httpx.Client`` and a dummy key. Online without a key, a custom ``base_url`` gets a
    placeholder key (local servers need none); OpenAI itself gets :class:`~ttrpg.exceptions.LLMPermanentError`.

    ``cfg["base_url"]`` is used as given: a config that came out of a job must first go
    through :func:`endpoint_for_job` (``ttrpg.jobs.functions.ask_player`` does), so that a worker's key
    goes only where its operator said.
    """
    timeout = float(cfg.get("request_timeout_s") or defaults.LLM_REQUEST_TIMEOUT_S)
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
    :data:`ttrpg.defaults.LLM_RETRY_AFTER_CAP_S`; both are scaled by ``backoff_base`` so tests stay fast.
    """
    schedule = defaults.LLM_BACKOFF_S
    scheduled = schedule[min(max(attempt, 1), len(schedule)) - 1]
    asked = retry_after_s(exc) if exc is not None else None
    if asked is not None:
        scheduled = max(scheduled, min(asked, defaults.LLM_RETRY_AFTER_CAP_S))
    return scheduled * backoff_base



def _create(client: openai.OpenAI, cfg: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
            max_tokens: int, where: str = "the configured server") -> dict[str, Any]:
    """One chat-completions request; the reply's JSON, checked by :func:`_completion_of`.

    ``max_tokens`` is sent with every request. Newer OpenAI models refuse it and want
    ``max_completion_tokens``; that refusal is answered by asking again once with the new name.
    The body is read by :func:`_read_body` (at most :data:`ttrpg.defaults.LLM_RESPONSE_MAX_BYTES`).
    """
    kwargs: dict[str, Any] = {"model": cfg.get("model") or defaults.OFFLINE_MODEL,
                              "messages": [dict(m) for m in messages], "seed": int(cfg.get("seed") or 0)}
    create = client.chat.completions.with_streaming_response.create

    def send(**tokens: int) -> dict[str, Any]:
        with create(**tokens, **kwargs) as response:
            http = response.http_response
            return _completion_of(http.status_code, http.headers, _read_body(http, where), where)

    try:
        return send(max_tokens=max_tokens)
    except openai.BadRequestError as exc:
        if "max_completion_tokens" not in server_message(exc):
            raise
    return send(max_completion_tokens=max_tokens)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """httpx's transport errors, from the legacy ``httpx`` and from ``httpx2`` (openai 3's) alike."""
    found: list[type[BaseException]] = [httpx.TransportError]
    try:
        import httpx2  # type: ignore[import-not-found]

        found.append(httpx2.TransportError)
    except ImportError:
        pass
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


def _read_body(http: Any, where: str) -> bytes:
    """A reply's (decoded) body, read in chunks and refused past ``LLM_RESPONSE_MAX_BYTES``, so
    that a server sending gigabytes costs a worker a few megabytes, not its memory. A connection
    that breaks or stalls mid-body is the SDK's connection (or timeout) error: retried."""
    limit = int(defaults.LLM_RESPONSE_MAX_BYTES)
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in http.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise LLMPermanentError(f"The LLM server at {where} sent a reply of more than {limit:,} bytes; "
                                        "stopped reading it. Check OPENAI_BASE_URL and TTRPG_MODEL.", http.status_code)
            chunks.append(chunk)
    except _TRANSPORT_ERRORS as exc:
        if "Timeout" in type(exc).__name__:
            raise openai.APITimeoutError(request=http.request) from exc
        raise openai.APIConnectionError(message=f"Connection broke while reading the reply: {exc}",
                                        request=http.request) from exc
    return b"".join(chunks)


def _printable(text: str, limit: int = 60) -> str:
    """A server's words fit for a one-line message: control characters and escapes removed."""
    return " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).split())[:limit]


def _completion_of(status: int, headers: Mapping[str, str], body: bytes, where: str) -> dict[str, Any]:
    """The JSON of a 2xx reply, if it is a chat completion; else :class:`~ttrpg.exceptions.LLMPermanentError`.

    An HTML page, broken or truncated JSON, or JSON without ``choices`` (a proxy's error page,
    the wrong URL, a server that died mid-reply) is not an answer that asking again would
    change: it is a permanent error naming the server, made after one request. The SDK alone
    would read an HTML page as an empty reply and raise an unclear ``JSONDecodeError`` on
    truncated JSON."""
    ctype = str(headers.get("content-type") or "").lower()
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
        data = None
        if "html" in ctype or body.lstrip()[:1] == b"<":
            problem = "an HTML page"
        elif "json" in ctype or body.lstrip()[:1] in (b"{", b"["):
            problem = "broken or truncated JSON"
        else:
            problem = f"something that is not JSON ({_printable(ctype, 40) or 'no content type'})"
    else:
        choices = data.get("choices") if isinstance(data, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
                and isinstance(choices[0].get("message"), dict):
            return data
        error = data.get("error") if isinstance(data, dict) else None
        said = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
        problem = "JSON without a chat completion's choices" + (f" (it says: {_printable(str(said), 120)})"
                                                                  if said else "")
    start = _printable(body[:200].decode("utf-8", "replace"))
    raise LLMPermanentError(f"The LLM server at {where} answered {status} with {problem} ({len(body)} "
                            f"bytes, starting \"{start}\") instead of an OpenAI chat completion. Check that "
                            "OPENAI_BASE_URL points at an OpenAI-compatible /v1 endpoint.", status)


def _shrink(original: Sequence[Mapping[str, Any]], sent: Sequence[Mapping[str, Any]], exc: BaseException,
            window: int, max_tokens: int) -> tuple[list[dict[str, str]], int] | None:
    """A shorter prompt after a context-length refusal of ``sent``, and the window it was fitted to.

    The new window (in estimated tokens) is the server's own ``n_ctx`` converted into our
    estimate's units with its ``n_prompt_tokens`` (llama.cpp says both), when that is smaller
    than the window just tried; otherwise half of it. The prompt is rebuilt from the
    *original* messages with :func:`ttrpg.prompts.context.fit_to_context` (older history and memories
    folded into an ``Earlier:`` summary, long lines cut), halving further until it is shorter
    than what was refused. None when nothing more can go (the system prompt alone is too long).
    """
    sent_tokens = estimate_tokens(sent)
    n_ctx, n_prompt = context_numbers(exc)
    server_window = int(n_ctx * sent_tokens / n_prompt) if n_ctx and n_prompt else None
    new_window = server_window if server_window and server_window < window else window // 2
    while new_window >= _MIN_SHRINK_WINDOW:
        msgs, _ = fit_to_context(original, new_window, reserve=max_tokens)
        if estimate_tokens(msgs) < sent_tokens:
            return msgs, new_window
        new_window //= 2
    return None


def _text_of(data: Mapping[str, Any]) -> tuple[str, str | None]:
    """The reply's text (``content``, else ``refusal``) and finish reason, whatever their JSON types."""
    choice = data["choices"][0]
    message = choice["message"]
    text = message.get("content") or message.get("refusal") or ""
    if isinstance(text, list):  # content parts
        text = "".join(str(p.get("text") or "") for p in text if isinstance(p, Mapping))
    finish = choice.get("finish_reason")
    return (text if isinstance(text, str) else str(text)), (str(finish)[:40] if finish is not None else None)


def _count(value: Any) -> int | None:
    """A token count from a server's ``usage``, or None when it is not a plausible one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def reply_cap(cfg: Mapping[str, Any]) -> int:
    """Characters of reply text a call keeps: :data:`ttrpg.defaults.LLM_REPLY_MAX_CHARS`, or
    ``cfg["reply_max_chars"]`` when that is lower."""
    cap = int(defaults.LLM_REPLY_MAX_CHARS)
    asked = cfg.get("reply_max_chars")
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        cap = min(cap, asked)
    return cap


def complete(cfg: LLMConfig, messages: Sequence[Mapping[str, Any]], *, api_key: str | None = None,
             max_tokens: int | None = None, on_retry: RetryCallback | None = None,
             client: openai.OpenAI | None = None, on_shrink: ShrinkCallback | None = None,
             on_attempt: AttemptCallback | None = None) -> dict[str, Any]:
    """Ask the model once, retrying transient failures; the reply and its accounting.

    Returns ``{"text", "model", "prompt_tokens", "completion_tokens", "tokens_estimated",
    "latency_ms", "attempts", "finish_reason", "context_trimmed", "context_shrinks",
    "empty", "truncated", "reply_chars"}``. ``latency_ms`` is the whole call, waits included;
    ``attempts`` counts HTTP requests. Tokens are the server's ``usage`` when it reports one, else estimated
    (``tokens_estimated`` True). With ``cfg["context_window"]`` set, the prompt is first
    trimmed with :func:`ttrpg.prompts.context.fit_to_context`; ``context_trimmed`` says whether the
    prompt sent differs from ``messages`` (trimmed first or shrunk later).

    A server that refuses the prompt as longer than its context (400
    ``exceed_context_size_error`` / ``context_length_exceeded``, or llama.cpp's 500 "Context
    size has been exceeded." when concurrent requests fill its shared KV cache; see
    :func:`~ttrpg.llm.errors.is_context_refusal`) is not sent the same request again: the prompt is shrunk
    (see :func:`_shrink`), ``on_shrink(from_tokens, to_tokens)`` is called, and the shorter
    prompt is sent, at most :data:`ttrpg.defaults.LLM_CONTEXT_SHRINKS_MAX` times per call (``context_shrinks`` counts
    them). When nothing more can be cut, :class:`~ttrpg.exceptions.ContextLengthError`. ``max_tokens``
    (default :data:`ttrpg.defaults.LLM_MAX_TOKENS`) is capped by ``cfg["max_tokens"]`` when
    the config sets one.

    An empty or whitespace-only reply (weak models do that) is asked once more with the next
    seed; if that is empty too, ``text`` is ``""`` and ``empty`` is True: the phase decides
    (an empty action should fail validation and be asked again, stricter).

    The server's words are data: ``text`` is returned as sent (markup, escape sequences and
    all; showing it safely is the terminal's job) but cut to :func:`reply_cap` characters
    (``truncated`` True, ``reply_chars`` the length before the cut), so a megabyte reply
    reaches neither Redis nor a screen whole. ``max_tokens`` is sent with every request. A
    2xx reply that is not a chat completion (HTML, broken JSON, no ``choices``) is an
    :class:`~ttrpg.exceptions.LLMPermanentError` after that one request (see :func:`_completion_of`).
    ``on_attempt(n)`` is called before every HTTP request after the first.

    Raises :class:`~ttrpg.exceptions.LLMTransientError` once retries are exhausted (one line naming the server
    and the last error), :class:`~ttrpg.exceptions.LLMPermanentError` (or :class:`~ttrpg.exceptions.ContextLengthError`) at once
    for errors a retry cannot fix. No message carries the API key. Anything else, RQ's
    ``JobTimeoutException`` above all, propagates untouched: only the SDK's transient classes
    are ever caught for retrying.

    A client made here (``client=None``) is closed on return; a client passed in is the
    caller's. Offline, a fresh client means fresh fault bookkeeping (see :mod:`ttrpg.offline`).
    """
    backoff_base = float(cfg.get("backoff_base", 1.0))
    if max_tokens is None:
        max_tokens = defaults.LLM_MAX_TOKENS
    cap = cfg.get("max_tokens")
    if cap and int(cap) > 0:
        max_tokens = min(int(max_tokens), int(cap))
    window = cfg.get("context_window")
    original: list[dict[str, str]] = [dict(m) for m in messages]
    msgs: list[dict[str, str]] = [dict(m) for m in original]
    trimmed = False
    if window:
        msgs, trimmed = fit_to_context(original, int(window), reserve=max_tokens)
    own_client = client is None
    if client is None:
        client = make_client(cfg, api_key)
    where = server_label(cfg, client)
    attempts = 0
    shrinks = 0
    seed_offset = 0

    def attempt_once() -> Any:
        nonlocal attempts
        attempts += 1
        if attempts > 1 and on_attempt is not None:
            on_attempt(attempts)
        call_cfg = cfg if not seed_offset else {**cfg, "seed": int(cfg.get("seed") or 0) + seed_offset}
        try:
            return _create(client, call_cfg, msgs, max_tokens, where)
        except TRANSIENT_ERRORS as exc:
            hidden = job_timeout_in(exc)
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
        on_retry(state.attempt_number, float(wait_s), type(exc).__name__, redact(describe(exc), api_key))

    def retrying() -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            stop=tenacity.stop_after_attempt(defaults.LLM_MAX_ATTEMPTS) | tenacity.stop_before_delay(defaults.LLM_RETRY_BUDGET_S),
            wait=wait,
            before_sleep=before_sleep,
            reraise=False,
        )

    started = time.monotonic()
    try:
        while True:
            try:
                response = retrying()(attempt_once)
            except openai.APIStatusError as exc:
                if not is_context_refusal(exc):
                    raise
                tried = int(window) if window else estimate_tokens(msgs) + max_tokens
                smaller = _shrink(original, msgs, exc, tried, max_tokens) if shrinks < defaults.LLM_CONTEXT_SHRINKS_MAX else None
                if smaller is None:
                    raise permanent_error(exc, cfg, msgs, api_key, shrinks) from exc
                from_tokens = estimate_tokens(msgs)
                msgs, window = smaller
                shrinks += 1
                trimmed = True
                if on_shrink is not None:
                    on_shrink(from_tokens, estimate_tokens(msgs))
                continue
            text, finish_reason = _text_of(response)
            if text.strip() or seed_offset:
                break
            seed_offset = 1  # an empty reply: ask once more, with the next seed
    except tenacity.RetryError as err:
        last = err.last_attempt.exception()
        raise transient_error(last, cfg, where, attempts, time.monotonic() - started, api_key) from last
    except LLMError:
        raise
    except openai.OpenAIError as exc:
        raise permanent_error(exc, cfg, msgs, api_key, shrinks) from exc
    finally:
        if own_client:
            client.close()
    latency_ms = round((time.monotonic() - started) * 1000.0, 1)

    empty = not text.strip()
    if empty:
        text = ""
    reply_chars = len(text)
    truncated = reply_chars > reply_cap(cfg)
    if truncated:
        text = text[:reply_cap(cfg)]
    usage = response.get("usage") if isinstance(response.get("usage"), Mapping) else {}
    prompt_tokens = _count(usage.get("prompt_tokens"))
    completion_tokens = _count(usage.get("completion_tokens"))
    estimated = prompt_tokens is None or completion_tokens is None
    if prompt_tokens is None:
        prompt_tokens = estimate_tokens(msgs)
    if completion_tokens is None:
        completion_tokens = estimate_text_tokens(text)
    return {
        "text": text,
        "model": (response["model"] if isinstance(response.get("model"), str) and response["model"]
                  else str(cfg.get("model") or ""))[:200],
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "tokens_estimated": estimated,
        "latency_ms": latency_ms,
        "attempts": attempts,
        "finish_reason": finish_reason,
        "context_trimmed": trimmed,
        "context_shrinks": shrinks,
        "empty": empty,
        "truncated": truncated,
        "reply_chars": reply_chars,
    }


def warm_up() -> None:
    """Ask the offline model one question of each phase in this process: no network, Redis or key.

    openai, httpx, pydantic and the offline model set much up lazily at a process's first
    requests (compiled patterns, validators; about 80 ms here). A fork-server template and a
    waiting warm horse call this before any job exists, so that every job forked or handed
    to them finds that done. Nothing of it is job data: the prompts are built from the
    default party and a fixed scene.
    """
    from ttrpg.game.characters import default_party
    from ttrpg.llm.config import make_config
    from ttrpg.prompts import builders

    party = default_party().to_state()
    entry, ship = party["players"][0], party.get("ship")
    scene = "An alien drone drifts into the hangar, scanning the crates."
    prompts = [
        builders.player_intent_messages(entry, ship, scene, [], [], [], []),
        builders.discussion_messages(entry, ship, scene, [], [], [], [], 1),
        builders.character_action_messages(entry, ship, scene, "Disable the drone quietly.", [], []),
        builders.character_reaction_messages(entry, ship, scene, "The drone spins away, sparking.", [], []),
    ]
    cfg = make_config(offline=True, seed=1)
    for messages in prompts:
        complete(cfg, messages, max_tokens=120)
