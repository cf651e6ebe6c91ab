"""Fixtures for the notebook layer: a real IPython shell with azhpc loaded, and a small pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

import azhpc


@pytest.fixture
def pool() -> Iterator[azhpc.Session]:
    """A local session with 2 workers, the default one while the test runs; closed after."""
    with azhpc.connect(workers=2, progress=False) as session:
        yield session


@pytest.fixture
def shell(pool: azhpc.Session) -> Iterator[InteractiveShell]:
    """IPython's shell with ``%load_ext azhpc`` done, and an empty namespace for each test."""
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "azhpc")
    ip.reset(new_session=False)
    yield ip
    ip.reset(new_session=False)
