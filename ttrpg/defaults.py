"""Every tunable default, with a line on why it has the value it has.

Settings read from the environment (:mod:`ttrpg.settings`) fall back to these; code that
needs a number imports it from here rather than writing it inline.
"""

REDIS_START_TIMEOUT_S = 15.0
"""How long to wait for the embedded redis-server to answer PING after start."""

REDIS_RECONNECT_S = 60.0
"""How long a running session waits for Redis to come back (a restart, an AOF load) before it
stops and says how to resume."""

REDIS_SOCKET_TIMEOUT_S = 120.0
"""Socket timeout of the orchestrator's Redis client; longer than any blocking wait we do
(redis-py 8 defaults to 5 s, which breaks ``job.latest_result(timeout=30)``)."""

REDIS_MONITOR_SOCKET_TIMEOUT_S = 10.0
"""Socket timeout for fleet monitoring clients (kept apart: RQ's Worker rewrites its pool's)."""

JOB_TIMEOUT_S = 90
"""RQ job timeout for one AI-player LLM call: above the LLM retry budget (~35 s) plus one
slow reply, so a hung call is killed rather than stalling a turn forever."""

JOB_RESULT_TTL_S = 7 * 24 * 3600
"""How long a finished LLM job keeps its result: a DM may resume a week later without the
finished calls being paid for again."""

JOB_FAILURE_TTL_S = 7 * 24 * 3600
"""How long a failed job is kept for ``ttrpg workers`` and post-mortems."""

JOB_ABANDONED_RETRIES = 2
"""RQ-level retries of a job whose worker died under it (the LLM retries live inside the job)."""

PHASE_TIMEOUT_S = 180.0
"""Time limit for one fan-out phase (all players' jobs). Exceeding it fails the phase,
which rolls back and retries once, then asks the DM."""

PHASE_MAX_FAILURES = 6
"""A phase that failed this often in one turn, whatever the DM chose, stops the session (it
stays resumable): something is broken that retrying will not fix."""

REGISTRY_CLEANUP_INTERVAL_S = 15.0
"""While waiting on jobs the orchestrator sweeps RQ's started-job registry this often, so
a job abandoned by a SIGKILLed worker is re-queued within about
``WORKER_TTL_S + REGISTRY_CLEANUP_INTERVAL_S`` instead of RQ's default 10+ minutes."""

WORKER_TTL_S = 20
"""Heartbeat TTL of our workers: a dead worker's job counts as abandoned this long after
its last heartbeat."""

WORKER_MAINTENANCE_INTERVAL_S = 30
"""How often an idle worker runs RQ maintenance (registry cleanup, scheduled jobs)."""

SESSION_LOCK_TTL_MS = 15_000
"""A session lock expires this long after its holder stops renewing it (e.g. kill -9)."""

SESSION_LOCK_RENEW_S = 5.0
"""How often the driving process renews its session lock."""

CHECKPOINTS_KEPT = 40
"""Checkpoints kept per session after each turn: enough to roll back any phase of the
current and previous turn; older ones are pruned so resume cost does not grow."""

LLM_BACKOFF_S = (2.0, 5.0, 10.0, 10.0)
"""Waits between LLM attempts for transient errors: ~2 s, 5 s, 10 s; 5 attempts in ~35 s."""

LLM_MAX_ATTEMPTS = 5
"""Attempts per LLM call before the phase fails (and rolls back)."""

LLM_REQUEST_TIMEOUT_S = 30.0
"""Timeout of a single HTTP request to the model, inside the job timeout."""

LLM_MAX_TOKENS = 300
"""Reply length cap for one AI-player message."""

CONTEXT_WINDOW = 8192
"""Context window assumed for a model that tells us nothing about itself."""

VALIDATION_MAX_ATTEMPTS = 3
"""Attempts a character gets to state an action without narrating its outcome."""

DISCUSSION_MAX_ROUNDS = 5
"""Out-of-character discussion rounds before a vote decides."""

DISCUSSION_MAX_S = 120.0
"""Wall-clock limit of a discussion before a vote decides."""

OFFLINE_MODEL = "ttrpg-offline"
"""Model name the offline model reports."""

WARM_SPAWN = True
"""Spawn the next work horse while the worker is idle (see ttrpg.worker)."""

JOB_MONITORING_INTERVAL_S = 10
"""How often a worker heartbeats while its horse runs a job (RQ default 30). RQ keeps a
running job's started-registry entry alive for this + 60 s, so a job whose worker *and*
horse were SIGKILLed can be found abandoned about 70 s later instead of 90 s."""

REDIS_RETRY_MAX_S = 5.0
"""Longest wait between a worker's attempts to reach Redis again: a restarted Redis is
served again within about this long (RQ's own cap is 60 s)."""

# --- memory (ttrpg.memory) ---

MEMORY_DM_CONFIDENCE = 1.0
"""Base confidence of what the DM narrated or decided: the game's ground truth."""

MEMORY_PLAYER_CONFIDENCE = 0.8
"""Base confidence of a player layer's own intents and plans (0.7-0.9: meant, not yet true)."""

MEMORY_CHARACTER_CONFIDENCE = 0.6
"""Base confidence of a character's own actions and reactions (0.5-0.7: a subjective view)."""

MEMORY_DECISION_CONFIDENCE = 0.9
"""Base confidence of a party decision (the consensus plan): players' words, but agreed by the table."""

MEMORY_SUMMARY_CONFIDENCE = 0.9
"""Base confidence of recaps (every N turns, end of scene, end of session): compiled, so a bit below the DM."""

MEMORY_HALF_LIFE_TURNS = 50
"""Turns after which a party or player memory counts half (effective confidence decays at query time)."""

MEMORY_CHARACTER_HALF_LIFE_TURNS = 15
"""Half-life of character-layer memories: in-the-moment impressions fade faster than facts and plans."""

MEMORY_DECAY_FLOOR = 0.2
"""Decay never takes a memory below this share of its base confidence: old facts stay recallable."""

MEMORY_QUERY_LIMIT = 10
"""Results of ``ttrpg memory query`` / ``memory.query`` unless asked otherwise."""

MEMORY_QUERY_TOKEN_BUDGET = 800
"""Estimated tokens of memory text one query returns at most."""

MEMORY_RECALL_LIMIT = 6
"""Memory lines one layer of one AI gets per turn (a small model's prompt has little room)."""

MEMORY_RECALL_TOKEN_BUDGET = 250
"""Estimated tokens of memory lines one layer of one AI gets per turn."""

MEMORY_LINE_CHARS = 300
"""A recalled memory longer than this is cut in the prompt line (recaps can be long)."""

MEMORY_SUMMARY_EVERY = 10
"""Store a recap of recent history every this many turns."""

MEMORY_SUMMARY_CHARS = 1500
"""Length cap of a periodic or end-of-scene recap."""

MEMORY_SESSION_SUMMARY_CHARS = 3000
"""Length cap of an end-of-session recap."""

MEMORY_MIN_CANDIDATES = 40
MEMORY_MAX_CANDIDATES = 200
"""How many best text matches a query re-ranks by confidence (4 x limit, within these bounds)."""

MEMORY_INDEX_WAIT_S = 10.0
"""How long a process waits for RediSearch to finish (re)indexing memories after a restart."""
