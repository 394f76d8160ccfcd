"""Every Redis key and key prefix ttrpg writes, in one place.

RQ's own keys live under ``rq:`` and LangGraph's checkpointer under ``checkpoint*`` /
``checkpoint_write*``; everything ttrpg owns lives under ``ttrpg:`` so an operator can
see at a glance what belongs to whom (``redis-cli --scan --pattern 'ttrpg:*'``).
"""

PREFIX = "ttrpg"

#: Hash of session metadata: campaign, status, current turn/phase, DM script, timestamps.
SESSION_KEY = PREFIX + ":session:{session_id}"
#: Sorted set of all session ids, scored by last update time (newest last).
SESSIONS_INDEX = PREFIX + ":sessions"
#: Lock held by the one process driving a session (``SET NX PX``, renewed while it runs).
SESSION_LOCK = PREFIX + ":lock:{session_id}"
#: Redis Stream of the session's research-log events.
EVENTS_STREAM = PREFIX + ":events:{session_id}"
#: Set of event ids already appended to the stream: makes a replayed write idempotent.
EVENTS_SEEN = PREFIX + ":events-seen:{session_id}"
#: Set of session ids that belong to a campaign.
CAMPAIGN_SESSIONS = PREFIX + ":campaign:{campaign_id}:sessions"
#: Memory documents (JSON) of a campaign, indexed by :data:`MEMORY_INDEX`.
MEMORY_KEY = PREFIX + ":memory:{campaign_id}:{memory_id}"
MEMORY_PREFIX = PREFIX + ":memory:"
#: RediSearch index over all memories.
MEMORY_INDEX = PREFIX + "-memory-idx"

#: Counter of how many times a job's function ran (a second run is a duplicate LLM call).
JOB_EXECUTIONS = PREFIX + ":executions:{job_id}"

#: A job's reply, kept so a job that RQ runs again (its result was lost) does not call the model twice.
JOB_REPLY = PREFIX + ":reply:{job_id}"

#: The RQ queue AI-player jobs go to unless ``TTRPG_QUEUE`` says otherwise.
DEFAULT_QUEUE = "ttrpg"

#: Modules the checkpointer needs, as ``MODULE LIST`` names them.
REQUIRED_MODULES = {"ReJSON": "RedisJSON", "search": "RediSearch"}

#: Hash of a campaign's known entities (NPCs, places, items): lower-case name -> JSON
#: ``{"name", "session_id", "turn", "kind"}`` of its first sighting (ttrpg.memory).
MEMORY_ENTITIES = PREFIX + ":memory-entities:{campaign_id}"
#: Hash of a campaign's memory clock: ``max`` (latest campaign turn) and ``s:<session_id>``
#: (the session's offset), so memory age counts turns across sessions (ttrpg.memory).
MEMORY_CLOCK = PREFIX + ":memory-clock:{campaign_id}"

#: LangGraph's keys of one session's checkpoint history (RedisSaver 0.5, thread id = session id),
#: every namespace: checkpoints, the latest-checkpoint pointers, pending writes and their
#: registry sets. Their RediSearch index entries go with the keys. ``ttrpg compact``
#: deletes them once the session has finished (ttrpg.session.retention).
CHECKPOINT_THREAD_PATTERNS = ("checkpoint:{session_id}:*", "checkpoint_latest:{session_id}:*",
                              "checkpoint_write:{session_id}:*", "write_keys_zset:{session_id}:*")

# --- research batches (ttrpg.batch) ---

#: Hash of a batch: its matrix (spec), conditions, session ids, driver groups, queues, cancel flag.
BATCH_KEY = PREFIX + ":batch:{batch_id}"
#: Hash of a batch's sessions: session id -> JSON {condition, seed, replicate, group, initial state, DM spec}.
BATCH_SESSIONS = PREFIX + ":batch:{batch_id}:sessions"
#: Hash of a batch's driver groups: ``g<n>`` -> JSON {job_id, status, runs, started_at, host, pid, rss_kb}.
BATCH_DRIVERS = PREFIX + ":batch:{batch_id}:drivers"
#: Hash of sessions a batch driver gave up on: session id -> JSON {status: failed | left, error}.
BATCH_OUTCOMES = PREFIX + ":batch:{batch_id}:outcomes"
#: A running driver job's heartbeat (``host:pid``, short TTL): gone means the driver died with its machine.
BATCH_DRIVER_ALIVE = PREFIX + ":batch-driver:{batch_id}:{group}"
#: Sorted set of batch ids, scored by creation time.
BATCHES_INDEX = PREFIX + ":batches"
#: The queue of session-driver jobs is the player queue's name plus this (``ttrpg`` -> ``ttrpg-drivers``).
DRIVERS_QUEUE_SUFFIX = "-drivers"
