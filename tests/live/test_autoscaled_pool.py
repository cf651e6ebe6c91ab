"""An autoscaled pool on a real Batch account: it starts with no node, grows for a map (Batch
evaluates the formula at least every 5 minutes) and is deleted at the end of the block."""

from __future__ import annotations

import pytest

import azhpc
from azhpc.pools import Autoscale

from .conftest import LiveRun
from .harness import live_pools

VM_SIZE = "Standard_D2s_v5"
MAX_NODES = 2
POLICY = Autoscale.follow_pending_tasks(max_nodes=MAX_NODES, slots_per_node=2) + (
    Autoscale.scale_to_zero_when_idle(idle_minutes=5)
)


@pytest.mark.live(vm_size=VM_SIZE, nodes=MAX_NODES)
@pytest.mark.timeout(1800, method="signal")
def test_autoscaled_pool_grows_for_a_map(live: LiveRun) -> None:
    account = live.session.backend.account
    with azhpc.Pool(
        live.pool_id("auto"), VM_SIZE, autoscale=POLICY, task_slots_per_node=2,
        session=live.session, max_cost_per_hour=live.max_cost_per_hour,
        timeout=live.node_timeout,
    ) as pool:  # fmt: skip
        assert pool.estimate().per_hour == live.max_cost_per_hour  # at the policy's maximum
        assert pool.map(abs, range(-40, 0), chunksize=1) == list(range(40, 0, -1))
        assert len(pool.nodes()) <= MAX_NODES
        run = account.client().get_pool(pool.pool_id).auto_scale_run
        assert run is not None and run.error is None, run
    assert live_pools(account, pool.pool_id) == []  # deleted (or deleting)
