"""Following a session live: its events as they arrive, as readable lines (cleaned, never
parsed as markup) or as JSON Lines exactly as the log stores them."""

from __future__ import annotations

import json

from rich.text import Text

from ttrpg.console import one_line, out
from ttrpg.constants import EVENTS_STREAM
from ttrpg.research import events
from ttrpg.research.export import check_session
from ttrpg.research.report import wait_ms
from ttrpg.research.schema import COMMON_NAMES
from ttrpg.vocabulary import phase_label

_STYLE = {"session_started": "bold", "session_resumed": "bold", "session_ended": "bold", "phase_failed": "red",
          "rollback": "red", "dm_intervention": "yellow", "llm_retry": "yellow", "validation_failed": "yellow",
          "validation_autocorrected": "yellow", "dm_input": "cyan", "whisper": "cyan", "dice_roll": "magenta",
          "laser_feelings": "magenta", "phase_started": "dim", "phase_completed": "dim", "job_enqueued": "dim",
          "job_reattached": "dim", "llm_call": "dim", "character_action": "green", "character_reaction": "green"}


def _short(text, n=90) -> str:
    return one_line(text or "", n)


def describe(e: dict) -> str:
    """One line saying what an event says, for people watching a session (raw: the caller
    cleans it, see :func:`watch_line`)."""
    t = e.get("event_type")
    g = e.get
    if t in ("phase_started", "phase_completed"):
        return f"{phase_label(g('phase'))} (attempt {g('attempt')})"
    if t == "llm_call":
        tail = f" {g('latency_ms')} ms, {g('prompt_tokens')}+{g('completion_tokens')} tokens"
        return (f"{g('player_id')} {g('phase')}: {g('outcome')}" + (f" {g('error_class')}" if g("error_class") else "")
                + tail + (f", pid {g('worker_pid')}" if g("worker_pid") else ""))
    if t == "llm_retry":
        return f"{g('player_id')} {g('phase')}: retry {g('retry')} after {g('error_class')}, wait {float(g('wait_s') or 0):.3g} s"
    if t in ("job_enqueued", "job_reattached"):
        return f"{g('player_id')} {g('phase')} attempt {g('attempt')}" + (f" ({g('status')})" if g("status") else "")
    if t == "dm_input":
        detail = g("text") if g("text") is not None else (g("rolls") if g("kind") == "adjudication" else g("override"))
        waited = wait_ms(e)
        took = f" (after {waited / 1000:.1f} s)" if waited is not None else ""
        return f"{g('kind')}{took}: {_short(json.dumps(detail) if not isinstance(detail, str) else detail)}"
    if t == "dice_roll":
        return (f"{g('player_id')} {str(g('approach')).upper()} {g('number')}: {g('dice')} → {g('band')}"
                + (" · LASER FEELINGS" if g("laser_feelings") else ""))
    if t in ("character_action", "character_reaction"):
        return f"{g('character') or g('player_id')}: {_short(g('text'))}"
    if t == "validation_failed":
        return f"{g('player_id')} round {g('attempt')}: {'; '.join(g('violations') or [])}"
    if t == "overreach_judged":
        said = {True: "overreach", False: "clean", None: "no readable verdict"}.get(g("verdict"), "?")
        return (f"{g('player_id')} round {g('attempt')}: referee: {said}"
                + (f" ({_short(g('reason'), 60)})" if g("reason") else "") + f"; decided by {g('decided_by')}")
    if t == "validation_autocorrected":
        return f"{g('player_id')}: {_short(g('corrected'))}" + (" (needs review)" if g("needs_review") else "")
    if t == "consensus":
        return f"round {g('round')}: {g('state')} on {_short(g('plan'), 60)!r}" + (" (final)" if g("final") else "")
    if t in ("phase_failed", "rollback"):
        return f"{phase_label(str(g('phase') or ''))}: {_short(g('reason'))}"
    if t == "dm_intervention":
        return f"{phase_label(str(g('phase') or ''))} failed {g('failures')}×: DM chose {g('choice')}"
    if t == "laser_feelings":
        return f"{g('player_id')} asks {_short(g('question'), 60)!r}; DM: {_short(g('answer'), 60)!r}"
    if t == "memory_query":
        return f"{g('results')} remembered line(s) for {_short(g('query'), 70)!r}"
    if t == "whisper":
        return f"to {g('player_id')} ({g('layer')}): {_short(g('text'))}"
    if t == "turn_completed":
        return f"tokens {g('prompt_tokens')}+{g('completion_tokens')}, consensus {g('consensus')}" + (
            " (ended early)" if g("ended_early") else "")
    if t == "session_started":
        return f"players {', '.join(map(str, g('players') or []))}, model {g('model')}, seed {g('seed')}"
    if t == "session_ended":
        return f"after {g('turns_played')} turn(s)"
    rest = {k: v for k, v in e.items() if k not in COMMON_NAMES}
    return _short(", ".join(f"{k}={v}" for k, v in rest.items()), 120)


