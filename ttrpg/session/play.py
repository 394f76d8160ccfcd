"""Starting, resuming and demoing sessions: what ``ttrpg play|resume|demo`` call.

Each function takes plain arguments, so tests and scripts use them without the CLI::

    from ttrpg.session.play import demo
    final = demo(session_id="try-1", turns=2, players=2)
"""

from __future__ import annotations

import os
import random

from ttrpg import defaults
from ttrpg.backend.connection import get_redis
from ttrpg.dm.keyboard import KeyboardDM
from ttrpg.dm.script import ScriptDM, builtin_script
from ttrpg.dm.story import StoryUI
from ttrpg.exceptions import ConfigError, SessionFinished
from ttrpg.game.characters import default_party
from ttrpg.llm.config import make_config
from ttrpg.session import store
from ttrpg.session.driver import Driver, workers_for
from ttrpg.session.lock import SessionLock
from ttrpg.session.retention import turns_played
from ttrpg.settings import Settings, get_settings


def _number(flag: str, value, low: int, high: int, unit: str = "", hint: str | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{flag} must be a whole number, got {value!r}.", hint=hint)
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 25 else f"a {len(str(abs(value)))}-digit number"
        raise ConfigError(f"{flag} must be {low} to {high}{unit}, got {shown}.", hint=hint)


def check_options(*, turns: int | None = None, players: int | None = None, workers: int | None = None,
                  latency_ms: int | None = None, seed: int | None = None, offline: bool = False,
                  overreach_judge: bool | None = None) -> None:
    """Range-check the numeric options of play/demo/resume; ConfigError (exit 2) names the flag.

    Called by the CLI before anything is started or created, and again by :func:`start`,
    :func:`demo` and :func:`resume` for callers that skip the CLI. ``None`` means "not given".
    """
    _number("--turns", turns, 1, defaults.MAX_TURNS,
            hint="Leave --turns out to play until the DM ends the session (/end).")
    _number("--players", players, 1, 4, hint="Use 1 to 4 AI players.")
    _number("--workers", workers, 0, defaults.MAX_LOCAL_WORKERS,
            hint="0 starts no local worker (a fleet must serve the queue); leave it out for one per AI player.")
    _number("--latency", latency_ms, 0, defaults.MAX_LATENCY_MS, " ms",
            hint="It is the offline model's delay per call in milliseconds; 0 means none.")
    _number("--seed", seed, 0, defaults.MAX_SEED, hint="Use a seed from 0 to 2**63-1, or leave it out.")
    if offline and overreach_judge:
        raise ConfigError("--overreach-judge needs a real model: the offline model does not referee.",
                          hint="Leave out --offline (set TTRPG_MODEL and OPENAI_API_KEY or OPENAI_BASE_URL), "
                               "or leave out --overreach-judge.")


def select_players(party: dict, players: int | None) -> dict:
    """The party with only its first ``players`` seats (all of them when None)."""
    if players is None:
        return party
    check_options(players=players)
    seats = party["players"]
    if players > len(seats):
        raise ConfigError(f"--players {players} asks for more AI players than the party has ({len(seats)}).",
                          hint=f"Use --players 1 to {len(seats)}, or a characters file with more players.")
    return {**party, "players": seats[:players]}


def check_log_dir(settings: Settings) -> None:
    """Create the log directory (private) and make sure it is writable, before a session exists."""
    path = settings.log_dir
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"Cannot create the log directory TTRPG_LOG_DIR={str(path)!r}: {exc.strerror or exc}.",
                          hint="Set TTRPG_LOG_DIR to a directory you can write (default research_logs/).") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"The log directory TTRPG_LOG_DIR={str(path)!r} is not writable.",
                          hint="Set TTRPG_LOG_DIR to a directory you can write (default research_logs/).")


def parse_faults(text: str | None) -> dict[str, float]:
    """``"rate_limit=0.2,server_error=0.1"`` → ``{"rate_limit": 0.2, "server_error": 0.1}``."""
    known = ("rate_limit", "server_error", "timeout", "overreach")
    faults: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, value = part.partition("=")
        if name not in known:
            raise ConfigError(f"Unknown fault {name!r}.", hint=f"Use {', '.join(known)} as name=rate pairs.")
        try:
            rate = float(value)
        except ValueError:
            raise ConfigError(f"Fault {name} needs a rate between 0 and 1, got {value!r}.") from None
        if not 0 <= rate <= 1:
            raise ConfigError(f"Fault {name} needs a rate between 0 and 1, got {rate}.")
        faults[name] = rate
    return faults


