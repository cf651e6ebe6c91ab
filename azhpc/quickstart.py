"""The quickstart: what ``./dev quickstart`` (``azhpc quickstart``) runs on the local profile.

It opens a local session, scatters three kinds of work to it, checks every result against
the same computation done serially, and prints what it did and how long each step took.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TextIO

from azhpc.backends.local.scratch import process_alive
from azhpc.errors import TaskError
from azhpc.session import connect
from azhpc.version import __version__

__all__ = ["run"]


def _slow_is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def _zscore_by_user(part: Any) -> Any:
    grouped = part.groupby("user").latency
    return part.assign(z=(part.latency - grouped.transform("mean")) / grouped.transform("std"))


def _timed(step: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = step()
    return value, time.perf_counter() - started


def run(*, workers: int | None = None, rows: int = 1_000_000, out: TextIO | None = None) -> int:
    """Run the quickstart; return 0 when every result matched its serial computation."""
    import sys

    import numpy as np
    import pandas as pd

    out = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    say(f"azhpc {__version__} quickstart on the embedded 'local' profile")
    ok = True
    with connect(workers=workers) as session:
        say(f"  session: {session!r}")

        numbers = range(100_000, 160_000)
        primes, seconds = _timed(lambda: session.map(_slow_is_prime, numbers))
        expected = [_slow_is_prime(n) for n in numbers]
        ok &= primes == expected
        say(
            f"  1. azhpc.map: tested {len(numbers):,} numbers for primality on "
            f"{session.total_slots} workers in {seconds:.2f} s -> {sum(primes):,} primes "
            f"({'matches' if primes == expected else 'DIFFERS FROM'} the serial result)"
        )

        rng = np.random.default_rng(42)
        df = pd.DataFrame(
            {
                "user": rng.integers(0, 5_000, rows),
                "latency": rng.gamma(2.0, 50.0, rows),
            }
        )
        scored, seconds = _timed(lambda: session.map_partitions(_zscore_by_user, df, by="user"))
        same = scored.sort_index().equals(_zscore_by_user(df))
        ok &= same
        say(
            f"  2. azhpc.map_partitions: per-user z-scores of {rows:,} rows, split by user, "
            f"in {seconds:.2f} s ({'matches' if same else 'DIFFERS FROM'} the serial result)"
        )

        matrix = rng.random((2_000, 500))
        norms, seconds = _timed(
            lambda: session.map_blocks(lambda b: np.linalg.norm(b, axis=1), matrix)
        )
        same = bool(np.allclose(norms, np.linalg.norm(matrix, axis=1)))
        ok &= same
        say(
            f"  3. azhpc.map_blocks: row norms of a {matrix.shape[0]}x{matrix.shape[1]} "
            f"matrix in {seconds:.2f} s ({'matches' if same else 'DIFFERS FROM'} numpy)"
        )

        try:
            session.map(lambda x: 1 / x, [1, 0], progress=False)
        except TaskError as error:
            say(f"  4. a failing task raises azhpc.TaskError: {error.headline}")
        pids = session.backend.node_pids() if hasattr(session.backend, "node_pids") else []
    left = [pid for pid in pids if process_alive(pid)]
    ok &= not left
    say(
        f"  session closed; {len(pids)} worker processes stopped"
        + (f", but {left} are still running!" if left else ", none left.")
    )
    say("quickstart " + ("succeeded" if ok else "FAILED: a result differed"))
    if ok:
        say(
            "next: the workshop notebooks in notebooks/ (01 is the quickstart in a notebook); "
            "open them in JupyterLab with `./dev lab`"
        )
    return 0 if ok else 1
