"""What a task runs: small picklable wrappers around the user's function.

Each scatter form gives its tasks one of these as the job's function; the task's input is
what the wrapper is called with. They live in an importable module so that a worker unpickles
them by reference, while the user's function inside travels by value where it must.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ApplyEach", "CallWithArguments"]


@dataclass(frozen=True)
class ApplyEach:
    """Apply ``fn`` to each item of a chunk and return the list of results.

    With ``star=True`` each item is a tuple of positional arguments (``Executor.map`` over
    several iterables).
    """

    fn: Callable[..., Any]
    star: bool = False

    def __call__(self, chunk: Sequence[Any]) -> list[Any]:
        fn = self.fn
        if self.star:
            return [fn(*args) for args in chunk]
        return [fn(item) for item in chunk]


@dataclass(frozen=True)
class CallWithArguments:
    """Call ``fn(*args, **kwargs)`` for an input ``(args, kwargs)``."""

    fn: Callable[..., Any]

    def __call__(self, arguments: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
        args, kwargs = arguments
        return self.fn(*args, **kwargs)
