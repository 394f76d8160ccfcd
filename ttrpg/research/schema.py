"""The schema of every research-log event, as data: what each event type carries and means.

Every event in a session's stream (and its ``research_logs/<session>.jsonl`` mirror) is a flat
JSON object with the :data:`COMMON_FIELDS` plus the fields of its type in :data:`EVENT_TYPES`.
The field lists were derived from the ``emit(...)`` calls in the code (phases, session driver,
fan-out, worker jobs, memory); a test plays sessions and checks every event against them.

Used three ways:

* :func:`validate_event` lists what is wrong with one event (tests, ``ttrpg.research``);
* :func:`render_markdown` writes ``docs/events.md`` for researchers (a test keeps it current:
  regenerate with ``python -m ttrpg.research.schema``);
* :func:`to_dict` gives the schema as plain JSON-able data.

Types are JSON types: ``string``, ``integer``, ``number`` (integer or decimal), ``boolean``,
``array``, ``object``, ``null``, plus ``timestamp`` (an ISO 8601 string in UTC). A field may
allow several (``("integer", "null")``). Fields not listed are allowed: events may gain fields.

This module imports nothing heavy (it is read by ``--help`` paths and docs generation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ttrpg import vocabulary as _vocabulary

TYPES = ("string", "integer", "number", "boolean", "array", "object", "null", "timestamp")

#: The phases of the turn graph (its work nodes; ask nodes log no phase events).
PHASES = _vocabulary.PHASES

#: Job phases (the ``phase`` of job and LLM events): one LLM call per player in each.
JOB_PHASES_DOC = ("`discussion-r<round>` (table talk, round 1-N), `intent` (strategic intent), `action-v<round>` "
                  "(character action; v2, v3 are the stricter retries after validation), `judge-v<round>` "
                  "(the referee's overreach verdict, with TTRPG_OVERREACH_JUDGE on), `lf-question` "
                  "(LASER FEELINGS question), `reaction` (character reaction)")


@dataclass(frozen=True)
class Field:
    """One field of an event: its name, allowed JSON types, and what it means."""

    name: str
    types: tuple[str, ...]
    description: str
    required: bool = True
    #: Only required when another field has one of some values: ``("kind", ("narration",))``.
    required_when: tuple[str, tuple] | None = None
    #: Allowed values (for strings), when the set is closed.
    enum: tuple | None = None
    #: Type of each item of an array field.
    items: str | None = None

    def __post_init__(self):
        for t in self.types + ((self.items,) if self.items else ()):
            if t not in TYPES:
                raise ValueError(f"field {self.name}: unknown type {t!r}")


@dataclass(frozen=True)
class EventType:
    """One event type: when it is written, by whom, its id pattern and its fields."""

    name: str
    description: str
    emitted_by: str
    id_format: str
    fields: tuple[Field, ...] = ()
    #: ``"planned"``: listed by the research-log issue but not written by the code yet.
    status: str = "emitted"

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


def F(name: str, types, description: str, **kw) -> Field:
    return Field(name, (types,) if isinstance(types, str) else tuple(types), description, **kw)


COMMON_FIELDS: tuple[Field, ...] = (
    F("event_id", "string", "Deterministic id of the event within its type and session (see each type's id "
      "format). A phase that runs again after a crash or DM answer writes the same ids, so ``(event_type, "
      "event_id)`` is unique in a session's log: every event is in the log exactly once."),
    F("event_type", "string", "One of the event types below."),
    F("timestamp", "timestamp", "When the event was first written, ISO 8601 in UTC "
      "(``2026-11-23T20:01:02.345678+00:00``), by the clock of the machine that wrote it."),
    F("session_id", "string", "The session (one game evening; a LangGraph thread)."),
    F("campaign_id", "string", "The campaign the session belongs to (sessions of a campaign share memories). "
      "A session started without one is its own campaign (campaign id = session id)."),
    F("turn_number", "integer", "The turn the event belongs to (1-based). ``session_ended`` carries the "
      "turn after the last one played."),
)
COMMON_NAMES = tuple(f.name for f in COMMON_FIELDS)

_PID = F("player_id", "string", "The AI player (``p1``..``p4``); the character's name is in ``session_started``.")
_PID_OPT = F("player_id", ("string", "null"), "The AI player concerned, when one is.")
_PHASE = F("phase", "string", "The turn phase (graph node).", enum=PHASES)
_JOB_PHASE = F("phase", "string", f"The job phase: {JOB_PHASES_DOC}.")
_ATTEMPT = F("attempt", "integer", "The phase attempt (1 + the failures recorded for this turn and phase).")

_TYPES: tuple[EventType, ...] = (
    # --- session lifecycle ------------------------------------------------------------------------
    EventType(
        "session_started", "A new session begins (written once, before the first turn).",
        "ttrpg/session/driver.py (Driver.run)", "start",
        (F("players", "array", "Ids of the AI players, in seat order.", items="string"),
         F("model", ("string", "null"), "The model the AI players use (``ttrpg-offline`` offline)."),
         F("offline", "boolean", "True when the deterministic offline model plays."),
         F("overreach_judge", "boolean", "True when the AI players' model also referees each action for "
           "overreach (``overreach_judged`` events).", required=False),
         F("seed", "integer", "Seed of dice and the offline model: the same seed replays the same session."),
         F("max_turns", ("integer", "null"), "Turn limit, if any."),
         F("characters", "object", "Player id → the character: ``{\"name\", \"style\", \"role\", \"number\", "
           "\"player\"}`` (``player`` is the AI player's name)."),
         F("ship", "object", "The party's ship: ``{\"name\", \"strengths\", \"problem\"}``.")),
    ),
    EventType(
        "session_resumed", "A session continues in a new process (``ttrpg resume``, or after a crash).",
        "ttrpg/session/driver.py (Driver.run)", "resume:<n> (n counts resumes)",
        (F("pending", "array", "The graph nodes that were about to run.", items="string"),
         F("model", ("string", "null"), "The model of the AI players."))),
    EventType(
        "session_ended", "The session is over (turn limit, or the DM ended it). The last event of a finished session.",
        "ttrpg/session/driver.py (Driver.run)", "end",
        (F("turns_played", "integer", "Turns completed."),)),
    # --- phases, failures and the DM stepping in -------------------------------------------------
    EventType(
        "phase_started", "A turn phase starts (first run of this attempt; a re-run after a DM answer keeps "
        "the first timestamp).", "ttrpg/turn/phases.py (phase wrapper)", "<turn>:<phase>:<attempt>",
        (_PHASE, _ATTEMPT)),
    EventType(
        "phase_completed", "A turn phase finished. Its duration is this timestamp minus the ``phase_started`` "
        "with the same event id (for phases that wait for the DM, it includes the DM's time).",
        "ttrpg/turn/phases.py (phase wrapper)", "<turn>:<phase>:<attempt>",
        (_PHASE, _ATTEMPT)),
    EventType(
        "phase_failed", "A phase raised (failed jobs, timeout); the session rolls back to the checkpoint "
        "before it.", "ttrpg/session/driver.py (Driver._phase_failed)", "<turn>:<phase>:<failure count>",
        (F("phase", "string", "The phase that failed."),
         F("attempt", "integer", "How many times this phase has now failed in this turn."),
         F("reason", "string", "The error message."),
         F("error_class", "string", "The Python exception class (``PhaseError``, ``PhaseTimeout``...)."),
         _PID_OPT)),
    EventType(
        "rollback", "After a phase's first failure: the session goes back to the last checkpoint and the "
        "phase runs again.", "ttrpg/session/driver.py (Driver._phase_failed)", "<turn>:<phase>:<failure count>",
        (F("phase", "string", "The phase that failed."),
         F("to_checkpoint", ("string", "null"), "The LangGraph checkpoint the session went back to."),
         F("reason", "string", "The error message."))),
    EventType(
        "dm_intervention", "A phase failed twice (or four times...); the DM chose what to do.",
        "ttrpg/session/driver.py (Driver._intervene)", "<turn>:<phase>:<failures>",
        (_PHASE,
         F("failures", "integer", "Failures of this phase in this turn."),
         F("reason", "string", "The last error message."),
         F("choice", "string", "retry: run it again; skip: leave the player out this turn; type: the DM types "
           "the player's line; end_turn: end the turn now.", enum=("retry", "skip", "type", "end_turn")),
         _PID_OPT,
         F("wait_ms", ("integer", "null"), "How long the DM took to answer, in milliseconds.", required=False))),
    EventType(
        "dm_input", "Something the DM decided: every answer the DM gave to a question, after it was checked "
        "(refused answers are asked again and never logged). ``kind`` says what: the narration of a turn, a "
        "review of an auto-corrected action, the adjudication (who rolls), the dice (kept or overridden), a "
        "LASER FEELINGS answer, the outcome, an intervention.",
        "ttrpg/turn/phases.py (work nodes after each ask node), ttrpg/session/driver.py (interventions)",
        "<turn>:narration | <turn>:review:<player> | <turn>:adjudication | <turn>:dice | <turn>:lf:<player> | "
        "<turn>:outcome | <turn>:intervention:<phase>:<failures>",
        (F("kind", "string", "What the DM gave.",
           enum=("narration", "review", "adjudication", "dice", "dice_override", "laser_feelings", "outcome",
                 "intervention")),
         F("source", "string", "Who answered: keyboard (a person), script (a DM script), autopilot-rules or "
           "autopilot-llm (an autopilot DM, ttrpg.dm.autopilot), or unknown (older sessions).", required=False),
         F("reasks", "integer", "autopilot-llm only: how often the model was asked again after a refused answer "
           "before this one.", required=False),
         F("fallback", "boolean", "autopilot-llm only: true when the model gave no usable answer (after its "
           "re-asks, or the server kept failing) and the rules DM's answer was used.", required=False),
         F("wait_ms", ("integer", "null"), "How long the DM took to answer, in milliseconds (null when "
           "unknown): the DM's thinking time, apart from machine time.", required=False),
         F("text", ("string", "null"), "The narration, the accepted action (review), the LASER FEELINGS answer, "
           "the outcome, or the line typed in an intervention.", required=False,
           required_when=("kind", ("narration", "review", "laser_feelings", "outcome"))),
         F("end", "boolean", "narration only: the DM ended the session instead of narrating.", required=False,
           required_when=("kind", ("narration",))),
         F("player_id", ("string", "null"), "review, laser_feelings, intervention: whose.", required=False,
           required_when=("kind", ("review", "laser_feelings"))),
         F("rolls", "array", "adjudication only: ``[{\"player\", \"approach\", \"dice\", \"helpers\"}]``.",
           required=False, required_when=("kind", ("adjudication",)), items="object"),
         F("override", "object", "dice and dice_override: player id → the dice the DM set (empty: kept).",
           required=False, required_when=("kind", ("dice_override", "dice"))),
         F("phase", "string", "intervention only: the phase that failed.", required=False,
           required_when=("kind", ("intervention",))),
         F("choice", "string", "intervention only: retry, skip, type or end_turn.", required=False,
           required_when=("kind", ("intervention",))))),
    EventType(
        "whisper", "A secret the DM gave one player with the narration.", "ttrpg/turn/phases.py (dm_narration)",
        "<turn>:<index>",
        (_PID,
         F("layer", "string", "Who knows: the player (out of character), the character, or both.",
           enum=("player", "character", "both")),
         F("text", "string", "The whisper."))),
    # --- AI players: jobs and model calls ---------------------------------------------------------
    EventType(
        "job_enqueued", "An AI player's job (one LLM call) was put on the queue.", "ttrpg/jobs/fanout.py (run_jobs)",
        "<turn>:<job phase>:<player>:<attempt>",
        (_JOB_PHASE, _PID, _ATTEMPT,
         F("job_id", "string", "The RQ job id (``<session>_t<turn>_<phase>_<player>_a<attempt>``)."),
         F("queue", "string", "The RQ queue."))),
    EventType(
        "job_reattached", "A phase running again found its job already queued, running or done (after a "
        "crash or resume) and used it instead of calling the model again.", "ttrpg/jobs/fanout.py (run_jobs)",
        "<turn>:<job phase>:<player>:<attempt>",
        (_JOB_PHASE, _PID, _ATTEMPT,
         F("job_id", "string", "The RQ job id."),
         F("status", "string", "The job's status when found (queued, started, finished...)."))),
    EventType(
        "llm_call", "One model call of one AI player, written by the worker that made it (possibly on "
        "another machine). A job run twice whose first run stored no reply (its worker died mid-call) writes a "
        "second call, ``x2``.",
        "ttrpg/jobs/functions.py (ask_player, in the worker)", "<turn>:<job phase>:<player>:<attempt>:x<execution>",
        (_JOB_PHASE, _PID, _ATTEMPT,
         F("model", ("string", "null"), "The model that answered (or was asked)."),
         F("latency_ms", "number", "Wall time of the call including retries, in milliseconds."),
         F("prompt_tokens", ("integer", "null"), "Prompt tokens (null when the call failed)."),
         F("completion_tokens", ("integer", "null"), "Completion tokens (null when the call failed)."),
         F("outcome", "string", "ok, or error when the model could not be asked after retries.",
           enum=("ok", "error")),
         F("error_class", "string", "error only: the exception class (``LLMTransientError``...).", required=False,
           required_when=("outcome", ("error",))),
         F("tokens_estimated", "boolean", "ok only: the server sent no usage, tokens were estimated.",
           required=False),
         F("attempts", ("integer", "null"), "HTTP attempts made (1 + retries); null when the job was refused before any request.", required=False),
         F("worker_pid", "integer", "Process id of the worker (ok calls).", required=False),
         F("context_shrinks", "integer", "ok only: times the prompt was shrunk after a context refusal.",
           required=False),
         F("empty", "boolean", "ok only: the model answered nothing, even when asked twice.", required=False),
         F("truncated", "boolean", "ok only: the reply was longer than ``LLM_REPLY_MAX_CHARS`` and was cut "
           "(the job's result and the prompts keep the cut text).", required=False),
         F("reply_chars", "integer", "ok only: the reply's length in characters before any cut.",
           required=False))),
    EventType(
        "context_shrunk", "The model's server refused a prompt as longer than its context window; the prompt "
        "was rebuilt shorter (older material summarized) and asked again, never re-sent unchanged.",
        "ttrpg/jobs/functions.py (ask_player, in the worker)", "<turn>:<job phase>:<player>:<attempt>:x<execution>:s<n>",
        (_JOB_PHASE, _PID, _ATTEMPT,
         F("shrink", "integer", "Which shrink of this call (1 = the first)."),
         F("from_tokens", "integer", "Estimated prompt tokens before."),
         F("to_tokens", "integer", "Estimated prompt tokens after."),
         F("model", ("string", "null"), "The model asked."))),
    EventType(
        "llm_reply_reused", "A job ran again (Redis went away before RQ stored its result) and reused the "
        "reply its first run had stored, instead of asking the model twice.",
        "ttrpg/jobs/functions.py (ask_player, in the worker)", "<turn>:<job phase>:<player>:<attempt>:x<execution>",
        (_JOB_PHASE, _PID, _ATTEMPT,
         F("job_id", "string", "The RQ job id."),
         F("execution", "integer", "How many times the job has run, this run included."))),
    EventType(
        "llm_retry", "A model call failed transiently (rate limit, timeout, 5xx) and will be retried after a "
        "wait.", "ttrpg/jobs/functions.py (ask_player, in the worker)",
        "<turn>:<job phase>:<player>:<attempt>:x<execution>:<retry>",
        (_JOB_PHASE, _PID, _ATTEMPT,
         F("retry", "integer", "Which retry this is (1 = after the first failure)."),
         F("wait_s", "number", "Seconds waited before the retry."),
         F("error_class", "string", "The exception class of the failure (``RateLimitError``, "
           "``InternalServerError``, ``APITimeoutError``...)."),
         F("message", "string", "The error message (at most 300 characters, API key redacted)."))),
    # --- the turn ---------------------------------------------------------------------------------
    EventType(
        "memory_query", "What the AI players remembered for this turn's narration (campaign memory search).",
        "ttrpg/memory/recall.py (recall_for_turn)", "<turn>",
        (F("query", "string", "The narration searched for (first 200 characters)."),
         F("results", "integer", "Remembered lines found over all players and layers (0: \"nothing known\")."),
         F("counts", "object", "Player id → ``{\"player\": n, \"character\": n}``: lines recalled per layer."))),
    EventType(
        "memory_stored", "A memory was stored for later turns and sessions (one event per memory; each carries "
        "the counts of the whole turn).", "ttrpg/memory/storing.py (store_turn, store_session_end)",
        "<turn>:<memory id> | end:<memory id> (session recap)",
        (F("memory_id", "string", "Id of the memory (``<session>:<turn>:<kind>:<player or party>``)."),
         F("player_id", ("string", "null"), "Whose memory (null: the whole party)."),
         F("layer", "string", "Who can recall it: the player, the character, or both (party memories).",
           enum=("player", "character", "both")),
         F("scope", "string", "``party``, ``player:<pid>`` or ``character:<pid>``."),
         F("kind", ("string", "null"), "What it records: narration, outcome, decision, intent, action, "
           "laser_feelings<i>, quest<i>, summary, scene_end, session_end..."),
         F("source", "string", "Who said it; decides precedence in conflicts (dm > player > character).",
           enum=("dm", "player", "character")),
         F("confidence", "number", "Base confidence, 0-1 (decays with age when recalled)."),
         F("status", ("string", "null"), "``active``, or ``superseded`` when a stronger memory contradicted it."),
         F("text", "string", "What was stored (first 300 characters)."),
         F("entities", "array", "Names the memory mentions.", items="string"),
         F("stored_this_turn", "integer", "Memories stored this turn."),
         F("by_scope", "object", "Scope → memories stored this turn."),
         F("triggers", "array", "Why the turn was stored: new_entity, roll_outcome, party_decision, quest, "
           "scene_end, summary, session_end.", items="string"),
         F("new_entities", "array", "Names (NPCs, places, items) first seen in this turn.", items="string"))),
    EventType(
        "memory_conflict", "A memory contradicted another (opposite status of the same entity); precedence "
        "kept one and superseded the other (never deleted).", "ttrpg/memory/storing.py (store)",
        "<turn>:<memory id>:vs:<other memory id>",
        (F("memory_id", "string", "The memory being stored."),
         F("conflicts_with", "string", "The stored memory it contradicts."),
         F("resolution", "string", "What was kept and what superseded, in words."),
         F("entity", "string", "The entity both memories talk about."),
         F("concept", "string", "The status they disagree on (alive/dead, open/locked...)."),
         F("kept", "string", "Id of the memory that stays authoritative."),
         F("kept_source", "string", "Its source.", enum=("dm", "player", "character")),
         F("kept_text", "string", "Its text (first 200 characters)."),
         F("superseded", "string", "Id of the memory no longer recalled."),
         F("superseded_source", "string", "Its source.", enum=("dm", "player", "character")),
         F("superseded_text", "string", "Its text (first 200 characters)."),
         F("new", "string", "Id of the new memory (= memory_id)."),
         F("new_source", "string", "Its source.", enum=("dm", "player", "character")),
         F("old", "string", "Id of the older memory (= conflicts_with)."),
         F("old_source", "string", "Its source.", enum=("dm", "player", "character")))),
    EventType(
        "consensus", "The result of one round of out-of-character table talk (2+ players), or the final vote.",
        "ttrpg/turn/phases.py (party_discussion)", "<turn>:<attempt>:r<round> | <turn>:<attempt>:vote",
        (F("round", "integer", "The discussion round (for a vote: the rounds talked)."),
         F("state", "string", "unanimous: all agree; majority: most agree; conflicted: no agreement "
           "(a vote then decides).", enum=("unanimous", "majority", "conflicted")),
         F("plan", "string", "The plan the table converged on."),
         F("dissent", "array", "Players who disagreed.", items="string"),
         F("final", "boolean", "True for the event that settled the turn's plan."),
         F("decided_by", "string", "``vote`` when a vote settled it.", required=False))),
    EventType(
        "character_action", "A character's final action line of the turn, as the DM adjudicates it (after "
        "validation, retries, auto-correction and DM review).", "ttrpg/turn/phases.py (dm_adjudication)",
        "<turn>:<player>",
        (_PID,
         F("character", "string", "The character's name."),
         F("text", "string", "The action, in character."),
         F("attempt", "integer", "The validation round that produced it (1 = first answer).", required=False),
         F("autocorrected", "boolean", "Overreach was removed automatically.", required=False),
         F("reviewed", "boolean", "The DM reviewed (and possibly rewrote) it.", required=False),
         F("manual", "boolean", "The DM typed it (intervention).", required=False)),),
    EventType(
        "validation_failed", "A character's action narrated an outcome (overreach) and was rejected.",
        "ttrpg/turn/phases.py (validate)", "<turn>:<player>:<validation round>",
        (_PID,
         F("attempt", "integer", "The validation round (1 = the first answer, 2-3 = stricter retries)."),
         F("violations", "array", "What overreached, as ``kind: matched words``.", items="string"),
         F("text", "string", "The rejected action."))),
    EventType(
        "overreach_judged", "The player's model refereed its character's action for overreach (only with "
        "TTRPG_OVERREACH_JUDGE on), and who decided: the referee, or the rules when its reply could not be read.",
        "ttrpg/turn/phases.py (validate)", "<turn>:<player>:<validation round>",
        (_PID,
         F("attempt", "integer", "The validation round (1 = the first answer, 2-3 = stricter retries)."),
         F("rules", "array", "What the rules found, as ``kind: matched words`` (empty: nothing).", items="string"),
         F("verdict", ("boolean", "null"), "The referee's verdict: true = overreach; null = no readable verdict."),
         F("kind", ("string", "null"), "The kind the referee named.", enum=("outcome", "other_reaction", "future")),
         F("reason", ("string", "null"), "The referee's reason, as it wrote it (a few words)."),
         F("reply", "string", "The referee's reply, cut to 500 characters."),
         F("decided_by", "string", "``referee`` (its verdict counts) or ``rules`` (no readable verdict).",
           enum=("referee", "rules")),
         F("error", "string", "Why the referee job failed, when it did.", required=False))),
    EventType(
        "validation_autocorrected", "After the last validation round the overreach was cut automatically.",
        "ttrpg/turn/phases.py (validate)", "<turn>:<player>",
        (_PID,
         F("original", "string", "The action as the model wrote it."),
         F("corrected", "string", "The action after correction."),
         F("needs_review", "boolean", "The correction may not read well; the DM reviews it."))),
    EventType(
        "dice_roll", "A resolved roll (after any DM override).", "ttrpg/turn/phases.py (dice_resolution)",
        "<turn>:<player>",
        (_PID,
         F("approach", "string", "LASERS (technology, calm) or FEELINGS (intuition, passion).",
           enum=("lasers", "feelings")),
         F("number", "integer", "The character's number (2-5)."),
         F("dice", "array", "The dice, including one per successful helper.", items="integer"),
         F("helpers", "array", "``[{\"player\", \"die\", \"success\"}]``.", items="object"),
         F("overridden", "boolean", "The DM set the dice."),
         F("successes", "integer", "Dice that succeeded."),
         F("band", "string", "The result.", enum=("failure", "barely", "success", "critical")),
         F("laser_feelings", "boolean", "A die equalled the number: LASER FEELINGS."))),
    EventType(
        "laser_feelings", "LASER FEELINGS: the character asked the GM a question, answered honestly.",
        "ttrpg/turn/phases.py (laser_feelings)", "<turn>:<player>",
        (_PID, F("question", "string", "The question."), F("answer", "string", "The DM's answer."))),
    EventType(
        "character_reaction", "A character's reaction to the outcome.",
        "ttrpg/turn/phases.py (character_reaction)", "<turn>:<player>",
        (_PID,
         F("character", "string", "The character's name."),
         F("text", "string", "The reaction, in character."),
         F("manual", "boolean", "The DM typed it (intervention).", required=False)),),
    EventType(
        "turn_completed", "A turn is over (its memory stored).", "ttrpg/turn/phases.py (memory_storage)", "<turn>",
        (F("ended_early", "boolean", "The DM ended the turn early (intervention)."),
         F("prompt_tokens", "integer", "Prompt tokens the turn's action phases used (intent, action, LASER "
           "FEELINGS, reaction; table talk not included; see llm_call for every call)."),
         F("completion_tokens", "integer", "Completion tokens, counted the same way."),
         F("consensus", ("string", "null"), "The table's final consensus state (solo: one player)."))),
)

#: Every event type by name, in the order they are documented.
EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _TYPES}


# --- validation -----------------------------------------------------------------------------------

def _type_ok(value, t: str) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "array":
        return isinstance(value, list)
    if t == "object":
        return isinstance(value, dict)
    if t == "null":
        return value is None
    if t == "timestamp":
        return is_utc_timestamp(value)
    return False


def is_utc_timestamp(value) -> bool:
    """An ISO 8601 string with an explicit UTC offset (``+00:00`` or ``Z``)."""
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return False
    return parsed.utcoffset() == timedelta(0)


def _check(f: Field, value, where: str) -> list[str]:
    if not any(_type_ok(value, t) for t in f.types):
        return [f"{where}{f.name}: expected {' | '.join(f.types)}, got {type(value).__name__} {value!r:.60}"]
    problems = []
    if f.enum is not None and isinstance(value, str) and value not in f.enum:
        problems.append(f"{where}{f.name}: {value!r} is not one of {', '.join(f.enum)}")
    if f.items and isinstance(value, list):
        bad = [v for v in value if not _type_ok(v, f.items)]
        if bad:
            problems.append(f"{where}{f.name}: items must be {f.items}, got {bad[0]!r:.60}")
    return problems


def validate_event(e) -> list[str]:
    """What is wrong with one event (empty list: it matches the schema)."""
    if not isinstance(e, dict):
        return [f"an event must be a JSON object, got {type(e).__name__}"]
    problems: list[str] = []
    for f in COMMON_FIELDS:
        if f.name not in e:
            problems.append(f"missing common field {f.name}")
        else:
            problems += _check(f, e[f.name], "")
    etype = e.get("event_type")
    schema = EVENT_TYPES.get(etype) if isinstance(etype, str) else None
    if schema is None:
        if isinstance(etype, str):
            problems.append(f"unknown event_type {etype!r}")
        return problems
    where = f"{etype}."
    for f in schema.fields:
        required = f.required
        if f.required_when:
            other, values = f.required_when
            required = required or e.get(other) in values
        if f.name not in e:
            if required:
                problems.append(f"{where}{f.name}: missing")
            continue
        problems += _check(f, e[f.name], where)
    if isinstance(e.get("event_id"), str) and not e["event_id"]:
        problems.append("event_id is empty")
    return problems


def validate_log(events: list[dict]) -> list[str]:
    """Problems of a whole session log: each event's, plus duplicates and mixed sessions."""
    problems: list[str] = []
    seen: set[tuple] = set()
    sessions = {e.get("session_id") for e in events if isinstance(e, dict)}
    if len(sessions) > 1:
        problems.append(f"events of several sessions: {sorted(map(str, sessions))}")
    for i, e in enumerate(events):
        problems += [f"event {i}: {p}" for p in validate_event(e)]
        if isinstance(e, dict):
            key = (e.get("event_type"), e.get("event_id"))
            if key in seen:
                problems.append(f"event {i}: duplicate {key[0]} {key[1]!r}")
            seen.add(key)
    return problems


