"""``ttrpg logs export|transcript``, ``ttrpg watch`` and ``ttrpg report``: the research log."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Research logs: export a session's events (JSONL, CSV) or its story (Markdown, HTML).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _write(text: str, out: Path | None, what: str) -> None:
    """The data to ``out`` (a message on stderr) or to stdout."""
    import sys

    from ttrpg.console import err

    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        fh.write(text)
    err().print(f"Wrote {what} to {out}", soft_wrap=True)


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
    from ttrpg import research
    from ttrpg.connection import get_redis
    from ttrpg.exceptions import ConfigError

    if bool(session) == bool(campaign):
        raise ConfigError("Give either a SESSION or --campaign ID.",
                          hint="e.g. `ttrpg logs export 20261123-202007-b3fc` or `ttrpg logs export --campaign c1`.")
    redis = get_redis()
    if campaign:
        ids = research.campaign_sessions(redis, campaign)
        if not ids:
            raise ConfigError(f"No sessions in campaign {campaign!r}.", hint="List sessions with `ttrpg sessions`.")
    else:
        ids = [session]
    text = research.export(redis, ids, fmt=fmt.lower(), event_types=event_types)
    count = text.count("\n") if fmt.lower() == "jsonl" else None
    what = f"{count} events" if count is not None else "the events"
    _write(text, out, f"{what} of {len(ids)} session(s)")


@app.command("transcript")
def transcript(
    session: str = typer.Argument(..., help="Session id."),
    fmt: str = typer.Option("md", "--format", "-f", help="md (Markdown) or html (a self-contained page)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
) -> None:
    """The story of a session, turn by turn: narration, actions, dice, outcomes, reactions."""
    from ttrpg import research
    from ttrpg.connection import get_redis

    _write(research.transcript(get_redis(), session, fmt=fmt.lower()), out, "the transcript")


def watch(
    session: str = typer.Argument(..., help="Session id."),
    from_start: bool = typer.Option(False, "--from-start", help="Show every event so far first, then follow."),
    json_out: bool = typer.Option(False, "--json", help="One JSON event per line on stdout, as the log stores it."),
) -> None:
    """Follow a session's events live until it ends (Ctrl-C stops watching)."""
    from ttrpg import research
    from ttrpg.connection import get_redis
    from ttrpg.console import err, out

    redis = get_redis()
    research.check_session(redis, session)
    if not json_out:
        err().print(f"[dim]Watching session {session}{' from its start' if from_start else ''}; Ctrl-C stops.[/]")
    research.watch(redis, session, from_start=from_start, json_lines=json_out, console=out())


def report(
    session: str = typer.Argument(..., help="Session id."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML page with charts."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """Numbers of a session: phase durations, model calls, retries, validation, tokens, consensus."""
    from ttrpg import research
    from ttrpg.connection import get_redis
    from ttrpg.console import err, out, print_json

    rep = research.report(get_redis(), session)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(research.report_html(rep), encoding="utf-8")
        err().print(f"Wrote the report page to {html}", soft_wrap=True)
    if json_out:
        print_json(rep)
        return
    from rich.table import Table

    llm, val, ret = rep["llm"], rep["validation"], rep["retries"]
    rate = val["first_attempt_failure_rate"]
    summary = Table(show_header=False, box=None, title=f"Session {rep['session_id']}")
    rows = [
        ("campaign", rep["campaign_id"]), ("model", rep["model"]), ("turns completed", rep["turns"]["completed"]),
        ("duration", f"{rep['duration_s']} s" if rep["duration_s"] is not None else "(not ended)"),
        ("LLM calls", f"{llm['calls']} ({llm['ok']} ok, {llm['errors']} error)"),
        ("LLM latency p50 / p95", f"{llm['latency_p50_ms']} / {llm['latency_p95_ms']} ms"),
        ("tokens", f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion"),
        ("retries", f"{ret['total']}" + (" (" + ", ".join(f"{k} {v}" for k, v in ret["by_error_class"].items()) + ")"
                                         if ret["by_error_class"] else "")),
        ("phase failures / rollbacks", f"{rep['failures']['phase_failed']} / {rep['failures']['rollbacks']}"),
        ("first-attempt validation failures", f"{val['first_attempt_failures']} of {val['first_attempt_actions']}"
         + (f" ({rate:.1%})" if rate is not None else "")),
        ("auto-corrections", f"{val['autocorrections']} ({val['needs_review']} needed review)"),
        ("consensus", ", ".join(f"{k} {v}" for k, v in rep["consensus"]["outcomes"].items()) or "-"),
        ("dice", f"{rep['dice']['rolls']} rolls, {rep['dice']['laser_feelings']} LASER FEELINGS"),
    ]
    for k, v in rows:
        summary.add_row(k, str(v))
    out().print(summary)
    phases = Table(title="Phase durations (ms)")
    for col in ("phase", "runs", "p50", "p95", "max"):
        phases.add_column(col, justify="left" if col == "phase" else "right")
    for p, d in rep["phases"].items():
        phases.add_row(p, str(d["count"]), str(d["p50_ms"]), str(d["p95_ms"]), str(d["max_ms"]))
    out().print(phases)
    tokens = Table(title="Tokens per turn (every model call)")
    for col in ("turn", "calls", "prompt", "completion", "total"):
        tokens.add_column(col, justify="right")
    for t in rep["tokens_per_turn"]:
        tokens.add_row(str(t["turn"]), str(t["llm_calls"]), str(t["prompt_tokens"]), str(t["completion_tokens"]),
                       str(t["total_tokens"]))
    out().print(tokens)
