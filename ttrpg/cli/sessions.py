"""``ttrpg sessions`` and ``ttrpg status SESSION``."""

from __future__ import annotations

import typer


def sessions(json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """List sessions: id, campaign, turn, phase, status, last update."""
    import datetime as dt

    from ttrpg.connection import get_redis
    from ttrpg.console import out, print_json
    from ttrpg.session import list_sessions

    rows = list_sessions(get_redis())
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table()
    for col in ("session", "campaign", "turn", "phase", "status", "updated"):
        table.add_column(col)
    for r in rows:
        when = dt.datetime.fromtimestamp(r["updated_at"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(r["session_id"], r["campaign_id"], str(r["turn"]), r["phase"], r["status"], when)
    out().print(table)


def status(
    session: str = typer.Argument(..., help="Session id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Show a session's pending phase, pending DM question and in-flight jobs."""
    from ttrpg.connection import get_redis
    from ttrpg.console import out, print_json
    from ttrpg.session import session_status

    info = session_status(get_redis(), session)
    if json_out:
        print_json(info)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key in ("session_id", "campaign_id", "status", "turn", "pending_phase", "pending_question", "model"):
        table.add_row(key, str(info.get(key)))
    for job in info["jobs"]:
        table.add_row("job", f"{job['id']}: {job['status']}")
    out().print(table)