# --- as data and as documentation ----------------------------------------------------------------

def _field_dict(f: Field) -> dict:
    d = {"name": f.name, "types": list(f.types), "required": f.required, "description": f.description}
    if f.required_when:
        d["required_when"] = {f.required_when[0]: list(f.required_when[1])}
    if f.enum:
        d["enum"] = list(f.enum)
    if f.items:
        d["items"] = f.items
    return d


def to_dict() -> dict:
    """The schema as plain JSON-able data."""
    return {"common_fields": [_field_dict(f) for f in COMMON_FIELDS],
            "event_types": {t.name: {"description": t.description, "emitted_by": t.emitted_by,
                                     "id_format": t.id_format, "status": t.status,
                                     "fields": [_field_dict(f) for f in t.fields]}
                            for t in EVENT_TYPES.values()}}


def _md(text: str) -> str:
    return text.replace("``", "`").replace("|", "\\|").replace("\n", " ")


def _type_md(f: Field) -> str:
    t = " \\| ".join(f.types)
    if f.items:
        t += f" of {f.items}"
    return t


def _req_md(f: Field) -> str:
    if f.required:
        return "yes"
    if f.required_when:
        other, values = f.required_when
        return f"when {other} is " + " or ".join(values)
    return "no"


def _desc_md(f: Field) -> str:
    d = _md(f.description)
    if f.enum:
        d += " One of: " + ", ".join(f"`{v}`" for v in f.enum) + "."
    return d


