"""Task outcomes: a tagged value, either the task's return value or the remote error.

Outcomes are what a worker hands back. On file-based transports they are written to a
temporary name and renamed into place (:func:`write_outcome`), so a reader never sees half an
outcome.
"""

from __future__ import annotations

import os
import pickle
import socket
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azhpc.core.pickling import dumps
from azhpc.core.states import TaskResult

__all__ = [
    "RemoteError",
    "TaskOutcome",
    "hide_traceback_frames",
    "read_outcome",
    "write_outcome",
]

#: Files whose frames a remote traceback leaves out: azhpc's task wrappers and runners.
_HIDDEN_FILES: set[str] = set()
_CORE_DIR = os.path.dirname(os.path.abspath(__file__))


def hide_traceback_frames(path: str) -> None:
    """Leave the frames of the file ``path`` out of remote tracebacks (a task runner's own)."""
    _HIDDEN_FILES.add(os.path.abspath(path))


def _hidden(filename: str) -> bool:
    return os.path.dirname(filename) == _CORE_DIR or filename in _HIDDEN_FILES


@dataclass(frozen=True)
class RemoteError:
    """An exception raised by a task on a worker, as the client sees it.

    Attributes
    ----------
    type_name
        The exception's qualified type name (``"ValueError"``, ``"mymodule.MyError"``).
    message
        ``str(exception)``.
    traceback
        The remote traceback, formatted as Python prints it.
    exception
        The exception object itself, when it could be sent back (else ``None``).
    """

    type_name: str
    message: str
    traceback: str
    exception: BaseException | None = None

    @classmethod
    def capture(cls, exc: BaseException) -> RemoteError:
        """Describe ``exc``, leaving out azhpc's own frames (the task wrappers, the worker)."""
        summary = traceback.TracebackException.from_exception(exc)
        seen: set[int] = set()
        link: traceback.TracebackException | None = summary
        while link is not None and id(link) not in seen:  # the chained causes too
            seen.add(id(link))
            kept = [f for f in link.stack if not _hidden(f.filename)]
            link.stack = traceback.StackSummary.from_list(kept)
            link = link.__cause__ or link.__context__
        text = "".join(summary.format())
        kind = type(exc)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else (f"{kind.__module__}.{kind.__qualname__}")
        )
        try:
            pickle.loads(dumps(exc))
            sendable: BaseException | None = exc.with_traceback(None)
        except Exception:
            sendable = None
        return cls(name, str(exc), text, sendable)

    @property
    def short_type(self) -> str:
        """The exception type's name without its module."""
        return self.type_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class TaskOutcome:
    """What one attempt of one task produced.

    Attributes
    ----------
    result
        :attr:`TaskResult.SUCCESS` or :attr:`TaskResult.FAILURE`.
    value
        The return value (success only).
    error
        The remote error (failure only).
    output
        What the task printed to ``sys.stdout``/``sys.stderr``, in order.
    node
        Where it ran (host and worker process).
    seconds
        How long the task's function ran.
    retried
        The errors of earlier attempts that the worker itself ran again (a Batch task runs
        its function up to ``retries`` more times in the same process), oldest first.
    """

    result: TaskResult
    value: Any = None
    error: RemoteError | None = None
    output: str = ""
    node: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    seconds: float = 0.0
    retried: tuple[RemoteError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the task succeeded."""
        return self.result is TaskResult.SUCCESS


def write_outcome(path: str | os.PathLike[str], data: bytes) -> None:
    """Write an encoded outcome atomically: to a temporary name in the same folder, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_outcome(path: str | os.PathLike[str]) -> bytes:
    """Read an encoded outcome written by :func:`write_outcome`."""
    return Path(path).read_bytes()
