"""Workers with real processes: the fork server, warm spawn, the allow-list, crashes, timeouts, shutdown.

Every test runs real ``python -m ttrpg worker`` processes against the session's embedded
Redis, on a queue of its own. Nothing here asserts speed: dispatch times are printed
(see them with ``pytest -s``); the assertions are about which process ran what.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest
from rq import Retry
from rq.job import JobStatus

from tests.conftest import processes_mentioning, run_cli
from ttrpg.fleet.bench import idle_worker_memory, measure_dispatch
from ttrpg.fleet.horse import horses
from ttrpg.fleet.local import live_workers, local_workers
from ttrpg.fleet.workers import DEFAULT_WORKER_CLASS
from ttrpg.jobs.allowlist import job_queue
from ttrpg.process import ending, pid_alive
from ttrpg.settings import get_settings

DEFAULT = DEFAULT_WORKER_CLASS


def _wait(predicate, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def _ready_horse(worker_name: str, timeout: float = 30.0):
    return _wait(lambda: next((h for h in horses(worker_name) if h.state == "ready"), None), timeout)


def _template(worker_name: str, timeout: float = 30.0):
    return _wait(lambda: next((h for h in horses(worker_name) if h.state == "template"), None), timeout)


def _running_horse(worker_name: str, timeout: float = 30.0):
    return _wait(lambda: next((h for h in horses(worker_name) if h.state == "running"), None), timeout)


def _probe(queue, timeout: int = 30) -> tuple[float, dict]:
    enqueued = time.time()
    job = queue.enqueue("ttrpg.jobs.functions.probe")
    result = job.latest_result(timeout=timeout)
    assert result is not None, "probe did not finish"
    assert result.type == result.Type.SUCCESSFUL, result.exc_string
    return enqueued, result.return_value


def _wait_status(job, statuses: set, timeout: float):
    return _wait(lambda: job.get_status(refresh=True) in statuses, timeout, 0.05)


@pytest.fixture
def queue(queue_name, redis_client):
    return job_queue(queue_name, redis_client)


def test_warm_jobs_run_in_fresh_interpreters_that_imported_before_the_job(queue, queue_name):
    with local_workers(1, [queue_name], "warm") as fleet:
        name, worker_pid = fleet.names[0], fleet.pids[0]
        seen = []
        for _ in range(3):
            horse = _ready_horse(name)
            assert horse is not None and horse.ppid == worker_pid
            with open(f"/proc/{horse.pid}/cmdline", "rb") as f:
                assert b"unix_socket_path" not in f.read()  # connection settings came through the pipe
            enqueued, value = _probe(queue)
            assert value["pid"] == horse.pid  # the job ran in the horse that was waiting
            assert value["imported_at"] < enqueued  # ttrpg.jobs.functions was imported before the job existed
            seen.append(value)
            print(f"warm dispatch {1000 * (value['started_at'] - enqueued):.1f} ms, waiting horse "
                  f"RSS {horse.rss_kb} kB")
        assert len({v["pid"] for v in seen}) == 3
        assert len({v["marker"] for v in seen}) == 3
        assert worker_pid not in {v["pid"] for v in seen}
        # the next horse is prepared at once, while the worker idles
        assert _ready_horse(name) is not None


@pytest.mark.parametrize("worker_class", [DEFAULT, "warm"])
def test_back_to_back_jobs_never_share_a_process_and_none_is_lost(worker_class, queue, queue_name):
    with local_workers(1, [queue_name], worker_class) as fleet:
        # all queued at once, faster than any horse could be prepared; each leaves a trace
        jobs = [queue.enqueue("ttrpg.jobs.functions.probe", True) for _ in range(8)]
        values = []
        for job in jobs:
            result = job.latest_result(timeout=30)
            assert result is not None and result.type == result.Type.SUCCESSFUL, result and result.exc_string
            values.append(result.return_value)
        assert len({v["pid"] for v in values}) == 8 and len({v["marker"] for v in values}) == 8
        assert fleet.pids[0] not in {v["pid"] for v in values}
        assert [v["traces_seen"] for v in values] == [[]] * 8  # nothing left by an earlier job


def test_a_job_that_shares_its_process_is_seen_to_by_the_trace_check(queue, queue_name):
    """The trace check above can fail: on ``simple`` the second job sees the first one's trace."""
    with local_workers(1, [queue_name], "simple"):
        first = queue.enqueue("ttrpg.jobs.functions.probe", True).latest_result(timeout=30).return_value
        second = queue.enqueue("ttrpg.jobs.functions.probe").latest_result(timeout=30).return_value
    assert second["traces_seen"] == [first["marker"], first["marker"]]


