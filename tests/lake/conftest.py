"""Fixtures for the lake: isolated configuration, one Azurite for the whole run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from azhpc.config import ENVIRONMENT

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AZHPC_* variable and no config file of the machine leak into a test."""
    for variable in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "azhpc-config.toml"
    monkeypatch.setenv("AZHPC_CONFIG", str(config))
    # ...and no test writes to the user's own ~/.azhpc/lake.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return config


def azurite_installed() -> bool:
    return (PROJECT / "node_modules" / ".bin" / "azurite").exists() or bool(
        os.environ.get("AZHPC_AZURITE")
    )


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    """One Azurite for the run; skipped only when it is not installed and CI is not set."""
    if not azurite_installed() and not os.environ.get("CI"):
        pytest.skip("Azurite is not installed (run `npm ci` or ./dev test)")
    from azhpc.emulator.azurite import Azurite

    with Azurite() as running:
        yield running


def fresh_container() -> str:
    return f"t{uuid.uuid4().hex[:20]}"
