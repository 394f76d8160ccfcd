"""Every environment variable ttrpg reads, in one object (documented in the README table).

Read once per process with :func:`get_settings`; tests build their own :class:`Settings`.
The API key is kept here and nowhere else: it is never logged, never put in a job's
arguments (workers read it from their own environment) and hidden from ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ttrpg import defaults
from ttrpg.constants import DEFAULT_QUEUE


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ttrpg"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        from ttrpg.exceptions import ConfigError

        raise ConfigError(f"{name}={raw!r} is not a number.", hint=f"Set {name} to a number or unset it.")


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    home: Path
    redis_url: str | None
    queue: str
    log_dir: Path
    openai_base_url: str | None
    openai_api_key: str | None = field(repr=False)
    model: str | None
    context_window: int | None
    backoff_base: float
    warm_spawn: bool
    worker_class: str = "warm"
    worker_name: str | None = None
    kill_after: str | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        ctx = os.environ.get("TTRPG_CONTEXT_WINDOW")
        return cls(
            home=Path(os.environ.get("TTRPG_HOME") or _default_home()).expanduser(),
            redis_url=os.environ.get("TTRPG_REDIS_URL") or os.environ.get("REDIS_URL") or None,
            queue=os.environ.get("TTRPG_QUEUE") or DEFAULT_QUEUE,
            log_dir=Path(os.environ.get("TTRPG_LOG_DIR") or "research_logs"),
            openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
            openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
            model=os.environ.get("TTRPG_MODEL") or None,
            context_window=int(ctx) if ctx and ctx.isdigit() else None,
            backoff_base=_float("TTRPG_BACKOFF_BASE", 1.0),
            warm_spawn=_bool("TTRPG_WARM_SPAWN", defaults.WARM_SPAWN),
            worker_class=os.environ.get("TTRPG_WORKER_CLASS") or "warm",
            worker_name=os.environ.get("TTRPG_WORKER_NAME") or None,
            kill_after=os.environ.get("TTRPG_KILL_AFTER") or None,
        )


def get_settings() -> Settings:
    """The settings of this process, read from the environment at call time."""
    return Settings.from_env()
