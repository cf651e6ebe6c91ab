"""Job-scoped pools: Batch creates a pool with each job (an auto pool) and deletes it when the
job ends, also when the client that submitted it is gone."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import azhpc
from tests.conftest import azure_client, batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


def _scoped(client: Any, prefix: str) -> list[str]:
    return [p.id for p in client.list_pools() if p.id.startswith(prefix + "_")]


def test_each_job_gets_its_own_pool_which_goes_with_the_job(batch_session):
    client = batch_session.backend.account.client()
    with azhpc.Pool(
        "scoped", "Standard_D2s_v5", nodes=2, job_scoped=True, session=batch_session
    ) as pool:
        assert _scoped(client, "scoped") == [] and pool.nodes() == {}
        assert pool.map(abs, range(-6, 0), chunksize=1) == [6, 5, 4, 3, 2, 1]
        first = next(iter(pool.batch_pool.job_pools.values())).pool_id
        assert first.startswith("scoped_")
        # The job ended when its last task did; Batch deletes its pool on its own.
        wait_until(lambda: _scoped(client, "scoped") == [], timeout=30, what="pool deleted")
        assert pool.map(abs, [-7], chunksize=1) == [7]
        second = list(pool.batch_pool.job_pools.values())[-1].pool_id
        assert second != first
    wait_until(lambda: _scoped(client, "scoped") == [], timeout=30, what="pools deleted")


def test_closing_the_pool_mid_job_ends_the_job_and_its_pool(batch_session, tmp_path):
    gate = tmp_path / "gate"

    def blocked(x: int) -> int:
        import os as _os
        import time as _time

        while not _os.path.exists(gate):
            _time.sleep(0.05)
        return x

    client = batch_session.backend.account.client()
    with azhpc.Pool(
        "scopedstop", "Standard_D2s_v5", nodes=1, job_scoped=True, session=batch_session
    ) as pool:
        job = pool.submit_map(blocked, range(2), chunksize=1)
        wait_until(lambda: job.progress.running > 0, timeout=60, what="a running task")
        assert len(_scoped(client, "scopedstop")) == 1
    assert _scoped(client, "scopedstop") == []
    gate.touch()


def test_keep_and_job_scoped_together_are_refused_before_any_request(batch_session):
    with pytest.raises(azhpc.ConfigError, match="job-scoped"):
        azhpc.Pool(
            "scoped", "Standard_D2s_v5", nodes=1, job_scoped=True, keep=True, session=batch_session
        )


CLIENT = textwrap.dedent(
    """
    import sys, time
    import azhpc

    gate = sys.argv[1]

    def work(x):
        import os, time
        while not os.path.exists(gate):
            time.sleep(0.05)
        return x

    azhpc.connect("azure", progress=False)
    pool = azhpc.Pool("orphan", "Standard_D2s_v5", nodes=1, job_scoped=True, progress=False)
    job = pool.submit_map(work, range(3), chunksize=1)
    print(job.job_id, flush=True)
    time.sleep(600)  # until killed
    """
)


def test_the_pool_of_a_killed_clients_job_is_deleted_when_the_job_ends(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with azhpc.connect("emulated", workers=1, progress=False) as host:
        with azure_client(host, CLIENT, str(gate), cwd=tmp_path) as job_id:
            pass  # the client has submitted; it is killed here
        sdk = host.backend.account.client()
        assert len(_scoped(sdk, "orphan")) == 1  # the client is gone; its job runs on
        gate.touch()
        wait_until(
            lambda: sdk.get_job(job_id).state == "completed", timeout=60, what="the job to end"
        )
        wait_until(lambda: _scoped(sdk, "orphan") == [], timeout=30, what="its pool deleted")
        assert sorted(host.store.finished_outcomes(job_id)) != []
