"""``ttrpg play``, ``ttrpg resume`` and ``ttrpg demo``: run a session at the terminal."""

from __future__ import annotations

# Library imports are deferred into each command: `ttrpg --help` must not import langgraph,
# openai, rq or redis (a second or more of start-up); see ttrpg/cli/__init__.py.
import random
from pathlib import Path
from typing import Optional

import typer

from ttrpg import defaults

WORKERS_HELP = ("Local workers (0-16) to start when no worker serves the queue (default: one per AI player; "
                "0: none, wait for a fleet).")
TURNS_HELP = "End after this many turns (1-10000; default: play until the DM types /end)."
LATENCY_HELP = "Offline model: milliseconds per call (0-60000)."
SEED_HELP = "Seed for dice and the offline model (0 to 2**63-1)."
PLAYERS_HELP = "AI players: the first N of the party (1-4; default: all)."
JUDGE_HELP = ("Have the AI players' model also referee every action for narrated outcomes, one more call per "
              "action (default: TTRPG_OVERREACH_JUDGE, off; a real model only).")
CLASS_HELP = ("Class of the local workers: forkserver, warm, spawn, fork or simple "
              "(`ttrpg worker --help` says what each costs).")


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
    latency: int = typer.Option(0, "--latency", help=LATENCY_HELP),
    faults: Optional[str] = typer.Option(None, "--faults", help="Offline model: fault rates, e.g. rate_limit=0.2,server_error=0.1,timeout=0.05,overreach=0.3."),
    turns: Optional[int] = typer.Option(None, "--turns", help=TURNS_HELP),
    players: Optional[int] = typer.Option(None, "--players", help=PLAYERS_HELP),
    seed: Optional[int] = typer.Option(None, "--seed", help=SEED_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    worker_class: str = typer.Option(defaults.WORKER_CLASS, "--worker-class", help=CLASS_HELP),
    overreach_judge: Optional[bool] = typer.Option(None, "--overreach-judge/--no-overreach-judge", help=JUDGE_HELP),
) -> None:
    """Run an interactive session as the DM (Ctrl-C pauses; `ttrpg resume` continues)."""
    from ttrpg.session import play as lib

    lib.check_options(turns=turns, players=players, workers=workers, latency_ms=latency, seed=seed,
                      offline=offline, overreach_judge=overreach_judge)
    from ttrpg.dm.keyboard import KeyboardDM
    from ttrpg.dm.script import ScriptDM, load_script
    from ttrpg.game.characters import default_party, load_party
    from ttrpg.llm.config import make_config
    from ttrpg.settings import get_settings

    settings = get_settings()
    party = lib.select_players((load_party(characters) if characters else default_party()).to_state(), players)
    script = load_script(dm_script) if dm_script else None
    run_seed = seed if seed is not None else random.randrange(1, 10**6)
    llm = make_config(model, settings=settings, offline=offline, latency_ms=latency,
                      faults=lib.parse_faults(faults), seed=run_seed, overreach_judge=overreach_judge)
    try:
        lib.start(session_id=session, campaign_id=campaign, party=party, llm=llm,
                  dm=ScriptDM(script) if script else KeyboardDM(), dm_script=script, max_turns=turns,
                  seed=run_seed, workers=workers, worker_class=worker_class, settings=settings)
    except KeyboardInterrupt:
        _paused(session)


def resume(
    session: Optional[str] = typer.Argument(None, help="Session id (default: the most recently active)."),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    worker_class: str = typer.Option(defaults.WORKER_CLASS, "--worker-class", help=CLASS_HELP),
    keyboard: bool = typer.Option(False, "--keyboard", help="Answer at the keyboard even if the session was "
                                                            "started with a DM script."),
) -> None:
    """Continue a session exactly where it stopped: a recap of the turn so far, then the pending DM question."""
    from ttrpg.session import play as lib

    lib.check_options(workers=workers)
    try:
        lib.resume(session, workers=workers, worker_class=worker_class, keyboard=keyboard)
    except KeyboardInterrupt:
        _paused(session)


def demo(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Session id (default: a new one)."),
    turns: int = typer.Option(3, "--turns", help="Turns to play (1-10000)."),
    players: int = typer.Option(4, "--players", help="AI players (1-4)."),
    latency: int = typer.Option(0, "--latency", help=LATENCY_HELP),
    faults: Optional[str] = typer.Option(None, "--faults", help="Offline model fault rates (see `ttrpg play --help`)."),
    seed: int = typer.Option(7, "--seed", help=SEED_HELP),
    model: Optional[str] = typer.Option(None, "--model", help="Play against this model at OPENAI_BASE_URL instead of offline."),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    worker_class: str = typer.Option(defaults.WORKER_CLASS, "--worker-class", help=CLASS_HELP),
) -> None:
    """Play the built-in scripted session with the built-in crew and offline AI players."""
    from ttrpg.session import play as lib

    lib.check_options(turns=turns, players=players, workers=workers, latency_ms=latency, seed=seed)
    try:
        lib.demo(session_id=session, turns=turns, players=players, latency_ms=latency,
                 faults=lib.parse_faults(faults), seed=seed, model=model, workers=workers,
                 worker_class=worker_class)
    except KeyboardInterrupt:
        _paused(session)
