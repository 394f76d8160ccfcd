"""Fleet operations: unit files, compose file, Dockerfile, shutdown, Redis restarts, ``ttrpg workers``.

The deployment files are checked statically (the Docker engine is not available in CI) and,
where a tool exists, with it: ``systemd-analyze verify`` on the units (skipped without it).
The commands they run are resolved against the real typer app, and the environment they
set against what ttrpg reads. The live tests run the worker exactly as the unit starts it
and signal it as systemd (``KillMode=mixed``) and ``docker stop`` do: SIGTERM to the main
process only.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from rq.job import JobStatus

from tests.conftest import ROOT, processes_mentioning, run_cli
from ttrpg import defaults
from ttrpg.fleet.horse import horses
from ttrpg.fleet.local import live_workers, local_workers
from ttrpg.jobs.allowlist import job_queue

SYSTEMD = ROOT / "systemd"
WORKER_UNIT = SYSTEMD / "ttrpg-worker@.service"
REDIS_UNIT = SYSTEMD / "ttrpg-redis.service"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
VENV_PREFIX = "/opt/ttrpg/.venv/bin/"

#: RQ's parent kills a horse that ignores its job timeout this long after it (rq.worker.worker_classes).
RQ_HARD_STOP_S = defaults.JOB_TIMEOUT_S + 60


# --------------------------------------------------------------------------- helpers


def _wait(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values...]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit: dict, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    return values[-1]


def _seconds(value) -> float:
    """A systemd or compose duration ("180", "180s", "3m", "2m30s", "1min") in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    total, units = 0.0, {"h": 3600, "m": 60, "min": 60, "s": 1, "sec": 1, "ms": 0.001, "": 1}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", str(value)):
        total += float(number) * units[unit]
    return total


def _resolve_ttrpg(argv: list[str]) -> tuple[list[str], dict]:
    """Resolve ``ttrpg ARGS`` against the real typer app; return (command path, parsed params).

    Fails when a word is not a command or an option does not exist or does not parse.
    """
    import typer

    import ttrpg.cli

    assert argv and Path(argv[0]).name == "ttrpg", argv
    command = typer.main.get_command(ttrpg.cli.app)  # typer may vendor click: duck-type groups
    args, path = list(argv[1:]), []
    while hasattr(command, "commands") and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"`{' '.join(['ttrpg', *path, name])}` is not a ttrpg command"
        command = command.commands[name]
        path.append(name)
    assert path, f"{argv} names no ttrpg command"
    assert not hasattr(command, "commands") or getattr(command, "invoke_without_command", False), argv
    try:
        ctx = command.make_context(" ".join(["ttrpg", *path]), args)
    except Exception as exc:  # click's UsageError / BadParameter / NoSuchOption
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"`{' '.join(argv)}` does not parse: {message}")
    return path, ctx.params


def _env_vars_ttrpg_reads() -> set[str]:
    """Every environment variable ttrpg reads: os.environ.get / os.getenv / os.environ[...] anywhere
    in the package, and the names settings.py passes to its helpers (_float, _bool)."""
    names: set[str] = set()
    for path in (ROOT / "ttrpg").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                func = ast.unparse(node.func)
                name = node.args[0].value
                if func in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                    names.add(name)
            if path.name == "settings.py" and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", node.value):
                names.add(node.value)  # names settings.py passes to its helpers or loops over
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                    and ast.unparse(node.value) == "os.environ" and isinstance(node.slice, ast.Constant):
                names.add(node.slice.value)
    return names


def _compose() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE.read_text())


def _argv(value) -> list[str]:
    return list(value) if isinstance(value, list) else shlex.split(value)


