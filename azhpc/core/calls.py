"""What a task runs: small picklable wrappers around the user's function.

Each scatter form gives its tasks one of these as the job's function; the task's input is
what the wrapper is called with. They live in an importable module so that a worker unpickles
them by reference, while the user's function inside travels by value where it must.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ApplyEach", "CallWithArguments", "RowRange", "TakePartition"]


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


@dataclass(frozen=True)
class RowRange:
    """For a job whose shared input is a frame: call ``fn`` on rows ``start:stop`` of it."""

    fn: Callable[[Any], Any]

    def __call__(self, frame: Any, bounds: tuple[int, int]) -> Any:
        start, stop = bounds
        return self.fn(frame.iloc[start:stop])


@dataclass(frozen=True)
class TakePartition:
    """For a job whose shared input is ``(frame, codes)``: call ``fn`` on the rows whose
    partition code is this task's input, in their original order."""

    fn: Callable[[Any], Any]

    def __call__(self, shared: tuple[Any, Any], partition: int) -> Any:
        import numpy as np

        frame, codes = shared
        return self.fn(frame.take(np.flatnonzero(codes == partition)))
