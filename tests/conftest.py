"""Test fixtures: one real embedded Redis per test run, isolation per test.

The whole run shares one embedded server in a temporary ``TTRPG_HOME`` (started here,
stopped at the end). Tests isolate themselves by unique queue names and session ids
(RediSearch only indexes database 0, so databases cannot be used to isolate).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def ttrpg_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    old = {k: os.environ.get(k) for k in ("TTRPG_HOME", "TTRPG_REDIS_URL", "REDIS_URL", "TTRPG_LOG_DIR",
                                           "OPENAI_API_KEY", "OPENAI_BASE_URL", "TTRPG_MODEL", "COLUMNS", "LINES")}
    # COLUMNS/LINES: pytest-xdist's workers export 80x24, which rich would prefer to the size of
    # the pseudo-terminal a test gives its child (tests that want a width pass COLUMNS themselves).
    for k in ("TTRPG_REDIS_URL", "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "TTRPG_MODEL", "COLUMNS", "LINES"):
        os.environ.pop(k, None)
    os.environ["TTRPG_HOME"] = str(home)
    os.environ["TTRPG_CHECK_EVENTS"] = "1"  # every event is checked against docs/events.md as it is emitted
    os.environ["TTRPG_LOG_DIR"] = str(home / "research_logs")
    from ttrpg.backend import embedded

    embedded.start(home)
    yield home
    embedded.stop(home)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def redis_client(ttrpg_home):
    from ttrpg.backend.connection import get_redis

    client = get_redis()
    yield client
    client.close()


@pytest.fixture
def queue_name(monkeypatch):
    """A queue of this test's own, also exported so child processes use it."""
    name = "t-" + uuid.uuid4().hex[:10]
    monkeypatch.setenv("TTRPG_QUEUE", name)
    return name


@pytest.fixture
def session_id():
    return "s-" + uuid.uuid4().hex[:10]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, input: str | None = None):
    """Run ``python -m ttrpg ARGS`` in a real subprocess (for exit codes, crashes, start-up)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "ttrpg", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, input=input, cwd=ROOT)


@pytest.fixture(scope="module")
def fleet(ttrpg_home, request):
    """Four real workers on a queue of this test module's own (the default class unless the
    module sets ``FLEET_CLASS``: fork workers cost less CPU per job where isolation is not the point).

    Yields the queue name; TTRPG_QUEUE is exported while the module runs so sessions and
    child processes use it.
    """
    from ttrpg.fleet.local import local_workers
    from ttrpg.fleet.workers import DEFAULT_WORKER_CLASS
    from ttrpg.settings import get_settings

    name = "m-" + uuid.uuid4().hex[:10]
    old = os.environ.get("TTRPG_QUEUE")
    os.environ["TTRPG_QUEUE"] = name
    try:
        with local_workers(4, [name], getattr(request.module, "FLEET_CLASS", DEFAULT_WORKER_CLASS), get_settings()):
            yield name
    finally:
        if old is None:
            os.environ.pop("TTRPG_QUEUE", None)
        else:
            os.environ["TTRPG_QUEUE"] = old


def offline_llm(**kw) -> dict:
    from ttrpg.llm.config import make_config
    from ttrpg.settings import get_settings

    kw.setdefault("seed", 3)
    return make_config(settings=get_settings(), offline=True, **kw)


class QuietUI:
    """A UI that records instead of printing (tests assert on what reached the DM)."""

    def __init__(self):
        self.steps, self.questions, self.failures = [], [], []

    def session_header(self, driver, values):
        pass

    def question(self, question, state):
        self.questions.append(question)

    def step(self, node, values, state):
        self.steps.append(node)

    def failure(self, phase, count, reason):
        self.failures.append((phase, count, reason))

    def session_end(self, driver, final):
        pass


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text``: worker, scheduler, horses."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if text.encode() in cmdline and stat[stat.rindex(b")") + 2:][:1] != b"Z":
            found.append(int(entry))
    return found


@pytest.fixture
def unchecked_events(monkeypatch):
    """For tests that write hand-made events (not ttrpg's own) straight into a stream."""
    from ttrpg.research import events

    monkeypatch.setenv("TTRPG_CHECK_EVENTS", "0")
    events._checking.cache_clear()
    yield
    monkeypatch.undo()
    events._checking.cache_clear()
