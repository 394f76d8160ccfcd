"""The fork server: a clean template process per worker that forks one fresh child per job.

Why: a job must run in a process that has run no other job and inherited nothing from the
worker or from earlier jobs, and it must start within milliseconds even when jobs arrive
back-to-back (the phases of a turn follow each other within milliseconds). A spawned
interpreter needs about 0.5 s to import ``openai``; a fork of a process that has already
imported it needs about 3 ms. So each :class:`~ttrpg.fleet.workers.ForkServerWorker` spawns a
*template* once, through the same secret-free bootstrap as the warm horses
(:mod:`ttrpg.fleet.horse`): a fresh interpreter that imports the job functions and
``openai`` and then never runs a job and never opens a Redis connection. It keeps one forked
child ready (connected to Redis, blocked on a pipe); a job is one line written to that
child, and the template forks the next ready child at once.

Wire protocol, all lines of JSON (worker → template on the command pipe, template → worker
on the reply pipe)::

    worker:   {"job": "<id>", "execution": "<id>", "queue": "<name>"}
    template: {"started": <pid>}             the child running that job (its own process group)
    template: {"exit": <pid>, "status": <waitpid status>}   when it ends
    horse:    {"exit": <pid>, "status": <code << 8>}   just before it calls os._exit (the template's
              own report of that exit follows a few milliseconds later and is ignored)

The worker waits for the horse through ``exit`` messages (the horse is the template's child,
not the worker's); if the template dies meanwhile, the worker waits on the horse's pidfd and
RQ then reads the job's outcome from Redis, as it does for any horse.

Lifetime rules (no orphans): the template dies with its worker (``PR_SET_PDEATHSIG`` and EOF
on the command pipe); a ready child dies with its template (same two ways); a *running*
horse finishes its job even if its worker or template is SIGKILLed, as RQ's horses do.
``ps -o pid,comm`` shows ``ttrpg-template``, ``ttrpg-ready`` and ``ttrpg-horse``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from dataclasses import dataclass, field

from ttrpg import defaults
from ttrpg.fleet.horse import HORSE_JOB, HORSE_PREPARE, HORSE_SETUP, PARENT_FDS, spawn_horse, write_all

__all__ = ["Template", "TemplateGone", "start_template", "wait_pidfd"]

# Runs in the template after HORSE_SETUP (preloads imported, worker settings unpickled).
# _CMD and _REPLY are the template's pipe ends; _PREPARE_SOURCE and _JOB_SOURCE are
# HORSE_PREPARE (run by each ready child) and HORSE_JOB (run by it once its job line arrives).
_TEMPLATE_MAIN = HORSE_SETUP + """
import gc, select, signal
_pipe.close()
signal.signal(signal.SIGINT, signal.SIG_IGN)
_prctl(15, b'ttrpg-template')
_TEMPLATE = os.getpid()
_JOB = compile(_JOB_SOURCE, '<ttrpg-horse>', 'exec')
_PREPARE = compile(_PREPARE_SOURCE, '<ttrpg-horse>', 'exec')
_PRIVATE = {_CMD, _REPLY}


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _say(message):
    _write_all(_REPLY, (json.dumps(message) + '\\n').encode())


def _child(job_fd):
    global _line
    _prctl(15, b'ttrpg-forked')  # not the template's name any more (ttrpg.fleet.horse.horses: "starting")
    for fd in _PRIVATE - {_REPLY}:
        try:
            os.close(fd)
        except OSError:
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setpgid(0, 0)
    _prctl(1, 9)
    if os.getppid() != _TEMPLATE:
        os._exit(0)
    exec(_PREPARE, globals())
    _prctl(15, b'ttrpg-ready')
    data = b''
    while not data.endswith(b'\\n'):
        chunk = os.read(job_fd, 65536)
        if not chunk:
            os._exit(0)
        data += chunk
    os.close(job_fd)
    _line = data
    _report_exit_early()
    exec(_JOB, globals())


def _report_exit_early():
    # A horse ends with os._exit once its job's result is stored. The kernel then needs a few
    # milliseconds to tear the process down before its parent can see it: the horse says its
    # exit status itself, on the worker's reply pipe (one write, atomic), just before it exits,
    # so the worker takes its next job at once. Deaths by signal are reported by the template.
    # That teardown (about 5 ms of CPU) then runs at the lowest priority: on a busy machine the
    # worker, the next horse and the other players' jobs go first (back-to-back dispatch p90
    # 18 -> 15 ms on two cores).
    real_exit = os._exit

    def exit_reporting(code):
        try:
            os.write(_REPLY, (json.dumps({'exit': os.getpid(), 'status': (int(code) & 0xff) << 8})
                              + '\\n').encode())
        except BaseException:
            pass
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 19)
        except OSError:
            pass
        real_exit(code)

    os._exit = exit_reporting


def _fork_ready():
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(write_fd)
            _child(read_fd)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
        os._exit(code)
    os.close(read_fd)
    pidfd = os.pidfd_open(pid)
    _PRIVATE.update((write_fd, pidfd))
    return [pid, write_fd, pidfd]


def _reap(pid, pidfd):
    _PRIVATE.discard(pidfd)
    os.close(pidfd)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


