"""Getting a Redis client that is known to work for ttrpg.

With ``TTRPG_REDIS_URL`` (or ``REDIS_URL``) set, ttrpg uses that server and checks, before
doing anything else, that it answers and has the RedisJSON and RediSearch modules. Without
one, it starts (or reuses) the embedded server (:mod:`ttrpg.embedded`).
"""

from __future__ import annotations

import re

from ttrpg import defaults
from ttrpg.constants import REQUIRED_MODULES
from ttrpg.exceptions import RedisModulesMissing, RedisUnavailable
from ttrpg.settings import Settings, get_settings

_checked: set[str] = set()


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe to print and log."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def redis_url(settings: Settings | None = None) -> str:
    """The URL every process of this installation uses (starting the embedded server if needed)."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    from ttrpg import embedded

    return embedded.ensure_running(settings.home)


def get_redis(settings: Settings | None = None, *, socket_timeout: float = defaults.REDIS_SOCKET_TIMEOUT_S):
    """A checked client (bytes responses, as RQ needs). Raises RedisUnavailable / RedisModulesMissing."""
    import redis

    url = redis_url(settings)
    client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5,
                                  health_check_interval=30)
    if url not in _checked:
        check_server(client, url)
        _checked.add(url)
    return client


def check_server(client, url: str) -> None:
    """Ping the server and make sure the modules the checkpointer needs are loaded."""
    import redis

    try:
        client.ping()
        names = {_name(m) for m in client.module_list()}
    except redis.AuthenticationError as exc:
        raise RedisUnavailable(f"Redis at {mask_url(url)} refused the password: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnavailable(f"Cannot reach Redis at {mask_url(url)}: {exc}") from None
    missing = [label for name, label in REQUIRED_MODULES.items() if name not in names]
    if missing:
        raise RedisModulesMissing(
            f"Redis at {mask_url(url)} lacks the {' and '.join(missing)} module(s) that session checkpoints need."
        )


def _name(module: dict) -> str:
    v = module.get(b"name", module.get("name"))
    return v.decode() if isinstance(v, bytes) else str(v)
