"""A pytest plugin that runs joblib's own ``joblib/test/test_parallel.py`` on the "azhpc" backend.

Loaded with ``-p tests.peers.joblib_azhpc_plugin`` (``tests/peers/test_joblib_parallel.py``
does it). The backend is registered before joblib's test module is imported, so the module's
own lists of backends (``ALL_VALID_BACKENDS``, ``RETURN_GENERATOR_BACKENDS``, ...) include
``"azhpc"`` and an ``AzhpcBackend()`` instance; only the tests parametrized with one of them are
kept. The documented differences (``docs/compatibility.md``) are strict expected failures.
"""

from __future__ import annotations

from typing import Any

import pytest

#: test id -> why it fails on azhpc; see docs/compatibility.md.
DIFFERENCES: dict[str, str] = {
    "test_nested_loop[loky-azhpc]": (
        "a Parallel(backend='azhpc') inside a loky worker: joblib knows only the backends "
        "registered in the process, and loky's workers are fresh interpreters"
    ),
    "test_nested_loop[back_compat_backend-azhpc]": (
        "the same inside a worker of this test's loky-based backend"
    ),
    "test_nested_loop[azhpc-azhpc]": (
        "a Parallel(backend='azhpc') inside an azhpc task: the worker process has not "
        "registered the backend (and a session there would start workers of its own)"
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    import azhpc

    azhpc.register_joblib_backend()


def _uses_azhpc(item: pytest.Item) -> bool:
    from azhpc.joblib_backend import AzhpcBackend

    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    return any(v == "azhpc" or isinstance(v, AzhpcBackend) for v in params.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept = [item for item in items if _uses_azhpc(item)]
    dropped = [item for item in items if not _uses_azhpc(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
    for item in kept:
        reason = DIFFERENCES.get(item.name)
        if reason is not None:
            # ValueError: joblib's "Invalid backend" (any other failure is a real one).
            item.add_marker(pytest.mark.xfail(strict=True, raises=ValueError, reason=reason))
