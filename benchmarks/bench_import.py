"""``python -c "import azhpc"``: wall time (median of 20 runs) and which heavy modules it loads.

Baseline in the same run: ``python -c "pass"`` (the interpreter's own start-up).
Target: under 0.5 s, and no Azure SDK imported.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

RUNS = 20
HEAVY = ("azure", "adlfs", "pandas", "numpy", "pyarrow", "cloudpickle", "joblib", "IPython")


def wall(code: str) -> float:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    bare = wall("pass")
    ours = wall("import azhpc")
    probe = (
        "import sys, json, azhpc; print(json.dumps(sorted({m.split('.')[0] for m in "
        f"sys.modules if m.split('.')[0] in {HEAVY!r}}})))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
    )
    verdict = (
        "meets" if ours < 0.5 and not any(m.startswith("azure") for m in loaded) else ("MISSES")
    )
    print(
        f'python -c "import azhpc": {ours * 1000:.0f} ms median of {RUNS} '
        f'(python -c "pass": {bare * 1000:.0f} ms, so azhpc adds {(ours - bare) * 1000:.0f} ms); '
        f"heavy modules loaded: {loaded or 'none'} (target < 500 ms, no Azure SDK: {verdict})"
    )


if __name__ == "__main__":
    main()
