"""One exception hierarchy for azhpc.

Every error azhpc raises on purpose derives from :class:`AzhpcError`, and its message says
what to do next. Where a built-in exception means the same thing, the azhpc class also
derives from it (``ConfigError`` is a ``ValueError``, ``UndefinedVariableError`` a
``NameError``), so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azhpc.usql.errors import Span

__all__ = [
    "ArgumentTypeError",
    "AzhpcError",
    "AzuriteNotFoundError",
    "AzuriteStartError",
    "BatchAuthError",
    "BatchEmulatorError",
    "BatchError",
    "BatchUnreachableError",
    "CommandFailedError",
    "CompositeTaskError",
    "ConfigError",
    "EnvironmentMismatchError",
    "ErrorCode",
    "ExecutorShutdownError",
    "GatherError",
    "IntegrityError",
    "JobCancelledError",
    "JobNotFoundError",
    "LakeAuthError",
    "LakeError",
    "LakePathError",
    "LakeUnreachableError",
    "PoolCostError",
    "PoolSpecError",
    "PoolSpecWarning",
    "PoolStartError",
    "SerializationError",
    "SessionStoppedError",
    "TaskError",
    "UndefinedVariableError",
    "UnpicklableVariableError",
    "UsqlError",
    "WorkerLostError",
    "WorkshopEmulatorError",
]


class AzhpcError(Exception):
    """Base class of every error azhpc raises on purpose."""


class ConfigError(AzhpcError, ValueError):
    """A setting, argument or profile is wrong; the message names it and says how to fix it."""


class ArgumentTypeError(ConfigError, TypeError):
    """An argument has the wrong type (a function that is not callable, ``None`` for the items,
    a float axis); the message names the argument and what it takes. Also a ``TypeError``, as
    Python's own ``map`` raises."""


class SerializationError(AzhpcError, TypeError):
    """A function, argument or result could not be serialized to be sent to or from a worker."""


class _CellVariableProblem:
    """A problem with a notebook cell's variables: in IPython, the message is the whole story
    (the only frame left would be azhpc's own)."""

    def _render_traceback_(self) -> list[str]:
        red, reset = "\x1b[0;31m", "\x1b[0m"
        return [f"{red}{type(self).__name__}{reset}: {self}"]


