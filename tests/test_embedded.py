"""The embedded Redis: started once, reused, stopped, recovered after kill -9."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import pytest

from tests.conftest import run_cli
from ttrpg.backend import embedded


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


def _mode(path) -> int:
    st = os.lstat(path)
    assert st.st_uid == os.geteuid(), path
    return stat.S_IMODE(st.st_mode)


def test_home_socket_pid_log_and_data_are_private(own_home):
    result = run_cli("redis", "start", env={"TTRPG_HOME": str(own_home)})
    assert result.returncode == 0, result.stderr
    p = embedded.paths(own_home)
    assert p.socket_dir == p.dir  # a short home keeps the socket inside it
    assert _mode(own_home) == 0o700
    assert _mode(p.dir) == 0o700
    assert _mode(p.data) == 0o700
    assert _mode(p.socket) == 0o700 and stat.S_ISSOCK(os.lstat(p.socket).st_mode)
    assert _mode(p.pidfile) == 0o600
    assert _mode(p.logfile) == 0o600
    aof = [f for f in p.data.rglob("*") if f.is_file()]
    assert aof and all(_mode(f) == 0o600 for f in aof)  # the AOF holds whispers


def test_shared_test_server_is_private(ttrpg_home):
    p = embedded.paths(ttrpg_home)
    assert _mode(p.socket_dir) == 0o700 and _mode(p.socket) == 0o700 and _mode(p.pidfile) == 0o600


def test_long_home_gets_a_private_random_socket_dir(tmp_path):
    home = tmp_path / ("x" * 120)
    made = []
    try:
        url, started = embedded.start(home)
        p = embedded.paths(home)
        made.append(p.socket_dir)
        assert started and url == p.url
        assert len(os.fsencode(str(p.socket))) <= embedded.SUN_PATH_MAX
        assert p.socket_dir.name.startswith("ttrpg-") and str(home) not in str(p.socket)
        assert _mode(p.socket_dir) == 0o700 and _mode(p.socket) == 0o700
        assert p.socket_record.read_text().strip() == str(p.socket_dir)
        assert _mode(p.socket_record) == 0o600
        # another process finds the same server through the record, whatever its environment
        status = run_cli("redis", "status", "--json", env={"TTRPG_HOME": str(home), "TMPDIR": str(tmp_path)})
        assert json.loads(status.stdout)["url"] == url
        embedded.stop(home)
        # the directory vanished (reboot, /tmp cleaner): the next start makes a new random one
        p.socket_dir.rmdir()
        url2, _ = embedded.start(home)
        made.append(embedded.paths(home).socket_dir)
        assert url2 != url and _mode(made[-1]) == 0o700
    finally:
        embedded.stop(home)
        for d in made:
            if d.exists():
                d.rmdir()


@pytest.mark.parametrize("which,mode,what,fix", [
    ("pidfile", 0o644, "pid file", "chmod 600"),
    ("dir", 0o755, "socket directory", "chmod 700"),
    ("socket", 0o777, "socket", "chmod 700"),
])
def test_too_open_server_files_are_refused(own_home, which, mode, what, fix):
    embedded.start(own_home)
    path = getattr(embedded.paths(own_home), which)
    old = stat.S_IMODE(os.lstat(path).st_mode)
    os.chmod(path, mode)
    try:
        result = run_cli("redis", "status", env={"TTRPG_HOME": str(own_home)})
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(lines) == 2
        assert f"Refusing to use the {what} {path}" in lines[0] and "lets other users reach it" in lines[0]
        assert f"{fix} {path}" in lines[1]
    finally:
        os.chmod(path, old)
    assert embedded.running_pid(own_home)


def test_files_of_another_user_are_refused(ttrpg_home, monkeypatch):
    from ttrpg.exceptions import UnsafePath

    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 4242)  # as if another user had made them
    with pytest.raises(UnsafePath, match=r"Refusing to use the pid file .*: it belongs to .*, not to you") as info:
        embedded.running_pid(ttrpg_home)
    assert info.value.exit_code == 2


def test_symlinked_socket_is_refused(tmp_path):
    from ttrpg.exceptions import UnsafePath

    target = tmp_path / "elsewhere.sock"
    link = tmp_path / "redis.sock"
    link.symlink_to(target)
    with pytest.raises(UnsafePath, match="symbolic link"):
        embedded.check_private(link, "socket")
