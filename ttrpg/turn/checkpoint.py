"""The session checkpointer: LangGraph's RedisSaver, made durable, safe to read, and fenced.

Every phase of every turn is a checkpoint in Redis. Whoever can write to that Redis can
plant a checkpoint, so loading one must never construct or call anything:

* LangGraph's serializer revives msgpack "ext" payloads by importing the module and calling
  the name they carry (``("os", "system", ("cmd",))`` runs a command; by default it only
  warns "Deserializing unregistered type"), and the Redis saver's JSON reviver imports any
  module named in an ``{"lc": 2, "type": "constructor", "id": [...]}`` envelope and calls
  any dataclass it names. :class:`StrictSerializer` reads both formats itself: the
  LangGraph types that LangGraph stores in checkpoints (:data:`ALLOWED_TYPES`) are rebuilt
  from a fixed table, never looked up by name; an unknown msgpack payload is refused with
  :class:`~ttrpg.exceptions.CheckpointRejected` (ttrpg never writes one); an unknown JSON
  envelope stays the plain dict it is (session state may hold dicts of any shape, e.g.
  a model's reply); pickle and any other format are refused. ttrpg's own state is plain
  JSON-like data, so it needs nothing more.
* A driver that lost its session lock (stopped past its TTL while another ``resume`` took
  over) must not write: with a :class:`~ttrpg.session.lock.Fence`, every write (``put``,
  ``put_writes``, ``prune``, ``delete_thread``) first checks that the lock still holds this
  driver's token and raises :class:`~ttrpg.exceptions.LockLost` otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import langgraph.types as lt
import orjson
import ormsgpack
from langgraph.checkpoint.redis import RedisSaver
from langgraph.checkpoint.redis.jsonplus_redis import JsonPlusRedisSerializer

from ttrpg.exceptions import CheckpointRejected

# -- reading checkpoints: data only -----------------------------------------------------------

def _langgraph_types() -> dict[tuple[str, str], type]:
    found = {}
    for name in ("Interrupt", "Send", "Command", "Overwrite", "TimeoutPolicy"):
        cls = getattr(lt, name, None)
        if cls is not None:
            found[("langgraph.types", name)] = cls
    return found


#: (module, name) of everything a checkpoint may construct: the LangGraph types LangGraph
#: itself writes into checkpoints and pending writes (``Interrupt`` for ``interrupt()``,
#: ``Send`` / ``Command`` / ``Overwrite`` / ``TimeoutPolicy`` when a graph uses them), plus
#: the builtin sets. Each is a plain data holder: constructing one runs no code of the data's
#: choosing.
ALLOWED_TYPES: dict[tuple[str, str], type] = {
    **_langgraph_types(),
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}

try:  # LangGraph's internal wrapper for delta-encoded channel values (newer langgraph)
    from langgraph.checkpoint.serde.types import _DeltaSnapshot
except ImportError:  # pragma: no cover
    _DeltaSnapshot = None

# msgpack ext codes of langgraph.checkpoint.serde.jsonplus
_EXT_SINGLE_ARG, _EXT_POS_ARGS, _EXT_KW_ARGS, _EXT_METHOD, _EXT_PYDANTIC_V1, _EXT_PYDANTIC_V2 = 0, 1, 2, 3, 4, 5
_EXT_NUMPY, _EXT_DELTA = 6, 7


def _safe_name(parts) -> str:
    """A planted name, reduced to characters that cannot be markup or terminal escapes."""
    text = ".".join(str(p) for p in parts) if isinstance(parts, (list, tuple)) else str(parts)
    return re.sub(r"[^A-Za-z0-9_.]", "?", text)[:80] or "?"


def _rejected(what: str) -> CheckpointRejected:
    return CheckpointRejected(f"Refused to load a checkpoint: it holds {what}, which ttrpg never stores "
                              "(nothing was imported or run).")


def _build(cls: type, args: Any = None, kwargs: Any = None) -> Any:
    """Construct one allow-listed type from data; shapes other than LangGraph's are refused."""
    if cls in (set, frozenset):
        items = args[0] if isinstance(args, (list, tuple)) and len(args) == 1 else args
        try:
            return cls(items)
        except TypeError as exc:  # not a list, or unhashable items
            raise _rejected("a malformed set") from exc
    if kwargs is not None and not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
        raise _rejected(f"malformed arguments for {cls.__name__}")
    if args is not None and not isinstance(args, (list, tuple)):
        raise _rejected(f"malformed arguments for {cls.__name__}")
    if args is not None and len(args) == 3 and cls.__name__ == "Send":  # (node, arg, timeout)
        args, kwargs = args[:2], {**(kwargs or {}), "timeout": args[2]}
    try:
        return cls(*(args or ()), **(kwargs or {}))
    except TypeError as exc:
        raise _rejected(f"malformed arguments for {cls.__name__}") from exc


