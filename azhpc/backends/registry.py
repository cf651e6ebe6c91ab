"""The backend registry: a short name -> the factory that builds that backend.

``connect(backend="name")`` looks the name up here and calls the factory with the session's
settings, its lake and its job store; the factory returns a ready
:class:`~azhpc.backends.base.Backend`. Factories are named by dotted path and imported only
when first used (as fsspec's ``filesystem(protocol)`` does), so registering a backend costs
nothing until it is used.

>>> from azhpc.backends.registry import available_backends
>>> available_backends()
['batch', 'debug', 'local']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from azhpc.errors import ConfigError

if TYPE_CHECKING:
    from azhpc.backends.base import Backend
    from azhpc.config import Settings
    from azhpc.staging import JobStore

__all__ = ["BackendFactory", "available_backends", "backend_factory", "register_backend"]

#: ``factory(settings, lake, store) -> Backend``: ``lake`` is the session's
#: :class:`~azhpc.lake.Lake`, ``store`` its :class:`~azhpc.staging.JobStore` or ``None`` when
#: jobs are not kept in the lake.
BackendFactory = Callable[["Settings", Any, "JobStore | None"], "Backend"]

_REGISTRY: dict[str, str | BackendFactory] = {
    "local": "azhpc.backends.local.backend:create_backend",
    "debug": "azhpc.backends.debug:create_backend",
    "batch": "azhpc.backends.batch.factory:create_backend",
}


def register_backend(name: str, factory: str | BackendFactory, *, clobber: bool = False) -> None:
    """Make ``connect(backend=name)`` build its backend with ``factory``.

    Parameters
    ----------
    name
        The short name users pass to :func:`azhpc.connect`.
    factory
        A callable ``factory(settings, lake, store) -> Backend``, or its dotted path
        ``"package.module:function"`` (imported on first use).
    clobber
        Replace a backend already registered under ``name``.

    Raises
    ------
    ConfigError
        ``name`` is taken (and ``clobber`` is false), or ``factory`` is neither a callable nor
        a ``"module:function"`` string.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a backend name is a non-empty string, got {name!r}")
    if isinstance(factory, str):
        if ":" not in factory:
            raise ConfigError(
                f"register_backend({name!r}, {factory!r}): give the factory as "
                "'package.module:function'"
            )
    elif not callable(factory):
        raise ConfigError(
            f"register_backend({name!r}, ...) takes a factory(settings, lake, store) -> Backend "
            f"or its 'package.module:function' path, got {type(factory).__name__}"
        )
    if name in _REGISTRY and not clobber and _REGISTRY[name] != factory:
        raise ConfigError(
            f"a backend named {name!r} is already registered ({_REGISTRY[name]!r}); "
            "pass clobber=True to replace it"
        )
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    """Names of the registered backends."""
    return sorted(_REGISTRY)


def backend_factory(name: str) -> BackendFactory:
    """The factory registered as ``name``, imported if it was given by path."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend {name!r}; choose one of {', '.join(available_backends())} "
            "(or register one with azhpc.backends.register_backend)"
        ) from None
    if callable(target):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "azhpc":
            raise
        raise ConfigError(
            f"backend {name!r} needs a package that is not installed ({exc.name}); "
            "install it with: pip install 'azhpc[azure]'"
        ) from exc
    return getattr(module, attr)
