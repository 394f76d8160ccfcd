"""``ttrpg compact``: drop the checkpoint history of finished sessions (ttrpg.session.retention)."""

from __future__ import annotations

# Library imports are deferred into the command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
from typing import List, Optional

import typer


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def compact(
    sessions: Optional[List[str]] = typer.Argument(None, metavar="SESSION", help="Session ids to compact."),
    all_: bool = typer.Option(False, "--all", help="Compact every finished session that still has checkpoints."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Free a finished session's checkpoint history; its event log, status and summary stay.

    Sessions that are not finished, or whose driver is still running, are left alone. Exit 0
    when every named session is compacted (or already was), 1 when one could not be, 2 on a
    usage error. New sessions are compacted when they end unless TTRPG_RETENTION=keep.
    """
    from ttrpg.backend.connection import get_redis
    from ttrpg.console import err, out, print_json, text
    from ttrpg.exceptions import ConfigError, TTRPGError
    from ttrpg.session import retention
    from ttrpg.session.store import check_session_id, load_meta
    from ttrpg.settings import get_settings

    if all_ == bool(sessions):
        raise ConfigError("Give either SESSION ids or --all.",
                          hint="e.g. `ttrpg compact 20261123-202007-b3fc` or `ttrpg compact --all`.")
    settings = get_settings()
    redis = get_redis(settings)
    if all_:
        result = retention.compact_all(redis, settings)
    else:
        ids = list(dict.fromkeys(check_session_id(s) for s in sessions))
        for sid in ids:  # every id is known before anything is deleted (UnknownSession, exit 2)
            load_meta(redis, sid)
        rows, already, freed = [], 0, 0
        for sid in ids:
            try:
                row = retention.compact_finished(redis, sid, settings)
            except TTRPGError as exc:
                rows.append({"session_id": sid, "result": "failed", "error": str(exc)})
                continue
            already += row["result"] == "already compacted"
            freed += max(row["bytes_before"] - row["bytes_after"], 0)
            rows.append(row)
        result = {"sessions": rows, "already_compacted": already, "bytes_freed": freed}
    failed = [r for r in result["sessions"] if r["result"] == "failed"]
    if json_out:
        print_json(result)
    else:
        for r in result["sessions"]:
            if "error" in r:
                err().print(text(f"{r['session_id']}: {r['result']}: {r['error']}"), soft_wrap=True)
            else:
                out().print(text(f"{r['session_id']}: {r['result']}, {_kib(r['bytes_before'])} -> "
                                 f"{_kib(r['bytes_after'])} ({r['keys_deleted']} checkpoint keys deleted)"),
                            soft_wrap=True)
        done = sum(1 for r in result["sessions"] if r["result"] == "compacted")
        out().print(text(f"Compacted {done} session(s), freed {_kib(result['bytes_freed'])}"
                         f"{'; ' + str(result['already_compacted']) + ' already compacted' if result['already_compacted'] else ''}"
                         "."), soft_wrap=True)
    if failed:
        raise typer.Exit(1)
