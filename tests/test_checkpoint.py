"""The checkpointer: checkpoints are data only, LangGraph's own types still round-trip, and a
fenced saver writes nothing once its driver has lost the session lock.

The planted payloads below are what LangGraph's own serializers produce for an arbitrary
object (a msgpack ext ``(module, name, args)`` or an ``lc`` constructor envelope); each test
first shows that LangGraph's stock ``RedisSaver`` really runs them, then that ttrpg's does not.
"""

from __future__ import annotations

import json
import operator
import pickle
import sys
import textwrap
import uuid
from typing import Annotated, TypedDict

import ormsgpack
import pytest
from langgraph.checkpoint.redis import RedisSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from ttrpg.exceptions import CheckpointRejected, LockLost
from ttrpg.session.lock import SessionLock
from ttrpg.turn.checkpoint import StrictSerializer, make_saver


class S(TypedDict, total=False):
    n: int
    note: str
    answer: str
    items: Annotated[list, operator.add]


def _ask(state: S) -> dict:
    return {"answer": interrupt({"question": "Go on?", "n": state.get("n", 0)})}


def _fan(state: S):
    return [Send("work", {"n": i}) for i in range(2)]


def _work(arg: dict) -> dict:
    return {"items": [arg["n"]]}


def small_graph(saver, **compile_kw):
    g = StateGraph(S)
    g.add_node("ask", _ask)
    g.add_node("work", _work)
    g.add_edge(START, "ask")
    g.add_conditional_edges("ask", _fan, ["work"])
    g.add_edge("work", END)
    return g.compile(checkpointer=saver, **compile_kw)


def cfg(thread_id: str) -> dict:
    return {"configurable": {"thread_id": thread_id}}


def fresh_client():
    from ttrpg.backend.connection import get_redis

    return get_redis()


def test_langgraph_types_round_trip_in_a_fresh_saver(redis_client, session_id):
    """Interrupt (pending write), Send (fan-out tasks), Command(resume) and plain state survive
    a reload by a new saver on a new connection at each pause."""
    graph = small_graph(make_saver(redis_client), interrupt_before=["work"])
    graph.invoke({"n": 3, "note": "x"}, cfg(session_id), durability="sync")

    snap = small_graph(make_saver(fresh_client())).get_state(cfg(session_id))
    assert snap.next == ("ask",)
    assert [i.value for i in snap.interrupts] == [{"question": "Go on?", "n": 3}]
    assert snap.values == {"n": 3, "note": "x", "items": []}

    graph = small_graph(make_saver(fresh_client()), interrupt_before=["work"])
    graph.invoke(Command(resume="yes"), cfg(session_id), durability="sync")
    snap = graph.get_state(cfg(session_id))
    assert snap.next == ("work", "work") and snap.values["answer"] == "yes"
    sends = [t for t in snap.tasks if t.name == "work"]
    assert len(sends) == 2

    final = small_graph(make_saver(fresh_client())).invoke(None, cfg(session_id), durability="sync")
    assert final["answer"] == "yes" and sorted(final["items"]) == [0, 1]
    assert small_graph(make_saver(fresh_client())).get_state(cfg(session_id)).next == ()


def test_strict_serializer_reads_what_it_writes():
    from langgraph.types import Interrupt

    serde = StrictSerializer()
    for value in [{"a": [1, 2.5, None, True, "x"]}, [Interrupt(value={"q": 1}, id="i1")], Send("n", {"k": 1}),
                  {"raw": b"\x00\x01"}, {1, 2},
                  {"lc": 2, "type": "constructor", "id": ["os", "system"], "args": ["x"]}]:
        assert serde.loads_typed(serde.dumps_typed(value)) == value


