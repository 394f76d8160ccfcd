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
