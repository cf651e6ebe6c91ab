"""Mistakes caught before money is spent: each a clear ``AzhpcError``, and nothing created."""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pytest

import azhpc
from azhpc.backends.batch.account import BatchAccount, BatchAuthError
from azhpc.backends.batch.lifecycle import BatchPool
from azhpc.config import Secret
from azhpc.errors import EnvironmentMismatchError
from azhpc.pools import PoolSpec, PoolSpecError
from tests.conftest import batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)


@pytest.fixture(scope="module")
def emulated() -> Any:
    with azhpc.connect("emulated", workers=1, progress=False) as session:
        yield session


def test_bad_pool_spec_is_refused_before_any_request(emulated):
    emulator = emulated.backend.account.emulator
    emulator.reset_request_counts()
    with pytest.raises(PoolSpecError, match="pool_id"):
        azhpc.Pool("no spaces allowed", "Standard_D2s_v5", nodes=1, session=emulated)
    with pytest.raises(PoolSpecError, match="spot"):
        azhpc.Pool(
            "mpi",
            "Standard_H16r",
            spot_nodes=2,
            mpi=True,
            inter_node_communication=True,
            session=emulated,
        )
    with pytest.raises(PoolSpecError, match="Standard_D2s_v3"):
        azhpc.Pool("typo", "Standard_D2s_v3", nodes=1, session=emulated)
    with pytest.raises(PoolSpecError, match="retired by Azure"):  # Batch refuses it (400)
        azhpc.Pool("old", "Standard_NC6s_v3", nodes=1, session=emulated)
    assert emulator.request_counts() == {}


def test_wrong_batch_key_is_an_auth_error_without_the_key(emulated):
    emulator = emulated.backend.account.emulator
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    account = BatchAccount(emulator.url, emulator.account_name, key=Secret(wrong))
    pool = BatchPool(account, PoolSpec("never", "Standard_D2s_v5", nodes=1), show=False)
    with pytest.raises(BatchAuthError) as caught:
        pool.ensure()
    assert "refused the credentials" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(account)
    assert [p.id for p in emulated.backend.account.client().list_pools()] == []


def test_missing_azurite_is_a_clear_error_and_starts_nothing(monkeypatch, tmp_path):
    from azhpc.core import at_exit
    from azhpc.emulator.batch import BatchEmulator
    from azhpc.errors import AzuriteNotFoundError

    monkeypatch.setenv("AZHPC_AZURITE", str(tmp_path / "no-azurite-here"))
    running_before = len(at_exit.registered(BatchEmulator))
    with pytest.raises(AzuriteNotFoundError, match=r"npm ci|\./dev test"):
        azhpc.connect("emulated", progress=False)
    assert len(at_exit.registered(BatchEmulator)) == running_before


def test_environment_mismatch_on_a_reused_pool_is_refused_before_submitting(emulated):
    """A pool prepared by another azhpc/Python (here: its start task recorded Python 3.8 and an
    old azhpc) is refused with the fix, before any job is created."""
    from azure.batch import models

    from azhpc.backends.batch.pool_body import start_task_command_line

    client = emulated.backend.account.client()
    record = '{"python": "3.8.10", "cloudpickle": "2.0.0", "azhpc": "0.0.1"}'
    script = (
        'mkdir -p "$AZ_BATCH_NODE_SHARED_DIR/azhpc" && '
        f"echo '{record}' > \"$AZ_BATCH_NODE_SHARED_DIR/azhpc/environment.json\""
    )
    client.create_pool(
        models.BatchPoolCreateOptions(
            {
                "id": "old-env",
                "vmSize": "Standard_D2s_v5",
                "targetDedicatedNodes": 1,
                "startTask": {
                    "commandLine": start_task_command_line(script),
                    "waitForSuccess": True,
                },
            }
        )
    )
    emulator = emulated.backend.account.emulator
    emulator.reset_request_counts()
    try:
        with azhpc.Pool("old-env", session=emulated) as pool:
            pass  # pragma: no cover - the with-block must not be entered
    except EnvironmentMismatchError as error:
        message = str(error)
        assert "Python 3.8 on the nodes" in message
        assert "azhpc 0.0.1 on the nodes" in message
        assert "Delete the pool" in message
    else:  # pragma: no cover
        pytest.fail(f"no EnvironmentMismatchError for {pool!r}")
    assert emulator.request_counts().get("Job_Add", 0) == 0
    # The pool was not azhpc's to delete: it is still there, and we clean it up ourselves.
    assert "old-env" in [p.id for p in client.list_pools()]
    client.begin_delete_pool("old-env", polling_interval=0)
    wait_until(lambda: "old-env" not in [p.id for p in client.list_pools()], timeout=30)
