"""Small statistics: percentiles of latencies, medians and spreads of repeated runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeats, and the relative half-range (how noisy the figure is)."""
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "rel_spread": math.nan}
    mid = statistics.median(values)
    lo, hi = min(values), max(values)
    return {"median": mid, "min": lo, "max": hi, "rel_spread": (hi - lo) / (2 * mid) if mid else math.nan}


def ratio(numerator: float, denominator: float) -> float:
    if not denominator or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator
