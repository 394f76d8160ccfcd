"""``ttrpg play``, ``ttrpg resume`` and ``ttrpg demo``: run a session at the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

WORKERS_HELP = "Local workers to start when no worker serves the queue (default: one per AI player)."
CLASS_HELP = "Class of the local workers: warm (default), spawn, fork or simple."


def _paused(session_id: str | None) -> None:
    from ttrpg.console import err

    err().print(f"\nSession paused; nothing is lost. Continue with: ttrpg resume {session_id or ''}".rstrip())
    raise typer.Exit(130)


def play(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Session id (default: a new timestamped id)."),
    campaign: Optional[str] = typer.Option(None, "--campaign", "-c", help="Campaign id; sessions of a campaign share memories."),
    characters: Path = typer.Option(None, "--characters", help="characters.json for the party (default: the built-in crew)."),
    dm_script: Optional[Path] = typer.Option(None, "--dm-script", help="Drive the session from a DM script file instead of the keyboard."),
    offline: bool = typer.Option(False, "--offline", help="Use the offline model (no API key)."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (default: TTRPG_MODEL)."),
    latency: int = typer.Option(0, "--latency", help="Offline model: milliseconds per call."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Offline model: fault rates, e.g. rate_limit=0.2,server_error=0.1,timeout=0.05,overreach=0.3."),
    turns: Optional[int] = typer.Option(None, "--turns", help="End after this many turns."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for dice and the offline model."),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    worker_class: str = typer.Option("warm", "--worker-class", help=CLASS_HELP),
) -> None:
    """Run an interactive session as the DM (Ctrl-C pauses; `ttrpg resume` continues)."""
    from ttrpg import play as lib
    from ttrpg.characters import default_party, load_party
    from ttrpg.dm import ScriptDM, load_script
    from ttrpg.settings import get_settings
    from ttrpg.ui import KeyboardDM

    settings = get_settings()
    party = (load_party(characters) if characters else default_party()).to_state()
    script = load_script(dm_script) if dm_script else None
    run_seed = seed if seed is not None else __import__("random").randrange(1, 10**6)
    llm = lib.llm_config(settings, offline=offline, model=model, latency_ms=latency,
                         faults=lib.parse_faults(faults), seed=run_seed)
    try:
        lib.start(session_id=session, campaign_id=campaign, party=party, llm=llm,
                  dm=ScriptDM(script) if script else KeyboardDM(), dm_script=script, max_turns=turns,
                  seed=run_seed, workers=workers, worker_class=worker_class, settings=settings)
    except KeyboardInterrupt:
        _paused(session)


def resume(
    session: Optional[str] = typer.Argument(None, help="Session id (default: the most recently active)."),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    worker_class: str = typer.Option("warm", "--worker-class", help=CLASS_HELP),
) -> None:
    """Continue a session exactly where it stopped, asking the pending DM question again."""
    from ttrpg import play as lib

    try:
        lib.resume(session, workers=workers, worker_class=worker_class)
    except KeyboardInterrupt:
        _paused(session)


def demo(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Session id (default: a new one)."),
    turns: int = typer.Option(3, "--turns", help="Turns to play."),
    players: int = typer.Option(4, "--players", help="AI players (1-4)."),
    latency: int = typer.Option(0, "--latency", help="Offline model: milliseconds per call."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Offline model fault rates (see `ttrpg play --help`)."),
    seed: int = typer.Option(7, "--seed", help="Seed for dice and the offline model."),
    model: Optional[str] = typer.Option(None, "--model", help="Play against this model at OPENAI_BASE_URL instead of offline."),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    worker_class: str = typer.Option("warm", "--worker-class", help=CLASS_HELP),
) -> None:
    """Play the built-in scripted session with the built-in crew and offline AI players."""
    from ttrpg import play as lib

    try:
        lib.demo(session_id=session, turns=turns, players=players, latency_ms=latency,
                 faults=lib.parse_faults(faults), seed=seed, model=model, workers=workers,
                 worker_class=worker_class)
    except KeyboardInterrupt:
        _paused(session)
