"""azhpc's version, in a module of its own so that any layer can read it without importing
the package's façade (``azhpc/__init__.py``)."""

from __future__ import annotations

import os

__all__ = ["PACKAGE_FOLDER", "__version__"]

__version__ = "0.1.0"

#: The folder of the ``azhpc`` package (its parent goes on worker processes' ``sys.path``).
PACKAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