def test_strict_serializer_refuses_every_constructor_shape(monkeypatch):
    """Every msgpack ext shape LangGraph's serializer revives (constructor with one arg,
    positional args, keyword args, method call, pydantic v1/v2), nested or not, naming a
    function that records its calls: LangGraph's default serializer calls it, ours refuses."""
    import types

    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    calls = []
    sentinel = types.ModuleType("ttrpg_sentinel")
    sentinel.hit = lambda *a, **k: calls.append((a, k)) or "called"
    sentinel.Model = type("Model", (), {"__init__": lambda self, **k: calls.append(k)})
    monkeypatch.setitem(sys.modules, "ttrpg_sentinel", sentinel)
    ext = ormsgpack.Ext
    payloads = [
        _msgpack_ext(0, "ttrpg_sentinel", "hit", "x"),
        _msgpack_ext(1, "ttrpg_sentinel", "hit", ["x"]),
        _msgpack_ext(2, "ttrpg_sentinel", "hit", {"x": 1}),
        ormsgpack.packb(ext(3, ormsgpack.packb(("ttrpg_sentinel", "hit", "x", "__call__")))),
        ormsgpack.packb(ext(4, ormsgpack.packb(("ttrpg_sentinel", "Model", {"x": 1})))),
        ormsgpack.packb(ext(5, ormsgpack.packb(("ttrpg_sentinel", "Model", {"x": 1}, "model_validate_json")))),
        # hidden inside an allow-listed Interrupt's value
        ormsgpack.packb(ext(2, ormsgpack.packb(("langgraph.types", "Interrupt",
                                                {"value": ext(0, ormsgpack.packb(("ttrpg_sentinel", "hit", "x"))),
                                                 "id": "i"})))),
    ]
    JsonPlusSerializer(allowed_msgpack_modules=True).loads_typed(("msgpack", payloads[0]))  # control
    assert calls
    calls.clear()
    strict = StrictSerializer()
    for payload in payloads:
        with pytest.raises(CheckpointRejected) as err:
            strict.loads_typed(("msgpack", payload))
        assert "ttrpg_sentinel" in str(err.value) or "extension" in str(err.value)
    for type_ in ("pickle", "[bold]x\x1b[2J"):
        with pytest.raises(CheckpointRejected) as err:
            strict.loads_typed((type_, b"..."))
        assert "[" not in str(err.value).replace("'", "") and "\x1b" not in str(err.value)
    # JSON: unknown envelopes, secrets and malformed allow-listed ones stay plain data
    for doc in ({"lc": 2, "type": "constructor", "id": ["ttrpg_sentinel", "hit"], "args": ["x"]},
                {"lc": 1, "type": "constructor", "id": ["ttrpg_sentinel", "Model"], "kwargs": {}},
                {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]},
                {"lc": 2, "type": "constructor", "id": ["langgraph", "types", "Send"], "args": "bad"},
                {"lc": 2, "type": "constructor", "id": ["builtins", "set"], "args": [[[1]]]}):
        assert strict.loads_typed(("json", json.dumps({"v": doc}).encode())) == {"v": doc}
    assert calls == []


def _msgpack_ext(code: int, module: str, name: str, args) -> bytes:
    """What langgraph's JsonPlusSerializer writes for an object of ``module.name``."""
    return ormsgpack.packb(ormsgpack.Ext(code, ormsgpack.packb((module, name, args))))


class _Planter:
    """A serializer that hands the saver a prepared payload: the planted write is stored in
    exactly the format and keys the Redis saver uses for real writes."""

    def __init__(self, payload: tuple[str, bytes]):
        self.payload = payload

    def dumps_typed(self, obj):
        return self.payload

    def loads_typed(self, data):  # pragma: no cover
        raise AssertionError


def stock_saver(redis_client) -> RedisSaver:
    """LangGraph's own Redis saver, as it comes."""
    saver = RedisSaver(redis_client=redis_client)
    saver.setup()
    return saver


def _plant_write(redis_client, config, channel: str, payload: tuple[str, bytes], task_id: str) -> None:
    planter = stock_saver(redis_client)
    planter.serde = _Planter(payload)
    planter.put_writes(config, [(channel, "ignored")], task_id)


@pytest.fixture
def paused_thread(redis_client, session_id):
    """A thread waiting at an interrupt, and the config of its latest checkpoint."""
    graph = small_graph(make_saver(redis_client))
    graph.invoke({"n": 1}, cfg(session_id), durability="sync")
    return graph.get_state(cfg(session_id)).config


def test_planted_msgpack_writes_run_nothing(redis_client, session_id, paused_thread, tmp_path):
    """A pending write whose msgpack payload names os.system / subprocess.Popen: LangGraph's
    stock saver runs the command when the session is read; ttrpg's refuses the checkpoint."""
    by_system, by_popen = tmp_path / "by-os-system", tmp_path / "by-popen"
    _plant_write(redis_client, paused_thread, "note",
                 ("msgpack", _msgpack_ext(0, "os", "system", f"touch {by_system}")), "evil-1")
    _plant_write(redis_client, paused_thread, "__pregel_tasks",
                 ("msgpack", _msgpack_ext(1, "subprocess", "Popen", [["touch", str(by_popen)]])), "evil-2")

    # Control: the payloads are live. LangGraph's own saver constructs them on a plain read.
    stock_saver(redis_client).get_tuple(paused_thread)
    _wait_for(lambda: by_system.exists() and by_popen.exists())
    by_system.unlink()
    by_popen.unlink()

    with pytest.raises(CheckpointRejected) as err:
        make_saver(redis_client).get_tuple(paused_thread)
    assert "nothing was imported or run" in str(err.value)
    with pytest.raises(CheckpointRejected):
        small_graph(make_saver(redis_client)).get_state(cfg(session_id))
    with pytest.raises(CheckpointRejected):
        list(make_saver(redis_client).list(cfg(session_id)))
    _settle()
    assert not by_system.exists() and not by_popen.exists()


