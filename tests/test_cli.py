"""CLI basics: version, help of every command without heavy imports, start-up."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import run_cli
from ttrpg import __version__


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ttrpg {__version__}"


def _all_command_paths():
    import typer.main

    from ttrpg.cli import app

    root = typer.main.get_command(app)
    paths = [[]]

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            paths.append(prefix + [name])
            walk(sub, prefix + [name])

    walk(root, [])
    return paths


def test_every_help_answers_without_importing_langgraph_or_openai():
    paths = _all_command_paths()
    assert ["redis", "status"] in paths
    code = (
        "import sys\n"
        "from ttrpg.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:] + ['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('langgraph', 'openai', 'rq', 'redis', 'httpx') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    for path in paths:
        result = subprocess.run([sys.executable, "-c", code, *path], capture_output=True, text=True)
        assert result.returncode == 0, (path, result.stderr)
        assert "HEAVY []" in result.stdout, (path, result.stdout[-300:])


def test_play_players_and_private_logs(tmp_path, redis_client, queue_name):
    """`play --players 1` seats only the first character; the CLI's umask 077 keeps the
    session log (whispers are secrets) and its directory private."""
    import os
    import stat
    import uuid

    from tests.conftest import ROOT
    from ttrpg.session.store import meta_key

    sid = "cli-" + uuid.uuid4().hex[:8]
    logs = tmp_path / "logs"
    result = run_cli("play", "--offline", "--players", "1", "--turns", "1", "--session", sid,
                     "--dm-script", str(ROOT / "ttrpg" / "data" / "demo_script.json"),
                     env={"TTRPG_LOG_DIR": str(logs)}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert redis_client.hget(meta_key(sid), "players") == b"1"
    assert stat.S_IMODE(os.stat(logs).st_mode) == 0o700
    files = list(logs.iterdir())
    assert files and all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)


def test_cli_umask_is_private():
    code = ("import os, ttrpg.cli as c\n"
            "os.umask(0o022); c.private_umask(); print(oct(os.umask(0)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "0o77"
