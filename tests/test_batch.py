"""Research batches (ttrpg.batch): real Redis, real RQ workers in real processes, the offline
model, autopilot DMs; no mocks. Driver jobs run on a drivers queue served by workers of their
own; player jobs on a player queue served by ordinary workers."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter

import pytest

from tests.conftest import run_cli

# --- bootstrap intervals (pure functions) ---------------------------------------------------------

def test_bootstrap_interval_known_data_and_seeded():
    from ttrpg.research.stats import bootstrap_ci, mean, summarize

    assert bootstrap_ci([]) == (None, None)
    assert bootstrap_ci([None, 4.0]) == (4.0, 4.0)  # one replicate: no spread known
    assert bootstrap_ci([2.0, 2.0, 2.0], seed=1) == (2.0, 2.0)
    data = [1.0, 2.0, 3.0, 4.0, 5.0]
    lo, hi = bootstrap_ci(data, resamples=2000, seed=7)
    assert bootstrap_ci(data, resamples=2000, seed=7) == (lo, hi)  # seeded: the same interval again
    assert 1.0 <= lo < mean(data) < hi <= 5.0
    # the mean of 5 draws from 1..5 has sd sqrt(2/5) ~ 0.63: a 95 % interval is about 3 +- 1.24
    assert lo == pytest.approx(1.8, abs=0.25) and hi == pytest.approx(4.2, abs=0.25)
    wide = bootstrap_ci([0.0, 10.0] * 5, seed=3)
    narrow = bootstrap_ci([4.0, 6.0] * 5, seed=3)
    assert wide[1] - wide[0] > 4 * (narrow[1] - narrow[0]) > 0
    assert bootstrap_ci(data, confidence=0.5, seed=7)[1] - bootstrap_ci(data, confidence=0.5, seed=7)[0] < hi - lo
    s = summarize([1.0, None, 3.0], seed=2)
    assert s["mean"] == 2.0 and s["n"] == 2 and 1.0 <= s["lo"] <= 2.0 <= s["hi"] <= 3.0
    with pytest.raises(ValueError):
        bootstrap_ci(data, confidence=1.5)


def test_matrix_expands_conditions_and_seeds(tmp_path):
    from ttrpg.batch.spec import build_matrix, parse_seeds, session_id

    assert parse_seeds("1-3,7") == [1, 2, 3, 7] and parse_seeds(4) == [4] and parse_seeds([5, 6]) == [5, 6]
    m = build_matrix({"models": ["offline", "some-model"], "latency_ms": [0, 1000], "prompt_versions": ["a", "b"],
                      "seeds": "1-3", "turns": 2, "players": 2})
    # the real model's conditions do not multiply by the offline latencies
    assert len(m.conditions) == 2 * 2 + 2 and m.size == 18
    assert session_id("b1", 3, 12) == "b1-c003-r0012"


# --- the CLI refuses a bad matrix with one line, exit 2, nothing created ---------------------------

@pytest.mark.parametrize("args, words", [
    (["--seeds", "5-1"], "seed range"),
    (["--dm", "wizard"], "not a DM kind"),
    (["--dm", "llm"], "--dm-model"),
    (["--players", "7"], "players must be"),
    (["--faults", "lightning=0.5"], "Unknown fault"),
    (["--party", "/nonexistent/crew.json"], "does not exist"),
    (["--batch", "no spaces allowed"], "not valid"),
])
def test_bad_matrix_exits_2_with_one_line(ttrpg_home, args, words):
    r = run_cli("batch", "run", *args, timeout=60)
    assert r.returncode == 2, r.stderr
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("Error:") and words in first, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_bad_matrix_file(ttrpg_home, tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"models": ["offline"], "seedz": "1-3"}))
    r = run_cli("batch", "run", "--matrix", str(path), timeout=60)
    assert r.returncode == 2 and "unknown matrix key" in r.stderr.splitlines()[0], r.stderr


# --- real batches on real workers -----------------------------------------------------------------

@pytest.fixture(scope="module")
def batch_fleet(ttrpg_home):
    """Player workers and driver workers on queues of this module's own."""
    from ttrpg import defaults
    from ttrpg.batch.record import drivers_queue_of
    from ttrpg.fleet.local import local_workers
    from ttrpg.settings import get_settings

    name = "bt-" + uuid.uuid4().hex[:8]
    old = os.environ.get("TTRPG_QUEUE")
    os.environ["TTRPG_QUEUE"] = name
    try:
        settings = get_settings()
        with local_workers(3, [name], defaults.WORKER_CLASS, settings) as players, \
                local_workers(3, [drivers_queue_of(name)], defaults.WORKER_CLASS, settings) as drivers:
            yield {"queue": name, "players": players, "drivers": drivers}
    finally:
        if old is None:
            os.environ.pop("TTRPG_QUEUE", None)
        else:
            os.environ["TTRPG_QUEUE"] = old


