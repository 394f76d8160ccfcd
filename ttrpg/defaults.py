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

LLM_REPLY_MAX_CHARS = 4000
"""Characters of one model reply kept (the rest is cut, and the cut logged): a phase asks for at most 300
tokens (about 1200 characters), so only a runaway or hostile server goes past it."""

LLM_RESPONSE_MAX_BYTES = 8_000_000
"""Largest reply body read from a model server (a chat completion is a few kB; a 1 MB reply is still read, then cut)."""

PROGRESS_INTERVAL_S = 0.4
"""How often a phase waiting on its players' jobs reports their progress (``fanout.run_jobs(on_progress=...)``)."""

CONTEXT_WINDOW = 8192
"""Context window assumed for a model that tells us nothing about itself."""

VALIDATION_MAX_ATTEMPTS = 3
"""Attempts a character gets to state an action without narrating its outcome."""

OVERREACH_JUDGE = False
"""Whether the session's own model also referees every action (``TTRPG_OVERREACH_JUDGE``); never offline."""

JUDGE_MAX_TOKENS = 80
"""Reply cap of one referee verdict: a line of JSON is about 30 tokens."""

JUDGE_LINE_MAX_CHARS = 1500
"""The longest action line the referee is shown (a character's line is one to three sentences)."""

JUDGE_REPLY_LOG_CHARS = 500
"""How much of a referee's reply an ``overreach_judged`` event keeps (the verdict is one line)."""

JUDGE_NARRATION_MAX_CHARS = 1500
"""The longest part of the GM's scene the referee is shown, for what the GM already set."""

DISCUSSION_MAX_ROUNDS = 5
"""Out-of-character discussion rounds before a vote decides."""

DISCUSSION_MAX_S = 120.0
"""Wall-clock limit of a discussion before a vote decides."""

OFFLINE_MODEL = "ttrpg-offline"
"""Model name the offline model reports."""

WARM_SPAWN = True
"""Spawn the next work horse while the worker is idle (see ttrpg.fleet)."""

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
"""Fewest best text matches a query re-ranks by confidence (4 x limit, at least this)."""

MEMORY_MAX_CANDIDATES = 200
"""Most best text matches a query re-ranks by confidence (4 x limit, at most this)."""

MEMORY_INDEX_WAIT_S = 10.0
"""How long a process waits for RediSearch to finish (re)indexing memories after a restart."""

DM_TEXT_MAX_CHARS = 4000
"""Longest line the DM may type (narration, outcome, an answer); longer is refused at the prompt."""

SCRIPT_INTERVENTIONS_MAX = 3
"""How many times a DM script's intervention answer is used for one phase of one turn before
the session stops (resumable) instead of retrying a phase that keeps failing."""

# --- files and input a user hands ttrpg (ttrpg.jsonfile, ttrpg.session.play) ---

JSON_FILE_MAX_BYTES = 1_000_000
"""Largest JSON file ttrpg reads from a user (characters, DM scripts): real ones are a few kB;
this keeps a wrong path (a log, an image, /dev/zero) from being read into memory."""

JSON_MAX_DEPTH = 64
"""Deepest nesting of arrays/objects in such a file (ours need 6): deeper would crash the
JSON parser with a RecursionError."""

JSON_MAX_INT_DIGITS = 20
"""Longest integer literal accepted in such a file (a 64-bit number has at most 20 digits)."""

MAX_TURNS = 10_000
"""Largest ``--turns``: far beyond any session, small enough for every store it travels through."""

LOCAL_WORKERS_READY_TIMEOUT_S = 60.0
"""How long ``local_workers`` waits for the workers it started to register before it gives up:
a worker registers within a second on an idle machine, but on a busy one (a full test suite, a
model server, a build) interpreter start-up alone has taken over 30 s."""

MAX_LOCAL_WORKERS = 16
"""Largest ``--workers``: one job per AI player runs at a time, so more than a few only cost memory."""

MAX_LATENCY_MS = 60_000
"""Largest offline ``--latency``: above the LLM request timeout every call already times out."""

