"""``ttrpg sessions`` and ``ttrpg status SESSION``."""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
import typer


def sessions(json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """List sessions: id, campaign, turn, phase, status (new, active, paused, interrupted, completed), last update."""
    import datetime as dt

    from rich.table import Table

    from ttrpg.backend.connection import get_redis
    from ttrpg.console import out, print_json, text
    from ttrpg.session.store import list_sessions

    rows = list_sessions(get_redis())
    if json_out:
        print_json(rows)
        return
    table = Table()
    for col in ("session", "campaign", "turn", "phase", "status", "updated"):
        table.add_column(col)
    for r in rows:
        when = dt.datetime.fromtimestamp(r["updated_at"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(*(text(v) for v in (r["session_id"], r["campaign_id"] or "", str(r["turn"]),
                                          r["phase_label"], r["status"], when)))
    out().print(table)


def status(
    session: str = typer.Argument(..., help="Session id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Where a session stands: its status, the live driver (host, pid), the phase, what the DM is
    being asked, and in-flight jobs."""
    from rich.table import Table

    from ttrpg.backend.connection import get_redis
    from ttrpg.console import out, print_json, text
    from ttrpg.session.store import check_session_id, session_status
    from ttrpg.vocabulary import SESSION_STATES

    info = session_status(get_redis(), check_session_id(session))
    if json_out:
        print_json(info)
        return
    driver = info.get("driver")
    rows = [
        ("session", info["session_id"]),
        ("campaign", info.get("campaign_id") or ""),
        ("status", f"{info['status']}: {SESSION_STATES.get(info['status'], '')}"),
        ("driver", f"host {driver['host']}, pid {driver['pid']}" if driver else "none running"),
        ("turn", str(info["turn"])),
        ("phase", info.get("pending_phase_label") or info.get("phase_label") or ""),
        ("asking", info.get("asking") or "nothing (the AI players are working, or the session has ended)"),
        ("model", info.get("model") or ""),
    ]
    table = Table(show_header=False, box=None)
    for key, value in rows:
        table.add_row(key, text(value))
    for job in info["jobs"]:
        table.add_row("job", text(f"{job['id']}: {job['status']}"))
    out().print(table)
