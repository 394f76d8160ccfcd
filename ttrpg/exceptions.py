"""ttrpg's exceptions: small, named, and each mapped by the CLI to one line and an exit code.

Hierarchy::

    TTRPGError                      base; ``exit_code`` 1, ``hint`` says what to do
    ├── ConfigError                 exit 2: the user can fix it by changing input or settings
    │   ├── CharactersFileError     characters.json missing, malformed or invalid
    │   ├── DMScriptError           a DM script missing or invalid
    │   ├── RedisModulesMissing     the configured Redis lacks RedisJSON / RediSearch
    │   ├── UnsafePath              a socket, directory or file of ttrpg's that another user owns or can reach
    │   ├── UnknownSession          no session with that id
    │   ├── SessionFinished         ``resume`` of a session that has ended (its log can still be read)
    │   └── LLMConfigError          no API key / endpoint for real play
    ├── RedisUnavailable            Redis cannot be reached or started
    ├── SessionLocked               another process is driving the session
    ├── LockLost                    this driver lost its lock (stopped past the TTL): stops, writes nothing
    ├── CheckpointRejected          a checkpoint names a type ttrpg never stores: refused, nothing constructed
    ├── EventSchemaError            an emitted event does not match docs/events.md (TTRPG_CHECK_EVENTS=1)
    ├── PhaseError                  a turn phase failed (jobs failed, bad reply)
    │   └── PhaseTimeout            a phase exceeded its time limit
    └── LLMError                    (ttrpg.llm) the model could not be asked
        ├── LLMTransientError       retries exhausted on rate limits / timeouts / 5xx
        └── LLMPermanentError       rejected key, bad request, unknown model
            └── ContextLengthError  the prompt exceeds the model's context window
"""

from __future__ import annotations


class TTRPGError(Exception):
    """Base of every error ttrpg expects; the CLI prints ``str(err)`` and ``hint``, no traceback."""

    exit_code = 1
    hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class ConfigError(TTRPGError):
    exit_code = 2


class CharactersFileError(ConfigError, ValueError):
    hint = "Fix the file (see `ttrpg characters check FILE` and examples/characters.json)."


class DMScriptError(ConfigError, ValueError):
    hint = "Fix the DM script; its format is described in the README (DM scripts)."


class RedisModulesMissing(ConfigError):
    hint = ("Use Redis 8 or redis-stack-server, or unset TTRPG_REDIS_URL and REDIS_URL "
            "to use ttrpg's embedded Redis.")


class UnsafePath(ConfigError):
    """A socket, directory or pid file ttrpg would use is owned by another user or open to
    group/others: using it could hand the session (whispers included) to someone else."""

    hint = ("Remove it if you did not create it, or make it private (chmod 700 for a directory, "
            "600 for a file), or set TTRPG_HOME to a private directory.")


class UnknownSession(ConfigError):
    hint = "List sessions with `ttrpg sessions`."


class SessionFinished(ConfigError):
    """``resume`` of a session that ended normally: there is nothing left to play (and once
    compacted, no checkpoint to play from). The message alone says what to do instead."""


class LLMConfigError(ConfigError):
    hint = "Set OPENAI_API_KEY (and OPENAI_BASE_URL for a local server), or pass --offline."


class RedisUnavailable(TTRPGError):
    hint = ("Check that Redis is running and TTRPG_REDIS_URL is right, or unset it to use "
            "the embedded server (`ttrpg redis status`).")


class SessionLocked(TTRPGError):
    hint = "Close the other `ttrpg play`/`resume` of this session first; its lock expires 15 s after it dies."


class LockLost(TTRPGError):
    """This process drove a session, was stopped (SIGSTOP, a closed laptop lid) longer than its
    lock's TTL, and another driver may have taken the session over: it must stop without
    writing. Not a phase failure: the driver must let it through, never retry it."""

    def __init__(self, message: str, session_id: str = "", holder: str | None = None):
        super().__init__(message)
        self.session_id = session_id
        self.holder = holder


class CheckpointRejected(TTRPGError):
    """A checkpoint (or a pending write) in Redis names a Python type outside ttrpg's allow-list.
    ttrpg never writes such a payload: someone with write access to Redis planted it. It is
    refused without importing or calling anything."""

    hint = ("Someone with write access to this Redis edited the session's checkpoints; check who can "
            "reach it (see `ttrpg redis status`) before resuming.")


class EventSchemaError(TTRPGError):
    """An event about to be logged does not match its schema (:mod:`ttrpg.research.schema`).

    Checked only with ``TTRPG_CHECK_EVENTS=1`` (the test suite sets it): a bug in ttrpg, never
    the user's input, so the driver stops instead of treating it as a failed phase."""


class PhaseError(TTRPGError):
    """A phase could not complete; the session rolls back and retries, then asks the DM."""

    hint = "The session is saved at its last good phase: fix the cause, then `ttrpg resume`."

    def __init__(self, message: str, phase: str = "", player_id: str | None = None):
        super().__init__(message)
        self.phase = phase
        self.player_id = player_id


class PhaseTimeout(PhaseError):
    pass


class LLMError(TTRPGError):
    pass


class LLMTransientError(LLMError):
    """Every attempt hit a transient error (rate limit, timeout, connection, 5xx)."""

    hint = "The model server kept failing; check it is up, then `ttrpg resume`."

    def __init__(self, message: str, attempts: int = 0, last_error_class: str = ""):
        super().__init__(message)
        self.attempts = attempts
        self.last_error_class = last_error_class


class LLMPermanentError(LLMError):
    """Retrying cannot help: rejected key, no access, unknown model or endpoint, bad request."""

    exit_code = 2

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class ContextLengthError(LLMPermanentError):
    """The prompt is longer than the model's context window (a 400 from the server)."""
