"""A local Azure Batch REST service the real ``azure-batch`` SDK talks to.

See :class:`~azhpc.emulator.batch.launcher.BatchEmulator` and the "Emulators" section of
``docs/architecture.md`` for what of the REST surface is implemented.
"""

from __future__ import annotations

from azhpc.emulator.batch.launcher import DEFAULT_ACCOUNT_NAME, BatchEmulator, BatchEmulatorError
from azhpc.emulator.batch.runner import Timings

__all__ = ["DEFAULT_ACCOUNT_NAME", "BatchEmulator", "BatchEmulatorError", "Timings"]
