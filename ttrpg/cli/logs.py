"""``ttrpg logs export|transcript``, ``ttrpg watch`` and ``ttrpg report``: the research log."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ttrpg.console import assemble, cell, err, one_line, out, print_json, text
from ttrpg.exceptions import ConfigError

# ttrpg.research, the Redis connection and rich are imported inside the commands: `ttrpg --help`
# stays fast and loads none of them (tests/test_research.py checks).

app = typer.Typer(
    help="Research logs: export a session's events (JSONL, CSV) or its story (Markdown, HTML).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def write_out(text: str, out: Path, option: str = "--out") -> None:
    """Write ``text`` to the file ``out``, creating its folder; a path that cannot be written
    (a directory, a full disk, no permission, a file where a folder should be) is a
    :class:`~ttrpg.exceptions.ConfigError` naming the problem and the fix (exit 2)."""
    shown = one_line(str(out))
    fix = f"Give {option} a file path in a folder you can write to (e.g. {option} ./report.out)."
    if out.is_dir():
        raise ConfigError(f"{option} {shown} is a directory, not a file.",
                          hint=f"Name a file inside it, e.g. {option} {one_line(str(out / 'out.txt'))}.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the folder {one_line(str(out.parent))} for {option}: "
                          f"{one_line(exc.strerror or exc)}.", hint=fix) from None
    try:
        with out.open("w", newline="", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
    except OSError as exc:
        reason = one_line(exc.strerror or exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = f"Free some space on that disk, or give {option} a path on another one."
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = f"Give {option} a path you may write to."
        else:
            hint = fix
        raise ConfigError(f"Cannot write {option} {shown}: {reason}.", hint=hint) from None


def _write(text: str, out: Path | None, what: str) -> None:
    """The data to ``out`` (a message on stderr) or to stdout."""
    if out is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError as exc:
            raise ConfigError(f"Cannot write {what} to standard output: {one_line(exc.strerror or exc)}.",
                              hint="Write to a file with --out PATH instead.") from None
        return
    write_out(text, out)
    err().print(assemble(f"Wrote {what} to {out}"), soft_wrap=True)


@app.command("export")
def export(
    session: Optional[str] = typer.Argument(None, help="Session id (or use --campaign)."),
    campaign: Optional[str] = typer.Option(None, "--campaign", "-c", help="Export every session of this campaign."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl (one event per line) or csv (one row per event)."),
    event_types: Optional[str] = typer.Option(None, "--events", help="Only these event types, comma-separated "
                                                                      "(e.g. llm_call,llm_retry)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Export the events of a session (or of a campaign's sessions) as JSONL or CSV."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.research.export import campaign_sessions
    from ttrpg.research.export import export as export_events

    if bool(session) == bool(campaign):
        raise ConfigError("Give either a SESSION or --campaign ID.",
                          hint="e.g. `ttrpg logs export 20261123-202007-b3fc` or `ttrpg logs export --campaign c1`.")
    redis = get_redis()
    if campaign:
        ids = campaign_sessions(redis, campaign)
        if not ids:
            raise ConfigError(f"No sessions in campaign {campaign!r}.", hint="List sessions with `ttrpg sessions`.")
    else:
        ids = [session]
    data = export_events(redis, ids, fmt=fmt.lower(), event_types=event_types)
    count = data.count("\n") if fmt.lower() == "jsonl" else None
    what = f"{count} events" if count is not None else "the events"
    _write(data, out, f"{what} of {len(ids)} session(s)")


@app.command("transcript")
def transcript(
    session: str = typer.Argument(..., help="Session id."),
    fmt: str = typer.Option("md", "--format", "-f", help="md (Markdown) or html (a self-contained page)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
) -> None:
    """The story of a session, turn by turn: narration, actions, dice, outcomes, reactions."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.research.transcript import transcript as story_of

    _write(story_of(get_redis(), session, fmt=fmt.lower()), out, "the transcript")


def watch(
    session: str = typer.Argument(..., help="Session id."),
    from_start: bool = typer.Option(False, "--from-start", help="Show every event so far first, then follow."),
    json_out: bool = typer.Option(False, "--json", help="One JSON event per line on stdout, as the log stores it."),
) -> None:
    """Follow a session's events live until it ends (Ctrl-C stops watching)."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.research.export import check_session
    from ttrpg.research.watch import watch as follow

    redis = get_redis()
    check_session(redis, session)
    if not json_out:
        err().print(text(f"Watching session {session}{' from its start' if from_start else ''}; Ctrl-C stops.",
                         "dim"), soft_wrap=True)
    follow(redis, session, from_start=from_start, json_lines=json_out, console=out())


def report(
    session: str = typer.Argument(..., help="Session id."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML page with charts."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Numbers of a session: phase durations, model calls, retries, validation, tokens, consensus."""
    from ttrpg.backend.connection import get_redis
    from ttrpg.research.report import report as numbers_of
    from ttrpg.research.report import report_html

    rep = numbers_of(get_redis(), session)
    if html is not None:
        write_out(report_html(rep), html, "--html")
        err().print(assemble(f"Wrote the report page to {html}"), soft_wrap=True)
    if json_out:
        print_json(rep)
        return
    print_report(rep, out())


def print_report(rep: dict, console) -> None:
    """The report for people: a summary, time per phase (machine and DM), tokens per turn.
    Every value is a rich ``Text`` (ids, model names and labels are never parsed as markup)."""
    from rich.table import Table

    from ttrpg.research.report import report_summary, time_rows

    summary = Table(show_header=False, box=None, title=cell(f"Session {rep['session_id']}"))
    for k, v in report_summary(rep)[1:]:
        summary.add_row(cell(k), cell(v))
    console.print(summary)
    phases = Table(title=cell("Phase durations (ms): machine time, and the DM's time to answer"))
    cols = (("phase", "label"), ("runs", "runs"), ("p50", "p50"), ("p95", "p95"), ("max", "max"),
            ("machine total", "machine_total"), ("DM answers", "dm_answers"), ("DM total", "dm_total"),
            ("DM p50", "dm_p50"))
    for col, _ in cols:
        phases.add_column(col, justify="left" if col == "phase" else "right")
    for row in time_rows(rep):
        phases.add_row(*(cell(row[key]) for _, key in cols))
    console.print(phases)
    tokens = Table(title=cell("Tokens per turn (every model call)"))
    for col in ("turn", "calls", "prompt", "completion", "total"):
        tokens.add_column(col, justify="right")
    for t in rep["tokens_per_turn"]:
        tokens.add_row(*(cell(t[k]) for k in ("turn", "llm_calls", "prompt_tokens", "completion_tokens",
                                              "total_tokens")))
    console.print(tokens)
