"""The embedded Redis: started once, reused, stopped, recovered after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import run_cli
from ttrpg import embedded


@pytest.fixture
def own_home(tmp_path):
    """A TTRPG_HOME with its own embedded server, so killing it does not disturb other tests."""
    home = tmp_path / "h"
    yield home
    embedded.stop(home)


def _redis_pids(home) -> list[int]:
    sock = str(embedded.paths(home).socket)
    out = subprocess.run(["pgrep", "-f", sock], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def test_start_twice_gives_one_server_and_stop_removes_it(own_home):
    env = {"TTRPG_HOME": str(own_home)}
    first = run_cli("redis", "start", env=env)
    assert first.returncode == 0, first.stderr
    assert "Started" in first.stderr
    second = run_cli("redis", "start", env=env)
    assert second.returncode == 0
    assert "Already running" in second.stderr
    assert len(_redis_pids(own_home)) == 1

    status = run_cli("redis", "status", "--json", env=env)
    import json

    info = json.loads(status.stdout)
    assert info["running"] and info["aof_enabled"]
    names = {m["name"] for m in info["modules"]}
    assert {"ReJSON", "search"} <= names
    assert info["url"].startswith("unix://")

    stop = run_cli("redis", "stop", env=env)
    assert stop.returncode == 0 and "Stopped" in stop.stderr
    assert _redis_pids(own_home) == []
    assert not embedded.paths(own_home).pidfile.exists()
    assert run_cli("redis", "status", env=env).returncode == 1


def test_kill_9_then_any_command_restarts_cleanly(own_home):
    url, started = embedded.start(own_home)
    assert started
    import redis

    client = redis.Redis.from_url(url)
    client.set("survives", "yes")
    time.sleep(1.2)  # appendfsync everysec
    pid = embedded.running_pid(own_home)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while embedded._is_redis_process(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert embedded.paths(own_home).pidfile.exists()  # stale pid file left by the crash
    assert embedded.running_pid(own_home) is None

    result = run_cli("redis", "status", "--json", env={"TTRPG_HOME": str(own_home)})
    assert result.returncode == 1  # status reports, it does not start
    again = embedded.ensure_running(own_home)
    new_pid = embedded.running_pid(own_home)
    assert new_pid and new_pid != pid
    assert redis.Redis.from_url(again).get("survives") == b"yes"  # AOF replayed


def test_concurrent_starters_share_one_server(own_home):
    env = dict(os.environ, TTRPG_HOME=str(own_home))
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "ttrpg", "redis", "start"], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=60)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum("Started" in o for o in outputs) == 1
    assert len(_redis_pids(own_home)) == 1


def test_long_home_path_falls_back_to_short_socket(tmp_path):
    home = tmp_path / ("x" * 120)
    p = embedded.paths(home)
    assert len(str(p.socket)) <= 100
    assert p.socket.parent == embedded.Path("/tmp")
