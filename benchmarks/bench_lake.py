"""Data Lake benchmark: a ~200 MB Parquet frame written and read through ``azhpc.lake`` vs raw
adlfs, on the same Azurite, in the same run.

- azhpc (the documented way, ``docs/lake.md``), on an ``emulated`` session::

      url, opts = azhpc.lake.url("/bench/frame.parquet"), azhpc.lake.storage_options()
      df.to_parquet(url, storage_options=opts); pd.read_parquet(url, storage_options=opts)

- baseline: an ``adlfs.AzureBlobFileSystem(connection_string=...)`` of its own (not fsspec's
  cached instance, which the azhpc side uses) handed to pandas::

      df.to_parquet("bench/raw/frame.parquet", filesystem=fs); pd.read_parquet(..., filesystem=fs)

One Azurite serves both: the one the ``emulated`` session starts (``azhpc.emulator.Azurite``,
stopped when the session closes); the baseline connects to it with its connection string.
Each round times write+read on both sides, alternating which goes first;
the figure is the median over the rounds. Frames read back are checked equal to the one
written (warm-up, first and last rounds; the shape in every round). For reference, the same
file is also moved with ``azhpc.lake.put``/``get`` (progress callback and all) vs
``fs.put``/``fs.get``.

Run: ``./dev bench bench_lake`` (``--rounds N``, ``--rows N``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import report

import azhpc

TARGET = 1.05


def make_frame(rows: int) -> pd.DataFrame:
    """Numeric and string columns; random, so Parquet cannot shrink them much."""
    rng = np.random.default_rng(0)
    labels = np.array([f"label-{i:04d}" for i in range(1000)], dtype=object)
    codes = rng.integers(0, 16**10, rows)
    return pd.DataFrame(
        {
            "id": rng.integers(0, 2**62, rows),
            "x": rng.normal(size=rows),
            "y": rng.random(rows),
            "label": labels[rng.integers(0, 1000, rows)],
            "code": np.char.mod("%010x", codes).astype(object),
        }
    ).astype({"label": "str", "code": "str"})


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_400_000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()

    import adlfs
    import fsspec
    import pyarrow

    print(
        f"python {sys.version.split()[0]}, pandas {pd.__version__}, pyarrow {pyarrow.__version__}, "
        f"adlfs {adlfs.__version__}, fsspec {fsspec.__version__}"
    )
    df = make_frame(args.rows)
    # One Azurite for both sides: the emulated session's own (started by the launcher in
    # connect, stopped by close). No scatter here, so the debug backend: no worker processes.
    with azhpc.connect("emulated", container="bench", backend="debug", durable=False) as session:
        lake = session.lake
        azurite = lake.emulator

        def azhpc_write() -> None:
            url = azhpc.lake.url("/bench/frame.parquet")
            df.to_parquet(url, storage_options=azhpc.lake.storage_options())

        def azhpc_read() -> pd.DataFrame:
            url = azhpc.lake.url("/bench/frame.parquet")
            return pd.read_parquet(url, storage_options=azhpc.lake.storage_options())

        # The baseline: raw adlfs, its own instance, same Azurite and container.
        fs = adlfs.AzureBlobFileSystem(
            connection_string=azurite.connection_string, skip_instance_cache=True
        )

        def raw_write() -> None:
            df.to_parquet("bench/raw/frame.parquet", filesystem=fs)

        def raw_read() -> pd.DataFrame:
            return pd.read_parquet("bench/raw/frame.parquet", filesystem=fs)

        sides = {"azhpc": (azhpc_write, azhpc_read), "adlfs": (raw_write, raw_read)}
        samples: dict[str, dict[str, list[float]]] = {
            name: {"write": [], "read": [], "total": []} for name in sides
        }
        # Warm-up round (imports, connections, Azurite's first allocations), then measure.
        for write, read in sides.values():
            write()
            pd.testing.assert_frame_equal(read(), df)
        size = fs.size("bench/raw/frame.parquet")
        assert size == lake.filesystem().size("/bench/frame.parquet")
        print(
            f"frame: {len(df):,} rows x {df.shape[1]} columns (int64, 2 float64, 2 str), "
            f"{df.memory_usage(deep=True).sum() / 1e6:.0f} MB in memory; "
            f"Parquet file {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB)"
        )
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                write, read = sides[name]
                w, _ = timed(write)
                r, back = timed(read)
                assert back.shape == df.shape
                if round_ in (0, args.rounds - 1):
                    pd.testing.assert_frame_equal(back, df)
                del back
                for kind, value in (("write", w), ("read", r), ("total", w + r)):
                    samples[name][kind].append(value)
            print(
                f"  round {round_ + 1} ({' then '.join(order)}): "
                + ", ".join(
                    f"{name} {samples[name]['write'][-1]:.2f}+{samples[name]['read'][-1]:.2f} s"
                    for name in sides
                )
            )
        for name in sides:
            for kind in ("write", "read", "total"):
                values = samples[name][kind]
                print(
                    f"  {name} {kind}: median {statistics.median(values):.3f} s, "
                    f"range {min(values):.3f}-{max(values):.3f}, samples "
                    f"{[round(v, 3) for v in values]}"
                )
        ratios = [
            a / b for a, b in zip(samples["azhpc"]["total"], samples["adlfs"]["total"], strict=True)
        ]
        print(f"  per-round ratio: {[round(r, 3) for r in ratios]}")
        for kind in ("write", "read"):
            a = statistics.median(samples["azhpc"][kind])
            b = statistics.median(samples["adlfs"][kind])
            print(f"  {kind} alone: ratio {a / b:.3f}")
        report(
            f"Parquet write+read, {size / 1e6:.0f} MB, through azhpc.lake vs raw adlfs",
            statistics.median(samples["azhpc"]["total"]),
            statistics.median(samples["adlfs"]["total"]),
            TARGET,
        )

        # For reference: moving the same file with put/get (azhpc's progress callback included).
        with tempfile.TemporaryDirectory(prefix="azhpc-bench-") as here:
            local = os.path.join(here, "frame.parquet")
            df.to_parquet(local)
            moves = {
                "azhpc": (
                    lambda: azhpc.lake.put(local, "/bench/put/frame.parquet"),
                    lambda: azhpc.lake.get("/bench/put/frame.parquet", local + ".azhpc"),
                ),
                "adlfs": (
                    lambda: fs.put(local, "bench/raw-put/frame.parquet"),
                    lambda: fs.get("bench/raw-put/frame.parquet", local + ".adlfs"),
                ),
            }
            transfers: dict[str, list[float]] = {name: [] for name in moves}
            for round_ in range(args.rounds + 1):
                order = list(moves) if round_ % 2 == 0 else list(reversed(moves))
                for name in order:
                    put, get = moves[name]
                    seconds, _ = timed(lambda: (put(), get()))  # noqa: B023
                    if round_:  # the first round warms up
                        transfers[name].append(seconds)
            for suffix in (".azhpc", ".adlfs"):
                assert Path(local + suffix).read_bytes() == Path(local).read_bytes()
            for name, values in transfers.items():
                print(
                    f"  {name} put+get: median {statistics.median(values):.3f} s, range "
                    f"{min(values):.3f}-{max(values):.3f}"
                )
            report(
                f"put+get of the {size / 1e6:.0f} MB file, azhpc.lake.put/get vs fs.put/get",
                statistics.median(transfers["azhpc"]),
                statistics.median(transfers["adlfs"]),
                TARGET,
            )


if __name__ == "__main__":
    main()
