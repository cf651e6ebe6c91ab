"""Errors and warnings of pools: specifications (raised before any request is sent), nodes that
do not start, environments that do not match."""

from __future__ import annotations

from azhpc.errors import AzhpcError, ConfigError

__all__ = [
    "EnvironmentMismatchError",
    "PoolCostError",
    "PoolSpecError",
    "PoolSpecWarning",
    "PoolStartError",
]


class PoolStartError(AzhpcError):
    """The pool's nodes did not become usable (start task failed, nodes unusable, timeout)."""


class EnvironmentMismatchError(AzhpcError):
    """The pool's nodes have another Python, cloudpickle or azhpc than this client."""


class PoolSpecError(ConfigError):
    """A :class:`~azhpc.PoolSpec` cannot work; the message names the field and says what to do.

    Attributes
    ----------
    field
        The offending field (``"vm_size"``, ``"spot_nodes"``, ...), or ``""`` for the
        unknown-keyword case.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"PoolSpec.{field}: {message}" if field else message)
        self.field = field


class PoolCostError(PoolSpecError):
    """The pool's estimated cost per hour is above its ``max_cost_per_hour`` guard."""


class PoolSpecWarning(UserWarning):
    """A pool specification that Batch accepts but that probably does not do what was meant."""
