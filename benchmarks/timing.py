"""Side-by-side timing shared by the benchmark scripts (they import it from their own folder)."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def interleave(arms: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, Any]]:
    """Median seconds and last result of each arm, the arms taking turns so drift hits both."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    results = {}
    for _ in range(repeats):
        for name, arm in arms.items():
            t0 = time.perf_counter()
            results[name] = arm()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(times[name]), results[name]) for name in arms}
