"""Fixtures over a module's ``emulated`` session (each module opens its own, sized for it)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def client(emulated: Any) -> Any:
    """The azure-batch SDK client of the module's emulated session."""
    return emulated.backend.account.client()


@pytest.fixture
def emulator(emulated: Any) -> Any:
    """The Batch emulator behind the module's emulated session (fault injection, counts)."""
    return emulated.backend.account.emulator
