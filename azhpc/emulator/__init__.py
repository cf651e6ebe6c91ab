"""Local stand-ins for Azure services, for tests, workshops and laptops without a subscription.

- :class:`~azhpc.emulator.azurite.Azurite`: Microsoft's Azure Storage emulator (npm package
  ``azurite``), started on 127.0.0.1 on a free port; the ``emulated`` profile's Data Lake.

The Azure Batch REST emulator arrives with the Batch backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azhpc.emulator.azurite import (
        DEV_ACCOUNT_NAME,
        Azurite,
        AzuriteNotFoundError,
        AzuriteStartError,
        find_azurite,
    )
    from azhpc.emulator.batch import BatchEmulator, BatchEmulatorError, Timings

_BATCH = ("BatchEmulator", "BatchEmulatorError", "Timings")

__all__ = [
    "DEV_ACCOUNT_NAME",
    "Azurite",
    "AzuriteNotFoundError",
    "AzuriteStartError",
    "BatchEmulator",
    "BatchEmulatorError",
    "Timings",
    "find_azurite",
]


def __getattr__(name: str) -> Any:
    if name in _BATCH:
        from azhpc.emulator import batch

        return getattr(batch, name)
    if name in __all__:
        from azhpc.emulator import azurite

        return getattr(azurite, name)
    raise AttributeError(f"module 'azhpc.emulator' has no attribute {name!r}")
