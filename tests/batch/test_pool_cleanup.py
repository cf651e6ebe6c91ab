"""Pool creation and deletion as strict as Azure, and the pools a killed client leaves behind.

Against the Batch emulator (the real azure-batch SDK): Batch refuses retired VM sizes and any
write to a pool that is being deleted; a cell run again while its pool is still being deleted
waits the deletion out and creates the pool again; the client polls a deletion rarely on
Azure; every pool azhpc creates carries ownership metadata, and ``azhpc pools list|delete``
finds and removes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import azhpc
from azhpc.backends.batch.account import BatchAccount
from azhpc.backends.batch.lifecycle import BatchPool
from azhpc.config import Secret
from azhpc.pools import PoolSpec, PoolSpecError
from tests.conftest import batch_available, wait_until

pytestmark = pytest.mark.skipif(
    not batch_available(), reason="needs azure-batch and Azurite (./dev test installs both)"
)

#: How long the slow emulator keeps a deleted pool in the ``deleting`` state (seconds).
SLOW_DELETE = 1.5


@pytest.fixture(scope="module")
def slow_account() -> Iterator[BatchAccount]:
    """A Batch emulator whose pool deletions take :data:`SLOW_DELETE` seconds, as on Azure
    they take minutes; no lake (BatchPool needs none)."""
    from azhpc.emulator.batch import BatchEmulator
    from azhpc.emulator.batch.runner import Timings

    emulator = BatchEmulator(timings=Timings(delete=SLOW_DELETE)).start()
    try:
        yield BatchAccount(
            emulator.url, emulator.account_name, key=Secret(emulator.account_key), emulator=emulator
        )
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def emulated() -> Iterator[azhpc.Session]:
    with azhpc.connect("emulated", workers=1, progress=False) as session:
        yield session


@pytest.fixture(scope="module")
def stager(emulated) -> Iterator[Any]:
    """Stages the client's azhpc wheel in the emulated session's lake, for the pools these
    tests make with ``BatchPool`` directly (their nodes install it, as Azure's do)."""
    from azhpc.backends.batch.node_wheel import WheelStager
    from azhpc.lake.sas import SasSigner

    signer = SasSigner(emulated.lake)
    try:
        yield WheelStager(emulated.lake.filesystem(), signer, root="/.azhpc")
    finally:
        signer.close()


def staged(pool: BatchPool, stager: Any) -> BatchPool:
    pool.wheel_stager = stager
    return pool


def batch_error(call: Any) -> Any:
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value


def raw_pool(pool_id: str, vm_size: str = "Standard_D2s_v5", nodes: int = 0) -> Any:
    from azure.batch import models

    return models.BatchPoolCreateOptions(
        {
            "id": pool_id,
            "vmSize": vm_size,
            "virtualMachineConfiguration": {
                "imageReference": {"publisher": "canonical", "offer": "x", "sku": "y"},
                "nodeAgentSKUId": "batch.node.ubuntu 22.04",
            },
            "targetDedicatedNodes": nodes,
        }
    )


# -- retired VM sizes (issue 12, defect 7) ---------------------------------------------------------


def test_emulator_refuses_pool_add_of_a_retired_size(emulated) -> None:
    client = emulated.backend.account.client()
    for size in ("Standard_H16r", "standard_h16mr", "Standard_NC6s_v3"):
        error = batch_error(lambda size=size: client.create_pool(raw_pool("old-size", size)))
        assert error.status_code == 400 and error.error.code == "InvalidPropertyValue"
        assert "The value provided for one of the properties" in error.error.message
    assert "old-size" not in [p.id for p in client.list_pools()]


def test_pool_of_a_retired_size_is_refused_before_any_request(emulated) -> None:
    emulator = emulated.backend.account.emulator
    emulator.reset_request_counts()
    with pytest.raises(PoolSpecError, match="retired by Azure on 2022-08-31") as caught:
        azhpc.Pool("old-size", "Standard_H16r", nodes=2, session=emulated).start()
    assert "Standard_HB176rs_v4" in str(caught.value)
    assert emulator.request_counts() == {}


# -- deletion (issue 12, defects 8 and 9) ----------------------------------------------------------


def test_emulator_refuses_writes_to_a_pool_being_deleted(slow_account) -> None:
    from azure.batch import models

    client = slow_account.client()
    client.create_pool(raw_pool("going", nodes=1))
    client.begin_delete_pool("going", polling_interval=SLOW_DELETE * 4)
    assert client.get_pool("going").state == "deleting"
    for write in (
        lambda: client.create_pool(raw_pool("going")),  # add the same id again
        lambda: client.begin_delete_pool("going"),  # delete it again
        lambda: client.begin_resize_pool(
            "going", models.BatchPoolResizeOptions({"targetDedicatedNodes": 2})
        ),
    ):
        error = batch_error(write)
        assert (error.status_code, error.error.code) == (409, "PoolBeingDeleted")
    wait_until(lambda: "going" not in [p.id for p in client.list_pools()], what="pool gone")


def test_rerun_waits_for_a_pool_being_deleted_then_creates_it_again(slow_account, stager) -> None:
    spec = PoolSpec("rerun", "Standard_D2s_v5", nodes=1)
    first = staged(BatchPool(slow_account, spec, show=False), stager)
    first.ensure()
    client = slow_account.client()
    # The pool is being deleted (on Azure that takes minutes; a notebook cell runs again).
    client.begin_delete_pool("rerun", polling_interval=SLOW_DELETE * 4)
    assert client.get_pool("rerun").state == "deleting"
    again = staged(BatchPool(slow_account, spec, show=False), stager)
    try:
        again.ensure()
        assert again.created, "adopted the pool that was being deleted"
        assert client.get_pool("rerun").state == "active"
        assert set(again.node_states().values()) <= {"idle", "running"}
    finally:
        again.release()
    assert not again.exists()


def test_create_refused_as_being_deleted_waits_and_retries(
    slow_account, stager, monkeypatch
) -> None:
    """The pool is deleted between the client's look and its Pool_Add (another client, or
    Azure still finishing): the 409 PoolBeingDeleted is waited out, then the pool created."""
    client = slow_account.client()
    client.create_pool(raw_pool("raced", nodes=1))
    client.begin_delete_pool("raced", polling_interval=SLOW_DELETE * 4)
    pool = staged(
        BatchPool(slow_account, PoolSpec("raced", "Standard_D2s_v5", nodes=1), show=False), stager
    )
    missed = [None]  # the first look misses the deletion; later ones are real
    real_state = BatchPool.pool_state
    monkeypatch.setattr(pool, "pool_state", lambda: missed.pop() if missed else real_state(pool))
    try:
        pool.ensure()
        assert pool.created and client.get_pool("raced").state == "active"
    finally:
        pool.release()


def test_delete_pauses_between_polls(slow_account, stager) -> None:
    emulator = slow_account.emulator
    pool = staged(
        BatchPool(slow_account, PoolSpec("polled", "Standard_D2s_v5", nodes=1), show=False), stager
    )
    pool.ensure()
    emulator.reset_request_counts()
    pool.delete()
    assert not pool.exists()
    gets = emulator.request_counts().get("Pool_Get", 0)
    # SLOW_DELETE seconds of deletion, looked at every 0.1 s on the emulator: about 15 Get
    # Pool requests; without a pause the SDK's poller asks as fast as the service answers.
    assert gets < 40, f"{gets} Get Pool requests while the pool was being deleted"


def test_delete_on_azure_pauses_seconds_between_polls() -> None:
    """On Azure deleting a pool takes minutes: the SDK's poller must not ask in a loop."""

    class Client:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def begin_delete_pool(self, pool_id: str, **options: Any) -> None:
            self.calls.append({"pool_id": pool_id, **options})

    azure = BatchAccount("https://acct.westeurope.batch.azure.com", "acct", key=Secret("k"))
    azure._client = client = Client()
    assert not azure.emulated
    BatchPool(azure, None, pool_id="on-azure", show=False).delete()
    (call,) = client.calls
    assert call["pool_id"] == "on-azure"
    assert call.get("polling_interval", 5) >= 5, f"polls every {call['polling_interval']} s"


def test_deleting_a_pool_already_being_deleted_is_fine(slow_account, stager) -> None:
    pool = staged(
        BatchPool(slow_account, PoolSpec("twice", "Standard_D2s_v5", nodes=1), show=False), stager
    )
    pool.ensure()
    slow_account.client().begin_delete_pool("twice", polling_interval=SLOW_DELETE * 4)
    pool.delete()  # 409 PoolBeingDeleted from the service: the pool goes anyway
    assert not pool.exists()


# -- pools a killed client left behind (issue 12, item 6) ------------------------------------------


def metadata_of(account: BatchAccount, pool_id: str) -> dict[str, str]:
    pool = account.client().get_pool(pool_id)
    return {item.name: item.value for item in pool.metadata or []}


def test_pools_azhpc_creates_carry_ownership_metadata(emulated) -> None:
    import getpass
    import socket

    account = emulated.backend.account
    with azhpc.Pool("owned", "Standard_D2s_v5", nodes=1, session=emulated) as pool:
        pool.start()
        metadata = metadata_of(account, "owned")
    assert metadata["azhpc-created-by"] == "azhpc"
    assert metadata["azhpc-owner"] == f"{getpass.getuser()}@{socket.gethostname()}"
    assert metadata["azhpc-session"] and metadata["azhpc-created"].endswith("Z")
    scoped = azhpc.Pool("scoped", "Standard_D2s_v5", nodes=1, job_scoped=True, session=emulated)
    try:
        body = scoped.batch_pool.pool_info()["autoPoolSpecification"]["pool"]
        names = {item["name"]: item["value"] for item in body["metadata"]}
        assert names["azhpc-created-by"] == "azhpc"
    finally:
        scoped.close()


@pytest.fixture
def shared_emulators(emulated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``emulated``'s Azurite and Batch emulator the ones ``azhpc emulator start`` would
    run, so that the command line's ``--profile emulated`` sees the same pools."""
    from azhpc.emulator.state import EmulatorState, save

    state_file = tmp_path / "emulator.json"
    monkeypatch.setenv("AZHPC_EMULATOR_STATE", str(state_file))
    batch = emulated.backend.account.emulator
    save(
        EmulatorState(
            pid=os.getpid(),
            batch_url=batch.url,
            batch_account_name=batch.account_name,
            batch_account_key=batch.account_key,
            azurite_port=emulated.lake.emulator.port,
        )
    )
    return state_file


def test_list_and_delete_only_azhpc_pools(emulated, shared_emulators, capsys) -> None:
    from azhpc.backends.batch.cleanup import delete_azhpc_pools, list_pools
    from azhpc.cli import main

    account = emulated.backend.account
    client = account.client()
    client.create_pool(raw_pool("not-ours", nodes=1))
    left = azhpc.Pool("left-behind", "Standard_D2s_v5", nodes=2, session=emulated)
    left.start()
    left.batch_pool.keep = True  # as if the client had been killed: nobody deletes it
    left.close()
    try:
        records = {r.pool_id: r for r in list_pools(account)}
        assert records["left-behind"].azhpc and not records["not-ours"].azhpc
        assert records["left-behind"].cost_per_hour == pytest.approx(2 * 0.106)

        assert main(["pools", "list", "--profile", "emulated"]) == 0
        shown = capsys.readouterr().out
        assert "POOL" in shown and "COST/HOUR" in shown
        line = next(x for x in shown.splitlines() if x.startswith("left-behind"))
        assert "Standard_D2s_v5" in line and "active" in line and "0.21 EUR" in line
        assert metadata_of(account, "left-behind")["azhpc-owner"] in line
        assert "(not azhpc)" in next(x for x in shown.splitlines() if x.startswith("not-ours"))
        assert account.key.reveal() not in shown

        assert main(["pools", "delete", "--all-azhpc", "--profile", "emulated"]) == 0
        assert "pool left-behind: deleted" in capsys.readouterr().out
        remaining = [p.id for p in client.list_pools()]
        assert "not-ours" in remaining and "left-behind" not in remaining
        assert delete_azhpc_pools(account) == []

        assert main(["pools", "delete", "not-ours", "--profile", "emulated"]) == 0
        assert "not-ours" not in [p.id for p in client.list_pools()]
        assert main(["pools", "delete", "not-ours", "--profile", "emulated"]) == 1
        assert "no pool 'not-ours'" in capsys.readouterr().err
        assert main(["pools", "delete", "--profile", "emulated"]) == 2
    finally:
        for pool_id in ("not-ours", "left-behind"):
            if pool_id in [p.id for p in client.list_pools()]:
                BatchPool(account, None, pool_id=pool_id, show=False).delete()


def test_pools_list_without_running_emulators_starts_nothing(tmp_path, monkeypatch, capsys):
    from azhpc.cli import main

    monkeypatch.setenv("AZHPC_EMULATOR_STATE", str(tmp_path / "none.json"))
    assert main(["pools", "list", "--profile", "emulated"]) == 0
    assert "azhpc emulator start" in capsys.readouterr().out
