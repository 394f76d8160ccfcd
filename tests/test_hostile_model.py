"""Hostile input stays out: jobs written straight into Redis, and model servers that answer anything.

Real parts throughout: the embedded Redis, one real worker process of each class (warm,
spawn, fork, simple) on a queue of its own, the real ``openai`` client over real HTTP. The
only stand-in is :mod:`tests.fake_llm_server`, at the network edge: a server on 127.0.0.1
that records every request (headers included) and answers what each route is scripted to.

The workers are configured as an operator would: ``OPENAI_API_KEY`` (a secret),
``OPENAI_BASE_URL`` (the fake server's ``legit`` route) and ``TTRPG_ALLOWED_BASE_URLS`` (the
routes playing misbehaving models). The ``attacker`` route is configured nowhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
import uuid

import pytest
from rq import Callback, Webhook
from rq.job import JobStatus
from rq.results import Result

from tests.fake_llm_server import FakeLLMServer, chat, cut, error, hang, raw
from ttrpg.constants import JOB_REPLY
from ttrpg.exceptions import LLMPermanentError, LLMTransientError
from ttrpg.fleet.local import local_workers
from ttrpg.jobs.allowlist import job_queue
from ttrpg.jobs.fanout import run_jobs
from ttrpg.llm.client import complete
from ttrpg.llm.config import make_config
from ttrpg.research import events
from ttrpg.settings import get_settings

SECRET = "sk-secret-hostile-0123456789abcdef"
CLASSES = ("forkserver", "warm", "spawn", "fork", "simple")
HOSTILE = ("big", "escapes", "html", "ratelimit")
ESCAPES = ("[/] [link=http://x]click[/link] [bold red]loud[/] "
           "\x1b]8;;http://evil.example/\x1b\\a link\x1b]8;;\x1b\\ "   # OSC 8 hyperlink
           "\x1b]52;c;cm0gLXJmIH4=\x07 "                                 # OSC 52: set the clipboard
           "\x1b]0;new title\x07 \x1b[2J\x1b[H\x1b[31mred\x1b[0m")      # window title, CSI clear/move/colour
HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer() as s:
        s.route("legit", chat("a legit reply"))
        s.route("attacker", chat("you should never see this"))
        s.route("big", chat("x" * 1_000_000))
        s.route("escapes", chat(ESCAPES))
        s.route("html", raw(HTML, "text/html"))
        s.route("truncated", raw('{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "mess'))
        s.route("nochoices", raw('{"id": "chatcmpl-1", "object": "chat.completion", "model": "m"}'))
        s.route("errorbody", raw('{"error": {"message": "quota exceeded", "type": "insufficient_quota"}}'))
        s.route("ratelimit", error(429, "Rate limit reached. Please try again in 1s.", {"Retry-After": "1"}),
                chat("answered after the wait"))
        s.route("dropped", cut(chat("a reply cut short by a dying server " * 50), 300), chat("whole, the 2nd time"))
        s.route("silent", hang())
        s.route("hook", raw("{}"))
        s.route("webhook", raw("{}"))
        yield s


@pytest.fixture(scope="module")
def hooks_dir(tmp_path_factory, server):
    """A module a job's callbacks name: importing it leaves a file, calling it makes a request."""
    path = tmp_path_factory.mktemp("hooks")
    (path / "ttrpg_evil_hooks.py").write_text(
        "import urllib.request\n"
        f"open({str(path / 'imported')!r}, 'w').close()\n\n"
        "def hook(*args, **kwargs):\n"
        f"    urllib.request.urlopen({server.url('hook')!r} + '/called', timeout=5).read()\n")
    return path


