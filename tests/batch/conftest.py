"""Fixtures over a module's ``emulated`` session (each module opens its own, sized for it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import azhpc
from tests.conftest import batch_available


@pytest.fixture(scope="module")
def emulated() -> Iterator[azhpc.Session]:
    """The module's own ``emulated`` session on the Batch backend (1 node); a module that
    needs another size defines its own ``emulated``."""
    if not batch_available():
        pytest.skip("needs azure-batch and Azurite (./dev test installs both)")
    with azhpc.connect("emulated", backend="batch", workers=1, progress=False) as session:
        yield session


@pytest.fixture
def client(emulated: Any) -> Any:
    """The azure-batch SDK client of the module's emulated session."""
    return emulated.backend.account.client()


@pytest.fixture
def emulator(emulated: Any) -> Any:
    """The Batch emulator behind the module's emulated session (fault injection, counts)."""
    return emulated.backend.account.emulator
