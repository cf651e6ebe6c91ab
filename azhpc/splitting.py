"""Cutting inputs into task-sized pieces and putting results back together, in input order.

pandas and numpy are imported inside the functions so that ``import azhpc`` stays light.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from typing import Any

from azhpc.errors import ArgumentTypeError, ConfigError

__all__ = [
    "auto_chunksize",
    "chunk",
    "concat_blocks",
    "concat_frames_or_list",
    "flatten",
    "partition_codes",
    "row_bounds",
    "split_blocks",
    "split_by_key",
    "split_rows",
    "whole_number",
]


def whole_number(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an ``int`` (numpy integers too); a :class:`ConfigError` naming ``name``
    when it is not a whole number of at least ``minimum`` (a bool, a float, ``0``...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def auto_chunksize(n_items: int, slots: int) -> int:
    """Items per task: about four tasks per slot, so that slots stay busy to the end."""
    return max(1, math.ceil(n_items / (4 * max(1, slots))))


def chunk(items: Sequence[Any], chunksize: int) -> list[Sequence[Any]]:
    """Cut ``items`` into consecutive chunks of ``chunksize`` (the last may be shorter)."""
    chunksize = whole_number("chunksize", chunksize)
    return [items[i : i + chunksize] for i in range(0, len(items), chunksize)]


def flatten(chunks: list[list[Any]]) -> list[Any]:
    """Join the per-chunk result lists back into one list."""
    out: list[Any] = []
    for part in chunks:
        out.extend(part)
    return out


def _check_frame(df: Any, what: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame | pd.Series):
        raise ArgumentTypeError(
            f"{what} takes a pandas DataFrame or Series, got {type(df).__name__}; "
            "use azhpc.map_blocks for numpy arrays and azhpc.map for other collections"
        )


def row_bounds(df: Any, partitions: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of ``partitions`` consecutive row ranges of (nearly) equal length."""
    _check_frame(df, "map_partitions")
    partitions = whole_number("partitions", partitions)
    n = len(df)
    count = max(1, min(partitions, n))
    edges = [n * i // count for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count)]


def split_rows(df: Any, partitions: int) -> list[Any]:
    """Cut a frame into ``partitions`` consecutive row ranges of (nearly) equal length."""
    return [df.iloc[start:stop] for start, stop in row_bounds(df, partitions)]


def partition_codes(
    df: Any, by: Hashable | list[Hashable], partitions: int
) -> tuple[Any, list[int]]:
    """Assign every row a partition so that each group of ``by`` lands whole in one.

    Partitions hold contiguous ranges of the sorted keys, balanced by row count; so
    concatenating the partitions' results gives them in key order, as
    ``DataFrame.groupby`` would.

    Returns
    -------
    codes, used
        The partition of every row (a small-integer array), and the partitions that got
        rows, in order.
    """
    import numpy as np
    import pandas as pd

    _check_frame(df, "map_partitions")
    partitions = whole_number("partitions", partitions)
    if not isinstance(df, pd.DataFrame):
        raise ConfigError("map_partitions(..., by=...) needs a DataFrame, not a Series")
    keys = list(by) if isinstance(by, list | tuple) else [by]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ConfigError(
            f"by={by!r}: no column {', '.join(map(repr, missing))} in the frame; "
            f"its columns are {list(df.columns)!r}"
        )
    if len(df) == 0:
        return np.zeros(0, dtype=np.int16), [0]
    if len(keys) == 1:
        groups, _ = pd.factorize(df[keys[0]], sort=True, use_na_sentinel=False)
    else:
        groups = df.groupby(keys, sort=True, dropna=False, observed=True).ngroup().to_numpy()
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.bincount(groups)
    count = max(1, min(partitions, len(counts)))
    # Cut the cumulative row count of the sorted groups at equal shares.
    cumulative = np.cumsum(counts)
    cuts = np.searchsorted(cumulative, len(df) * np.arange(1, count) / count, side="left")
    part_of_group = np.searchsorted(cuts, np.arange(len(counts)), side="right")
    dtype = np.int16 if count < 2**15 else np.int32
    codes = part_of_group.astype(dtype)[groups]
    used = np.flatnonzero(np.bincount(codes, minlength=count)).tolist()
    return codes, used


def split_by_key(df: Any, by: Hashable | list[Hashable], partitions: int) -> list[Any]:
    """Cut a frame so that every group of ``by`` lands whole in one partition (see
    :func:`partition_codes`); rows keep their original order within a partition."""
    import numpy as np

    codes, used = partition_codes(df, by, partitions)
    if len(df) == 0:
        return [df]
    return [df.take(np.flatnonzero(codes == p)) for p in used]


def split_blocks(array: Any, blocks: int, axis: int) -> list[Any]:
    """Cut an array into ``blocks`` contiguous blocks along ``axis`` (C-contiguous copies
    only where a block would not be contiguous, so blocks travel without pickling)."""
    import numpy as np

    if not isinstance(array, np.ndarray):
        raise ArgumentTypeError(
            f"map_blocks takes a numpy array, got {type(array).__name__}; "
            "use azhpc.map_partitions for DataFrames"
        )
    blocks = whole_number("blocks", blocks)
    if array.ndim == 0:
        raise ConfigError("map_blocks needs an array with at least one dimension")
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ArgumentTypeError(
            f"map_blocks(axis=...) takes a whole number (0 for rows, 1 for columns, -1 for "
            f"the last), got {type(axis).__name__}: {axis!r}"
        )
    axis = int(axis)
    if not -array.ndim <= axis < array.ndim:
        raise ConfigError(f"axis={axis} is out of range for an array of {array.ndim} dims")
    count = max(1, min(blocks, array.shape[axis]))
    return [np.ascontiguousarray(b) for b in np.array_split(array, count, axis=axis)]


def concat_frames_or_list(results: list[Any]) -> Any:
    """One frame when every partition returned a frame or series; else the list."""
    import pandas as pd

    if results and all(isinstance(r, pd.DataFrame | pd.Series) for r in results):
        return pd.concat(results)
    return results


def concat_blocks(results: list[Any], axis: int) -> Any:
    """One array when every block returned an array (of >= 1 dims); else the list."""
    import numpy as np

    if results and all(isinstance(r, np.ndarray) and r.ndim >= 1 for r in results):
        return np.concatenate(results, axis=axis)
    return results