@pytest.fixture(scope="module")
def fleets(ttrpg_home, server, hooks_dir):
    """One real worker of each class, each on a queue of its own: {class: queue name}."""
    settings = dataclasses.replace(get_settings(), openai_base_url=server.url("legit"), openai_api_key=SECRET,
                                   allowed_base_urls=tuple(server.url(n) for n in HOSTILE))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(hooks_dir), old) if p)
    queues = {cls: f"h-{cls}-{uuid.uuid4().hex[:8]}" for cls in CLASSES}
    try:
        with contextlib.ExitStack() as stack:
            fleets = [stack.enter_context(local_workers(1, [name], cls, settings)) for cls, name in queues.items()]
            yield queues
            for fleet in fleets:  # ask all four to stop at once; each stops in 1-2 s
                for proc in fleet.procs:
                    proc.send_signal(signal.SIGTERM)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _request(session_id: str, base_url: str | None, player: str = "p1", **cfg) -> dict:
    cfg.setdefault("backoff_base", 0.001)
    cfg.setdefault("request_timeout_s", 10)
    return {"session_id": session_id, "campaign_id": "c", "turn": 1, "phase": "intent", "player_id": player,
            "attempt": 1, "llm": make_config("fake-model", base_url=base_url, **cfg), "max_tokens": 60,
            "messages": [{"role": "system", "content": "You are a pilot."},
                         {"role": "user", "content": "The derelict drifts. What do you do?"}]}


def _result(job, timeout: float = 30.0) -> Result:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = job.latest_result(timeout=2)
        if result is not None and result.type != Result.Type.RETRIED:
            return result
    raise AssertionError(f"job {job.id} did not finish within {timeout} s ({job.get_status(refresh=True)})")


def _llm_calls(redis_client, session_id: str) -> list[dict]:
    return [e for e in events.all_events(redis_client, session_id) if e["event_type"] == "llm_call"]


# --------------------------------------------------------------------------- keys go where the operator said


@pytest.mark.parametrize("worker_class", CLASSES)
def test_a_job_naming_another_endpoint_gets_neither_the_key_nor_a_request(worker_class, fleets, server,
                                                                          redis_client, session_id):
    queue = job_queue(fleets[worker_class], redis_client)
    attacker = server.url("attacker")
    # Written straight into the queue, as anyone with write access to Redis could.
    evil = queue.enqueue("ttrpg.jobs.functions.ask_player", _request(session_id, attacker, "p1"))
    hidden = queue.enqueue("ttrpg.jobs.functions.ask_player",  # credentials in the URL change nothing
                           _request(session_id, attacker.replace("http://", "http://user:pw@"), "p2"))
    # The worker's own endpoint, spelled differently, is its own endpoint: the key goes there.
    own = queue.enqueue("ttrpg.jobs.functions.ask_player", _request(session_id, f"HTTP://127.0.0.1:{server.port}/legit/v1/", "p3"))
    started = time.monotonic()
    refused = [_result(evil).return_value, _result(hidden).return_value]
    elapsed = time.monotonic() - started
    fine = _result(own).return_value

    assert server.requests_to("attacker") == []
    for value in refused:
        assert value["ok"] is False and value["error_class"] == "LLMPermanentError"
        assert value["message"] == (f"This worker does not send its key to {attacker} (the job's endpoint); set "
                                    "OPENAI_BASE_URL or TTRPG_ALLOWED_BASE_URLS on the worker to allow it.")
        assert SECRET not in json.dumps(value)
    for job in (evil, hidden):
        assert job.get_status(refresh=True) == JobStatus.FINISHED and len(job.results()) == 1  # not retried
    calls = {e["player_id"]: e for e in _llm_calls(redis_client, session_id)}
    assert calls["p1"]["outcome"] == "error" and calls["p1"]["error_class"] == "LLMPermanentError"

    assert fine["ok"] and fine["text"] == "a legit reply"
    legit = [r for r in server.requests_to("legit") if r.json()["messages"][0]["content"] == "You are a pilot."]
    assert legit and all(r.headers["authorization"] == f"Bearer {SECRET}" for r in legit)
    print(f"{worker_class}: two refusals in {elapsed:.2f} s")


# --------------------------------------------------------------------------- hooks a job carries


