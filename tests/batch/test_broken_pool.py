"""A pool that breaks after it was created (its nodes' start task fails when they come back)
ends the waiting job with PoolStartError instead of leaving map waiting forever (issue 13,
defect 8)."""

from __future__ import annotations

import pytest

import azhpc
from azhpc.errors import PoolStartError
from tests.conftest import wait_until


def test_map_on_a_pool_whose_nodes_broke_after_it_started_raises_pool_start_error(
    emulated,
) -> None:
    emulator = emulated.backend.account.emulator
    with azhpc.Pool("breaks", "Standard_D2s_v5", nodes=2, session=emulated) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]  # the pool works
        # Every node reboots and its start task fails (on Azure: a reboot, a reimage, or
        # nodes a resize adds, with a start task that no longer works).
        emulator.fail_start_task("breaks")
        wait_until(
            lambda: set(pool.nodes().values()) == {"starttaskfailed"},
            timeout=60,
            what="both nodes to fail their start task",
        )
        job = pool.submit_map(abs, [-3, -4])
        with pytest.raises(PoolStartError) as caught:
            job.result(timeout=60)  # not a hang
    message = str(caught.value)
    assert "starttaskfailed" in message and "fault injected" in message
    assert job.job_id in message and "can never run" in message
    assert job.done()
