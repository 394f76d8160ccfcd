"""Process helpers shared by the session lock, the workers, the fleet view and the drills."""

from __future__ import annotations

import os


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