def _submit(**raw):
    from ttrpg.batch.run import submit
    from ttrpg.batch.spec import build_matrix

    raw.setdefault("batch_id", "t" + uuid.uuid4().hex[:8])
    return submit(build_matrix(raw))


def _check_nothing_lost_or_doubled(redis, batch_id: str, turns: int) -> None:
    from ttrpg.batch.record import load_batch
    from ttrpg.ops.drill import duplicated_calls
    from ttrpg.research.events import all_events
    from ttrpg.session.store import load_meta

    for sid in load_batch(redis, batch_id)["sessions"]:
        assert load_meta(redis, sid)["status"] == "completed", sid
        log = all_events(redis, sid)
        per_turn = Counter(e["turn_number"] for e in log if e["event_type"] == "turn_completed")
        assert per_turn == {t: 1 for t in range(1, turns + 1)}, (sid, per_turn)
        assert duplicated_calls(log) == 0, sid
        assert sum(e["event_type"] == "session_ended" for e in log) == 1
        sources = {e.get("source") for e in log if e["event_type"] == "dm_input"}
        assert sources == {"autopilot-rules"}, sources


def test_small_batch_runs_to_completion_status_and_report(batch_fleet, redis_client, tmp_path):
    from ttrpg.batch.status import wait

    started = time.monotonic()
    summary = _submit(prompt_versions=["a", "b"], seeds=[1, 2], turns=2, players=2, latency_ms=0,
                      sessions_per_driver=2)
    bid = summary["batch_id"]
    assert summary["sessions"] == 4 and len(summary["driver_jobs"]) == 2
    assert summary["drivers_queue"] == batch_fleet["queue"] + "-drivers"
    final = wait(redis_client, bid, timeout=200)
    assert final["finished"] and final["done"] == 4 and final["failed"] == 0, final
    _check_nothing_lost_or_doubled(redis_client, bid, 2)
    print(f"small batch: {time.monotonic() - started:.1f} s, {final['turns_per_minute']} turns/min")

    r = run_cli("batch", "status", bid, "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert (status["done"], status["running"], status["queued"], status["failed"]) == (4, 0, 0, 0)
    assert status["turns_played"] == status["turns_total"] == 8 and status["eta_s"] == 0.0

    r = run_cli("batch", "report", bid, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert [row["condition"]["prompt_version"] for row in rep["conditions"]] == ["a", "b"]
    for row in rep["conditions"]:
        assert row["completed"] == 2 and sorted(row["seeds"]) == [1, 2]
        lat = row["metrics"]["latency_ms.p50"]
        assert lat["n"] == 2 and lat["lo"] <= lat["mean"] <= lat["hi"]
        for name in ("tokens_per_turn.layer.player", "tokens_per_turn.layer.character",
                     "validation.first_attempt_failure_rate", "retries_per_turn.all", "dm_interventions.all"):
            assert name in row["metrics"], name
        assert row["metrics"]["turns_completed"]["mean"] == 2
        assert row["metrics"]["duplicated_llm_calls"]["mean"] == 0
    r = run_cli("batch", "report", bid, "--csv")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 3, r.stdout[:500]
    assert r.stdout.startswith("condition_index,")
    page = tmp_path / "r.html"
    r = run_cli("batch", "report", bid, "--html", str(page))
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert html.count("<svg") >= 5 and "<script" not in html


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_driver_killed_with_its_machine_batch_still_completes(batch_fleet, redis_client):
    """SIGKILL of the worker running a driver job *and* of the job's process (its machine died):
    the job is re-queued, the next driver resumes each session from its checkpoint, and every
    turn is played exactly once, with no model call made twice."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from ttrpg.batch.record import driver_job_id, groups
    from ttrpg.batch.status import wait
    from ttrpg.jobs.allowlist import AllowListedJob
    from ttrpg.research.events import all_events

    summary = _submit(seeds=[1, 2, 3, 4], turns=3, players=2, latency_ms=300, sessions_per_driver=2)
    bid = summary["batch_id"]
    victim_sid = f"{bid}-c000-r0000"  # in group 0
    _wait_for(lambda: any(e["event_type"] == "turn_completed" for e in all_events(redis_client, victim_sid)),
              120, "the first turn of group 0")
    info = groups(redis_client, bid)[0]
    assert info["status"] == "running"
    job = AllowListedJob.fetch(driver_job_id(bid, 0), connection=redis_client, serializer=JSONSerializer)
    fleet = batch_fleet["drivers"]
    worker_pid = fleet.pids[fleet.names.index(job.worker_name)]
    os.kill(info["pid"], signal.SIGKILL)  # the process driving the sessions
    os.kill(worker_pid, signal.SIGKILL)  # and its worker: nothing is left to report the job
    killed_at = time.monotonic()
    final = wait(redis_client, bid, timeout=200)
    assert final["finished"] and final["done"] == 4, final
    g0 = groups(redis_client, bid)[0]
    assert g0.get("rescued", 0) >= 1 and g0["runs"] >= 2, g0
    assert Job.fetch(driver_job_id(bid, 0), connection=redis_client, serializer=JSONSerializer).retries_left \
        is not None
    _check_nothing_lost_or_doubled(redis_client, bid, 3)
    resumed = [e for e in all_events(redis_client, victim_sid) if e["event_type"] == "session_resumed"]
    assert len(resumed) == 1
    print(f"drill: batch finished {time.monotonic() - killed_at:.1f} s after the kill")


def test_cancel_stops_a_running_batch(batch_fleet, redis_client):
    from rq.job import Job, JobStatus
    from rq.serializers import JSONSerializer

    from ttrpg.batch.record import driver_job_id
    from ttrpg.batch.status import batch_status, wait
    from ttrpg.session.store import load_meta

    # 4 driver jobs of 1 session each for the 2 driver workers the drill left alive (or 3): one stays queued
    summary = _submit(seeds=[1, 2, 3, 4, 5], turns=6, players=2, latency_ms=300, sessions_per_driver=1)
    bid = summary["batch_id"]
    _wait_for(lambda: batch_status(redis_client, bid)["running"] >= 1, 120, "a running session")
    r = run_cli("batch", "cancel", bid)
    assert r.returncode == 0, r.stderr
    assert "cancelled" in r.stderr
    final = wait(redis_client, bid, timeout=120)
    assert final["running"] == 0 and final["cancel_requested"], final
    assert final["done"] < 5 and final["cancelled"] >= 1, final
    statuses = [Job.fetch(driver_job_id(bid, g), connection=redis_client, serializer=JSONSerializer).get_status()
                for g in range(5)]
    assert JobStatus.CANCELED in statuses, statuses
    metas = [load_meta(redis_client, f"{bid}-c000-r{r:04d}")["status"] for r in range(5)]
    assert "paused" in metas and set(metas) <= {"paused", "new", "completed"}, metas
    r = run_cli("batch", "status", bid, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["finished"], r.stdout
