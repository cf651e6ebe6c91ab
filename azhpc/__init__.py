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

from azhpc.errors import (
    ArgumentTypeError,
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
from azhpc.version import __version__

if TYPE_CHECKING:
    from azhpc.api import attach, map, map_blocks, map_partitions, submit, submit_map
    from azhpc.backends.batch.apps import NodeRun, run_on_pool
    from azhpc.backends.batch.doctor import DoctorReport, doctor
    from azhpc.backends.batch.pool import Pool
    from azhpc.core.job import Job, Progress
    from azhpc.executor import Executor
    from azhpc.pools import PoolSpec
    from azhpc.session import Session, connect

_LAZY = {
    "connect": "azhpc.session",
    "Session": "azhpc.session",
    "map": "azhpc.api",
    "map_partitions": "azhpc.api",
    "map_blocks": "azhpc.api",
    "submit": "azhpc.api",
    "submit_map": "azhpc.api",
    "attach": "azhpc.api",
    "Executor": "azhpc.executor",
    "Job": "azhpc.core.job",
    "Progress": "azhpc.core.job",
    "PoolSpec": "azhpc.pools",
    "Pool": "azhpc.backends.batch.pool",
    "run_on_pool": "azhpc.backends.batch.apps",
    "NodeRun": "azhpc.backends.batch.apps",
    "doctor": "azhpc.backends.batch.doctor",
    "DoctorReport": "azhpc.backends.batch.doctor",
}

__all__ = [
    "ArgumentTypeError",
    "AzhpcError",
    "CompositeTaskError",
    "ConfigError",
    "DoctorReport",
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
    "doctor",
    "load_ipython_extension",
    "map",
    "map_blocks",
    "map_partitions",
    "register_joblib_backend",
    "run_on_pool",
    "submit",
    "submit_map",
]


#: Subpackages reachable as attributes after ``import azhpc`` (imported on first use).
_SUBPACKAGES = ("lake", "usql")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"azhpc.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'azhpc' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def register_joblib_backend(name: str = "azhpc", *, make_default: bool = False) -> None:
    """Let joblib (and scikit-learn's ``n_jobs``) run on azhpc.

    After this, ``with joblib.parallel_config(backend="azhpc"):`` runs joblib's calls on the
    default session (``session=`` for another). Imports joblib (``pip install azhpc[joblib]``).

    Parameters
    ----------
    name
        The backend's name for joblib.
    make_default
        Make it joblib's default backend.
    """
    # lazy: imports joblib (and numpy), only when asked for
    from azhpc.joblib_backend import register

    register(name, make_default=make_default)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext azhpc``: register the ``%%azrun`` and ``%azrun`` magics."""
    # lazy: imports IPython; `import azhpc` stays light
    from azhpc.notebook import load_ipython_extension as load

    load(ipython)
