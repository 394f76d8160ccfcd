"""Build the dev/test split of the labelled narrative-overreach corpus.

Reads the hand-labelled pool (``pool.jsonl`` next to this file: one JSON object per line with
``text``, ``overreach``, ``kind``, ``source`` and ``note``) and writes ``dev.jsonl`` (about 55 %)
and ``test.jsonl`` (about 45 %) next to it. The split is a seeded shuffle stratified by
(source, label), so every source appears in both splits with the same label balance, and the
output is the same on every run. Labels were given by hand, by meaning (each line's ``note`` says
why), independent of what any detector catches.

Checks before writing: known sources and kinds, a kind exactly when ``overreach`` is true, no
duplicate text (case- and whitespace-insensitive) within the pool, and no text copied from the
older corpus ``tests/data/overreach_corpus.jsonl``.

Both parts have since been used to write the detector's rules (the test part after it was scored
once); the held-out parts are now ``fresh.jsonl`` to ``fresh5.jsonl`` (see ``README.md`` here).

Run: ``.venv/bin/python tests/data/overreach/build_corpus.py``
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
POOL = HERE / "pool.jsonl"
OLD_CORPUS = HERE.parent / "overreach_corpus.jsonl"
DEV, TEST = HERE / "dev.jsonl", HERE / "test.jsonl"
SEED = 20240611
DEV_FRACTION = 0.55
SOURCES = ("smollm2", "offline", "hand-first", "hand-third", "hand-dialogue", "hand-long")
KINDS = ("outcome", "other_reaction", "future")
FIELDS = ("text", "overreach", "kind", "source", "note")


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check(pool: list[dict]) -> None:
    old = {norm(r["text"]) for r in load(OLD_CORPUS)} if OLD_CORPUS.exists() else set()
    seen: set[str] = set()
    for i, r in enumerate(pool, 1):
        where = f"{POOL.name}:{i}"
        assert set(r) == set(FIELDS), f"{where}: fields {sorted(r)}"
        assert isinstance(r["text"], str) and r["text"].strip(), f"{where}: empty text"
        assert isinstance(r["overreach"], bool), f"{where}: overreach must be a bool"
        assert r["source"] in SOURCES, f"{where}: unknown source {r['source']!r}"
        if r["overreach"]:
            assert r["kind"] in KINDS, f"{where}: overreach line needs a kind, got {r['kind']!r}"
        else:
            assert r["kind"] is None, f"{where}: clean line must have kind null"
        if r["source"] == "hand-long":
            assert len(r["text"].split()) >= 25, f"{where}: hand-long line under 25 words"
        key = norm(r["text"])
        assert key not in seen, f"{where}: duplicate text {r['text']!r}"
        assert key not in old, f"{where}: copied from {OLD_CORPUS.name}: {r['text']!r}"
        seen.add(key)


def split(pool: list[dict]) -> tuple[list[dict], list[dict]]:
    rng = random.Random(SEED)
    strata: dict[tuple[str, bool], list[dict]] = defaultdict(list)
    for r in pool:
        strata[(r["source"], r["overreach"])].append(r)
    dev: list[dict] = []
    test: list[dict] = []
    for key in sorted(strata):
        group = sorted(strata[key], key=lambda r: norm(r["text"]))  # independent of pool order
        rng.shuffle(group)
        n_dev = round(len(group) * DEV_FRACTION)
        if len(group) >= 2:
            n_dev = min(max(n_dev, 1), len(group) - 1)  # both splits get every stratum
        dev += group[:n_dev]
        test += group[n_dev:]
    rng.shuffle(dev)
    rng.shuffle(test)
    return dev, test


def write(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in FIELDS}, ensure_ascii=False) + "\n")


def summary(name: str, rows: list[dict]) -> str:
    c = Counter((r["source"], r["overreach"]) for r in rows)
    over = sum(r["overreach"] for r in rows)
    lines = [f"{name}: {len(rows)} lines, {over} overreach ({100 * over / max(1, len(rows)):.1f} %)"]
    for s in SOURCES:
        lines.append(f"  {s:14s} overreach={c[(s, True)]:3d} clean={c[(s, False)]:3d}")
    return "\n".join(lines)


def main() -> int:
    pool = load(POOL)
    check(pool)
    dev, test = split(pool)
    write(DEV, dev)
    write(TEST, test)
    print(summary("dev", dev))
    print(summary("test", test))
    return 0


if __name__ == "__main__":
    sys.exit(main())
