"""How a ``%%azrun`` job's task results become one :class:`AzrunResult`.

A plain cell has one result; ``--map`` runs the cell once per item and keeps the values in
order; ``--scatter`` concatenates each ``--out`` variable (or the value) across partitions,
as one frame, one array, or a list. ``%%azrun --mpi`` (``mpicell.py``) keeps rank 0's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from azhpc import splitting
from azhpc.errors import ConfigError
from azhpc.notebook.cellrun import CellResult

__all__ = ["AzrunResult", "GatherMap", "GatherPlain", "GatherScatter"]


@dataclass(frozen=True)
class AzrunResult:
    """What a ``%%azrun`` job gathers: ``job.result()`` of a cell job.

    Attributes
    ----------
    value
        plain: the cell's last expression value; ``--map``: the list of its values per item;
        ``--scatter`` without ``--out``: its values concatenated across partitions; else
        ``None``.
    variables
        What goes into the notebook's namespace: plain: the names the cell assigned (or the
        ``--out`` names); ``--map``: ``{VAR: the list}``; ``--scatter`` with ``--out``: each
        name's values concatenated across partitions.
    """

    value: Any = None
    variables: dict[str, Any] = field(default_factory=dict)


def _concatenate(values: list[Any]) -> Any:
    """One frame, one array, or the list: how ``--scatter`` joins per-partition values."""
    pandas = sys.modules.get("pandas")
    numpy = sys.modules.get("numpy")
    if (
        pandas is not None
        and values
        and all(isinstance(v, pandas.DataFrame | pandas.Series) for v in values)
    ):
        return splitting.concat_frames_or_list(values)
    if (
        numpy is not None
        and values
        and all(isinstance(v, numpy.ndarray) and v.ndim >= 1 for v in values)
    ):
        return splitting.concat_blocks(values, axis=0)
    return list(values)


@dataclass(frozen=True)
class GatherPlain:
    """A plain cell's (or ``%azrun EXPR``'s) one result."""

    def __call__(self, results: list[CellResult]) -> AzrunResult:
        (only,) = results
        return AzrunResult(only.value, dict(only.variables))


@dataclass(frozen=True)
class GatherMap:
    """``--map``: the values of every run, in item order (stored under ``--map``'s name)."""

    store: str | None

    def __call__(self, chunks: list[list[CellResult]]) -> AzrunResult:
        values = [r.value for chunk in chunks for r in chunk]
        return AzrunResult(values, {self.store: values} if self.store else {})


@dataclass(frozen=True)
class GatherScatter:
    """``--scatter``: each ``--out`` name (or the value) concatenated across partitions."""

    out: tuple[str, ...]
    values: bool

    def __call__(self, results: list[CellResult]) -> AzrunResult:
        variables = {}
        for name in self.out:
            missing = [i for i, r in enumerate(results) if name not in r.variables]
            if missing:
                raise ConfigError(
                    f"--out {name}: the cell did not define {name!r} for partition(s) "
                    f"{missing}; assign it on every path of the cell"
                )
            variables[name] = _concatenate([r.variables[name] for r in results])
        value = _concatenate([r.value for r in results]) if self.values else None
        return AzrunResult(value, variables)