def _table(fields) -> list[str]:
    lines = ["| field | type | required | meaning |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | {_type_md(f)} | {_req_md(f)} | {_desc_md(f)} |" for f in fields]
    return lines


def render_markdown() -> str:
    """``docs/events.md``: the schema for researchers (generated; do not edit the file by hand)."""
    out = [
        "# Research log events",
        "",
        "<!-- Generated by ttrpg.research.schema.render_markdown(); regenerate with "
        "`python -m ttrpg.research.schema`. Do not edit by hand. -->",
        "",
        "Every event of a session goes to the session's Redis Stream (`ttrpg:events:<session>`) exactly once "
        "and is mirrored, in the same order, to `research_logs/<session>.jsonl`, one JSON object per line. "
        "Events are written by the DM's process (phases, the session driver) and by the workers that call "
        "the model, possibly on other machines; the stream is the one log of all of them.",
        "",
        "Exactly once: each event has a deterministic `event_id`, and the stream only accepts an "
        "`(event_type, event_id)` it has not seen. A phase that runs again (after a crash and `ttrpg resume`, "
        "or when the DM answers a question) writes the same ids, so nothing is duplicated. A model call that "
        "really ran twice (its worker died under it) is logged twice, as `x1` and `x2`.",
        "",
        "Getting the events:",
        "",
        "* `ttrpg logs export SESSION [--format jsonl|csv] [--events TYPE,...] [--out PATH]`; "
        "`ttrpg logs export --campaign ID` for every session of a campaign;",
        "* `ttrpg logs transcript SESSION [--format md|html]`: the story, turn by turn;",
        "* `ttrpg report SESSION [--html PATH] [--json]`: phase durations, model calls, retries, validation, "
        "tokens, consensus;",
        "* `ttrpg watch SESSION [--from-start] [--json]`: follow a session live;",
        "* from Python: `ttrpg.research.export.export(redis, [session], fmt=\"csv\")`, "
        "`ttrpg.research.events.all_events(redis, session)`.",
        "",
        "In CSV exports the columns are the union of all events' fields (common fields first); arrays and "
        "objects are JSON-encoded, booleans are `true`/`false`, null is an empty cell.",
        "",
        "Types are JSON types; `timestamp` is an ISO 8601 string in UTC. Fields not listed here may appear "
        "(events can gain fields); a listed field is always present when *required* says so. A player is "
        "identified by `player_id` (`p1`..`p4`); `session_started` maps ids to characters.",
        "",
        "## Common fields",
        "",
        "Every event has these:",
        "",
        *_table(COMMON_FIELDS),
        "",
        "## Event types",
        "",
        "| event type | written when |",
        "|---|---|",
        *[f"| [`{t.name}`](#{t.name}) | {_md(t.description)}"
          f"{' *(planned: not written yet)*' if t.status == 'planned' else ''} |" for t in EVENT_TYPES.values()],
        "",
        f"Job phases (the `phase` of `job_*`, `llm_call` and `llm_retry` events): {JOB_PHASES_DOC}.",
        "",
    ]
    for t in EVENT_TYPES.values():
        out += [f"### {t.name}", ""]
        if t.status == "planned":
            out += ["*Planned: listed for the research log but not written by the code yet; the fields are "
                    "a proposal.*", ""]
        out += [_md(t.description), "", f"Written by: {t.emitted_by}. Event id: `{t.id_format}`.", ""]
        out += (_table(t.fields) if t.fields else ["No fields besides the common ones."]) + [""]
    return "\n".join(out)


DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def write_markdown(path: Path | str = DOC_PATH) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown())
    return path


if __name__ == "__main__":  # python -m ttrpg.research.schema  → regenerates docs/events.md
    print(write_markdown())
