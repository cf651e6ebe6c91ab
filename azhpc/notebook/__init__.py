"""The notebook layer: ``%%azrun``/``%azrun`` and ``%%usql`` magics and the progress widget.

``%load_ext azhpc`` (or ``%load_ext azhpc.notebook``) registers the magics on the shell. The
API they call, :mod:`azhpc.notebook.azrun`, works without IPython; IPython and ipywidgets are
imported only by :mod:`~azhpc.notebook.magics` and :mod:`~azhpc.notebook.widgets`, so the
workers that run cells (:mod:`~azhpc.notebook.cellrun`) never import them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%azrun``, ``%azrun`` and ``%%usql`` on ``ipython`` (one instance per shell).

    Parameters
    ----------
    ipython
        The running ``InteractiveShell``.
    """
    from azhpc.notebook.magics import AzrunMagics  # lazy: loads IPython, cloudpickle
    from azhpc.notebook.usql_magic import UsqlMagics  # lazy: loads IPython

    ipython.register_magics(AzrunMagics(ipython))
    ipython.register_magics(UsqlMagics(ipython))