def start(*, session_id: str | None, campaign_id: str | None, party: dict, llm: dict, dm, ui=None,
          dm_script: dict | None = None, max_turns: int | None = None, seed: int | None = None,
          workers: int | None = None, worker_class: str | None = None, settings: Settings | None = None) -> dict:
    """Create a session and drive it to its end (or Ctrl-C); returns the final state."""
    check_options(turns=max_turns, workers=workers, seed=seed, players=len(party.get("players") or []) or None)
    settings = settings or get_settings()
    check_log_dir(settings)
    redis = get_redis(settings)
    sid = store.check_session_id(session_id or store.new_session_id())
    spec = store.SessionSpec(session_id=sid, campaign_id=campaign_id or sid, party=party, llm=llm,
                               seed=seed if seed is not None else random.randrange(1, 10**6),
                               max_turns=max_turns, dm_script=dm_script)
    initial = store.create(redis, spec)
    return _drive(redis, sid, dm, ui, settings, initial, workers if workers is not None else len(party["players"]),
                  worker_class)


def resume(session_id: str | None = None, *, dm=None, ui=None, workers: int | None = None,
           worker_class: str | None = None, settings: Settings | None = None, keyboard: bool = False) -> dict:
    """Continue a session exactly where it stopped (its DM script, if it had one, continues too,
    unless ``keyboard``)."""
    check_options(workers=workers)
    settings = settings or get_settings()
    check_log_dir(settings)
    redis = get_redis(settings)
    sid = session_id or store.latest_session(redis)
    meta = store.load_meta(redis, sid)
    if meta.get("status") == "completed":
        raise finished_error(redis, sid, meta)
    script = store.script_of(meta)
    if dm is None:
        if script and not keyboard:
            dm = ScriptDM(script)
        else:
            dm = KeyboardDM()
    return _drive(redis, sid, dm, ui, settings, None, workers if workers is not None else int(meta.get("players", 1)),
                  worker_class)


def finished_error(redis, sid: str, meta: dict) -> SessionFinished:
    """The one line ``resume`` of an ended session stops with (compacted or not)."""
    n = turns_played(redis, sid, meta)
    played = f"after {n} turn{'' if n == 1 else 's'}" if n is not None else "earlier"
    return SessionFinished(f"Session {sid} finished {played}; there is nothing to resume. Read it with "
                           f"`ttrpg logs export {sid}` or `ttrpg logs transcript {sid}`, or start a new one with "
                           "`ttrpg play`.")


def _drive(redis, sid, dm, ui, settings, initial, workers, worker_class) -> dict:
    with SessionLock(redis, sid) as lock:
        with workers_for(settings, workers, worker_class):
            driver = Driver(redis, sid, dm, ui or StoryUI(), settings, fence=lock.fence())
            try:
                return driver.run(initial)
            except KeyboardInterrupt:
                if not lock.lost:  # a driver that lost its lock must not touch the new driver's status
                    store.touch(redis, sid, status="paused")
                raise


def demo(*, session_id: str | None = None, turns: int = 3, players: int = 4, latency_ms: int = 0,
         faults: dict | None = None, seed: int = 7, model: str | None = None, ui=None, workers: int | None = None,
         worker_class: str | None = None, settings: Settings | None = None) -> dict:
    """The built-in scripted session with the built-in crew (offline unless ``model`` is given)."""
    check_options(turns=turns, players=players, workers=workers, latency_ms=latency_ms, seed=seed)
    settings = settings or get_settings()
    party = select_players(default_party().to_state(), players)
    script = builtin_script()
    llm = make_config(model, settings=settings, offline=model is None, latency_ms=latency_ms, faults=faults,
                      seed=seed)
    return start(session_id=session_id, campaign_id=None, party=party, llm=llm, dm=ScriptDM(script), ui=ui,
                 dm_script=script, max_turns=turns, seed=seed, workers=workers, worker_class=worker_class,
                 settings=settings)
