"""External Redis: reachable and with the modules, or a clear error and exit code."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import run_cli
from ttrpg import embedded
from ttrpg.connection import mask_url


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
