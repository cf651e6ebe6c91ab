"""What :func:`azhpc.connect` calls for ``backend="batch"``: the account, the emulator on the
``emulated`` profile, the session's own pool there, and the backend on top.

``emulated`` starts the Batch emulator (stopped with the backend), or shares the one
``azhpc emulator start`` runs, and gives the session a pool of its own (``workers`` nodes,
``slots`` task slots each), created when the first job needs it and deleted when the session
closes. On ``azure`` jobs run on an :class:`azhpc.Pool` the user opens.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.account import BatchAccount, account_from_settings
from azhpc.backends.batch.backend import BatchBackend
from azhpc.backends.batch.lifecycle import BatchPool
from azhpc.config import Secret
from azhpc.emulator.batch import BatchEmulator
from azhpc.emulator.state import discover
from azhpc.errors import ConfigError
from azhpc.pools.spec import PoolSpec

if TYPE_CHECKING:
    from azhpc.config import Settings
    from azhpc.staging import JobStore

__all__ = ["EMULATED_VM_SIZE", "create_backend"]

#: The VM size of the emulated profile's own pool (any size of the price table would do).
EMULATED_VM_SIZE = "Standard_D2s_v5"


def create_backend(settings: Settings, lake: Any, store: JobStore | None) -> BatchBackend:
    """A backend whose tasks run on Azure Batch, or on the Batch emulator (``emulated``).

    Raises
    ------
    ConfigError
        The profile is ``local`` (Batch nodes cannot reach a folder on this machine), jobs
        are not kept in the lake (``durable=False``), or the ``azure`` profile has no
        ``batch_url``.
    """
    if settings.profile == "local":
        raise ConfigError(
            "the batch backend needs a lake Batch nodes can reach: connect to the 'emulated' "
            "or 'azure' profile"
        )
    if store is None:
        raise ConfigError(
            "Batch jobs always keep their inputs and outcomes in the lake (the nodes read and "
            "write them there); leave durable= unset"
        )
    if settings.profile == "emulated":
        return _emulated_backend(settings, lake, store)
    if not settings.batch_url:
        raise ConfigError(
            f"the azure profile {settings.name!r} has no Batch account: set batch_url "
            f"({settings.where('batch_url')}) for Azure Batch compute, or use "
            f"azhpc.connect({settings.name!r}, backend='local') for the Azure lake with "
            "tasks in local worker processes"
        )
    return BatchBackend(account_from_settings(settings), None, lake, store, poll_interval=2.0)


def _emulated_backend(settings: Settings, lake: Any, store: JobStore) -> BatchBackend:

    running = discover()
    owned: list[Any] = []
    if running is not None:
        emulator = BatchEmulator.attach(
            running.batch_url, running.batch_account_name, running.batch_account_key
        )
    else:
        emulator = BatchEmulator().start()
        owned.append(emulator)
    try:
        account = BatchAccount(
            emulator.url,
            emulator.account_name,
            key=Secret(emulator.account_key),
            emulator=emulator,
            where="the emulator's own key",
        )
        spec = PoolSpec(
            f"azhpc-session-{secrets.token_hex(3)}",
            EMULATED_VM_SIZE,
            nodes=settings.workers or 2,
            task_slots_per_node=settings.slots,
        )
        pool = BatchPool(account, spec)
        return BatchBackend(account, pool, lake, store, poll_interval=0.2, owned=owned)
    except BaseException:
        for emulator in owned:
            emulator.stop()
        raise
