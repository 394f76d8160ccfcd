"""The session checkpointer: LangGraph's RedisSaver, made durable and safe to read.

Every phase of every turn is a checkpoint in Redis. Whoever can write to that Redis can
plant a checkpoint, so loading one must never construct or call anything.
"""

from __future__ import annotations

from langgraph.checkpoint.redis import RedisSaver


class DurableRedisSaver(RedisSaver):
    """RedisSaver that always loads a checkpoint's pending writes.

    langgraph-checkpoint-redis 0.5.2's ``put()`` stores ``has_writes: False`` and may
    overwrite the flag a concurrent ``put_writes`` set, so ``get_tuple`` skips pending
    writes, and a pending ``interrupt()`` vanished from ``get_state()`` (84/100 runs in
    DESIGN.md's experiment). Always looking costs one registry lookup per load.
    """

    def _load_pending_writes_with_registry_check(self, thread_id, checkpoint_ns, checkpoint_id,
                                                 checkpoint_has_writes, registry_has_writes):
        return super()._load_pending_writes_with_registry_check(thread_id, checkpoint_ns, checkpoint_id,
                                                                True, registry_has_writes)


def make_saver(redis) -> DurableRedisSaver:
    saver = DurableRedisSaver(redis_client=redis)
    saver.setup()
    return saver
