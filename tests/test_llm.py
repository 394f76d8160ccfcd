"""ttrpg.llm: retries, error classification, accounting, all through the real openai SDK.

Scripted servers are tiny httpx transports (the network edge), never mocks of the SDK.
Waits are scaled with backoff_base=0.001, so the real schedule (2, 5, 10, 10 s) shows up as
0.002, 0.005, 0.01, 0.01 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from rq.timeouts import JobTimeoutException

from tests.test_prompts import HISTORY, NARRATION, SHIP, ZIX
from ttrpg import defaults
from ttrpg.exceptions import (
    ContextLengthError,
    LLMConfigError,
    LLMError,
    LLMPermanentError,
    LLMTransientError,
)
from ttrpg.llm.client import (
    LOCAL_SERVER_API_KEY,
    OFFLINE_API_KEY,
    OFFLINE_BASE_URL,
    complete,
    endpoint_for_job,
    make_client,
)
from ttrpg.llm.config import LLMConfig, make_config
from ttrpg.llm.errors import server_label
from ttrpg.prompts.builders import character_action_messages
from ttrpg.prompts.context import estimate_text_tokens, estimate_tokens

SECRET_KEY = "sk-test-0123456789abcdefSECRET"
MSGS = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}]


def _ok(text: str = "hi", usage: bool = True) -> httpx.Response:
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
    return httpx.Response(200, json=body)


def _err(status: int, message: str, etype: str = "invalid_request_error", code=None, headers=None):
    return httpx.Response(status, json={"error": {"message": message, "type": etype, "code": code}},
                          headers=headers or {})


class Scripted(httpx.BaseTransport):
    """A server that answers each request with the next item of a script (the last repeats)."""

    def __init__(self, *script: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.script = list(script)
        self.requests: list[dict] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append({"headers": dict(request.headers), "json": json.loads(request.read() or b"{}")})
        item = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            return item(request)
        return item


def _client(transport: httpx.BaseTransport) -> openai.OpenAI:
    return openai.OpenAI(api_key=SECRET_KEY, base_url="http://scripted.invalid/v1", max_retries=0,
                         http_client=httpx.Client(transport=transport))


def _cfg(**kw) -> LLMConfig:
    kw.setdefault("backoff_base", 0.001)
    kw.setdefault("base_url", "http://scripted.invalid/v1")
    return make_config(kw.pop("model", "scripted-model"), **kw)


def _run(transport, cfg=None, **kw):
    retries: list[tuple] = []
    reply = complete(cfg or _cfg(), MSGS, api_key=SECRET_KEY, client=_client(transport),
                         on_retry=lambda *a: retries.append(a), **kw)
    return reply, retries


# --------------------------------------------------------------------------- transient errors


@pytest.mark.parametrize("fault,error_class", [("rate_limit", "RateLimitError"),
                                                ("server_error", "InternalServerError"),
                                                ("timeout", "APITimeoutError")])
def test_transient_faults_are_retried_on_schedule_then_give_up(fault, error_class):
    cfg = make_config(offline=True, backoff_base=0.001, faults={fault: 1.0})
    retries: list[tuple] = []
    with pytest.raises(LLMTransientError) as err:
        complete(cfg, MSGS, on_retry=lambda *a: retries.append(a))
    assert [r[0] for r in retries] == [1, 2, 3, 4]
    assert [r[1] for r in retries] == pytest.approx([0.002, 0.005, 0.010, 0.010])
    assert {r[2] for r in retries} == {error_class}
    assert all(isinstance(r[3], str) and r[3] for r in retries)
    assert err.value.attempts == 5 and err.value.last_error_class == error_class
    assert isinstance(err.value, LLMError) and "5 attempts" in str(err.value)
    assert "\n" not in str(err.value) and "offline model" in str(err.value)


def test_transient_then_success():
    transport = Scripted(_err(503, "overloaded", "server_error"), httpx.ConnectError("refused"), _ok("hello"))
    reply, retries = _run(transport)
    assert reply["text"] == "hello" and reply["attempts"] == 3
    assert [(r[0], r[2]) for r in retries] == [(1, "InternalServerError"), (2, "APIConnectionError")]
    assert [r[1] for r in retries] == pytest.approx([0.002, 0.005])
    assert len(transport.requests) == 3


def test_offline_faults_recover_within_a_call():
    """With realistic rates some attempts fail, yet the calls get through, reproducibly."""
    cfg = make_config(offline=True, backoff_base=0.001, seed=11,
                          faults={"rate_limit": 0.15, "server_error": 0.15, "timeout": 0.05})
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], HISTORY, 1, [])
    runs = []
    for _ in range(2):
        attempts = []
        for i in range(8):
            turn = msgs[:-1] + [{"role": "user", "content": msgs[-1]["content"] + f"\n(turn {i})"}]
            try:
                attempts.append(complete(cfg, turn)["attempts"])
            except LLMTransientError:  # 5 failures in a row: ~0.3 % per call at these rates
                attempts.append(0)
        runs.append(attempts)
    assert runs[0] == runs[1], "the n-th attempt of a request fails or succeeds the same way every run"
    assert max(runs[0]) > 1 and runs[0].count(0) <= 1


def test_retry_after_is_honoured_as_a_floor_and_capped():
    transport = Scripted(_err(429, "slow down", "requests", headers={"Retry-After": "7"}),
                         _err(429, "slow down", "requests", headers={"Retry-After": "1"}),
                         _err(429, "slow down", "requests", headers={"retry-after-ms": "12500"}),
                         _err(429, "slow down", "requests", headers={"Retry-After": "3600"}),
                         _ok())
    reply, retries = _run(transport)
    assert reply["attempts"] == 5
    # 7 s > 2 s scheduled; 1 s < 5 s scheduled; 12.5 s > 10 s; 3600 s capped at 30 s
    assert [r[1] for r in retries] == pytest.approx([0.007, 0.005, 0.0125, 0.030])


def test_retry_budget_stops_early(monkeypatch):
    monkeypatch.setattr(defaults, "LLM_RETRY_BUDGET_S", 0.05)
    transport = Scripted(_err(500, "boom", "server_error"))
    with pytest.raises(LLMTransientError) as err:
        _run(transport, _cfg(backoff_base=0.01))
    # waits 0.02 then 0.05: the second would end past 0.05 s, so only 2 attempts
    assert err.value.attempts == 2 and len(transport.requests) == 2


def test_rq_job_timeout_is_never_swallowed():
    transport = Scripted(JobTimeoutException("Task exceeded maximum timeout value (2 seconds)"))
    retries: list = []
    with pytest.raises(JobTimeoutException):
        complete(_cfg(), MSGS, client=_client(transport), on_retry=lambda *a: retries.append(a))
    assert retries == [] and len(transport.requests) == 1


def test_rq_job_timeout_hidden_in_a_connection_error_is_dug_out():
    def wrapped(request: httpx.Request) -> httpx.Response:
        try:
            raise JobTimeoutException("Task exceeded maximum timeout value")
        except JobTimeoutException as exc:
            raise httpx.ReadError("interrupted", request=request) from exc

    transport = Scripted(wrapped)
    with pytest.raises(JobTimeoutException):
        complete(_cfg(), MSGS, client=_client(transport))
    assert len(transport.requests) == 1


# --------------------------------------------------------------------------- permanent errors


def test_401_fails_at_once_with_the_fix_and_without_the_key():
    transport = Scripted(_err(401, f"Incorrect API key provided: {SECRET_KEY}", "invalid_request_error",
                              "invalid_api_key"))
    retries: list = []
    with pytest.raises(LLMPermanentError) as err:
        complete(_cfg(), MSGS, api_key=SECRET_KEY, client=_client(transport),
                     on_retry=lambda *a: retries.append(a))
    assert len(transport.requests) == 1 and retries == []
    assert str(err.value) == ("The LLM server at http://scripted.invalid/v1 rejected the API key (401). Set "
                              "OPENAI_API_KEY to a valid key for it (every worker reads its own), or use --offline.")
    assert err.value.status_code == 401 and err.value.exit_code == 2
    assert transport.requests[0]["headers"]["authorization"] == f"Bearer {SECRET_KEY}"


def test_permanent_messages_never_leak_the_key():
    transport = Scripted(_err(400, f"bad field; your key {SECRET_KEY} is fine though"))
    with pytest.raises(LLMPermanentError) as err:
        complete(_cfg(), MSGS, api_key=SECRET_KEY, client=_client(transport))
    assert SECRET_KEY not in str(err.value) and "[redacted]" in str(err.value)
    assert "\n" not in str(err.value) and "TTRPG_MODEL" in str(err.value)
    assert not isinstance(err.value, ContextLengthError)


@pytest.mark.parametrize("status,needle", [(403, "(403)"), (404, "TTRPG_MODEL"), (422, "422")])
def test_other_client_errors_are_permanent(status, needle):
    transport = Scripted(_err(status, "nope"))
    with pytest.raises(LLMPermanentError) as err:
        _run(transport)
    assert needle in str(err.value) and len(transport.requests) == 1


@pytest.mark.parametrize("body", [
    {"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it",
               "type": "exceed_context_size_error", "n_prompt_tokens": 2100, "n_ctx": 2048}},
    {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted "
                          "in 9000 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}},
    {"object": "error", "message": "This model's maximum context length is 2048 tokens.", "type": "BadRequestError",
     "code": 400},
])
def test_context_length_400_is_classified(body):
    transport = Scripted(httpx.Response(400, json=body))
    with pytest.raises(ContextLengthError) as err:
        _run(transport)
    assert isinstance(err.value, LLMPermanentError)
    assert "TTRPG_CONTEXT_WINDOW" in str(err.value) and len(transport.requests) == 1


def test_context_length_error_from_the_offline_server():
    """A system prompt alone larger than the window: trimming cannot help, the server says 400."""
    cfg = make_config(offline=True, context_window=100)
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], HISTORY, 1, [])
    with pytest.raises(ContextLengthError):
        complete(cfg, msgs)


# --------------------------------------------------------------------------- accounting & plumbing


def test_tokens_are_estimated_when_usage_is_missing():
    reply, _ = _run(Scripted(_ok("I try to open the hatch.", usage=False)))
    assert reply["tokens_estimated"] is True
    assert reply["prompt_tokens"] == estimate_tokens(MSGS) > 0
    assert reply["completion_tokens"] == estimate_text_tokens("I try to open the hatch.") > 0
    reply, _ = _run(Scripted(_ok("hi")))
    assert reply["tokens_estimated"] is False and (reply["prompt_tokens"], reply["completion_tokens"]) == (11, 2)


def test_reply_shape_offline():
    cfg = make_config(offline=True, seed=5, latency_ms=20)
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], HISTORY, 1, [])
    reply = complete(cfg, msgs, max_tokens=200)
    assert set(reply) >= {"text", "model", "prompt_tokens", "completion_tokens", "tokens_estimated",
                          "latency_ms", "attempts"}
    assert reply["model"] == "ttrpg-offline" and reply["attempts"] == 1 and reply["text"]
    assert reply["latency_ms"] >= 20 and reply["tokens_estimated"] is False
    json.dumps(reply)


def test_request_carries_model_max_tokens_and_seed():
    transport = Scripted(_ok())
    _run(transport, _cfg(seed=42), max_tokens=123)
    sent = transport.requests[0]["json"]
    assert sent["model"] == "scripted-model" and sent["max_tokens"] == 123 and sent["seed"] == 42
    assert sent["messages"] == MSGS


def test_max_completion_tokens_fallback():
    transport = Scripted(_err(400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                   "Use 'max_completion_tokens' instead.", code="unsupported_parameter"), _ok("yo"))
    reply, retries = _run(transport, max_tokens=50)
    assert reply["text"] == "yo" and retries == []
    assert "max_tokens" not in transport.requests[1]["json"]
    assert transport.requests[1]["json"]["max_completion_tokens"] == 50


def test_long_prompts_are_trimmed_to_the_context_window():
    history = [f"Turn {i}: " + "the crew bickered about fuel " * 8 for i in range(200)]
    msgs = character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], history, 1, [])
    assert estimate_tokens(msgs) > 2048
    reply = complete(make_config(offline=True, context_window=2048), msgs)
    assert reply["context_trimmed"] is True and reply["prompt_tokens"] <= 2048 * 0.8


def test_make_client():
    offline_cfg = make_config(offline=True, request_timeout_s=12.5)
    client = make_client(offline_cfg, api_key=None)
    assert client.max_retries == 0 and str(client.base_url).startswith(OFFLINE_BASE_URL)
    assert client.timeout == 12.5 and client.api_key == OFFLINE_API_KEY
    local = make_client(make_config("m", base_url="http://127.0.0.1:9/v1"), api_key=None)
    assert local.max_retries == 0 and local.api_key == LOCAL_SERVER_API_KEY
    with pytest.raises(LLMPermanentError) as err:
        make_client(make_config("gpt-4o-mini"), api_key=None)
    assert "OPENAI_API_KEY" in str(err.value)


def test_unreachable_server_is_transient():
    cfg = make_config("m", base_url="http://127.0.0.1:9/v1", backoff_base=0.001, request_timeout_s=2)
    with pytest.raises(LLMTransientError) as err:
        complete(cfg, MSGS)
    assert err.value.last_error_class == "APIConnectionError"


def test_config_is_json_and_keyless():
    cfg = make_config("m", base_url="http://x/v1", seed=3, faults={"overreach": 0.1}, context_window=4096)
    assert json.loads(json.dumps(cfg)) == cfg
    assert set(cfg) == set(LLMConfig.__annotations__)
    assert not any("key" in k for k in cfg)
    with pytest.raises(LLMConfigError):
        make_config()


def test_waits_scale_with_backoff_base():
    started = time.monotonic()
    with pytest.raises(LLMTransientError):
        complete(make_config(offline=True, backoff_base=0.01, faults={"server_error": 1.0}), MSGS)
    assert time.monotonic() - started >= 0.27  # (2 + 5 + 10 + 10) * 0.01


# --------------------------------------------------------------------------- context shrinking


def _context_400(n_ctx: int | None = None, n_prompt: int | None = None) -> httpx.Response:
    if n_ctx:  # llama.cpp's shape
        return httpx.Response(400, json={"error": {
            "code": 400, "message": f"request ({n_prompt} tokens) exceeds the available context size ({n_ctx} tokens), "
                                    "try increasing it", "type": "exceed_context_size_error",
            "n_prompt_tokens": n_prompt, "n_ctx": n_ctx}})
    return httpx.Response(400, json={"error": {  # OpenAI's shape
        "message": "This model's maximum context length is 1024 tokens.", "type": "invalid_request_error",
        "code": "context_length_exceeded"}})


def _long_action_prompt(lines: int = 120) -> list[dict]:
    history = [f"Turn {i}: " + "the crew bickered about fuel and the broken airlock " * 4 for i in range(lines)]
    return character_action_messages(ZIX, SHIP, NARRATION, "Scan it", [], history, 1, [])


def test_context_refusal_is_answered_by_shrinking_not_by_resending():
    msgs = _long_action_prompt()
    full = estimate_tokens(msgs)

    def server(request: httpx.Request) -> httpx.Response:  # counts tokens as we estimate them
        tokens = estimate_tokens(json.loads(request.read())["messages"])
        return _context_400(1024, tokens) if tokens > 1024 else _ok("I try to scan it.")

    transport = Scripted(server)
    shrinks: list[tuple[int, int]] = []
    reply = complete(_cfg(), msgs, api_key=SECRET_KEY, client=_client(transport), max_tokens=64,
                         on_retry=lambda *a: pytest.fail("a context refusal is not a transient error"),
                         on_shrink=lambda a, b: shrinks.append((a, b)))
    assert reply["text"] == "I try to scan it." and reply["context_shrinks"] == 1 and reply["context_trimmed"]
    assert len(transport.requests) == 2 and reply["attempts"] == 2
    first, second = (r["json"]["messages"] for r in transport.requests)
    assert first != second, "never the same request again"
    assert shrinks == [(estimate_tokens(first), estimate_tokens(second))]
    assert estimate_tokens(first) == full > 1024 >= estimate_tokens(second)
    assert second[0] == msgs[0], "the character sheet (system prompt) is never cut"
    assert "Earlier:" in second[-1]["content"], "older history is summarised, not dropped silently"
    assert "Scan it" in second[-1]["content"] and NARRATION.split()[-1] in second[-1]["content"]


def test_context_refusal_without_numbers_halves_the_window():
    msgs = _long_action_prompt()
    sizes: list[int] = []

    def server(request: httpx.Request) -> httpx.Response:
        tokens = estimate_tokens(json.loads(request.read())["messages"])
        sizes.append(tokens)
        return _context_400() if tokens > 900 else _ok("I try.")

    shrinks: list[tuple[int, int]] = []
    reply = complete(_cfg(context_window=8192), msgs, client=_client(Scripted(server)), max_tokens=64,
                         on_shrink=lambda a, b: shrinks.append((a, b)))
    assert reply["text"] == "I try." and reply["context_shrinks"] == len(shrinks) >= 1
    assert all(b < a for a, b in shrinks) and sizes == sorted(sizes, reverse=True) and sizes[-1] <= 900
    assert [a for a, _ in shrinks] == sizes[:-1]


def test_context_refusal_gives_up_when_nothing_more_can_go():
    msgs = _long_action_prompt()
    transport = Scripted(lambda request: _context_400(100, 5000))
    shrinks: list = []
    with pytest.raises(ContextLengthError) as err:
        complete(_cfg(), msgs, client=_client(transport), on_shrink=lambda *a: shrinks.append(a))
    assert 1 <= len(shrinks) <= defaults.LLM_CONTEXT_SHRINKS_MAX and len(transport.requests) == len(shrinks) + 1
    sent = [estimate_tokens(r["json"]["messages"]) for r in transport.requests]
    assert sent == sorted(set(sent), reverse=True), "every request shorter than the last"
    assert "after shrinking" in str(err.value) and "100 tokens" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- weak-model replies


def test_empty_reply_is_asked_once_more_with_the_next_seed():
    transport = Scripted(_ok("  \n "), _ok("I try to open the hatch."))
    reply, _ = _run(transport, _cfg(seed=9))
    assert reply["text"] == "I try to open the hatch." and reply["empty"] is False and reply["attempts"] == 2
    assert [r["json"]["seed"] for r in transport.requests] == [9, 10]
    assert transport.requests[0]["json"]["messages"] == transport.requests[1]["json"]["messages"]


def test_empty_twice_is_returned_empty_and_flagged():
    transport = Scripted(_ok(" "))
    reply, _ = _run(transport)
    assert reply["text"] == "" and reply["empty"] is True and reply["attempts"] == 2


# --------------------------------------------------------------------------- one clear line per failure


def test_server_down_names_the_server_and_the_cause():
    cfg = make_config("m", base_url="http://user:pw@127.0.0.1:9/v1?x=1", backoff_base=0.0001,
                          request_timeout_s=2)
    retries: list = []
    with pytest.raises(LLMTransientError) as err:
        complete(cfg, MSGS, api_key=SECRET_KEY, on_retry=lambda *a: retries.append(a))
    text = str(err.value)
    assert text.startswith("Cannot reach the LLM server at http://127.0.0.1:9/v1 (")
    assert "Connection refused" in text and "5 attempts" in text and "OPENAI_BASE_URL" in text
    assert "pw" not in text and SECRET_KEY not in text and "\n" not in text
    assert len(retries) == 4 and all("Connection refused" in r[3] for r in retries)


def test_5xx_burst_gives_one_line_with_status_and_server_message():
    transport = Scripted(_err(503, f"Loading model, key {SECRET_KEY}", "unavailable_error"))
    with pytest.raises(LLMTransientError) as err:
        _run(transport)
    text = str(err.value)
    assert "http://scripted.invalid/v1" in text and "HTTP 503: Loading model" in text and "5 attempts" in text
    assert SECRET_KEY not in text and "\n" not in text


def test_server_label_hides_credentials():
    assert server_label({"base_url": "https://me:secret@host.example:8443/v1/?token=abc"}) == \
        "https://host.example:8443/v1"
    assert server_label({"offline": True}) == "the offline model"


def test_shared_kv_cache_overflow_500_is_shrunk_not_retried():
    """llama.cpp with automatic slots shares one KV cache: concurrent requests that outgrow it
    get 500 "Context size has been exceeded." (measured with two 2200-token prompts on a
    4096 cache). Sending the same prompt again would fail the same way."""
    msgs = _long_action_prompt()
    sizes: list[int] = []

    def server(request: httpx.Request) -> httpx.Response:
        tokens = estimate_tokens(json.loads(request.read())["messages"])
        sizes.append(tokens)
        if len(sizes) == 1:
            return _err(500, "Context size has been exceeded.", "server_error", 500)
        return _ok("I try.")

    retries: list = []
    shrinks: list = []
    reply = complete(_cfg(context_window=8192), msgs, client=_client(Scripted(server)), max_tokens=64,
                         on_retry=lambda *a: retries.append(a), on_shrink=lambda *a: shrinks.append(a))
    assert reply["text"] == "I try." and retries == [] and shrinks == [(sizes[0], sizes[1])]
    assert sizes[1] < sizes[0]
    # any other 500 stays a transient error, retried as before
    reply, retries = _run(Scripted(_err(500, "boom", "server_error"), _ok("ok")))
    assert reply["text"] == "ok" and len(retries) == 1


def test_config_caps_every_reply():
    transport = Scripted(_ok())
    _run(transport, _cfg(max_tokens=48), max_tokens=300)
    _run(transport, _cfg(max_tokens=48), max_tokens=20)
    _run(transport, _cfg(), max_tokens=300)
    assert [r["json"]["max_tokens"] for r in transport.requests] == [48, 20, 300]


# --------------------------------------------------------------------------- hostile jobs and servers


def test_a_job_gets_only_the_workers_own_or_an_allowed_endpoint():
    own = "http://gpu-1:8080/v1"
    allowed = ("https://llm.internal/v1/", " http://gpu-2:8080/v1")
    assert endpoint_for_job(None, own) == own  # a job naming none gets the worker's own
    assert endpoint_for_job(None, None) is None  # ... which may be the SDK's default (OpenAI)
    for same in ("http://GPU-1:8080/v1/", "HTTP://gpu-1:8080/v1", "http://user:pw@gpu-1:8080/v1?x=1"):
        assert endpoint_for_job(same, own) == own  # the worker's spelling, never the job's
    assert endpoint_for_job("https://llm.internal:443/v1", own, allowed) == "https://llm.internal/v1/"
    assert endpoint_for_job("http://gpu-2:8080/v1/", own, allowed) == "http://gpu-2:8080/v1"
    assert endpoint_for_job("https://api.openai.com/v1/", None) is None
    for other in ("http://gpu-1:8081/v1", "https://gpu-1:8080/v1", "http://gpu-1:8080/v2", "http://gpu-1:8080",
                  "http://gpu-1:8080/v1/extra", "http://evil.example/v1", "file:///etc/passwd", "not a url",
                  "http://gpu-1:99999/v1", "https://api.openai.com/v1"):
        with pytest.raises(LLMPermanentError) as err:
            endpoint_for_job(other, own, allowed)
        assert "TTRPG_ALLOWED_BASE_URLS" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(LLMPermanentError) as err:
        endpoint_for_job("http://user:secret@x:1/v1?token=abc\x1b]52;c;x\x07", own)
    assert str(err.value) == ("This worker does not send its key to http://x:1/v1 (the job's endpoint); set "
                              "OPENAI_BASE_URL or TTRPG_ALLOWED_BASE_URLS on the worker to allow it.")


def test_a_long_reply_is_cut_and_says_so():
    from ttrpg import defaults

    reply, _ = _run(Scripted(_ok("y" * 50_000)))
    assert reply["text"] == "y" * defaults.LLM_REPLY_MAX_CHARS
    assert reply["truncated"] is True and reply["reply_chars"] == 50_000
    reply, _ = _run(Scripted(_ok("y" * 50_000)), _cfg(reply_max_chars=100))
    assert len(reply["text"]) == 100 and reply["truncated"] is True
    reply, _ = _run(Scripted(_ok("y" * 50_000)), {**_cfg(), "reply_max_chars": 10**9})  # a job cannot raise it
    assert len(reply["text"]) == defaults.LLM_REPLY_MAX_CHARS
    reply, _ = _run(Scripted(_ok("short")))
    assert reply["truncated"] is False and reply["reply_chars"] == 5


@pytest.mark.parametrize("response,needle", [
    (httpx.Response(200, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}),
     "an HTML page"),
    (httpx.Response(200, content=b'{"choices": [{"mess', headers={"content-type": "application/json"}),
     "broken or truncated JSON"),
    (httpx.Response(200, json={"object": "chat.completion"}), "without a chat completion's choices"),
    (httpx.Response(200, json={"choices": []}), "without a chat completion's choices"),
    (httpx.Response(200, json={"choices": ["text"]}), "without a chat completion's choices"),
    (httpx.Response(200, text="OK", headers={"content-type": "text/plain"}), "not JSON (text/plain)"),
    (httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000, headers={"content-type": "application/json"}),
     "broken or truncated JSON"),
])
def test_a_2xx_that_is_not_a_chat_completion_is_permanent_after_one_request(response, needle):
    transport = Scripted(response)
    with pytest.raises(LLMPermanentError) as err:
        _run(transport)
    assert len(transport.requests) == 1 and needle in str(err.value)
    assert "http://scripted.invalid/v1" in str(err.value) and "\n" not in str(err.value)


def test_odd_json_types_in_a_valid_reply_are_read_as_data():
    body = {"model": "m" * 10_000, "usage": {"prompt_tokens": "many", "completion_tokens": True},
            "choices": [{"message": {"content": [{"type": "text", "text": "part one, "}, {"text": "part two"}]},
                         "finish_reason": ["odd"]}]}
    reply, _ = _run(Scripted(httpx.Response(200, json=body)))
    assert reply["text"] == "part one, part two" and len(reply["model"]) == 200
    assert reply["tokens_estimated"] is True and reply["finish_reason"] == "['odd']"
