"""azhpc: high-performance data science on Azure from a notebook.

Scatter pandas/numpy work to a pool of workers (processes on this machine, or Azure Batch),
watch it progress inline, and get the results back in order::

    import azhpc
    azhpc.map(fn, items)                        # a list, in input order
    azhpc.map_partitions(fn, df, by="key")      # a frame, groups whole in one task
    azhpc.map_blocks(fn, array, axis=0)         # an array
    job = azhpc.submit(fn, *args)               # a concurrent.futures.Future

In Jupyter, ``%load_ext azhpc`` adds the ``%%azrun`` cell magic.

``import azhpc`` is light: pandas, numpy, cloudpickle and the Azure SDKs are imported only
when first needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from azhpc import _hooks  # noqa: F401 - registers the joblib backend once joblib is imported
from azhpc.errors import (
    AzhpcError,
    CompositeTaskError,
    ConfigError,
    GatherError,
    JobCancelledError,
    SerializationError,
    TaskError,
    UndefinedVariableError,
    UnpicklableVariableError,
    WorkerLostError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from azhpc.apps import NodeRun, run_on_pool
    from azhpc.core.job import Job, Progress
    from azhpc.executor import Executor
    from azhpc.pools import PoolSpec
    from azhpc.pools.pool import Pool
    from azhpc.scatter import attach, map, map_blocks, map_partitions, submit, submit_map
    from azhpc.session import Session, connect

_LAZY = {
    "connect": "azhpc.session",
    "Session": "azhpc.session",
    "map": "azhpc.scatter",
    "map_partitions": "azhpc.scatter",
    "map_blocks": "azhpc.scatter",
    "submit": "azhpc.scatter",
    "submit_map": "azhpc.scatter",
    "attach": "azhpc.scatter",
    "Executor": "azhpc.executor",
    "Job": "azhpc.core.job",
    "Progress": "azhpc.core.job",
    "PoolSpec": "azhpc.pools",
    "Pool": "azhpc.pools.pool",
    "run_on_pool": "azhpc.apps",
    "NodeRun": "azhpc.apps",
}

__all__ = [
    "AzhpcError",
    "CompositeTaskError",
    "ConfigError",
    "Executor",
    "GatherError",
    "Job",
    "JobCancelledError",
    "NodeRun",
    "Pool",
    "PoolSpec",
    "Progress",
    "SerializationError",
    "Session",
    "TaskError",
    "UndefinedVariableError",
    "UnpicklableVariableError",
    "WorkerLostError",
    "__version__",
    "attach",
    "connect",
    "load_ipython_extension",
    "map",
    "map_blocks",
    "map_partitions",
    "run_on_pool",
    "submit",
    "submit_map",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'azhpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext azhpc``: register the ``%%azrun`` and ``%azrun`` magics."""
    from azhpc.notebook import load_ipython_extension as load

    load(ipython)