MAX_SEED = 2**63 - 1
"""Largest ``--seed``: it is stored in checkpoints as a signed 64-bit integer."""

LOG_DIR = "research_logs"
"""Where session logs are mirrored (``TTRPG_LOG_DIR``), relative to the working directory;
created private (0700, files 0600): logs hold whispers."""

LLM_RETRY_BUDGET_S = 35.0
"""No LLM retry is started whose wait would end more than this many seconds after the first
attempt began: wall-clock, not scaled by backoff_base, so a call stays well inside JOB_TIMEOUT_S."""

LLM_RETRY_AFTER_CAP_S = 30.0
"""Longest ``Retry-After`` honoured (before scaling by backoff_base): a server asking for minutes
would otherwise spend the whole retry budget in one wait."""

LLM_CONTEXT_SHRINKS_MAX = 3
"""How often one LLM call shrinks its prompt after context-length refusals before giving up."""

HISTORY_TURNS_KEPT = 30
"""Finished turns summarized in the state (one line each) that later prompts can draw on."""

WORKER_CLASS = "forkserver"
"""Worker class of ``ttrpg worker`` and of the local workers ``play``/``demo`` start."""

FORKSERVER_READY = 1
"""Forked children a fork server keeps ready for the next job (each holds about 8 MB of its own)."""

TEMPLATE_START_TIMEOUT_S = 120
"""Longest a job waits for a fork server's template to start (its imports take ~0.5 s idle)."""

FLEET_JOBS_LISTED = 50
"""Failed and running jobs listed by ``ttrpg workers`` unless ``--limit`` says otherwise."""

RETENTION = "compact"
"""``TTRPG_RETENTION``: ``compact`` drops a finished session's checkpoints (~2.4 MB at turn 100) when it ends; ``keep`` keeps them."""

# --- research batches (ttrpg.batch) ---

BATCH_SESSIONS_PER_DRIVER = 8
"""Sessions one driver job runs at once, one thread each: a driver thread spends >95 % of a turn
waiting on player jobs, so 8 share one process well (see the README's batch section)."""

BATCH_DRIVER_JOB_TIMEOUT_S = 24 * 3600
"""RQ job timeout of a session-driver job: it plays whole sessions, so hours, not seconds."""

BATCH_DRIVER_RETRIES = 5
"""RQ retries of a driver job whose process died (machine lost, OOM): each re-run resumes its sessions."""

BATCH_DRIVER_HEARTBEAT_S = 2.0
"""How often a running driver job renews its heartbeat key."""

BATCH_DRIVER_TTL_S = 10.0
"""A driver job whose heartbeat is older than this is dead: its job is re-queued at once
(RQ's own abandoned-job detection takes 60-70 s after the last worker heartbeat)."""

BATCH_RESCUE_INTERVAL_S = 3.0
"""How often running drivers (and ``ttrpg batch run/status --watch``) look for dead drivers of their batch."""

BATCH_LOCK_WAIT_S = 45.0
"""How long a driver waits for a session held by another driver (a dead one's lock expires in
SESSION_LOCK_TTL_MS) before leaving the session to whoever holds it."""

BATCH_MAX_SESSIONS = 10_000
"""Most sessions one batch may create (conditions x seeds)."""

BATCH_DEFAULT_TURNS = 3
"""Turns per session of a batch unless the matrix says otherwise."""

BATCH_WATCH_INTERVAL_S = 1.0
"""How often ``ttrpg batch status --watch`` (and ``batch run --wait``) refreshes."""

BOOTSTRAP_RESAMPLES = 2000
"""Bootstrap resamples behind every 95 % interval of ``ttrpg batch report``."""

BOOTSTRAP_SEED = 20
"""Seed of the bootstrap's random generator: the same batch gives the same intervals."""

AUTOPILOT_MAX_REASKS = 3
"""How often the LLM autopilot DM asks the model again after a refused answer before it takes the rules DM's."""

AUTOPILOT_LLM_MAX_TOKENS = 400
"""Reply cap of one LLM autopilot DM answer: a narration in JSON is about 150 tokens."""
