"""Scatter benchmarks, each a ratio against its baseline measured in the same run.

1. tiny tasks: ``azhpc.map(square, range(2000))`` vs
   ``ProcessPoolExecutor(2).map(square, range(2000))``, pool start included in both.
2. pandas scatter: a group-by/transform on an 8-million-row frame,
   ``map_partitions(fn, df, partitions=8, by="key")`` vs ``fn(df)`` serially. Split by key,
   because that is the only split that gives the serial answer for a per-group transform
   (checked); the same split through ``ProcessPoolExecutor`` is shown for reference.

Run: ``./dev bench bench_scatter`` (2 workers).
"""

from __future__ import annotations

import concurrent.futures
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, report

import azhpc

WORKERS = 2


def square(x):
    return x * x


def tiny_tasks_azhpc():
    with azhpc.connect(workers=WORKERS, progress=False) as session:
        result = session.map(square, range(2000))
    assert result[-1] == 1999 * 1999


def tiny_tasks_processpool():
    with concurrent.futures.ProcessPoolExecutor(WORKERS) as pool:
        result = list(pool.map(square, range(2000)))
    assert result[-1] == 1999 * 1999


def groupby_transform(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("key")
    x_mean = g.x.transform("mean")
    x_std = g.x.transform("std")
    return df.assign(xz=(df.x - x_mean) / x_std, y_rank=g.y.rank(), y_cum=g.y.cumsum())


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "key": rng.integers(0, 200_000, rows),
            "x": rng.normal(size=rows),
            "y": rng.random(rows),
        }
    )


def main() -> None:
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}")
    print(f"{WORKERS} workers")
    # Warm both up once (imports, page cache), then measure.
    tiny_tasks_azhpc()
    tiny_tasks_processpool()
    ours, _ = best_of(tiny_tasks_azhpc, 7)
    theirs, _ = best_of(tiny_tasks_processpool, 7)
    report("tiny tasks (2000 x square, pool start included)", ours, theirs, 1.0)

    df = make_frame(8_000_000)
    serial, _ = best_of(lambda: groupby_transform(df), 3)
    with azhpc.connect(workers=WORKERS, progress=False) as session:
        check = session.map_partitions(groupby_transform, df, partitions=8, by="key")
        pd.testing.assert_frame_equal(check.sort_index(), groupby_transform(df))
        scattered, _ = best_of(
            lambda: session.map_partitions(groupby_transform, df, partitions=8, by="key"), 3
        )

    def processpool_by_key():
        parts = azhpc.splitting.split_by_key(df, "key", 8)
        with concurrent.futures.ProcessPoolExecutor(WORKERS) as pool:
            return pd.concat(pool.map(groupby_transform, parts))

    ppe, _ = best_of(processpool_by_key, 3)
    report("pandas scatter by key (8M rows, 8 partitions) vs serial", scattered, serial, 0.60)
    print(
        f"  for reference, the same split by key through ProcessPoolExecutor({WORKERS}) "
        f"(pool start included): {ppe:.3f} s, {ppe / serial:.2f}x serial"
    )


if __name__ == "__main__":
    main()
