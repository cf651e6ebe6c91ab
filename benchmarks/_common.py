"""Small timing helpers shared by the benchmarks (run by hand; figures go to docs/benchmarks.md)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    """Run ``fn`` ``repeat`` times; return the median seconds and every sample."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), samples


def report(name: str, value: float, baseline: float, target: float, unit: str = "s") -> None:
    ratio = value / baseline
    verdict = "meets" if ratio <= target else "MISSES"
    print(
        f"{name}: azhpc {value:.3f} {unit}, baseline {baseline:.3f} {unit}, "
        f"ratio {ratio:.2f} (target <= {target:.2f}: {verdict})"
    )