class StrictSerializer(JsonPlusRedisSerializer):
    """JsonPlusRedisSerializer that writes the same bytes but reads data only.

    Writing is unchanged (JSON, msgpack for nested bytes). Reading never imports a module
    or calls a name found in the data: see the module docstring.
    """

    def __init__(self) -> None:
        super().__init__(pickle_fallback=False, allowed_json_modules=None, allowed_msgpack_modules=None)
        self._unpack_ext_hook = self._ext_hook
        self._custom_unpack_ext_hook = True

    def with_msgpack_allowlist(self, extra_allowlist) -> "StrictSerializer":
        """LangGraph widens the allow-list with the types of a graph's state schema; ttrpg's
        state is plain data, and the list here is the whole list."""
        return self

    # -- loads -------------------------------------------------------------------------------

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        type_, payload = data
        if isinstance(type_, bytes):
            type_ = type_.decode(errors="replace")
        if type_ == "null":
            return None
        if type_ == "bytes":
            return bytes(payload)
        if type_ == "bytearray":
            return bytearray(payload)
        if type_ == "json":
            return self._revive_if_needed(orjson.loads(payload))
        if type_ == "msgpack":
            return self._unpack(payload, [])
        raise _rejected(f"data in the format {_safe_name(type_)!r}")

    def _unpack(self, payload: bytes, refused: list) -> Any:
        """ormsgpack turns an ext hook's exception into ``ValueError("ext_hook failed")``:
        the hook records its refusal in ``refused`` so the real reason is raised."""
        try:
            return ormsgpack.unpackb(payload, ext_hook=lambda code, data: self._ext_hook(code, data, refused),
                                     option=ormsgpack.OPT_NON_STR_KEYS)
        except CheckpointRejected:
            raise
        except (ValueError, TypeError):
            if refused:
                raise refused[0] from None
            raise _rejected("unreadable msgpack data") from None

    def _ext_hook(self, code: int, data: bytes, refused: list | None = None) -> Any:
        refused = [] if refused is None else refused
        try:
            return self._from_ext(code, self._unpack(data, refused))
        except CheckpointRejected as exc:
            if not refused:
                refused.append(exc)
            raise

    @staticmethod
    def _from_ext(code: int, value: Any) -> Any:
        if code == _EXT_DELTA and _DeltaSnapshot is not None:
            return _DeltaSnapshot(value)
        if code in (_EXT_SINGLE_ARG, _EXT_POS_ARGS, _EXT_KW_ARGS) and isinstance(value, (list, tuple)) \
                and len(value) == 3 and isinstance(value[0], str) and isinstance(value[1], str):
            cls = ALLOWED_TYPES.get((value[0], value[1]))
            if cls is not None:
                if code == _EXT_SINGLE_ARG:
                    return _build(cls, [value[2]])
                if code == _EXT_POS_ARGS:
                    return _build(cls, value[2])
                return _build(cls, kwargs=value[2])
        if isinstance(value, (list, tuple)) and len(value) >= 2:
            raise _rejected(f"a constructor for {_safe_name(value[:2])}")
        raise _rejected(f"a msgpack extension of type {int(code)}")

    def _revive_if_needed(self, obj: Any) -> Any:
        """Rebuild the markers and envelopes LangGraph's Redis saver writes for allow-listed
        types; anything else stays plain data (a dict stays a dict)."""
        if isinstance(obj, list):
            return [self._revive_if_needed(item) for item in obj]
        if not isinstance(obj, dict):
            return obj
        revived = {k: self._revive_if_needed(v) for k, v in obj.items()}
        try:
            return self._revive_dict(revived)
        except CheckpointRejected:  # an allow-listed name with the wrong shape: plain data too
            return revived

    @staticmethod
    def _revive_dict(revived: dict) -> Any:
        if revived.get("lc") in (1, 2) and revived.get("type") == "constructor":
            ident = revived.get("id")
            if isinstance(ident, list) and len(ident) >= 2 and all(isinstance(p, str) for p in ident):
                cls = ALLOWED_TYPES.get((".".join(ident[:-1]), ident[-1]))
                if cls is not None:
                    return _build(cls, revived.get("args"), revived.get("kwargs"))
            return revived
        interrupt = ALLOWED_TYPES.get(("langgraph.types", "Interrupt"))
        if revived.get("__interrupt__") is True and "value" in revived and interrupt is not None:
            fields = _fields(interrupt)
            return _build(interrupt, kwargs={k: v for k, v in revived.items() if k in fields})
        send = ALLOWED_TYPES.get(("langgraph.types", "Send"))
        if revived.get("__send__") is True and len(revived) == 3 and "node" in revived and "arg" in revived \
                and send is not None:
            return _build(send, [revived["node"], revived["arg"]])
        if revived.get("__delta_snapshot__") is True and len(revived) == 2 and "value" in revived \
                and _DeltaSnapshot is not None:
            return _DeltaSnapshot(revived["value"])
        return revived

    def _reviver(self, value: dict[str, Any]) -> Any:
        """LangChain's reviver is never used: envelopes go through :meth:`_revive_if_needed`."""
        return self._revive_if_needed(value)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