@pytest.mark.parametrize("worker_class", CLASSES)
def test_webhooks_and_callbacks_a_job_carries_call_nothing_even_when_it_is_refused(worker_class, fleets, server,
                                                                                   hooks_dir, redis_client):
    queue = job_queue(fleets[worker_class], redis_client)
    webhooks = [Webhook(server.url("webhook") + f"/{status}", status, method="POST", headers={"X-Evil": "1"})
                for status in ("finished", "failed")]
    hooks = dict(on_success=Callback("ttrpg_evil_hooks.hook"), on_failure=Callback("ttrpg_evil_hooks.hook"),
                 on_stopped=Callback("ttrpg_evil_hooks.hook"), webhooks=webhooks)
    allowed = queue.enqueue("ttrpg.jobs.functions.probe", **hooks)
    refused = queue.enqueue("os.getpid", **hooks)
    assert redis_client.hget(allowed.key, "webhooks")  # they really are in Redis
    assert _result(allowed).type == Result.Type.SUCCESSFUL
    assert _result(refused).type == Result.Type.FAILED and "refused" in refused.latest_result().exc_string
    # Webhooks go out after the result is stored: one more job on the same worker runs only
    # once the previous one is completely done.
    assert _result(queue.enqueue("ttrpg.jobs.functions.probe")).type == Result.Type.SUCCESSFUL
    assert server.requests_to("webhook") == []
    assert server.requests_to("hook") == []
    assert not (hooks_dir / "imported").exists()


def test_the_dms_registry_sweep_runs_no_callback_and_sends_no_webhook(server, hooks_dir, redis_client,
                                                                                  queue_name, monkeypatch):
    """The DM's process sweeps RQ's started-job registry while it waits (ttrpg.jobs.fanout). RQ's own
    job class would import and call the failure callback, and send the webhook, of a job an
    attacker left there "abandoned"; the sweep reads jobs as AllowListedJob."""
    from rq.registry import StartedJobRegistry

    from ttrpg.jobs import fanout

    monkeypatch.syspath_prepend(str(hooks_dir))
    queue = job_queue(queue_name, redis_client)

    def abandoned():
        job = queue.enqueue("ttrpg.jobs.functions.probe", on_failure=Callback("ttrpg_evil_hooks.hook"),
                            webhooks=[Webhook(server.url("webhook") + "/sweep", "failed")])
        job.set_status(JobStatus.STARTED)
        redis_client.zadd(StartedJobRegistry(queue=queue).key, {f"{job.id}:exec": 1})
        return job

    job = abandoned()
    fanout.sweep_abandoned(queue)
    assert job.get_status(refresh=True) == JobStatus.FAILED  # swept all the same
    time.sleep(0.3)
    assert server.requests_to("webhook") == [] and server.requests_to("hook") == []
    assert not (hooks_dir / "imported").exists()

    # The same sweep with RQ's default job class does call the attacker's code: the check above is real.
    before = len(server.requests_to("webhook"))
    abandoned()
    StartedJobRegistry(queue=queue).cleanup()
    assert (hooks_dir / "imported").exists()
    (hooks_dir / "imported").unlink()
    assert len(server.wait_for("webhook", before + 1)) == before + 1


# --------------------------------------------------------------------------- what a model server sends back


def test_a_megabyte_reply_is_cut_logged_and_never_stored_whole(fleets, server, redis_client, session_id):
    queue = job_queue(fleets["forkserver"], redis_client)
    job = queue.enqueue("ttrpg.jobs.functions.ask_player", _request(session_id, server.url("big")))
    value = _result(job).return_value
    assert value["ok"] and value["truncated"] is True and value["reply_chars"] == 1_000_000
    assert value["text"] == "x" * 4000
    (call,) = _llm_calls(redis_client, session_id)
    assert call["truncated"] is True and call["reply_chars"] == 1_000_000
    stored = {
        "result stream": sum(len(k) + len(v) for _, fields in redis_client.xrange(Result.get_key(job.id))
                             for k, v in fields.items()),
        "stored reply": len(redis_client.get(JOB_REPLY.format(job_id=job.id)) or b""),
        "job hash": sum(len(k) + len(v) for k, v in redis_client.hgetall(job.key).items()),
    }
    print(f"1 MB reply: bytes kept in Redis {stored}")
    assert all(n < 10_000 for n in stored.values()), stored


@pytest.mark.parametrize("route,problem", [("html", "an HTML page"),
                                           ("truncated", "broken or truncated JSON"),
                                           ("nochoices", "JSON without a chat completion's choices"),
                                           ("errorbody", "it says: quota exceeded")])
def test_a_200_that_is_not_a_chat_completion_is_one_request_and_a_permanent_error(route, problem, server):
    url = server.url(route)
    before = len(server.requests_to(route))
    retries: list = []
    with pytest.raises(LLMPermanentError) as err:
        complete(make_config("fake-model", base_url=url, backoff_base=0.001), [
            {"role": "user", "content": "Hi."}], api_key=SECRET, on_retry=lambda *a: retries.append(a))
    text = str(err.value)
    assert len(server.requests_to(route)) - before == 1 and retries == []
    assert url in text and problem in text and "OPENAI_BASE_URL" in text
    assert "\n" not in text and SECRET not in text