def _dockerfile() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) for every instruction, continuation lines joined."""
    out, stage, pending = [], "", ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = args.split()
            stage = words[2] if len(words) >= 3 and words[1].lower() == "as" else f"stage{len(out)}"
        out.append((stage, instruction, args.strip()))
    return out


# --------------------------------------------------------------------------- systemd


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here (apt-get install systemd provides it)")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    bindir = str(Path(sys.executable).parent) + "/"
    assert (Path(bindir) / "ttrpg").exists(), "the venv has no ttrpg console script to stand in for /opt/ttrpg"
    units = sorted(SYSTEMD.glob("*.service"))
    assert {u.name for u in units} >= {WORKER_UNIT.name, REDIS_UNIT.name}
    for unit in units:  # verify needs the ExecStart binaries to exist: point them at this venv
        (tmp_path / unit.name).write_text(unit.read_text().replace(VENV_PREFIX, bindir))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *(str(tmp_path / u.name) for u in units)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # warnings (unknown keys, unparsable values) do not change the exit code: none is allowed
    assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_worker_unit_shuts_down_warm_and_runs_a_real_ttrpg_command():
    unit = _unit(WORKER_UNIT)
    service = unit["Service"]
    exec_start = shlex.split(_one(unit, "Service", "ExecStart"))
    assert exec_start[0].startswith(VENV_PREFIX)
    path, params = _resolve_ttrpg(exec_start)
    assert path == ["worker"] and params["name"] == "%H-%i"  # unique per machine and instance
    assert _one(unit, "Service", "KillMode") == "mixed"  # SIGTERM to the worker only, not its horse
    assert _one(unit, "Service", "KillSignal") == "SIGTERM"
    assert _seconds(_one(unit, "Service", "TimeoutStopSec")) > RQ_HARD_STOP_S > defaults.JOB_TIMEOUT_S
    assert _one(unit, "Service", "Restart") == "on-failure"
    assert _one(unit, "Service", "EnvironmentFile") == "/etc/ttrpg/worker.env"
    assert "ExecReload" not in service  # SIGHUP kills an RQ worker at once
    assert _one(unit, "Service", "User") not in ("root", "0")
    assert _one(unit, "Service", "NoNewPrivileges") == "yes"
    assert _one(unit, "Service", "ProtectSystem") == "strict"
    assert _one(unit, "Service", "PrivateTmp") == "yes"
    home = dict(v.split("=", 1) for v in service.get("Environment", []))["TTRPG_HOME"]
    writable = ["/var/lib/" + d for d in service.get("StateDirectory", [])] + \
        [p for v in service.get("ReadWritePaths", []) for p in v.split()]
    assert home in writable, "TTRPG_HOME must be writable under ProtectSystem=strict"
    assert _one(unit, "Install", "WantedBy") == "multi-user.target"


def test_redis_unit_runs_redis_8_with_both_modules_in_the_foreground():
    import redis

    unit = _unit(REDIS_UNIT)
    argv = shlex.split(_one(unit, "Service", "ExecStart"))
    assert argv[0] == VENV_PREFIX + "python" and argv[1:4] == ["-m", "ttrpg.fleet.monitor", "redis-server"]
    assert "--appendonly" in argv and argv[argv.index("--appendonly") + 1] == "yes"
    assert "yes" not in [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--daemonize"]
    # Run the unit's command line, with a private socket and directory and no TCP port.
    work = Path(tempfile.mkdtemp(prefix="ttrpg-redis-unit-"))
    override = {"--unixsocket": str(work / "redis.sock"), "--dir": str(work), "--port": "0"}
    args = [override.get(argv[i - 1], a) if i > 4 else a for i, a in enumerate(argv)][4:]
    proc = subprocess.Popen([sys.executable, "-m", "ttrpg.fleet.monitor", "redis-server", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis.Redis(unix_socket_path=str(work / "redis.sock"), socket_timeout=5)
    try:
        assert _wait(lambda: (work / "redis.sock").exists(), 15), proc.stdout.read1().decode(errors="replace")
        assert client.ping()
        modules = {m[b"name"].decode() for m in client.module_list()}
        assert {"ReJSON", "search"} <= modules
        info = client.info("server")
        assert str(info["redis_version"]).startswith("8.")
        assert info["process_id"] == proc.pid  # exec'd in place: the service's main pid is Redis
        assert client.config_get("appendonly")["appendonly"] == "yes"
        proc.send_signal(signal.SIGTERM)  # systemctl stop
        assert proc.wait(20) == 0
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- docker


def test_compose_runs_real_ttrpg_commands_with_settings_ttrpg_reads():
    services = _compose()["services"]
    stages = {stage for stage, instruction, _ in _dockerfile() if instruction == "FROM"}
    reads = _env_vars_ttrpg_reads()
    assert {"TTRPG_REDIS_URL", "TTRPG_QUEUE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "TTRPG_MODEL"} <= reads
    ttrpg_services = []
    for name, svc in services.items():
        if "build" in svc:
            build = svc["build"] if isinstance(svc["build"], dict) else {"context": svc["build"]}
            assert build.get("context", ".") in (".", "./"), f"{name} must build this repository"
            assert build.get("target", "worker") in stages, f"{name}: no Dockerfile stage {build.get('target')!r}"
        for key in ("command", "entrypoint"):
            if key in svc:
                assert isinstance(svc[key], list), f"{name}.{key} must be exec form (a list)"
        argv = _argv(svc.get("entrypoint", [])) + _argv(svc.get("command", []))
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        if argv and Path(argv[0]).name == "ttrpg":
            _resolve_ttrpg(argv)
            ttrpg_services.append(name)
            unknown = set(env) - reads
            assert not unknown, f"{name} sets variables ttrpg never reads: {sorted(unknown)}"
        elif argv and argv[0] in ("python", "python3"):
            assert argv[1] == "-m", argv
            import importlib.util

            assert importlib.util.find_spec(argv[2]) is not None, argv
            ttrpg_services.append(name)
            assert not set(env) - reads, f"{name} sets variables ttrpg never reads: {sorted(set(env) - reads)}"
        elif argv and argv[0] == "redis-server":
            assert str(svc.get("image", "")).startswith(("redis:", "redis/redis-stack-server:")), name
            assert not env, f"{name}: the Redis service needs no environment"
        elif argv[:2] == ["/bin/sh", "-c"] and "exec docker-entrypoint.sh redis-server" in argv[2]:
            # Redis with its password on stdin: only the password variable, for redis-cli and the config
            assert str(svc.get("image", "")).startswith(("redis:", "redis/redis-stack-server:")), name
            assert set(env) == {"REDISCLI_AUTH"}, env
        elif argv and argv[0] == "rq-dashboard":
            assert svc.get("build", {}).get("target") == "dashboard", name
            assert not [k for k in env if not k.startswith("RQ_DASHBOARD_")], env
        else:
            pytest.fail(f"service {name} runs {argv!r}: not a ttrpg, redis-server or rq-dashboard command")

    worker = services["worker"]
    assert "worker" in ttrpg_services
    assert _resolve_ttrpg(worker["command"])[0] == ["worker"]
    assert worker["deploy"]["replicas"] == 4
    assert _seconds(worker["stop_grace_period"]) > RQ_HARD_STOP_S
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    env = worker["environment"]
    assert re.match(r"redis://:\$\{TTRPG_REDIS_PASSWORD:\?[^}]+\}@redis:6379/", env["TTRPG_REDIS_URL"])
    for passed in ("TTRPG_QUEUE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "TTRPG_MODEL"):
        assert "${" + passed in str(env[passed]), f"{passed} is not passed through from the shell/.env"
    assert "dashboard" in services["dashboard"]["profiles"]


def test_compose_redis_has_json_and_search_modules_aof_a_volume_and_a_healthcheck():
    compose = _compose()
    redis_svc = compose["services"]["redis"]
    image = redis_svc["image"]
    assert re.match(r"^redis:8(\.\d+)*(-[a-z0-9.]+)?$", image) or \
        re.match(r"^redis/redis-stack-server:7\.4", image), f"{image}: no RedisJSON + RediSearch"
    entry = _argv(redis_svc["entrypoint"])
    assert entry[:2] == ["/bin/sh", "-c"], entry
    script = entry[2]
    # the image's entrypoint adds its bundled modules only when the command is redis-server;
    # `redis-server -` reads the password from stdin, so it is on no command line
    argv = script.split("<<", 1)[0].split()
    assert argv[:3] == ["exec", "docker-entrypoint.sh", "redis-server"] and argv[3] == "-", argv
    assert "--appendonly" in argv and argv[argv.index("--appendonly") + 1] == "yes"
    assert "requirepass" in script
    assert "${TTRPG_REDIS_PASSWORD:?" in redis_svc["environment"]["REDISCLI_AUTH"]
    volumes = redis_svc["volumes"]
    assert any(str(v).split(":")[1] == "/data" and str(v).split(":")[0] in compose.get("volumes", {})
               for v in volumes), volumes
    test = redis_svc["healthcheck"]["test"]
    test = " ".join(test) if isinstance(test, list) else test
    assert "redis-cli" in test and "ping" in test


def test_dockerfile_is_exec_form_non_root_and_runs_a_real_ttrpg_command():
    instructions = _dockerfile()
    froms = [args for _, instruction, args in instructions if instruction == "FROM"]
    assert froms[0].split()[0] == "python:3.11-slim"
    final = [i for i in instructions if i[0] == instructions[-1][0]]
    for stage, instruction, args in instructions:
        if instruction in ("CMD", "ENTRYPOINT"):
            argv = json.loads(args)  # shell form is not JSON: the process would not be PID 1
            assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), (stage, args)
    cmd = json.loads([a for _, i, a in final if i == "CMD"][-1])
    entrypoint = [json.loads(a) for _, i, a in final if i == "ENTRYPOINT"]
    assert _resolve_ttrpg((entrypoint[-1] if entrypoint else []) + cmd)[0] == ["worker"]
    users = [a for _, i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the worker must not run as root"
    assert any(i == "RUN" and "pip install ." in a for _, i, a in instructions)
    dashboard = [a for s, i, a in instructions if s == "dashboard" and i == "RUN"]
    assert any("rq-dashboard" in a and "six" in a for a in dashboard), "rq-dashboard needs six installed"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


# --------------------------------------------------------------------------- live workers


def test_sigterm_from_the_service_manager_lets_the_job_in_flight_finish(queue_name, redis_client, tmp_path):
    """systemd (KillMode=mixed) and docker stop send SIGTERM to the worker's main process only."""
    argv = shlex.split(_one(_unit(WORKER_UNIT), "Service", "ExecStart"))
    name = f"{socket.gethostname()}-fleet{uuid.uuid4().hex[:6]}"
    args = [a.replace("%H", socket.gethostname()).replace("%i", name.rsplit("-", 1)[1]) for a in argv[1:]]
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:  # own session: stands in for the unit's cgroup
        proc = subprocess.Popen([sys.executable, "-m", "ttrpg", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _wait(lambda: name in {w["name"] for w in live_workers([queue_name])}, 30), log.read_text()
        job = job_queue(queue_name, redis_client).enqueue("ttrpg.jobs.functions.sleep_for", 3)
        assert _wait(lambda: any(h.state == "running" for h in horses(name)), 30), log.read_text()
        stopped = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        print(f"worker exited {time.monotonic() - stopped:.1f} s after SIGTERM")
        assert job.get_status(refresh=True) == JobStatus.FINISHED, log.read_text()
        value = job.latest_result().return_value
        assert value["ended_at"] - value["started_at"] >= 2.9  # ran to its end, not cut short
        # Nothing is left for the service manager's final SIGKILL to hit.
        assert _wait(lambda: not processes_mentioning(name), 5), processes_mentioning(name)
        assert name not in {w["name"] for w in live_workers([queue_name])}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_an_idle_worker_serves_again_after_the_test_runs_redis_restarts(ttrpg_home, queue_name):
    from ttrpg.backend import embedded
    from ttrpg.backend.connection import get_redis
    from ttrpg.fleet.monitor import fleet_status

    with local_workers(1, [queue_name], "forkserver") as fleet:
        name, proc = fleet.names[0], fleet.procs[0]
        client = get_redis()
        try:
            job = job_queue(queue_name, client).enqueue("ttrpg.jobs.functions.probe")
            assert job.latest_result(timeout=30).type.name == "SUCCESSFUL"
        finally:
            client.close()
        old_pid = embedded.stop(ttrpg_home)
        try:
            assert old_pid and embedded.running_pid(ttrpg_home) is None
        finally:
            embedded.ensure_running(ttrpg_home)
        assert embedded.running_pid(ttrpg_home) not in (None, old_pid)
        client = get_redis()  # clients made before the restart hold dead connections
        try:
            enqueued = time.monotonic()
            job = job_queue(queue_name, client).enqueue("ttrpg.jobs.functions.probe")
            result = job.latest_result(timeout=45)
            assert result is not None and result.type.name == "SUCCESSFUL", result and result.exc_string
            print(f"served {time.monotonic() - enqueued:.1f} s after the restart")
            job.refresh()
            assert (job.worker_name or "").startswith(name), job.worker_name
        finally:
            client.close()
        assert proc.poll() is None and proc.pid == fleet.pids[0]  # the same process, never restarted
        rows = [w for w in fleet_status(queues=[queue_name])["workers"] if w["name"].startswith(name)]
        assert [w["pid"] for w in rows if w["alive"]] == [proc.pid]


def test_ttrpg_workers_json_shows_the_running_worker_and_queue_depths(queue_name, redis_client):
    with local_workers(1, [queue_name], "forkserver") as fleet:
        name = fleet.names[0]
        queue = job_queue(queue_name, redis_client)
        first = queue.enqueue("ttrpg.jobs.functions.sleep_for", 10)  # outlasts a slow `ttrpg workers` start
        second = queue.enqueue("ttrpg.jobs.functions.probe")
        assert _wait(lambda: any(h.state == "running" for h in horses(name)), 30)
        result = run_cli("workers", "--json")  # default: $TTRPG_QUEUE, this test's queue
        assert result.returncode == 0, result.stderr
        info = json.loads(result.stdout)
        worker = next(w for w in info["workers"] if w["name"] == name)
        assert worker["pid"] == fleet.pids[0] and worker["hostname"] == socket.gethostname()
        assert worker["state"] == "busy" and worker["alive"] is True
        assert worker["queues"] == [queue_name]
        assert worker["current_job"]["id"] == first.id
        assert worker["current_job"]["func"] == "ttrpg.jobs.functions.sleep_for"
        assert worker["last_heartbeat"] and worker["heartbeat_age_s"] < 60
        assert worker["successful_job_count"] == 0 and worker["failed_job_count"] == 0
        assert {h["state"] for h in worker["horses"]} >= {"template", "running"}
        assert worker["memory_pss_kb"] > 0  # the worker, its template and its horses, shared pages once
        depths = next(q for q in info["queues"] if q["name"] == queue_name)
        assert (depths["queued"], depths["started"], depths["failed"], depths["workers"]) == (1, 1, 0, 1)
        started = [j for j in info["started"] if j["queue"] == queue_name]
        assert [(j["id"], j["worker"], j["abandoned"]) for j in started] == [(first.id, name, False)]

        assert second.latest_result(timeout=30) is not None
        result = run_cli("workers", "--json", "--queue", queue_name)
        info = json.loads(result.stdout)
        worker = next(w for w in info["workers"] if w["name"] == name)
        assert worker["successful_job_count"] == 2 and worker["current_job"] is None
        assert [(q["queued"], q["started"]) for q in info["queues"]] == [(0, 0)]

        human = run_cli("workers", "--queue", queue_name, env={"COLUMNS": "250"})
        assert human.returncode == 0, human.stderr
        assert name in human.stdout and queue_name in human.stdout


def test_ttrpg_workers_failed_requeue_puts_a_failed_job_back(queue_name, redis_client):
    from rq import Queue
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer

    queue = Queue(queue_name, connection=redis_client, serializer=JSONSerializer)
    try:
        with local_workers(1, [queue_name], "forkserver"):
            refused = queue.enqueue("os.getpid")  # not a ttrpg job: refused, and never retried
            assert _wait(lambda: refused.get_status(refresh=True) == JobStatus.FAILED, 30)

        listed = run_cli("workers", "failed", "--json")
        assert listed.returncode == 0, listed.stderr
        row = next(r for r in json.loads(listed.stdout) if r["id"] == refused.id)
        assert row["queue"] == queue_name and row["func"] == "os.getpid"
        assert row["error"].startswith("ttrpg.jobs.allowlist.JobRefused: refused") or "refused" in row["error"]
        assert "\n" not in row["error"]
        status = json.loads(run_cli("workers", "--json").stdout)
        assert refused.id in {j["id"] for j in status["failed"]}
        assert next(q for q in status["queues"] if q["name"] == queue_name)["failed"] == 1

        requeued = run_cli("workers", "failed", "--requeue", "--json", "--queue", queue_name)
        assert requeued.returncode == 0, requeued.stderr
        assert json.loads(requeued.stdout) == {"requeued": 1, "job_ids": [refused.id]}
        assert refused.get_status(refresh=True) == JobStatus.QUEUED
        assert queue.get_job_ids() == [refused.id]
        assert refused.id not in FailedJobRegistry(queue_name, connection=redis_client).get_job_ids()
    finally:
        queue.delete(delete_jobs=True)
