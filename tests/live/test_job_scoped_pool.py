"""A job-scoped pool on a real Batch account: Batch creates the pool with the job (an auto
pool whose id starts with the run's prefix) and deletes it when the job ends."""

from __future__ import annotations

import pytest

import azhpc

from .conftest import LiveRun
from .harness import live_pools, wait_for

VM_SIZE = "Standard_D2s_v5"


@pytest.mark.live(vm_size=VM_SIZE, nodes=1)
@pytest.mark.timeout(1200, method="signal")
def test_job_scoped_pool_comes_and_goes_with_its_job(live: LiveRun) -> None:
    account = live.session.backend.account
    with azhpc.Pool(
        live.pool_id("js"), VM_SIZE, nodes=1, job_scoped=True, session=live.session,
        max_cost_per_hour=live.max_cost_per_hour, timeout=live.node_timeout,
    ) as pool:  # fmt: skip
        assert pool.nodes() == {}  # no pool before the job
        assert pool.map(abs, range(-6, 0), chunksize=1) == [6, 5, 4, 3, 2, 1]
        (job_pool,) = pool.batch_pool.job_pools.values()
        assert job_pool.pool_id.startswith(live.prefix)
        # The job was deleted once gathered; Batch deletes its pool on its own.
        wait_for(
            lambda: live_pools(account, job_pool.pool_id) == [],
            timeout=live.node_timeout, interval=0.05 if account.emulated else 10.0,
            what=f"Batch to delete the job's pool {job_pool.pool_id!r}",
        )  # fmt: skip
