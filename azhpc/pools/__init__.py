"""Batch pool specifications: ``PoolSpec``, autoscale helpers, the offline price table and
cost estimate. Pure Python: no Azure SDK import, no request (see ``docs/pools.md``)."""

from __future__ import annotations

from azhpc.errors import (
    EnvironmentMismatchError,
    PoolCostError,
    PoolSpecError,
    PoolSpecWarning,
    PoolStartError,
)
from azhpc.pools.autoscale import Autoscale
from azhpc.pools.catalog import PriceStatus, PriceTable, VmSize, price_table
from azhpc.pools.estimate import CostEstimate, estimate
from azhpc.pools.spec import MAX_NODES_PER_POOL, ImageReference, PoolSpec

__all__ = [
    "MAX_NODES_PER_POOL",
    "Autoscale",
    "CostEstimate",
    "EnvironmentMismatchError",
    "ImageReference",
    "PoolCostError",
    "PoolSpec",
    "PoolSpecError",
    "PoolSpecWarning",
    "PoolStartError",
    "PriceStatus",
    "PriceTable",
    "VmSize",
    "estimate",
    "price_table",
]
