"""Compute backends, one folder (or module) each, built through the registry.

- ``base.py``: the contract every backend fulfils (:class:`~azhpc.backends.base.Backend`).
- ``registry.py``: name -> factory(settings, lake, store); :func:`azhpc.connect` calls it.
- ``local/``: worker processes on this machine.
- ``debug.py``: every task in the calling thread (for pdb).
- ``batch/``: everything that talks to Azure Batch.

>>> from azhpc.backends import available_backends
>>> "local" in available_backends()
True
"""

from __future__ import annotations

from azhpc.backends.registry import available_backends, backend_factory, register_backend

__all__ = ["available_backends", "backend_factory", "register_backend"]
