"""Percentiles: the one definition every figure in ttrpg uses (reports, benchmarks, dispatch)."""

from __future__ import annotations

import math


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, ``statistics.quantiles``
    with ``method="inclusive"``); None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: list[float]) -> float | None:
    """The arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def bootstrap_ci(values: list[float], *, statistic=mean, resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (the replicates: one value
    per seed): ``resamples`` resamples with replacement drawn from ``random.Random(seed)``, so
    the same data and seed give the same interval. ``None`` values are left out; no values give
    ``(None, None)``, one value gives ``(v, v)`` (nothing to resample: no spread is known)."""
    import random

    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None, None
    if len(xs) == 1:
        return xs[0], xs[0]
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError("confidence must be between 0 and 1 and resamples at least 1")
    rng = random.Random(seed)
    n = len(xs)
    stats = [statistic(rng.choices(xs, k=n)) for _ in range(resamples)]
    tail = (1 - confidence) / 2
    return percentile(stats, tail), percentile(stats, 1 - tail)


def summarize(values: list[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """``{"mean", "lo", "hi", "n"}``: the mean of the replicates and its bootstrap interval."""
    xs = [float(v) for v in values if v is not None]
    lo, hi = bootstrap_ci(xs, resamples=resamples, confidence=confidence, seed=seed)
    return {"mean": mean(xs), "lo": lo, "hi": hi, "n": len(xs)}
