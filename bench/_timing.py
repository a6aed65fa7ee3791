"""Shared by the bench scripts: the median wall time of a call, after one warm-up call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], repeat: int, sync: Callable[[], None] | None = None, warmup: int = 1) -> float:
    """Median of ``repeat`` timed calls in milliseconds; ``sync`` (e.g. CUDA synchronize) runs before each stop."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        runs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(runs)
