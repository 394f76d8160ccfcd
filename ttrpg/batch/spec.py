"""A batch's matrix: what to vary (conditions) and how often (seeds), checked in full.

A matrix comes from a JSON file (``ttrpg batch run --matrix FILE``) and/or flags; a flag
replaces the file's value of the same axis::

    {"models": ["offline"], "seeds": "1-10", "parties": ["crew-a.json", "default"],
     "prompt_versions": ["1"], "turns": 3, "players": 2, "latency_ms": [0, 1000],
     "faults": ["", "rate_limit=0.2"], "dm": ["rules"], "dm_model": null,
     "sessions_per_driver": 8, "batch_id": "pilot-1"}

A *condition* is one combination of model x party x prompt version x DM kind x latency x
faults; its seeds are the replicates. ``latency_ms`` and ``faults`` only apply to the offline
model (a real model's conditions do not multiply by them). Prompt versions are labels: the
project has one set of prompts (``ttrpg.prompts.builders.PROMPT_VERSION``), recorded next to
the label, so a comparison across labels is only as real as the code that ran each batch.

Every mistake is one :class:`~ttrpg.exceptions.ConfigError` line (exit 2), before anything is created.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ttrpg import defaults
from ttrpg.exceptions import ConfigError
from ttrpg.jsonfile import unknown_keys

OFFLINE = "offline"
DM_KINDS = ("rules", "llm")
MATRIX_KEYS = {"batch_id", "models", "seeds", "parties", "prompt_versions", "turns", "players", "latency_ms",
               "faults", "dm", "dm_model", "sessions_per_driver", "description"}
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_HINT = "See `ttrpg batch run --help` for the matrix format."


def _fail(message: str, hint: str = _HINT):
    raise ConfigError(message, hint=hint)


@dataclass(frozen=True)
class Condition:
    """One cell of the matrix without its seed."""

    model: str
    party: str  # "default" or a characters file path
    prompt_version: str
    dm: str
    dm_model: str | None
    latency_ms: int
    faults: str

    @property
    def label(self) -> str:
        party = "default" if self.party == "default" else Path(self.party).stem
        dm = self.dm if self.dm == "rules" else f"llm:{self.dm_model}"
        extra = f" {self.latency_ms}ms" if self.model == OFFLINE else ""
        extra += f" faults:{self.faults}" if self.faults else ""
        return f"{self.model} {party} p{self.prompt_version} dm:{dm}{extra}"


@dataclass
class Matrix:
    conditions: list[Condition]
    seeds: list[int]
    turns: int
    players: int | None
    sessions_per_driver: int
    batch_id: str | None = None
    description: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.conditions) * len(self.seeds)

    def to_json(self) -> dict:
        return {"conditions": [asdict(c) for c in self.conditions], "seeds": self.seeds, "turns": self.turns,
                "players": self.players, "sessions_per_driver": self.sessions_per_driver,
                "batch_id": self.batch_id, "description": self.description}


def parse_seeds(value) -> list[int]:
    """``"1-10"``, ``"1,3,5"``, ``"1-3,7"``, ``[1, 2]`` or ``4`` -> a list of distinct seeds, in order."""
    items: list = []
    if isinstance(value, bool):
        _fail(f"seeds must be numbers or ranges like 1-10, got {value!r}.")
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        for part in filter(None, (p.strip() for p in value.split(","))):
            lo, sep, hi = part.partition("-")
            try:
                if sep:
                    a, b = int(lo), int(hi)
                    if b < a or b - a >= defaults.BATCH_MAX_SESSIONS:
                        _fail(f"seed range {part!r} must go up, with at most {defaults.BATCH_MAX_SESSIONS} seeds.")
                    items.extend(range(a, b + 1))
                else:
                    items.append(int(part))
            except ValueError:
                _fail(f"seeds must be numbers or ranges like 1-10, got {part!r}.")
    elif isinstance(value, list):
        items = value
    else:
        _fail(f"seeds must be a list, a number or a range like \"1-10\", got {type(value).__name__}.")
    if not items:
        _fail("seeds is empty: give at least one seed (--seeds 1-10).")
    out: list[int] = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= defaults.MAX_SEED:
            _fail(f"seed {s!r} is not a whole number from 0 to 2**63-1.")
        if s in out:
            _fail(f"seed {s} is given twice.")
        out.append(s)
    return out


def _strings(raw: dict, key: str, default: list[str]) -> list[str]:
    value = raw.get(key, default)
    if value is None:
        value = default
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        _fail(f"{key} must be a non-empty list of strings, got {value!r}"[:200] + ".")
    if len(set(value)) != len(value):
        _fail(f"{key} lists a value twice: {value!r}"[:200] + ".")
    return value


def _whole(raw: dict, key: str, default, low: int, high: int):
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(f"{key} must be a whole number from {low} to {high}, got {value!r}.")
    return value


def _faults(text: str) -> str:
    from ttrpg.session.play import parse_faults

    parsed = parse_faults(text)  # ConfigError naming the fault
    return ",".join(f"{k}={v:g}" for k, v in parsed.items())


def build_matrix(raw: dict, base_dir: Path | None = None) -> Matrix:
    """Check a matrix (the file's object with the flags merged in) and expand its conditions."""
    if not isinstance(raw, dict):
        _fail("the matrix must be a JSON object.")
    if unknown := unknown_keys(raw, MATRIX_KEYS, "matrix key"):
        _fail(unknown)
    batch_id = raw.get("batch_id")
    if batch_id is not None and (not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id)):
        _fail(f"batch id {str(batch_id)[:60]!r} is not valid.",
              "Use letters, digits, '-' and '_' (at most 40), starting with a letter or digit.")
    models = _strings(raw, "models", [OFFLINE])
    for m in models:
        if not m.strip() or len(m) > 200:
            _fail(f"model name {m[:60]!r} is not valid.")
    parties = _strings(raw, "parties", ["default"])
    resolved = []
    for p in parties:
        if p == "default":
            resolved.append(p)
            continue
        path = Path(p) if base_dir is None or Path(p).is_absolute() else base_dir / p
        if not path.is_file():
            _fail(f"party file {str(path)!r} does not exist.", "Give a characters.json (see `ttrpg characters check`).")
        resolved.append(str(path))
    versions = _strings(raw, "prompt_versions", ["1"])
    for v in versions:
        if not re.match(r"^[A-Za-z0-9._-]{1,20}$", v):
            _fail(f"prompt version {v[:40]!r} is not a short label (letters, digits, '.', '-', '_').")
    dms = _strings(raw, "dm", ["rules"])
    for d in dms:
        if d not in DM_KINDS:
            _fail(f"--dm {d[:40]!r} is not a DM kind; use rules or llm.")
    dm_model = raw.get("dm_model")
    if dm_model is not None and (not isinstance(dm_model, str) or not dm_model.strip()):
        _fail("dm_model must be a model name (or offline).")
    if "llm" in dms and not dm_model:
        _fail("--dm llm needs --dm-model NAME (a model name, or offline).")
    latencies = raw.get("latency_ms", [0])
    latencies = latencies if isinstance(latencies, list) else [latencies]
    for lat in latencies:
        if isinstance(lat, bool) or not isinstance(lat, int) or not 0 <= lat <= defaults.MAX_LATENCY_MS:
            _fail(f"latency must be 0 to {defaults.MAX_LATENCY_MS} ms, got {lat!r}.")
    faults = [_faults(f) for f in _strings(raw, "faults", [""])] if raw.get("faults") not in (None, "", []) else [""]
    turns = _whole(raw, "turns", defaults.BATCH_DEFAULT_TURNS, 1, defaults.MAX_TURNS)
    players = _whole(raw, "players", None, 1, 4)
    per_driver = _whole(raw, "sessions_per_driver", defaults.BATCH_SESSIONS_PER_DRIVER, 1, 64)
    seeds = parse_seeds(raw.get("seeds", [1]))
    conditions: list[Condition] = []
    for model, party, version, dm, lat, fault in itertools.product(models, resolved, versions, dms, latencies, faults):
        if model != OFFLINE:
            lat, fault = 0, ""  # latency and faults belong to the offline model
        cond = Condition(model, party, version, dm, dm_model if dm == "llm" else None, lat, fault)
        if cond not in conditions:
            conditions.append(cond)
    matrix = Matrix(conditions, seeds, turns, players, per_driver, batch_id, str(raw.get("description") or "")[:500],
                    raw)
    if matrix.size > defaults.BATCH_MAX_SESSIONS:
        _fail(f"the matrix has {matrix.size} sessions ({len(conditions)} conditions x {len(seeds)} seeds); "
              f"at most {defaults.BATCH_MAX_SESSIONS}.")
    return matrix


def load_matrix(path: str | None, flags: dict) -> Matrix:
    """The matrix file (if any) with the flags that were given (not None) laid over it."""
    from ttrpg.jsonfile import load_json_file

    raw: dict = {}
    base = None
    if path:
        raw = load_json_file(path, what="matrix file")
        if not isinstance(raw, dict):
            _fail(f"matrix file {path}: the top level must be an object.")
        base = Path(path).resolve().parent
    raw = dict(raw)
    for key, value in flags.items():
        if value is not None and value != [] and value != ():
            raw[key] = list(value) if isinstance(value, tuple) else value
    return build_matrix(raw, base)


def session_id(batch_id: str, condition: int, replicate: int) -> str:
    """Deterministic: ``<batch>-c<condition>-r<replicate>`` (at most 40 + 12 characters)."""
    return f"{batch_id}-c{condition:03d}-r{replicate:04d}"
