"""Fixtures for the Batch emulator tests: a running emulator and an SDK client for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from azhpc.emulator.batch import BatchEmulator

pytest.importorskip("azure.batch")


@pytest.fixture
def batch_emulator() -> Iterator[BatchEmulator]:
    """A Batch emulator on a free loopback port, stopped after the test."""
    with BatchEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(batch_emulator: BatchEmulator) -> Any:
    """The real ``azure.batch.BatchClient`` with SharedKey credentials for the emulator."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    credential = AzureNamedKeyCredential(batch_emulator.account_name, batch_emulator.account_key)
    return BatchClient(endpoint=batch_emulator.url, credential=credential)


@pytest.fixture
def make_pool(client: Any) -> Callable[..., str]:
    """Create a pool (2 dedicated nodes, 2 slots each by default) and wait for idle nodes."""
    from azure.batch import models

    from tests.conftest import wait_until

    def make(pool_id: str = "pool", *, nodes: int = 2, slots: int = 2, **options: Any) -> str:
        client.create_pool(
            models.BatchPoolCreateOptions(
                id=pool_id,
                vm_size="standard_d2s_v3",
                target_dedicated_nodes=nodes,
                task_slots_per_node=slots,
                **options,
            )
        )
        wait_until(
            lambda: [n.state for n in client.list_nodes(pool_id)] == ["idle"] * nodes,
            timeout=10,
            what=f"{nodes} idle nodes",
        )
        return pool_id

    return make