def test_fork_server_jobs_run_in_fresh_children_of_a_template_that_runs_no_job(queue, queue_name):
    with local_workers(1, [queue_name], "forkserver") as fleet:
        name, worker_pid = fleet.names[0], fleet.pids[0]
        template = _template(name)
        assert template is not None and template.ppid == worker_pid
        with open(f"/proc/{template.pid}/cmdline", "rb") as f:
            assert b"unix_socket_path" not in f.read()  # connection settings came through the pipe
        seen = []
        for _ in range(4):
            ready = _ready_horse(name)
            assert ready is not None and ready.ppid == template.pid
            enqueued, value = _probe(queue)
            assert value["pid"] == ready.pid  # the child that was waiting ran it
            assert value["imported_at"] < enqueued  # the template imported the job module before the job existed
            seen.append(value)
            print(f"forkserver dispatch {1000 * (value['started_at'] - enqueued):.1f} ms")
        assert template.pid not in {v["pid"] for v in seen} and worker_pid not in {v["pid"] for v in seen}
        assert len({v["marker"] for v in seen}) == 4
        assert _template(name).pid == template.pid  # one template for the worker's life
        assert _ready_horse(name) is not None
        memory = idle_worker_memory(fleet)
        print(f"idle forkserver worker: {memory}")
        assert set(memory["processes"]) == {"worker", "template", "ready"}
        assert 0 < memory["pss_kb"] <= memory["rss_kb"]


@pytest.mark.parametrize("when", ["idle", "just before a job", "while a job runs"])
def test_a_killed_template_is_replaced_and_no_job_is_lost(when, queue, queue_name):
    with local_workers(1, [queue_name], "forkserver") as fleet:
        name = fleet.names[0]
        _probe(queue)
        template = _template(name)
        assert _ready_horse(name) is not None
        if when == "while a job runs":
            job = queue.enqueue("ttrpg.jobs.functions.sleep_for", 1.5)
            horse = _running_horse(name)
            os.kill(template.pid, signal.SIGKILL)
            assert _wait_status(job, {JobStatus.FINISHED, JobStatus.FAILED}, 30)
            assert job.get_status() == JobStatus.FINISHED  # the running horse finished its job
            assert job.latest_result().return_value["pid"] == horse.pid
        else:
            os.kill(template.pid, signal.SIGKILL)
            if when == "idle":
                assert _wait(lambda: (t := _template(name, 0)) is not None and t.pid != template.pid, 30)
        enqueued, value = _probe(queue)
        print(f"dispatch after the template was killed ({when}): {1000 * (value['started_at'] - enqueued):.0f} ms")
        replacement = _template(name)
        assert replacement is not None and replacement.pid != template.pid
        assert _wait(lambda: ending(template.pid), 10)
        _, again = _probe(queue)
        assert again["pid"] != value["pid"]


def test_a_killed_ready_child_is_replaced_before_the_next_job(queue, queue_name):
    with local_workers(1, [queue_name], "forkserver") as fleet:
        name = fleet.names[0]
        ready = _ready_horse(name)
        os.kill(ready.pid, signal.SIGKILL)
        assert _wait(lambda: (r := _ready_horse(name, 0)) is not None and r.pid != ready.pid, 10)
        _, value = _probe(queue)
        assert value["pid"] != ready.pid


def test_sigkill_of_an_idle_worker_leaves_no_process_behind(queue_name):
    with local_workers(1, [queue_name], DEFAULT) as fleet:
        name = fleet.names[0]
        horse = _ready_horse(name)
        assert horse is not None
        kept = [h.pid for h in horses(name)]  # the template and its ready child
        assert len(processes_mentioning(name)) >= 3  # worker, its scheduler, the template (and its ready child)
        os.kill(fleet.pids[0], signal.SIGKILL)
        fleet.procs[0].wait(5)
        assert _wait(lambda: not processes_mentioning(name), 5), processes_mentioning(name)
        assert _wait(lambda: all(ending(pid) for pid in kept + [horse.pid]), 10)