class UnpicklableVariableError(_CellVariableProblem, SerializationError):
    """A variable a ``%%azrun`` cell reads cannot be sent to the workers."""

    def __init__(self, message: str, *, names: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.names = names


class UndefinedVariableError(_CellVariableProblem, AzhpcError, NameError):
    """A ``%%azrun`` cell reads a variable that is not defined in the notebook."""

    def __init__(self, message: str, *, names: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.names = names


class JobCancelledError(AzhpcError):
    """The job was cancelled before all its tasks finished."""


class WorkerLostError(AzhpcError):
    """A worker process died while running a task, more often than the task may be retried."""


class GatherError(AzhpcError):
    """Every task succeeded, but their results could not be put together."""


class TaskError(AzhpcError):
    """A task failed on a worker.

    Carries the remote exception's type, message and traceback and the task's id; renders in
    IPython as the remote traceback. ``except azhpc.TaskError`` also catches
    :class:`CompositeTaskError` (several tasks failed).

    Attributes
    ----------
    task_id, job_id
        Which task of which job failed.
    remote_type, remote_message, remote_traceback
        The remote exception's qualified type name, message and formatted traceback.
    remote_exception
        The remote exception object itself, when it could be sent back; else ``None``.
    node
        Where the failing attempt ran.
    attempts
        How many times the task ran.
    """

    def __init__(
        self,
        task_id: str,
        remote_type: str,
        remote_message: str,
        remote_traceback: str,
        *,
        job_id: str = "",
        remote_exception: BaseException | None = None,
        node: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(task_id, remote_type, remote_message)
        self.task_id = task_id
        self.job_id = job_id
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        self.remote_exception = remote_exception
        self.node = node
        self.attempts = attempts

    @property
    def headline(self) -> str:
        """One line: which task failed with what."""
        short = self.remote_type.rsplit(".", 1)[-1]
        where = f" of job {self.job_id}" if self.job_id else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"task {self.task_id}{where} failed{tries}: {short}: {self.remote_message}"

    def __str__(self) -> str:
        return f"{self.headline}\n\nRemote traceback ({self.node or 'worker'}):\n" + (
            self.remote_traceback.rstrip()
        )

    def __reduce__(self):  # keep every field through pickling (joblib, multiprocessing)
        return (
            _rebuild_task_error,
            (type(self), self.__dict__.copy(), self.args),
        )

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the remote traceback, not azhpc's internals."""
        red, reset = "\x1b[0;31m", "\x1b[0m"
        return [f"{red}TaskError{reset}: {self.headline}", "", *self._remote_lines()]

    def _remote_lines(self) -> list[str]:
        header = f"[{self.task_id} on {self.node or 'worker'}]"
        return [header, *self.remote_traceback.rstrip().splitlines()]


class CompositeTaskError(TaskError):
    """Several tasks failed; ``errors`` lists each one, and the first one's fields are kept."""

    def __init__(self, errors: list[TaskError], *, total_tasks: int) -> None:
        first = errors[0]
        super().__init__(
            first.task_id,
            first.remote_type,
            first.remote_message,
            first.remote_traceback,
            job_id=first.job_id,
            remote_exception=first.remote_exception,
            node=first.node,
            attempts=first.attempts,
        )
        self.errors = list(errors)
        self.total_tasks = total_tasks

    @property
    def headline(self) -> str:
        where = f" of job {self.job_id}" if self.job_id else ""
        return f"{len(self.errors)} of {self.total_tasks} tasks{where} failed"

    def __str__(self) -> str:
        listing = "\n".join(f"  - {e.headline}" for e in self.errors)
        return (
            f"{self.headline}:\n{listing}\n\nFirst remote traceback ({self.node or 'worker'}):\n"
            + self.remote_traceback.rstrip()
        )

    def _render_traceback_(self) -> list[str]:
        red, reset = "\x1b[0;31m", "\x1b[0m"
        lines = [f"{red}CompositeTaskError{reset}: {self.headline}"]
        for error in self.errors:
            lines += ["", *error._remote_lines()]
        return lines


def _rebuild_task_error(cls: type, state: dict, args: tuple) -> TaskError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class JobNotFoundError(AzhpcError, LookupError):
    """No durable job with that id is in this session's lake."""


class WorkshopEmulatorError(AzhpcError, RuntimeError):
    """The background emulators could not be started or stopped."""


class AzuriteNotFoundError(AzhpcError, FileNotFoundError):
    """Azurite is not installed where azhpc looks for it; the message says how to install it."""


class AzuriteStartError(AzhpcError, RuntimeError):
    """Azurite was found but did not start; the message holds the end of its output."""


class BatchEmulatorError(AzhpcError, RuntimeError):
    """The emulator could not start, or a control request failed."""


class CommandFailedError(AzhpcError):
    """A command run by :func:`run_on_pool` exited with a non-zero code on a node."""


class BatchError(AzhpcError):
    """The Batch service refused a request; ``code`` is Batch's error code."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class BatchAuthError(BatchError, PermissionError):
    """The Batch service refused the account's key or credential (HTTP 401/403)."""


class BatchUnreachableError(BatchError, ConnectionError):
    """The Batch service could not be reached."""


class IntegrityError(AzhpcError):
    """Stored job data failed its check: it changed after it was written, or has no key here."""


class PoolStartError(AzhpcError):
    """The pool's nodes did not become usable (start task failed, nodes unusable, timeout)."""


class EnvironmentMismatchError(AzhpcError):
    """The pool's nodes have another Python, cloudpickle or azhpc than this client."""


class PoolSpecError(ConfigError):
    """A :class:`~azhpc.PoolSpec` cannot work; the message names the field and says what to do.

    Attributes
    ----------
    field
        The offending field (``"vm_size"``, ``"spot_nodes"``, ...), or ``""`` for the
        unknown-keyword case.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"PoolSpec.{field}: {message}" if field else message)
        self.field = field


class PoolCostError(PoolSpecError):
    """The pool's estimated cost per hour is above its ``max_cost_per_hour`` guard."""


class PoolSpecWarning(UserWarning):
    """A pool specification that Batch accepts but that probably does not do what was meant."""


class ExecutorShutdownError(AzhpcError, RuntimeError):
    """Work was submitted to an :class:`azhpc.Executor` after its ``shutdown()``."""


class SessionStoppedError(AzhpcError, RuntimeError):
    """The session runs no more jobs although it was not closed: its backend stopped (the
    local scheduler thread died), or this process is a fork of the one that opened it. The
    message says which; open a new session with :func:`azhpc.connect`."""


class LakeError(AzhpcError):
    """A Data Lake operation failed; the message names the profile and the setting to fix."""

    def __init__(
        self, message: str, *, profile: str = "", setting: str = "", status: int | None = None,
        code: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.profile = profile
        self.setting = setting
        self.status = status
        self.code = code


class LakeAuthError(LakeError, PermissionError):
    """The storage account refused the credentials (wrong key, expired SAS, missing role)."""


class LakeUnreachableError(LakeError, ConnectionError):
    """The storage account could not be reached (wrong account name or endpoint, no network)."""


class LakePathError(LakeError, ValueError):
    """A lake path is malformed or escapes the lake's root."""


class ErrorCode(enum.StrEnum):
    """The codes a :class:`UsqlError` carries."""

    SYNTAX = "E_CSC_USER_SYNTAXERROR"
    NOT_SUPPORTED = "E_AZHPC_USQL_NOTSUPPORTED"
    UNKNOWN_ROWSET = "E_CSC_USER_INVALIDROWSETNAME"
    UNKNOWN_COLUMN = "E_CSC_USER_INVALIDCOLUMNREFERENCE"
    AMBIGUOUS_COLUMN = "E_CSC_USER_AMBIGUOUSCOLUMNREFERENCE"
    UNKNOWN_VARIABLE = "E_CSC_USER_VARIABLENOTDECLARED"
    VARIABLE_REDECLARED = "E_CSC_USER_VARIABLEALREADYDECLARED"
    UNKNOWN_TYPE = "E_CSC_USER_INVALIDTYPE"
    TYPE_MISMATCH = "E_CSC_USER_TYPEMISMATCH"
    UNKNOWN_MEMBER = "E_CSC_USER_INVALIDMEMBER"
    DUPLICATE_COLUMN = "E_CSC_USER_DUPLICATECOLUMNNAME"
    COLUMN_NAME_MISSING = "E_CSC_USER_COLUMNNAMEREQUIRED"
    NOT_GROUPED = "E_CSC_USER_COLUMNNOTINGROUPBY"
    AGGREGATE_MISPLACED = "E_CSC_USER_AGGREGATENOTALLOWED"
    ORDER_BY_WITHOUT_FETCH = "E_CSC_USER_ORDERBYREQUIRESFETCH"
    SCHEMA_MISMATCH = "E_CSC_USER_SCHEMAMISMATCH"
    INVALID_UDO_ARGUMENT = "E_CSC_USER_INVALIDUDOARGUMENT"
    INVALID_FILESET = "E_CSC_USER_INVALIDFILESETPATTERN"
    INVALID_PARAMETER = "E_CSC_USER_INVALIDPARAMETERVALUE"
    NOT_CONSTANT = "E_CSC_USER_EXPRESSIONNOTCONSTANT"
    FILE_NOT_FOUND = "E_STORE_USER_FILENOTFOUND"
    CONVERSION = "E_RUNTIME_USER_EXTRACT_COLUMN_CONVERSION_INVALID_ERROR"
    COLUMN_COUNT = "E_RUNTIME_USER_EXTRACT_UNEXPECTED_NUMBER_OF_COLUMNS"
    EXPRESSION = "E_RUNTIME_USER_EXPRESSION_EXCEPTION"
    PYTHON_EXCEPTION = "E_RUNTIME_USER_PYTHON_EXCEPTION"
    PRODUCE_MISMATCH = "E_RUNTIME_USER_PYTHON_PRODUCE_MISMATCH"
    OUTPUT = "E_RUNTIME_USER_OUTPUT_ERROR"
    INTERNAL = "E_AZHPC_USQL_INTERNAL"
    CANCELLED = "E_AZHPC_USQL_CANCELLED"


class UsqlError(AzhpcError):
    """A U-SQL compile or run time error with an ADLA-style code and a script position.

    Attributes
    ----------
    code : ErrorCode
        What kind of error this is.
    message : str
        The explanation, without position.
    script : str
        The script's name (``script.usql`` unless the caller named it).
    line, column : int
        1-based position of the offending token; 0 when unknown.
    source_line : str
        The script line at ``line`` (empty when unknown).
    length : int
        How many characters the caret underlines.
    file, row : str, int
        For run time errors while reading input: the lake path and 1-based row.
    details : str
        Extra text shown after the caret (for example a Python traceback).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        script: str = "script.usql",
        span: Span | None = None,
        source: str = "",
        file: str = "",
        row: int = 0,
        details: str = "",
    ) -> None:
        self.code = ErrorCode(code)
        self.message = message
        self.script = script
        self.line = span.line if span else 0
        self.column = span.column if span else 0
        self.length = span.length if span else 1
        self.source_line = _line_of(source, self.line) if source and span else ""
        self.file = file
        self.row = row
        self.details = details
        super().__init__(self.headline)

    @property
    def headline(self) -> str:
        """The first line: ``SCRIPT:LINE:COL: CODE: message``."""
        return f"{self.script}:{self.line}:{self.column}: {self.code.value}: {self.message}"

    @property
    def caret(self) -> str:
        """Spaces and carets that sit under the offending token in :attr:`source_line`."""
        if not self.source_line or not self.column:
            return ""
        prefix = "".join("\t" if ch == "\t" else " " for ch in self.source_line[: self.column - 1])
        width = max(1, min(self.length, len(self.source_line) - self.column + 1))
        return prefix + "^" * width

    def __str__(self) -> str:
        lines = [self.headline]
        if self.source_line:
            lines += [self.source_line, self.caret]
        if self.details:
            lines += ["", self.details.rstrip()]
        return "\n".join(lines)

    def __reduce__(self):
        return (_rebuild, (type(self), self.__dict__.copy()))

    def _render_traceback_(self) -> list[str]:
        """IPython hook: show the script position, not the engine's internals."""
        red, reset = "\x1b[0;31m", "\x1b[0m"
        first, *rest = str(self).splitlines()
        return [f"{red}UsqlError{reset}: {first}", *rest]


def _line_of(source: str, line: int) -> str:
    lines = source.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _rebuild(cls: type, state: dict) -> UsqlError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("script", ""))
    error.__dict__.update(state)
    return error