def watch_line(e: dict) -> tuple[str, str]:
    """The time, turn and type of an event, and what it says: each on one line, cleaned
    (no control characters or terminal escapes); print them as text, never as markup."""
    when = one_line(str(e.get("timestamp") or "")[11:19])
    head = f"{when} t{one_line(e.get('turn_number'))} {one_line(e.get('event_type') or '?', 40):<24}"
    try:
        body = describe(e)
    except Exception as exc:  # a malformed event (odd field types): show it, keep watching
        body = f"(unreadable event: {type(exc).__name__}) " + json.dumps(e, default=str)
    return head, one_line(body, 2000)


class _Writer:
    """Writes to a rich Console (human lines styled, JSON verbatim) or to any text file."""

    def __init__(self, console):
        if console is None:
            console = out()
        self.console = console
        self.rich = hasattr(console, "print") and hasattr(console, "file")

    def raw(self, line: str) -> None:
        f = self.console.file if self.rich else self.console
        f.write(line + "\n")
        f.flush()

    def human(self, e: dict) -> None:
        head, body = watch_line(e)
        if self.rich:
            style = _STYLE.get(e.get("event_type"), "") if isinstance(e.get("event_type"), str) else ""
            line = Text(f"{head} ", style=style)
            line.append(body)
            self.console.print(line, soft_wrap=True)
        else:
            self.raw(f"{head} {body}")


def watch(redis, session_id: str, from_start: bool = False, json_lines: bool = False, console=None, *,
          stop=None, block_ms: int = 1000) -> int:
    """Print a session's events as they arrive until ``session_ended`` (or Ctrl-C, or ``stop``
    — a ``threading.Event`` — is set). Returns how many events were printed.

    ``from_start``: first catch up with every event already in the log, then follow. Otherwise
    follow from the newest event at the time of the call (nothing written after it is missed).
    ``json_lines``: one JSON object per line, exactly as the log stores it; otherwise one
    readable line per event. ``console``: a rich Console or a text file (default: stdout).
    """
    check_session(redis, session_id)
    w = _Writer(console)
    if from_start:
        after = "0-0"
    else:
        newest = redis.xrevrange(EVENTS_STREAM.format(session_id=session_id), count=1)
        if newest and json.loads(newest[0][1][b"e"]).get("event_type") == "session_ended":
            if not json_lines:
                w.raw(f"Session {one_line(session_id)} has already ended (use --from-start to replay it).")
            return 0
        after = (newest[0][0].decode() if isinstance(newest[0][0], bytes) else newest[0][0]) if newest else "0-0"
    printed = 0
    try:
        for _sid, event in events.follow(redis, session_id, after=after, block_ms=block_ms):
            if event is not None:
                if json_lines:
                    w.raw(json.dumps(event, default=str))
                else:
                    w.human(event)
                printed += 1
                if event.get("event_type") == "session_ended":
                    break
            if stop is not None and stop.is_set():
                break
    except KeyboardInterrupt:
        pass
    return printed