def test_sigkill_of_a_waiting_horse_does_not_lose_the_next_job(queue, queue_name):
    with local_workers(1, [queue_name], "warm") as fleet:
        name = fleet.names[0]
        horse = _ready_horse(name)
        os.kill(horse.pid, signal.SIGKILL)
        assert _wait(lambda: not pid_alive(horse.pid), 5)  # dead and seen dead by /proc, not just dying
        enqueued, value = _probe(queue)
        assert value["pid"] != horse.pid
        print(f"dispatch after the waiting horse was killed: {1000 * (value['started_at'] - enqueued):.0f} ms")
        # and the worker goes back to keeping a warm horse
        assert _ready_horse(name) is not None
        _, value2 = _probe(queue)
        assert value2["pid"] not in (value["pid"], horse.pid)


def test_a_hanging_job_is_killed_at_its_timeout_and_marked_failed(queue, queue_name):
    with local_workers(1, [queue_name], DEFAULT) as fleet:
        started = time.monotonic()
        job = queue.enqueue("ttrpg.jobs.functions.sleep_for", 30, job_timeout=2)
        assert _wait_status(job, {JobStatus.FAILED}, 25), job.get_status()
        elapsed = time.monotonic() - started
        print(f"a 30 s job with job_timeout=2 failed after {elapsed:.1f} s")
        assert elapsed < 25  # it did not run to completion
        assert "JobTimeoutException" in (job.latest_result().exc_string or "")
        # its horse is gone or on its way out (a horse that reported its end exits at low priority)
        assert _wait(lambda: not [h for h in horses(fleet.names[0]) if h.state == "running"], 5)
        _probe(queue)  # the worker still serves


def test_sigterm_finishes_the_job_in_flight_then_exits_0(queue, queue_name):
    with local_workers(1, [queue_name], DEFAULT) as fleet:
        name, proc = fleet.names[0], fleet.procs[0]
        job = queue.enqueue("ttrpg.jobs.functions.sleep_for", 2)
        assert _running_horse(name) is not None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert job.get_status(refresh=True) == JobStatus.FINISHED
        assert job.latest_result().return_value["ended_at"] > job.latest_result().return_value["started_at"]
        assert _wait(lambda: not processes_mentioning(name), 5), processes_mentioning(name)


def test_a_second_sigterm_is_a_cold_shutdown_that_kills_the_job(queue, queue_name):
    with local_workers(1, [queue_name], DEFAULT) as fleet:
        name, proc = fleet.names[0], fleet.procs[0]
        job = queue.enqueue("ttrpg.jobs.functions.sleep_for", 30)
        horse = _running_horse(name)
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # RQ ignores a second signal within 1 s of the first
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert _wait(lambda: not processes_mentioning(name), 5), processes_mentioning(name)
        assert _wait(lambda: ending(horse.pid), 10)
        assert job.get_status(refresh=True) == JobStatus.STARTED  # abandoned: StartedJobRegistry.cleanup() handles it


def test_sigkill_of_a_running_horse_requeues_the_job_with_retry(queue, queue_name):
    with local_workers(1, [queue_name], DEFAULT) as fleet:
        job = queue.enqueue("ttrpg.jobs.functions.sleep_for", 2, retry=Retry(max=1))
        horse = _running_horse(fleet.names[0])
        os.kill(horse.pid, signal.SIGKILL)
        assert _wait_status(job, {JobStatus.FINISHED, JobStatus.FAILED}, 30)
        assert job.get_status() == JobStatus.FINISHED
        assert job.latest_result().return_value["pid"] != horse.pid


def test_sigkill_of_a_busy_worker_lets_the_job_finish_and_leaves_nothing(queue, queue_name):
    with local_workers(1, [queue_name], DEFAULT) as fleet:
        name = fleet.names[0]
        job = queue.enqueue("ttrpg.jobs.functions.sleep_for", 2)
        horse = _running_horse(name)
        os.kill(fleet.pids[0], signal.SIGKILL)
        assert _wait_status(job, {JobStatus.FINISHED}, 20), job.get_status()
        assert job.latest_result().return_value["pid"] == horse.pid
        assert _wait(lambda: not processes_mentioning(name), 5), processes_mentioning(name)


