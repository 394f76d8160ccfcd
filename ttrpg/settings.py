"""Every environment variable ttrpg reads, in one object (documented in the README table).

Read once per process with :func:`get_settings`; tests build their own :class:`Settings`.
The API key is kept here and nowhere else: it is never logged, never put in a job's
arguments (workers read it from their own environment) and hidden from ``repr``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ttrpg import defaults
from ttrpg.constants import DEFAULT_QUEUE
from ttrpg.exceptions import ConfigError


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
        raise ConfigError(f"{name}={raw!r} is not a number.", hint=f"Set {name} to a number or unset it.")


def _directory(name: str, raw: str | None, default: Path) -> Path:
    """``raw`` (or ``default``) as a path that is, or can become, a directory; else ConfigError.

    Checked here so that a wrong value (``/dev/null``, a file) stops a command before it
    creates anything, with one line naming the variable.
    """
    path = Path(raw).expanduser() if raw else default
    probe, where = path, None
    try:
        while not probe.exists() and probe != probe.parent:  # the nearest existing ancestor
            probe = probe.parent
        if not probe.is_dir():
            where = "is not a directory" if probe == path else f"cannot be a directory: {str(probe)!r} is not one"
    except OSError as exc:  # e.g. a parent you may not enter
        where = f"cannot be used: {exc.strerror or exc}"
    if where:
        what = f"{name}={str(path)!r}" if raw else f"{name} (default {str(path)!r})"
        raise ConfigError(f"{what} {where}.",
                          hint=f"Set {name} to a directory (it is created if missing), or unset it.")
    return path


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str, name: str = "TTRPG_REDIS_URL") -> str:
    """``url`` if redis-py can use it, else a ConfigError naming the variable (password masked)."""
    problem = None
    try:
        parts = urlsplit(url)
        if parts.scheme not in _REDIS_SCHEMES:
            problem = f"its scheme must be one of {', '.join(s + '://' for s in _REDIS_SCHEMES)}"
        elif parts.scheme == "unix":
            if not parts.path:
                problem = "a unix:// URL needs the socket's path (unix:///path/to/redis.sock)"
        else:
            if not parts.hostname:
                problem = "it names no host"
            try:
                parts.port  # raises ValueError on a port that is not a number in range
            except ValueError:  # its text may hold part of a password: never shown
                problem = ("the port is not a number from 1 to 65535 (a password containing / ? # @ "
                           "or : must be percent-encoded, e.g. / as %2F)")
            db = parts.path.lstrip("/")
            if not problem and db and not db.isdigit():
                problem = "the database after the host must be a number (e.g. /0)"
    except ValueError:
        problem = "it cannot be parsed as a URL"
    if problem:
        from ttrpg.backend.connection import mask_url  # deferred: connection imports this module

        raise ConfigError(f"{name}={mask_url(url)!r} is not a usable Redis URL: {problem}.",
                          hint="Use redis://[:PASSWORD@]HOST:6379/0, rediss://... (TLS) or unix:///path/redis.sock, "
                               "or unset it to use the embedded server.")
    return url


def _redis_url() -> str | None:
    for name in ("TTRPG_REDIS_URL", "REDIS_URL"):
        raw = os.environ.get(name)
        if raw:
            return check_redis_url(raw.strip(), name)
    return None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


RETENTION_MODES = ("compact", "keep")


def _retention() -> str:
    """``TTRPG_RETENTION``: what a finished session keeps in Redis (ttrpg.session.retention)."""
    raw = (os.environ.get("TTRPG_RETENTION") or "").strip().lower()
    if not raw:
        return defaults.RETENTION
    if raw not in RETENTION_MODES:
        raise ConfigError(f"TTRPG_RETENTION={raw[:40]!r} is not a retention mode.",
                          hint="Set TTRPG_RETENTION to compact (drop a finished session's checkpoints) or keep, "
                               "or unset it.")
    return raw


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
    worker_class: str = defaults.WORKER_CLASS
    worker_name: str | None = None
    kill_after: str | None = None
    check_events: bool = False
    allowed_base_urls: tuple[str, ...] = ()
    retention: str = defaults.RETENTION
    overreach_judge: bool = defaults.OVERREACH_JUDGE

    @classmethod
    def from_env(cls) -> "Settings":
        ctx = os.environ.get("TTRPG_CONTEXT_WINDOW")
        return cls(
            home=_directory("TTRPG_HOME", os.environ.get("TTRPG_HOME"), _default_home()),
            redis_url=_redis_url(),
            queue=os.environ.get("TTRPG_QUEUE") or DEFAULT_QUEUE,
            log_dir=_directory("TTRPG_LOG_DIR", os.environ.get("TTRPG_LOG_DIR"), Path(defaults.LOG_DIR)),
            openai_base_url=os.environ.get("OPENAI_BASE_URL") or None,
            openai_api_key=os.environ.get("OPENAI_API_KEY") or None,
            model=os.environ.get("TTRPG_MODEL") or None,
            context_window=int(ctx) if ctx and ctx.isdigit() else None,
            backoff_base=_float("TTRPG_BACKOFF_BASE", 1.0),
            warm_spawn=_bool("TTRPG_WARM_SPAWN", defaults.WARM_SPAWN),
            worker_class=os.environ.get("TTRPG_WORKER_CLASS") or defaults.WORKER_CLASS,
            worker_name=os.environ.get("TTRPG_WORKER_NAME") or None,
            kill_after=os.environ.get("TTRPG_KILL_AFTER") or None,
            check_events=_bool("TTRPG_CHECK_EVENTS", False),
            allowed_base_urls=tuple(u.strip() for u in (os.environ.get("TTRPG_ALLOWED_BASE_URLS") or "").split(",")
                                    if u.strip()),
            retention=_retention(),
            overreach_judge=_bool("TTRPG_OVERREACH_JUDGE", defaults.OVERREACH_JUDGE),
        )


def get_settings() -> Settings:
    """The settings of this process, read from the environment at call time."""
    return Settings.from_env()
