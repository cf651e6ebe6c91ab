"""A client killed mid-job; ``attach(job_id)`` from another process gathers every result and
runs no finished task again. The Batch emulator and Azurite live in this test process (as a
Batch account would live in Azure), the client in a subprocess that is SIGKILLed."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import azhpc
from tests.conftest import azure_client, azure_profile_env, batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)

CLIENT = textwrap.dedent(
    """
    import sys, time
    import azhpc

    markers = sys.argv[1]

    def work(x):
        import os, time, uuid
        open(os.path.join(markers, f"{x}-{uuid.uuid4().hex}"), "w").close()
        if x >= 4:
            time.sleep(1.5)
        return x * 10

    azhpc.connect("azure", progress=False)
    pool = azhpc.Pool("attach-pool", "Standard_D2s_v5", nodes=2, keep=True, progress=False)
    job = pool.submit_map(work, range(10), chunksize=1)
    print(job.job_id, flush=True)
    time.sleep(600)  # until killed
    """
)


def test_attach_after_the_client_was_killed_runs_nothing_twice(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with azhpc.connect("emulated", workers=1, progress=False) as host:
        settings = azure_profile_env(host)
        store = host.store
        with azure_client(host, CLIENT, str(markers), cwd=tmp_path) as job_id:
            wait_until(
                lambda: len(store.finished_outcomes(job_id)) >= 3, timeout=120, what="3 results"
            )
        finished_before = set(store.finished_outcomes(job_id))
        assert 3 <= len(finished_before) < 10

        for name, value in settings.items():
            os.environ[name] = value
        try:
            with azhpc.connect("azure", progress=False) as session:
                pool = azhpc.Pool("attach-pool", session=session, progress=False)
                job = azhpc.attach(job_id, pool=pool)
                assert job.result(timeout=120) == [x * 10 for x in range(10)]
                pool.delete()
        finally:
            for name in settings:
                os.environ.pop(name, None)
        runs = [p.name.split("-")[0] for p in markers.iterdir()]
        assert sorted(map(int, runs)) == list(range(10)), "a task ran twice, or not at all"
        assert [p.id for p in host.backend.account.client().list_pools()] == []
