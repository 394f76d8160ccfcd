"""The offline model as an OpenAI-compatible HTTP server: an httpx transport with latency and faults.

Why a transport and not a stub function: it sits *under* the real ``openai`` SDK
(``httpx.Client(transport=OfflineTransport(cfg))``), so offline play exercises the same
client code, error classes, retries and token accounting as real play. It answers
``POST .../chat/completions`` and ``GET .../models`` with OpenAI-shaped JSON, usage included.

Faults (``cfg["faults"]``, each a probability per HTTP attempt), decided from
``stable_hash(seed, messages, attempt_index)`` where ``attempt_index`` counts identical
requests seen by this transport instance. Each ``ttrpg.llm.client.complete`` call makes a fresh
client (and so a fresh transport), hence the n-th attempt of a given request fails or
succeeds the same way in every run, on every worker:

- ``rate_limit``: HTTP 429 with ``Retry-After: 1``;
- ``server_error``: HTTP 500, 502 or 503;
- ``timeout``: ``httpx.ReadTimeout`` is raised (the SDK turns it into ``APITimeoutError``).
  It is raised at once rather than after the request timeout, to keep tests fast;
- ``overreach``: a character-layer *action* reply narrates an outcome so validation has
  something to catch. The rate halves with each stricter attempt (``Attempt: 2``, ``3`` in
  the prompt), as a real model given a stricter prompt complies more often, so a retried
  action may come back clean.

Faults are independent per attempt, honestly: nothing forces the last attempt to succeed.
With a rate of 0.2 per fault kind, all five attempts of a call fail with probability about
(1 - 0.8**3)**5, i.e. 0.3 % (0.2**5 = 0.03 % for a single kind): rare, and exactly what the
phase rollback and the DM prompt exist for.

Latency: every request sleeps ``latency_ms`` first. With ``context_window`` set, a prompt
over it is refused with llama.cpp's 400 ``exceed_context_size_error``, so context trimming is
tested offline too.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx

from ttrpg import defaults
from ttrpg.offline.dm_voice import dm_reply, is_dm_prompt
from ttrpg.offline.hashing import stable_hash
from ttrpg.offline.reader import read_prompt
from ttrpg.offline.voice import offline_reply
from ttrpg.prompts.builders import PROMPT_VERSION
from ttrpg.prompts.context import estimate_text_tokens, estimate_tokens

FAULT_KINDS: tuple[str, ...] = ("rate_limit", "server_error", "timeout", "overreach")
"""The fault kinds ``cfg["faults"]`` may set, each a probability in [0, 1] per attempt."""

def _error(status: int, message: str, etype: str, code: str | int | None = None,
           headers: Mapping[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"error": {"message": message, "type": etype, "param": None, "code": code, **extra}}
    return httpx.Response(status, json=body, headers=dict(headers or {}))


class OfflineTransport(httpx.BaseTransport):
    """An httpx transport that *is* an OpenAI-compatible server running the offline model.

    ``cfg`` is an ``LLMConfig`` (or any mapping with ``seed``, ``latency_ms``, ``faults`` and
    optionally ``context_window``). ``calls`` records what each chat request got (attempt
    index, fault, overreach), for tests and for debugging a seeded run.
    """

    def __init__(self, cfg: Mapping[str, Any]):
        self.seed = int(cfg.get("seed") or 0)
        # Faults also depend on the phase attempt, so a phase that rolled back after its calls
        # failed meets other faults on its next attempt (as with a real, flaky server); the
        # words stay those of the seed.
        self.fault_salt = cfg.get("fault_salt", "")
        self.latency_s = max(0.0, float(cfg.get("latency_ms") or 0) / 1000.0)
        faults = cfg.get("faults") or {}
        unknown = set(faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"Unknown offline fault kind(s) {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}.")
        self.faults = {k: min(1.0, max(0.0, float(faults.get(k) or 0.0))) for k in FAULT_KINDS}
        self.context_window: int | None = cfg.get("context_window") or None
        self._seen: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.rstrip("/")
        if request.method == "POST" and path.endswith("/chat/completions"):
            return self._chat(request)
        if request.method == "GET" and path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [self._model_card()]})
        if request.method == "GET" and path.endswith("/models/" + defaults.OFFLINE_MODEL):
            return httpx.Response(200, json=self._model_card())
        return _error(404, f"The offline model does not serve {request.method} {path}.", "invalid_request_error",
                      "not_found")

    def _model_card(self) -> dict[str, Any]:
        return {"id": defaults.OFFLINE_MODEL, "object": "model", "created": 0, "owned_by": "ttrpg",
                "context_window": self.context_window or defaults.CONTEXT_WINDOW}

    def _chat(self, request: httpx.Request) -> httpx.Response:
        try:
            body = json.loads(request.read() or b"{}")
        except ValueError:
            return _error(400, "The request body is not valid JSON.", "invalid_request_error")
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _error(400, "'messages' must be a non-empty list of {role, content} objects.",
                          "invalid_request_error", param="messages")
        if body.get("stream"):
            return _error(400, "The offline model does not stream; call without stream=True.",
                          "invalid_request_error")
        content = [(m.get("role"), m.get("content")) for m in messages]
        request_key = stable_hash(content)
        with self._lock:
            attempt_index = self._seen[request_key]
            self._seen[request_key] += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        rng = random.Random(stable_hash("faults", self.seed, self.fault_salt, content, attempt_index))
        fault = None
        for kind in ("rate_limit", "server_error", "timeout"):
            if rng.random() < self.faults[kind]:
                fault = kind
                break
        record: dict[str, Any] = {"attempt_index": attempt_index, "fault": fault, "overreach": False}
        self.calls.append(record)
        if fault == "rate_limit":
            return _error(429, f"Rate limit reached for {defaults.OFFLINE_MODEL} (simulated). Please try again in 1s.",
                          "requests", "rate_limit_exceeded", headers={"Retry-After": "1"})
        if fault == "server_error":
            status = rng.choice((500, 502, 503))
            return _error(status, f"The offline model had a simulated server error ({status}).", "server_error")
        if fault == "timeout":
            raise httpx.ReadTimeout("Simulated read timeout (offline model).", request=request)

        prompt_tokens = estimate_tokens(messages)
        if self.context_window and prompt_tokens > self.context_window:
            return _error(400, "the request exceeds the available context size, try increasing it",
                          "exceed_context_size_error", 400, n_prompt_tokens=prompt_tokens,
                          n_ctx=self.context_window)
        dm = is_dm_prompt(messages)  # the autopilot DM's questions get the GM's voice (ttrpg.offline.dm_voice)
        parsed = read_prompt(messages)
        is_action = not dm and parsed.layer == "character" and parsed.task.startswith("action")
        overreach = False
        if is_action and self.faults["overreach"] > 0:
            rate = self.faults["overreach"] * (0.5 ** (max(1, parsed.attempt) - 1))
            overreach = rng.random() < rate
        record["overreach"] = overreach
        text = dm_reply(messages, self.seed) if dm else offline_reply(messages, self.seed, overreach=overreach)
        finish = "stop"
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0 and estimate_text_tokens(text) > max_tokens:
            text, finish = text[: max_tokens * 4], "length"
        completion_tokens = estimate_text_tokens(text)
        reply = {
            "id": f"chatcmpl-offline-{stable_hash(self.seed, content, attempt_index):016x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": defaults.OFFLINE_MODEL,
            "system_fingerprint": f"{defaults.OFFLINE_MODEL}-prompts-v{PROMPT_VERSION}",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        return httpx.Response(200, json=reply)
