"""``%%azrun`` of a trivial cell on a warm session, in a real IPython shell.

Target: median < 150 ms. Baseline in the same run: the same cell run locally by the shell
(``shell.run_cell`` without the magic), to show what the round trip to a worker adds.
"""

from __future__ import annotations

import statistics
import time

from IPython.core.interactiveshell import InteractiveShell

import azhpc

RUNS = 50
CELL = "x = 1 + 1\ny = x * 3\n"


def timed(shell: InteractiveShell, source: str) -> float:
    started = time.perf_counter()
    result = shell.run_cell(source, store_history=False)
    elapsed = time.perf_counter() - started
    result.raise_error()
    return elapsed


def main() -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "azhpc")
    with azhpc.connect(workers=2, progress=False):
        for _ in range(5):  # warm: workers started, function cached
            timed(shell, "%%azrun\n" + CELL)
        magic = [timed(shell, "%%azrun\n" + CELL) for _ in range(RUNS)]
        local = [timed(shell, CELL) for _ in range(RUNS)]
        assert shell.user_ns["y"] == 6
    med, base = statistics.median(magic), statistics.median(local)
    verdict = "meets" if med < 0.150 else "MISSES"
    print(
        f"%%azrun trivial cell, warm session: median {med * 1000:.1f} ms of {RUNS} "
        f"(p90 {statistics.quantiles(magic, n=10)[-1] * 1000:.1f} ms); same cell run locally: "
        f"{base * 1000:.2f} ms (target median < 150 ms: {verdict})"
    )


if __name__ == "__main__":
    main()
