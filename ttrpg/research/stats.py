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