def test_planted_pickle_write_is_refused(redis_client, session_id, paused_thread, tmp_path):
    target = tmp_path / "by-pickle"

    class Boom:
        def __reduce__(self):
            import os

            return os.system, (f"touch {target}",)

    _plant_write(redis_client, paused_thread, "note", ("pickle", pickle.dumps(Boom())), "evil-3")
    with pytest.raises(CheckpointRejected):
        small_graph(make_saver(redis_client)).get_state(cfg(session_id))
    _settle()
    assert not target.exists()


EVIL_MODULE = """
import dataclasses, pathlib
pathlib.Path({imported!r}).touch()        # runs on import

@dataclasses.dataclass
class Boom:
    path: str
    def __post_init__(self):              # runs on construction
        pathlib.Path(self.path).touch()
"""


def test_planted_checkpoint_document_constructs_nothing(redis_client, session_id, paused_thread, tmp_path,
                                                        monkeypatch):
    """The checkpoint document itself (channel values stored inline) carries an ``lc``
    envelope naming an importable module and a dataclass of it. The stock saver imports the
    module and constructs the dataclass; ttrpg's loads the envelope as the inert dict it is."""
    mod = "ttrpg_planted_" + uuid.uuid4().hex[:8]
    imported, constructed = tmp_path / "imported", tmp_path / "constructed"
    (tmp_path / f"{mod}.py").write_text(textwrap.dedent(EVIL_MODULE.format(imported=str(imported))))
    monkeypatch.syspath_prepend(str(tmp_path))
    envelope = {"lc": 2, "type": "constructor", "id": [mod, "Boom"], "kwargs": {"path": str(constructed)}}
    saver = make_saver(redis_client)
    key = saver._make_redis_checkpoint_key_cached(session_id, "", paused_thread["configurable"]["checkpoint_id"])
    redis_client.json().set(key, "$.checkpoint.channel_values.note", envelope)

    stock_saver(redis_client).get_tuple(paused_thread)  # control
    assert imported.exists() and constructed.exists()
    imported.unlink()
    constructed.unlink()
    sys.modules.pop(mod, None)

    snap = small_graph(make_saver(redis_client)).get_state(cfg(session_id))
    assert snap.values["note"] == envelope  # plain data, as stored
    assert mod not in sys.modules and not imported.exists() and not constructed.exists()


# -- fencing ----------------------------------------------------------------------------------------

def test_fenced_saver_writes_nothing_after_takeover(redis_client, session_id):
    lock = SessionLock(redis_client, session_id, ttl_ms=5000)
    lock.acquire()
    try:
        graph = small_graph(make_saver(redis_client, fence=lock.fence()))
        graph.invoke({"n": 1}, cfg(session_id), durability="sync")
        before = len(list(make_saver(redis_client).list(cfg(session_id))))

        redis_client.set(lock.key, "otherhost:4242:abcd", px=5000)  # another driver took over
        with pytest.raises(LockLost) as err:
            graph.invoke(Command(resume="yes"), cfg(session_id), durability="sync")
        assert "otherhost, pid 4242" in str(err.value) and lock.lost
        assert len(list(make_saver(redis_client).list(cfg(session_id)))) == before
        snap = small_graph(make_saver(redis_client)).get_state(cfg(session_id))
        assert snap.next == ("ask",) and "answer" not in snap.values
    finally:
        lock.release()
    assert redis_client.get(lock.key) == b"otherhost:4242:abcd"  # release never deletes another's lock


def test_unfenced_saver_is_unchanged(redis_client, session_id):
    graph = small_graph(make_saver(redis_client))
    graph.invoke({"n": 1}, cfg(session_id), durability="sync")
    assert graph.invoke(Command(resume="ok"), cfg(session_id), durability="sync")["answer"] == "ok"


def _wait_for(cond, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _settle() -> None:
    """Give anything that might have been started (a Popen) time to act before asserting absence."""
    import time

    time.sleep(0.3)
