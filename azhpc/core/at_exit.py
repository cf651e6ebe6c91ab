"""What azhpc releases when the interpreter exits, in one place.

Sessions, Azurite and the Batch emulator register here when they start and unregister when
they stop. One ``atexit`` hook releases what is left, newest first (a session closes before
the emulators it started), each in its own ``try`` so that one failure does not keep the rest
running. Registration keeps only a weak reference: an object nobody holds is not kept alive.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import weakref
from typing import Any

__all__ = ["forget", "release_all", "release_at_exit"]

_order = itertools.count()
_lock = threading.Lock()
#: id(obj) -> (registration number, weak reference, name of the method that releases it)
_registered: dict[int, tuple[int, weakref.ref[Any], str]] = {}


def release_at_exit(obj: Any, method: str = "close") -> None:
    """Call ``obj.<method>()`` at interpreter exit unless :func:`forget` is called first."""
    key = id(obj)

    def dropped(_: weakref.ref[Any], key: int = key) -> None:
        with _lock:
            _registered.pop(key, None)

    with _lock:
        _registered[key] = (next(_order), weakref.ref(obj, dropped), method)


def forget(obj: Any) -> None:
    """``obj`` was released by its owner; nothing is left to do at exit."""
    with _lock:
        _registered.pop(id(obj), None)


def registered(kind: type) -> list[Any]:
    """The live objects of ``kind`` still waiting to be released (for checks and tests)."""
    with _lock:
        refs = [ref for _, ref, _ in _registered.values()]
    return [obj for obj in (ref() for ref in refs) if isinstance(obj, kind)]


def release_all() -> None:
    """Release everything still registered, newest first (the ``atexit`` hook)."""
    with _lock:
        entries = sorted(_registered.values(), key=lambda entry: entry[0], reverse=True)
        _registered.clear()
    for _, ref, method in entries:
        obj = ref()
        if obj is None:
            continue
        try:
            getattr(obj, method)()
        except Exception:  # at exit, one failing release must not keep the others running
            pass


def _forget_all_in_child() -> None:
    """After ``fork()``, in the child: what the parent opened is the parent's to release.

    A child that exits normally would otherwise close the parent's sessions and stop its
    emulators. The lock is new too: another thread may have held it at the fork.
    """
    global _lock
    _lock = threading.Lock()
    _registered.clear()


atexit.register(release_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all_in_child)
