"""External Redis: reachable and with the modules, or a clear error and exit code."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import run_cli
from ttrpg.backend import embedded
from ttrpg.backend.connection import mask_url


@pytest.fixture
def plain_redis(tmp_path):
    """The embedded binary started WITHOUT the modules: a Redis our checkpointer cannot use."""
    sock = tmp_path / "plain.sock"
    proc = subprocess.Popen([str(embedded.server_binary()), "--port", "0", "--unixsocket", str(sock),
                             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(10)


def test_server_without_modules_exits_2_with_clear_message(plain_redis):
    result = run_cli("redis", "status", env={"TTRPG_REDIS_URL": plain_redis})
    assert result.returncode == 2
    assert "lacks the RedisJSON and RediSearch module(s)" in result.stderr
    assert "Redis 8 or redis-stack-server" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3


def test_unreachable_redis_is_one_clear_line(tmp_path):
    result = run_cli("redis", "status", env={"TTRPG_REDIS_URL": f"unix://{tmp_path}/nothing.sock"})
    assert result.returncode == 1
    assert "Cannot reach Redis" in result.stderr
    assert "Traceback" not in result.stderr


def test_redis_url_falls_back_to_REDIS_URL(plain_redis):
    result = run_cli("redis", "status", env={"REDIS_URL": plain_redis})
    assert result.returncode == 2


def test_password_is_masked():
    assert mask_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert "s3cret" not in mask_url("redis://:s3cret@host")
    assert mask_url("redis://:p@ss/w:rd@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("redis://s3cret@host/0") == "redis://***@host/0"
    assert mask_url("unix:///run/r.sock?db=0&password=s3cret") == "unix:///run/r.sock?db=0&password=***"
    assert mask_url("unix:///run/redis.sock") == "unix:///run/redis.sock"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"


PASSWORD = "c0ffee" * 8


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory):
    """Redis 8 with the modules on loopback TCP with a password, given on stdin as the
    compose file and the systemd drop-in do (never on the command line)."""
    import socket
    import sys

    d = tmp_path_factory.mktemp("pw")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ttrpg.fleet.monitor", "redis-server", "-", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(d)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    proc.stdin.write(f'requirepass "{PASSWORD}"\n')
    proc.stdin.close()
    import redis

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, password=PASSWORD).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    assert PASSWORD.encode() not in open(f"/proc/{proc.pid}/cmdline", "rb").read()
    yield port
    proc.terminate()
    proc.wait(10)


def test_password_in_the_url_is_used_and_never_shown(password_redis):
    url = f"redis://:{PASSWORD}@127.0.0.1:{password_redis}/0"
    result = run_cli("redis", "status", "--json", env={"TTRPG_REDIS_URL": url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["url"] == f"redis://:***@127.0.0.1:{password_redis}/0"
    assert PASSWORD not in result.stdout + result.stderr


def test_missing_password_says_where_it_goes(password_redis):
    result = run_cli("redis", "status", env={"TTRPG_REDIS_URL": f"redis://127.0.0.1:{password_redis}/0"})
    assert result.returncode == 1
    assert "needs a password, and the URL has none" in result.stderr
    assert "redis://:PASSWORD@HOST:6379/0" in result.stderr and "Traceback" not in result.stderr


def test_wrong_password_is_masked(password_redis):
    result = run_cli("redis", "status", env={"TTRPG_REDIS_URL": f"redis://:wrong-s3cret@127.0.0.1:{password_redis}/0"})
    assert result.returncode == 1
    assert "refused the password" in result.stderr and "redis://:***@127.0.0.1" in result.stderr
    assert "wrong-s3cret" not in result.stderr and "Traceback" not in result.stderr
