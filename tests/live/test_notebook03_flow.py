"""Notebook 03 on a real Batch account: a pool of dedicated nodes (no spot nodes, so no
preemption), a map and a submitted map on it, and the pool gone at the end of the block."""

from __future__ import annotations

import time

import pytest

import azhpc

from .conftest import LiveRun
from .harness import live_pools

VM_SIZE = "Standard_D2s_v5"


def hits(seed: int, n: int = 200_000) -> int:
    import numpy as np

    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2))
    return int(((xy**2).sum(axis=1) <= 1.0).sum())


def slow_square(x: int) -> int:
    time.sleep(1.0)
    return x * x


@pytest.mark.live(vm_size=VM_SIZE, nodes=2)
@pytest.mark.timeout(1200, method="signal")
def test_notebook03_pool_map_and_delete(live: LiveRun) -> None:
    spec = azhpc.PoolSpec(
        live.pool_id("nb03"), VM_SIZE, nodes=2, task_slots_per_node=2,
        max_cost_per_hour=live.max_cost_per_hour,
    )  # fmt: skip
    with azhpc.Pool(spec, session=live.session, timeout=live.node_timeout) as pool:
        nodes = pool.nodes()
        assert len(nodes) == 2 and set(nodes.values()) <= {"idle", "running"}
        counts = pool.map(hits, range(16), chunksize=1)
        assert abs(4 * sum(counts) / (16 * 200_000) - 3.1416) < 0.01
        job = pool.submit_map(slow_square, range(8), chunksize=1)
        assert job.result(timeout=600) == [x * x for x in range(8)]
        assert job.progress.requeued == 0  # dedicated nodes: nothing preempted
        cost = job.progress.cost
        assert cost is not None and 0 < cost < live.max_cost_per_hour
    assert live_pools(live.session.backend.account, spec.pool_id) == []  # deleted (or deleting)
