"""The offline model's one source of randomness: a hash that is the same everywhere."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(*parts: Any) -> int:
    """A 64-bit hash that is the same in every process and on every machine.

    Python's ``hash()`` of a string is salted per process, so it cannot seed anything that
    must be reproducible across workers; SHA-256 of the parts' JSON can.
    """
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")