# -- the saver --------------------------------------------------------------------------------

class DurableRedisSaver(RedisSaver):
    """RedisSaver that loads data only, always loads pending writes, and can be fenced.

    langgraph-checkpoint-redis 0.5.2's ``put()`` stores ``has_writes: False`` and may
    overwrite the flag a concurrent ``put_writes`` set, so ``get_tuple`` skips pending
    writes, and a pending ``interrupt()`` vanished from ``get_state()`` (84/100 runs in
    an experiment with async durability). Always looking costs one registry lookup per load.

    ``fence`` (a :class:`ttrpg.session.lock.Fence`; settable later as ``saver.fence``) is checked
    before every write; ``None`` (tools, tests, ``ttrpg status``) writes unconditionally.
    """

    def __init__(self, *args, fence=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.serde = StrictSerializer()
        self.fence = fence

    def _load_pending_writes_with_registry_check(self, thread_id, checkpoint_ns, checkpoint_id,
                                                 checkpoint_has_writes, registry_has_writes):
        return super()._load_pending_writes_with_registry_check(thread_id, checkpoint_ns, checkpoint_id,
                                                                True, registry_has_writes)

    def _check_fence(self) -> None:
        if self.fence is not None:
            self.fence.check()

    def put(self, config, checkpoint, metadata, new_versions):
        self._check_fence()
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config, writes, task_id, task_path=""):
        self._check_fence()
        return super().put_writes(config, writes, task_id, task_path)

    def delete_thread(self, thread_id):
        self._check_fence()
        return super().delete_thread(thread_id)

    def prune(self, *args, **kwargs):
        self._check_fence()
        return super().prune(*args, **kwargs)


def make_saver(redis, fence=None) -> DurableRedisSaver:
    """The session checkpointer (strict reads; writes fenced when ``fence`` is given)."""
    saver = DurableRedisSaver(redis_client=redis, fence=fence)
    saver.setup()
    return saver