def _drop(child):
    pid, write_fd, pidfd = child
    _PRIVATE.discard(write_fd)
    os.close(write_fd)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid, pidfd)


def _fill():
    while len(_ready) < _READY_COUNT:
        _ready.append(_fork_ready())


gc.collect()
gc.freeze()  # the children's reference counts then dirty fewer shared pages
_ready = []  # oldest first: the one most surely done preparing takes the next job
_fill()
_running = {}
_buf = b''
while True:
    readable = select.select([_CMD, *(c[2] for c in _ready), *_running], [], [])[0]
    for fd in readable:
        if fd in _running:
            _pid = _running.pop(fd)
            _say({'exit': _pid, 'status': _reap(_pid, fd)})
    for _child_ in [c for c in _ready if c[2] in readable]:  # died before its job: replace it
        _ready.remove(_child_)
        _drop(_child_)
    if _CMD not in readable:
        _fill()
        continue
    _chunk = os.read(_CMD, 65536)
    if not _chunk:  # the worker is gone
        for _child_ in _ready:
            _drop(_child_)
        os._exit(0)
    _buf += _chunk
    while b'\\n' in _buf:
        _line, _buf = _buf.split(b'\\n', 1)
        _fill()
        for _attempt in (1, 2):
            try:
                _write_all(_ready[0][1], _line + b'\\n')
                break
            except BrokenPipeError:
                _drop(_ready.pop(0))
                _fill()
        _pid, _w, _pidfd = _ready.pop(0)
        _PRIVATE.discard(_w)
        os.close(_w)
        _running[_pidfd] = _pid
        _say({'started': _pid})
    _fill()
"""


class TemplateGone(Exception):
    """The template process died or stopped answering; the worker starts another."""


@dataclass
class Template:
    """The worker's handle on its template: pid, pipe ends, and unread reply bytes."""

    pid: int
    cmd_fd: int
    reply_fd: int
    spawned_at: float
    buffer: bytes = b""
    exits: dict[int, int | None] = field(default_factory=dict)

    # -- lifetime ----------------------------------------------------------------------
    def exit_reason(self) -> str | None:
        """``None`` while the template runs; else why it stopped (it is reaped here)."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return "gone"
        if pid == 0:
            return None
        code = os.waitstatus_to_exitcode(status)
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def stop(self) -> None:
        """Close the pipes, kill and reap the template (its ready child dies with it)."""
        for fd in (self.cmd_fd, self.reply_fd):
            PARENT_FDS.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    # -- protocol ----------------------------------------------------------------------
    def dispatch(self, line: bytes, timeout: float) -> int:
        """Send one job line; return the pid of the child that runs it."""
        try:
            write_all(self.cmd_fd, line)
        except BrokenPipeError as exc:
            raise TemplateGone("its command pipe is closed") from exc
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if isinstance(message.get("started"), int):
                return message["started"]
            self._note(message)

    def wait_exit(self, pid: int) -> int | None:
        """Block until the template reports ``pid``'s end; its ``waitpid`` status.

        Interruptible by a signal handler that raises (RQ's monitoring timeout does).
        """
        while pid not in self.exits:
            self._note(self._next(None))
        return self.exits.pop(pid)

    def _note(self, message: dict) -> None:
        if isinstance(message.get("exit"), int):
            self.exits[message["exit"]] = message.get("status")
            while len(self.exits) > 64:  # ends of horses nobody waits for any more
                self.exits.pop(next(iter(self.exits)))

    def _next(self, deadline: float | None) -> dict:
        while b"\n" not in self.buffer:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise TemplateGone("it did not answer in time")
            if not select.select([self.reply_fd], [], [], wait)[0]:
                continue
            chunk = os.read(self.reply_fd, 65536)
            if not chunk:
                raise TemplateGone("its reply pipe is closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return {}
        return message if isinstance(message, dict) else {}


def start_template(worker, preload: tuple[str, ...]) -> Template:
    """Spawn ``worker``'s template: a fresh interpreter that imports ``preload`` and forks."""
    cmd_read, cmd_write = os.pipe()
    reply_read, reply_write = os.pipe()
    try:
        boot = spawn_horse(worker, preload, main=_TEMPLATE_MAIN, pass_fds=(cmd_read, reply_write), warm_up=True,
                           extra={"_CMD": cmd_read, "_REPLY": reply_write, "_JOB_SOURCE": HORSE_JOB,
                                  "_PREPARE_SOURCE": HORSE_PREPARE, "_READY_COUNT": defaults.FORKSERVER_READY})
    except BaseException:
        for fd in (cmd_write, reply_read):
            os.close(fd)
        raise
    finally:
        os.close(cmd_read)
        os.close(reply_write)
    # The source pipe has done its job: the template learns of our death from the command pipe.
    PARENT_FDS.discard(boot.fd)
    with contextlib.suppress(OSError):
        os.close(boot.fd)  # type: ignore[arg-type]
    PARENT_FDS.update((cmd_write, reply_read))
    return Template(boot.pid, cmd_write, reply_read, boot.spawned_at)


def wait_pidfd(pid: int, pidfd: int | None) -> None:
    """Block until ``pid`` ends, through its pidfd (the process need not be our child)."""
    if pidfd is None:
        return
    while not select.select([pidfd], [], [])[0]:
        pass
