"""Getting a Redis client that is known to work for ttrpg.

With ``TTRPG_REDIS_URL`` (or ``REDIS_URL``) set, ttrpg uses that server and checks, before
doing anything else, that it answers and has the RedisJSON and RediSearch modules. Without
one, it starts (or reuses) the embedded server (:mod:`ttrpg.backend.embedded`).
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote, urlsplit

import redis

from ttrpg import defaults
from ttrpg.backend import embedded
from ttrpg.constants import REQUIRED_MODULES
from ttrpg.exceptions import ConfigError, RedisModulesMissing, RedisUnavailable
from ttrpg.settings import Settings, check_redis_url, get_settings

_checked: set[str] = set()


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print and log.

    ``redis://user:pw@host`` -> ``redis://user:***@host``; ``redis://pw@host`` (a password
    written where the user name goes) -> ``redis://***@host``; ``?password=pw`` -> ``?password=***``.
    The user info ends at the *last* ``@``, so a password holding ``@``, ``/`` or ``:`` is
    masked whole.
    """
    url = re.sub(r"(?i)([?&;](?:password|pass|pwd|auth)=)[^&;#]*", r"\1***", str(url))
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@", 0, len(rest.split("?", 1)[0]))
    if at < 0:
        return url
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user + ':***' if colon else '***'}{rest[at:]}"


def redis_url(settings: Settings | None = None) -> str:
    """The URL every process of this installation uses (starting the embedded server if needed)."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    return embedded.ensure_running(settings.home)


def get_redis(settings: Settings | None = None, *, socket_timeout: float = defaults.REDIS_SOCKET_TIMEOUT_S):
    """A checked client (bytes responses, as RQ needs). Raises RedisUnavailable / RedisModulesMissing."""
    url = redis_url(settings)
    try:
        client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5,
                                      health_check_interval=30)
    except ValueError:  # its text may quote part of the URL: never shown
        check_redis_url(url)  # names the problem, password masked
        raise ConfigError(f"Redis URL {mask_url(url)!r} is not usable.",
                          hint="Use redis://[:PASSWORD@]HOST:6379/0 or unix:///path/redis.sock.") from None
    if url not in _checked:
        check_server(client, url)
        _checked.add(url)
    return client


def check_server(client, url: str) -> None:
    """Ping the server and make sure the modules the checkpointer needs are loaded."""
    try:
        client.ping()
        names = {_name(m) for m in client.module_list()}
    except redis.AuthenticationError as exc:
        if _has_password(url):
            raise RedisUnavailable(f"Redis at {mask_url(url)} refused the password: {_clean(exc, url)}",
                                   hint=_PASSWORD_HINT) from None
        raise RedisUnavailable(f"Redis at {mask_url(url)} needs a password, and the URL has none.",
                               hint=_PASSWORD_HINT) from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnavailable(f"Cannot reach Redis at {mask_url(url)}: {_clean(exc, url)}") from None
    except redis.RedisError as exc:  # e.g. NOPERM: a user whose ACL forbids what ttrpg needs
        raise RedisUnavailable(f"Redis at {mask_url(url)} answered with an error: {_clean(exc, url)}",
                               hint="ttrpg needs a Redis user allowed every command (+@all) on every key.") from None
    missing = [label for name, label in REQUIRED_MODULES.items() if name not in names]
    if missing:
        raise RedisModulesMissing(
            f"Redis at {mask_url(url)} lacks the {' and '.join(missing)} module(s) that session checkpoints need."
        )


_PASSWORD_HINT = ("Put the password in the URL: TTRPG_REDIS_URL=redis://:PASSWORD@HOST:6379/0 "
                  "(percent-encode / ? # @ : in it); see docs/operations.md.")


def _has_password(url: str) -> bool:
    return mask_url(url) != url


def _clean(exc: BaseException, url: str) -> str:
    """An exception's text with the URL's password (if it appears) masked, on one line."""
    text = " ".join(str(exc).split())
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in filter(None, {password, password and unquote(password)}):
        text = text.replace(secret, "***")
    return text[:300]


def text_of(value) -> str:
    """A name or value read from Redis as text (bytes that are not UTF-8 never raise).

    It is data from whoever can write to the Redis: printers show it as cleaned text
    (:func:`ttrpg.console.cell`), never as markup."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def when_redis_is_up(fn, *, patience_s: float | None = None, should_stop=None, on_wait=None,
                     first_wait_s: float = 1.0, max_wait_s: float = defaults.REDIS_RETRY_MAX_S):
    """``fn()``, called again while Redis is unreachable (connection or timeout error).

    Waits ``first_wait_s`` between attempts, doubling up to ``max_wait_s``; ``on_wait(exc,
    wait_s)`` is told before each wait. Re-raises the error once ``patience_s`` is spent;
    returns None as soon as ``should_stop()`` is true (checked every 0.2 s while waiting).
    """
    deadline = None if patience_s is None else time.monotonic() + patience_s
    wait = first_wait_s
    while True:
        if should_stop is not None and should_stop():
            return None
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise
            if on_wait is not None:
                on_wait(exc, wait)
        until = time.monotonic() + wait
        while time.monotonic() < until and not (should_stop is not None and should_stop()):
            time.sleep(min(0.2, wait))
        wait = min(wait * 2, max_wait_s)


def _name(module: dict) -> str:
    v = module.get(b"name", module.get("name"))
    return v.decode() if isinstance(v, bytes) else str(v)
