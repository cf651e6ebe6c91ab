"""Errors and warnings of pool specifications (all raised before any request is sent)."""

from __future__ import annotations

from azhpc.errors import ConfigError

__all__ = ["PoolCostError", "PoolSpecError", "PoolSpecWarning"]


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
