"""Process helpers shared by the session lock, the workers, the fleet view and the drills."""

from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists on this host and is not a zombie.

    Zombies count as dead: a killed child that its parent has not reaped yet will never run
    again, and a lock or a worker registration held by it is stale.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


#: The kernel's flag (``/proc/<pid>/stat``, field 9) for a process inside exit().
PF_EXITING = 0x4


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state letter, ppid, flags)`` from ``/proc/<pid>/stat``, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        return fields[0].decode(), int(fields[1]), int(fields[6])
    except (OSError, ValueError, IndexError):
        return None


def ending(pid: int) -> bool:
    """Gone, a zombie, or inside exit(): the process will run no more code of its own."""
    st = proc_stat(pid)
    return st is None or st[0] == "Z" or bool(st[2] & PF_EXITING)


def read_comm(pid: int) -> bytes:
    """The process's name as ``/proc/<pid>/comm`` shows it (``b""`` when it is gone)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip()
    except OSError:
        return b""


def set_parent_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)``: the kernel sends ``sig`` when our parent (thread) dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except Exception:  # pragma: no cover - no prctl in this libc
        return False


def memory_kb(pid: int) -> dict[str, int] | None:
    """Resident (``rss``) and proportional (``pss``) memory of a process, in kB.

    PSS divides each shared page among the processes that map it, so summing PSS over a
    worker, its template and its ready child counts the pages they share once (RSS would
    count them three times). ``None`` when the process is gone or ``/proc`` is not there.
    """
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for raw in f:
                key, _, rest = raw.partition(b":")
                if key in (b"Rss", b"Pss"):
                    found[key.decode().lower()] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return found if len(found) == 2 else None