@pytest.mark.parametrize("worker_class", ["forkserver", "warm", "spawn", "fork", "simple"])
def test_only_allow_listed_functions_run_on_every_worker_class(worker_class, queue, queue_name, tmp_path):
    made = tmp_path / "made-by-os-mkdir"
    imported = tmp_path / "module-was-imported"
    (tmp_path / "ttrpg_evil_mod.py").write_text(
        f"open({str(imported)!r}, 'w').close()\n\ndef run():\n    return 'ran'\n"
    )
    refused = queue.enqueue("os.mkdir", str(made), retry=Retry(max=2))
    evil = queue.enqueue("ttrpg_evil_mod.run")
    fine = queue.enqueue("ttrpg.jobs.functions.probe")
    pythonpath = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    result = run_cli("worker", "--burst", "--worker-class", worker_class, "--queues", queue_name,
                     env={"PYTHONPATH": pythonpath})
    assert result.returncode == 0, result.stderr
    for job in (refused, evil):
        assert job.get_status(refresh=True) == JobStatus.FAILED
        assert "refused" in job.latest_result().exc_string
    assert len(refused.results()) == 1  # refused once, not retried
    assert not made.exists()
    assert not imported.exists()  # not even imported
    assert fine.get_status(refresh=True) == JobStatus.FINISHED
    assert fine.latest_result().return_value["pid"] > 0


def test_warm_spawn_off_behaves_as_plain_spawn(queue, queue_name):
    settings = dataclasses.replace(get_settings(), warm_spawn=False)
    with local_workers(1, [queue_name], "warm", settings) as fleet:
        enqueued, first = _probe(queue)
        time.sleep(0.5)
        assert horses(fleet.names[0]) == []  # nothing spawned ahead of time
        _, second = _probe(queue)
        assert first["pid"] != second["pid"] and first["marker"] != second["marker"]
        assert first["imported_at"] > enqueued  # imported when the job arrived
        print(f"spawn (warm off) dispatch {1000 * (first['started_at'] - enqueued):.0f} ms")


@pytest.mark.parametrize("worker_class", ["spawn", "fork", "simple"])
def test_long_running_workers_of_other_classes_run_jobs(worker_class, queue, queue_name):
    with local_workers(1, [queue_name], worker_class) as fleet:
        runs = [_probe(queue) for _ in range(2)]
        pids = {v["pid"] for _, v in runs}
        if worker_class == "simple":
            assert pids == {fleet.pids[0]}
        else:
            assert len(pids) == 2 and fleet.pids[0] not in pids
        for enqueued, v in runs:
            print(f"{worker_class} dispatch {1000 * (v['started_at'] - enqueued):.1f} ms")


def test_live_workers_sees_a_local_fleet_until_it_stops(queue_name):
    assert live_workers([queue_name]) == []
    with local_workers(2, [queue_name], "fork") as fleet:
        names = {w["name"] for w in live_workers([queue_name])}
        assert names == set(fleet.names)
    logs = [path.read_text()[-1500:] for path in fleet.log_paths if path.exists()]
    assert [p.returncode for p in fleet.procs] == [0, 0], logs
    assert live_workers([queue_name]) == []


def test_workers_keep_serving_after_a_redis_restart(tmp_path, queue_name):
    import redis

    from ttrpg.backend import embedded

    home = tmp_path / "home"
    url, _ = embedded.start(home)
    settings = dataclasses.replace(get_settings(), home=home, redis_url=None)
    client = redis.Redis.from_url(url, socket_timeout=60)
    try:
        queue = job_queue(queue_name, client)
        with local_workers(1, [queue_name], DEFAULT, settings):
            _probe(queue)
            embedded.stop(home)
            embedded.start(home)
            enqueued, value = _probe(queue, timeout=40)
            print(f"first job after the Redis restart started {value['started_at'] - enqueued:.1f} s after enqueue")
    finally:
        client.close()
        embedded.stop(home)


def test_measure_dispatch_reports_percentiles():
    figures = measure_dispatch("warm", n=3)
    print(figures)
    assert figures["n"] == 3 and figures["p10_ms"] <= figures["median_ms"] <= figures["p90_ms"]
    assert figures["horse_rss_kb"] and figures["horse_ready_ms"] is not None
