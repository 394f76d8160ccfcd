"""What an OpenAI-compatible server says about its model: for now, its context window.

Why: prompts are trimmed to the model's context window before they are sent
(:func:`ttrpg.prompts.context.fit_to_context`). A window that is too large costs a 400 from the
server (answered by shrinking, see :func:`ttrpg.llm.client.complete`, but that is a wasted
request per call); too small throws away history for nothing. The OpenAI chat API itself
has no way to ask, so we ask where each server says it, used only when
``TTRPG_CONTEXT_WINDOW`` is not set:

- **llama.cpp** ``llama-server``: ``GET /props`` → ``default_generation_settings.n_ctx``, the
  context of one slot (the size its 400 ``exceed_context_size_error`` is measured against);
- **vLLM**: ``GET /v1/models`` → the model's ``max_model_len``;
- **Ollama**: ``POST /api/show {"model": name}`` → ``num_ctx`` in its ``parameters`` if the
  model sets one, else ``model_info["<arch>.context_length"]`` (the trained length; note that
  Ollama itself may run a smaller ``num_ctx`` and then truncates silently instead of
  answering 400);
- **LM Studio**: ``GET /api/v0/models/<model>`` → ``loaded_context_length`` (else
  ``max_context_length``).

Anything else (the OpenAI API, a server that is down, an answer of another shape) gives
``None``: the caller falls back to its default. This module never raises and never puts the
API key anywhere but the ``Authorization`` header.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

_cache: dict[tuple[str, str], int | None] = {}
_lock = threading.Lock()


class _Down(Exception):
    """The server cannot be reached at all: no point asking it anything else."""


def context_window(base_url: str | None, model: str | None, api_key: str | None = None,
                   timeout: float = 3.0) -> int | None:
    """The context window (tokens) the server at ``base_url`` runs ``model`` with, or None.

    ``base_url`` is the OpenAI-style base (``http://host:8080/v1``); the server's own
    endpoints are found next to it. Answers, ``None`` included, are cached per
    ``(base_url, model)`` for the life of the process (:func:`clear_cache` forgets them).
    At most ``timeout`` seconds per request; a server that refuses connections is asked once.
    """
    if not base_url or urlsplit(base_url).hostname == "api.openai.com":
        return None
    key = (base_url.rstrip("/"), model or "")
    with _lock:
        if key in _cache:
            return _cache[key]
    found = _ask(key[0], model or "", api_key, timeout)
    with _lock:
        _cache[key] = found
    return found


def clear_cache() -> None:
    """Forget every cached answer (tests; a server restarted with another ``--ctx-size``)."""
    with _lock:
        _cache.clear()


def server_root(base_url: str) -> str:
    """``http://host:8080/v1`` → ``http://host:8080`` (the native endpoints live at the root)."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _ask(base_url: str, model: str, api_key: str | None, timeout: float) -> int | None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    root = server_root(base_url)
    probes = (_llama_cpp, _vllm, _ollama, _lm_studio)
    try:
        with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
            for probe in probes:
                try:
                    found = probe(client, root, base_url, model)
                except _Down:
                    return None
                except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
                    found = None
                if found:
                    return found
    except httpx.HTTPError:
        return None
    return None


def _get_json(client: httpx.Client, method: str, url: str, **kw: Any) -> Any:
    try:
        response = client.request(method, url, **kw)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise _Down(str(exc)) from exc
    if response.status_code != 200:
        return None
    return response.json()


def _llama_cpp(client: httpx.Client, root: str, base_url: str, model: str) -> int | None:
    props = _get_json(client, "GET", f"{root}/props")
    if not isinstance(props, Mapping):
        return None
    settings = props.get("default_generation_settings")
    if isinstance(settings, Mapping):
        return _positive_int(settings.get("n_ctx"))
    return None


def _vllm(client: httpx.Client, root: str, base_url: str, model: str) -> int | None:
    listing = _get_json(client, "GET", f"{base_url}/models")
    data = listing.get("data") if isinstance(listing, Mapping) else None
    if not isinstance(data, list):
        return None
    cards = [c for c in data if isinstance(c, Mapping)]
    chosen = [c for c in cards if c.get("id") == model] or (cards if len(cards) == 1 else [])
    for card in chosen:
        found = _positive_int(card.get("max_model_len"))
        if found:
            return found
    return None


def _ollama(client: httpx.Client, root: str, base_url: str, model: str) -> int | None:
    if not model:
        return None
    shown = _get_json(client, "POST", f"{root}/api/show", json={"model": model})
    if not isinstance(shown, Mapping):
        return None
    for line in str(shown.get("parameters") or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "num_ctx":
            found = _positive_int(parts[1])
            if found:
                return found
    info = shown.get("model_info")
    if isinstance(info, Mapping):
        for key, value in info.items():
            if str(key).endswith(".context_length"):
                found = _positive_int(value)
                if found:
                    return found
    return None


def _lm_studio(client: httpx.Client, root: str, base_url: str, model: str) -> int | None:
    if not model:
        return None
    card = _get_json(client, "GET", f"{root}/api/v0/models/{model}")
    if not isinstance(card, Mapping):
        return None
    return _positive_int(card.get("loaded_context_length")) or _positive_int(card.get("max_context_length"))
