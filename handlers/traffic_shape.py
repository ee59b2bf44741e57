"""The shape of an hour of a rate, one point a minute (TH-5's chart). Pure.

``periodic``: ``PERIODIC_SWINGS`` swings of ``SWING_SHARE`` around the mean; ``spike``: the
last ``SPIKE_WINDOW_MIN`` min over ``SPIKE_FACTOR`` x the earlier median; ``drop``: the last
``DROP_WINDOW_MIN`` min under that median / ``SPIKE_FACTOR``; ``plateau``: within
``STEADY_CV`` of the mean, at ``PLATEAU_SHARE`` of the capacity; else ``steady``,
``irregular`` or ``idle``.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

SPIKE_WINDOW_MIN = 10
SPIKE_FACTOR = 1.5
DROP_WINDOW_MIN = 3
PERIODIC_SWINGS = 4
SWING_SHARE = 0.25
STEADY_CV = 0.15
PLATEAU_SHARE = 0.9


def swings(values: Sequence[float]) -> int:
    """How often the series goes from well below its mean to well above, or back."""
    mean = statistics.fmean(values)
    sides = [
        1 if v > mean * (1 + SWING_SHARE) else -1
        for v in values
        if abs(v - mean) > mean * SWING_SHARE
    ]
    return sum(1 for a, b in itertools.pairwise(sides) if a != b)


def traffic_shape(values: Sequence[float], capacity: float | None) -> str:
    """``spike``, ``periodic``, ``plateau``, ``drop``, ``steady``, ``irregular`` or ``idle``."""
    if not any(values):
        return "idle"
    if swings(values) >= PERIODIC_SWINGS:
        return "periodic"
    earlier = values[:-SPIKE_WINDOW_MIN] or values
    base, recent = statistics.median(earlier), values[-SPIKE_WINDOW_MIN:]
    if max(recent) > SPIKE_FACTOR * base:
        return "spike"
    if max(values[-DROP_WINDOW_MIN:]) * SPIKE_FACTOR < base:
        return "drop"
    mean = statistics.fmean(values)
    if statistics.pstdev(values) > STEADY_CV * mean:
        return "irregular"
    at_limit = capacity is not None and mean >= PLATEAU_SHARE * capacity
    return "plateau" if at_limit else "steady"