def test_a_body_past_the_byte_limit_is_not_read_on(server, monkeypatch):
    from ttrpg import defaults

    monkeypatch.setattr(defaults, "LLM_RESPONSE_MAX_BYTES", 100_000)
    before = len(server.requests_to("big"))
    with pytest.raises(LLMPermanentError) as err:
        complete(make_config("fake-model", base_url=server.url("big"), backoff_base=0.001),
                     [{"role": "user", "content": "Hi."}], api_key=SECRET)
    assert "more than 100,000 bytes" in str(err.value) and server.url("big") in str(err.value)
    assert len(server.requests_to("big")) - before == 1


def test_a_connection_dying_mid_reply_is_retried_and_one_never_answering_times_out(server):
    retries: list = []
    reply = complete(make_config("fake-model", base_url=server.url("dropped"), backoff_base=0.001),
                         [{"role": "user", "content": "Hi."}], api_key=SECRET, on_retry=lambda *a: retries.append(a))
    assert reply["text"] == "whole, the 2nd time" and [r[2] for r in retries] == ["APIConnectionError"]
    started = time.monotonic()
    with pytest.raises(LLMTransientError) as err:
        complete(make_config("fake-model", base_url=server.url("silent"), backoff_base=0.001,
                                     request_timeout_s=0.5), [{"role": "user", "content": "Hi."}], api_key=SECRET)
    assert err.value.last_error_class == "APITimeoutError" and server.url("silent") in str(err.value)
    assert time.monotonic() - started < 10


def test_an_html_200_fails_the_job_at_once_with_a_line_naming_the_server(fleets, server, redis_client, session_id):
    queue = job_queue(fleets["fork"], redis_client)
    before = len(server.requests_to("html"))
    value = _result(queue.enqueue("ttrpg.jobs.functions.ask_player", _request(session_id, server.url("html")))).return_value
    assert value["ok"] is False and value["error_class"] == "LLMPermanentError"
    assert f"The LLM server at {server.url('html')} answered 200 with an HTML page" in value["message"]
    assert "502 Bad Gateway" in value["message"]
    assert len(server.requests_to("html")) - before == 1


def test_markup_and_escape_sequences_come_back_as_data(fleets, server, redis_client, session_id):
    queue = job_queue(fleets["spawn"], redis_client)
    value = _result(queue.enqueue("ttrpg.jobs.functions.ask_player", _request(session_id, server.url("escapes")))).return_value
    assert value["ok"] and value["text"] == ESCAPES and value["truncated"] is False


# --------------------------------------------------------------------------- progress for the DM's screen


def test_progress_reports_a_rate_limited_player_as_retrying_before_done(fleets, server, redis_client, session_id):
    snapshots: list[dict] = []
    # Retry-After: 1 is honoured as a floor of the 2 s scheduled wait; backoff_base 0.5 makes it 1 s.
    reqs = {"p1": _request(session_id, server.url("ratelimit"), backoff_base=0.5)}
    started = time.monotonic()
    out = run_jobs(redis_client, fleets["forkserver"], reqs, session_id=session_id, turn=1, phase="intent", attempt=1,
                   on_progress=lambda s: snapshots.append(s))
    elapsed = time.monotonic() - started
    assert out.results["p1"]["text"] == "answered after the wait" and out.results["p1"]["attempts"] == 2
    statuses = [s["p1"]["status"] for s in snapshots]
    assert "retrying" in statuses and statuses[-1] == "done"
    assert statuses.index("retrying") < statuses.index("done")
    assert set(statuses) <= {"queued", "thinking", "retrying", "done"}
    retrying = next(s["p1"] for s in snapshots if s["p1"]["status"] == "retrying")
    assert retrying["detail"].startswith("rate limit, retry 1 in ")
    times = [s["p1"]["elapsed_s"] for s in snapshots]
    assert times == sorted(times) and times[-1] <= elapsed
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:-1])]
    print(f"{len(snapshots)} progress reports in {elapsed:.2f} s: {statuses}; gaps {gaps}")
    assert len(snapshots) >= 3
