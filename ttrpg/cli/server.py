"""``ttrpg redis start | stop | status``: manage the embedded Redis server."""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
import typer

app = typer.Typer(help="Manage ttrpg's embedded Redis server (unix socket, AOF, JSON + Search modules).",
                  no_args_is_help=True)


@app.command()
def start() -> None:
    """Start the embedded Redis (a no-op if it already runs)."""
    from ttrpg.backend import embedded
    from ttrpg.console import err
    from ttrpg.settings import get_settings

    settings = get_settings()
    _warn_external(settings)
    url, started = embedded.start(settings.home)
    pid = embedded.running_pid(settings.home)
    err().print(f"{'Started' if started else 'Already running:'} embedded Redis at {url} (pid {pid})")


@app.command()
def stop() -> None:
    """Stop the embedded Redis cleanly (its data stays on disk)."""
    from ttrpg.backend import embedded
    from ttrpg.console import err
    from ttrpg.settings import get_settings

    pid = embedded.stop(get_settings().home)
    err().print(f"Stopped embedded Redis (pid {pid})." if pid else "The embedded Redis was not running.")


@app.command()
def status(json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """Show URL, pid, version, modules, memory and AOF state of the Redis ttrpg uses."""
    from ttrpg.backend import embedded
    from ttrpg.console import out, print_json
    from ttrpg.settings import get_settings

    settings = get_settings()
    if settings.redis_url:
        from ttrpg.backend.connection import get_redis, mask_url

        info = {"embedded": False, "url": mask_url(settings.redis_url), "running": True}
        info.update(embedded.server_info(get_redis(settings, socket_timeout=10)))
    else:
        info = embedded.status(settings.home)
    if json_out:
        print_json(info)
        raise typer.Exit(0 if info["running"] else 1)
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in ("url", "running", "pid", "version", "used_memory", "aof_enabled", "aof_last_write_status", "dir", "log"):
        if key in info:
            table.add_row(key, str(info[key]))
    if info.get("modules"):
        table.add_row("modules", ", ".join(f"{m['name']} {m['version']}" for m in info["modules"]))
    out().print(table)
    if not info["running"]:
        raise typer.Exit(1)


def _warn_external(settings) -> None:
    if settings.redis_url:
        from ttrpg.console import err

        err().print("Note: TTRPG_REDIS_URL/REDIS_URL is set, so ttrpg uses that server, not the embedded one.")
