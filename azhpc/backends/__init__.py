"""Compute backends: a registry from a short name to a dotted path, imported lazily.

>>> from azhpc.backends import backend_class
>>> backend_class("debug").__name__
'DebugBackend'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from azhpc.errors import ConfigError

if TYPE_CHECKING:
    from azhpc.backends.base import Backend

__all__ = ["available_backends", "backend_class", "register_backend"]

_REGISTRY: dict[str, str] = {
    "local": "azhpc.backends.local:LocalBackend",
    "debug": "azhpc.backends.debug:DebugBackend",
}


def register_backend(name: str, target: str, *, clobber: bool = False) -> None:
    """Register a backend class under ``name`` as ``"package.module:ClassName"``.

    Overwriting a registered name needs ``clobber=True``.
    """
    if name in _REGISTRY and not clobber and _REGISTRY[name] != target:
        raise ConfigError(
            f"a backend named {name!r} is already registered ({_REGISTRY[name]}); "
            "pass clobber=True to replace it"
        )
    _REGISTRY[name] = target


def available_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """Import and return the backend class registered as ``name``."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of {', '.join(available_backends())}"
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"backend {name!r} needs a package that is not installed ({exc.name}); "
            "install it with: pip install 'azhpc[azure]'"
        ) from exc
    return getattr(module, attr)
