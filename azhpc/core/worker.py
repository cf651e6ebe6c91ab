"""The worker side of a task: run a function on an input and describe what happened.

:func:`run_task` is an ordinary function that tests call directly; the backends call it on
their nodes. ``python -m azhpc.worker`` is a thin command-line wrapper around this module
(:func:`run_batch_task` for a Batch task) and around the local backend's node loop.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable
from typing import Any

from azhpc.core.outcome import RemoteError, TaskOutcome
from azhpc.core.payload import Payload, decode, encode, payload_from_bytes, payload_to_bytes
from azhpc.core.states import TaskResult
from azhpc.errors import IntegrityError, SerializationError

__all__ = [
    "BATCH_FILES",
    "JOB_ID_VARIABLE",
    "PAYLOADS_VARIABLE",
    "RETRIES_VARIABLE",
    "encode_outcome",
    "parse_payload_digests",
    "payload_digests",
    "rebuild",
    "run_batch_task",
    "run_task",
]

#: The files of a Batch task in its working folder: inputs (ResourceFiles) and outcome.
BATCH_FILES = {
    "function": "azhpc-function",
    "input": "azhpc-input",
    "shared": "azhpc-shared",
    "outcome": "azhpc-outcome",
}
#: The environment variable holding the azhpc job id on Batch nodes (outcomes are signed for
#: it, with the task id).
JOB_ID_VARIABLE = "AZHPC_JOB_ID"
#: The environment variable naming the SHA-256 of each payload a Batch task downloads
#: (``function=<hex>;input=<hex>[;shared=<hex>]``): the node checks them before unpickling.
PAYLOADS_VARIABLE = "AZHPC_PAYLOADS"


def payload_digests(digests: dict[str, str]) -> str:
    """The :data:`PAYLOADS_VARIABLE` value for ``{name: digest}``."""
    return ";".join(f"{name}={digest}" for name, digest in sorted(digests.items()))


def parse_payload_digests(text: str) -> dict[str, str]:
    """``{name: digest}`` from a :data:`PAYLOADS_VARIABLE` value."""
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {name: digest for name, digest in pairs}


#: The environment variable holding a Batch task's ``retries`` (runs again after its function
#: raised); Batch's own ``maxTaskRetryCount`` is left for workers that die.
RETRIES_VARIABLE = "AZHPC_TASK_RETRIES"

#: Keep at most this much of what a task prints (the end of it).
OUTPUT_LIMIT = 1 << 20


class _Capture(io.TextIOBase):
    """Collects what a task prints, keeping the last :data:`OUTPUT_LIMIT` characters."""

    def __init__(self, echo: io.TextIOBase | None = None) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._echo = echo

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._echo is not None:
            self._echo.write(text)
        self._parts.append(text)
        self._size += len(text)
        if self._size > 2 * OUTPUT_LIMIT:
            kept = "".join(self._parts)[-OUTPUT_LIMIT:]
            self._parts, self._size = [kept], len(kept)
        return len(text)

    def getvalue(self) -> str:
        return "".join(self._parts)[-OUTPUT_LIMIT:]


def rebuild(payload: Payload | bytes, *, what: str) -> Any:
    """Unpickle ``payload`` on a worker; a failure is a :class:`SerializationError` saying so.

    Parameters
    ----------
    payload
        What the client encoded.
    what
        How to name it in the message (``"the input of task-00003"``, ``"the function"``).

    Raises
    ------
    SerializationError
        The object could not be rebuilt here (a module it needs is missing on the worker, or
        its class's ``__setstate__`` / ``__reduce__`` fails here); the message has the
        unpickling error and what to do.
    """
    try:
        return decode(payload)
    except Exception as exc:
        raise SerializationError(
            f"{what} could not be rebuilt (unpickled) on the worker: "
            f"{type(exc).__name__}: {exc}. A module it needs may be missing on the worker, or "
            "its class may fail to rebuild there (its __reduce__ or __setstate__ raised). "
            "Make the module importable on the workers, or pass plain data (numbers, "
            "strings, frames, a path or lake URL) and build the object inside the function."
        ) from exc


def run_task(
    function: Callable[[Any], Any],
    task_input: Any,
    *,
    capture_output: bool = True,
    echo_output: bool = False,
    in_caller: bool = False,
) -> TaskOutcome:
    """Run ``function(task_input)`` and return its outcome; never raises for the task's errors.

    Parameters
    ----------
    function
        The job's function (one of :mod:`azhpc.core.calls`, or any callable of one argument).
    task_input
        This task's input.
    capture_output
        Collect what the task prints (``sys.stdout``/``sys.stderr``) into the outcome.
    echo_output
        Also print it as it comes (the in-process debug backend).
    in_caller
        The task runs in the user's own process (the debug backend): ``KeyboardInterrupt``
        is the user's Ctrl-C and propagates. Elsewhere (worker processes ignore SIGINT) a
        ``KeyboardInterrupt``, like any other ``BaseException``, is the task's own failure.

    Returns
    -------
    TaskOutcome
        Success with the return value, or failure with the remote error and its traceback.
    """
    capture = _Capture(sys.stdout if echo_output else None) if capture_output else None
    started = time.perf_counter()
    try:
        if capture is None:
            value = function(task_input)
        else:
            with contextlib.redirect_stdout(capture), contextlib.redirect_stderr(capture):
                value = function(task_input)
    except BaseException as exc:  # the task's error becomes its outcome
        if in_caller and isinstance(exc, KeyboardInterrupt):
            raise
        return TaskOutcome(
            TaskResult.FAILURE,
            error=RemoteError.capture(exc),
            output=capture.getvalue() if capture else "",
            seconds=time.perf_counter() - started,
        )
    return TaskOutcome(
        TaskResult.SUCCESS,
        value=value,
        output=capture.getvalue() if capture else "",
        seconds=time.perf_counter() - started,
    )


def encode_outcome(outcome: TaskOutcome) -> Payload:
    """Serialize an outcome; a return value that cannot be pickled becomes the task's failure."""
    try:
        return encode(outcome, what="the task's outcome")
    except SerializationError as exc:
        kind = type(_unpicklable_part(outcome.value))
        cause = exc.__cause__ or exc
        try:  # raised, so that the error carries the pickling error as its cause
            raise SerializationError(
                f"the task's return value could not be sent back from the worker: it is or "
                f"holds a {kind.__module__}.{kind.__qualname__}, which cannot be pickled "
                f"({type(cause).__name__}: {cause}). Return plain data "
                "(numbers, strings, lists, dicts, frames, arrays) instead: for an open file or "
                "a connection, return what you read from it, or write to the lake and return "
                "the path."
            ) from cause
        except SerializationError as error:
            back = error
        failure = TaskOutcome(
            TaskResult.FAILURE,
            error=RemoteError.capture(back),
            output=outcome.output,
            node=outcome.node,
            seconds=outcome.seconds,
        )
        return encode(failure, what="the task's outcome")


def _unpicklable_part(value: Any, depth: int = 0) -> Any:
    """The innermost item of a list, tuple or dict ``value`` that does not pickle (else
    ``value``): the map wrappers return lists of the user's values."""
    if depth < 8 and isinstance(value, list | tuple | dict):
        for item in value.values() if isinstance(value, dict) else value:
            try:
                encode(item)
            except SerializationError:
                return _unpicklable_part(item, depth + 1)
    return value


def run_batch_task(working_dir: str = ".") -> int:
    """Run one Batch task from the files its ResourceFiles put in ``working_dir``.

    Reads :data:`BATCH_FILES` ``function``, ``input`` and (if present) ``shared``, runs the
    task, and writes its outcome, signed with this node's own key for this job
    (``$AZHPC_JOB_ID``) and task (:mod:`~azhpc.core.node_signing`), to the ``outcome`` file,
    which the task's OutputFiles upload. Each input is checked against the hash the task's
    definition names (``$AZHPC_PAYLOADS``) before it is unpickled.

    A function that raises is run again in this process up to ``$AZHPC_TASK_RETRIES`` more
    times (the job's ``retries``); the outcome lists the earlier attempts' errors. Returns 0
    whenever an outcome was written, success or failure: a non-zero exit means the worker
    died (killed, out of memory, crashed), which Batch's ``maxTaskRetryCount`` (the job's
    ``max_worker_losses``) retries, as the local backend replaces a dead worker.
    """
    import dataclasses
    import functools
    import os

    from azhpc.core.node_signing import node_key_path, sign_outcome

    job_id = os.environ.get(JOB_ID_VARIABLE)
    expected = parse_payload_digests(os.environ.get(PAYLOADS_VARIABLE, ""))
    if not job_id or "function" not in expected or "input" not in expected:
        print(
            f"azhpc: ${JOB_ID_VARIABLE} or ${PAYLOADS_VARIABLE} is not set; this task was not "
            "started by azhpc",
            file=sys.stderr,
        )
        return 2

    def load(name: str) -> Any:
        what = f"the task's {name}"
        with open(os.path.join(working_dir, BATCH_FILES[name]), "rb") as f:
            payload = payload_from_bytes(f.read(), what=what)
        # Checked against the hash the task definition names, before anything is unpickled:
        # whoever can write to the lake can replace the file the node downloaded.
        if payload.digest() != expected.get(name):
            raise IntegrityError(
                f"{what} does not match the hash in the task's definition: it was changed in "
                "the lake after the client staged it; it is not loaded"
            )
        return rebuild(payload, what=what)

    if os.path.exists(os.path.join(working_dir, BATCH_FILES["shared"])) != ("shared" in expected):
        print("azhpc: the task's shared input is not the one its definition names", file=sys.stderr)
        return 2

    try:
        function = load("function")
        if os.path.exists(os.path.join(working_dir, BATCH_FILES["shared"])):
            function = functools.partial(function, load("shared"))
        task_input = load("input")
    except Exception as exc:  # e.g. a module the node does not have: the task's failure
        outcome = TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(exc))
    else:
        retries = _retries_setting(os.environ.get(RETRIES_VARIABLE))
        earlier: list[RemoteError] = []
        outcome = run_task(function, task_input)
        while not outcome.ok and outcome.error is not None and len(earlier) < retries:
            earlier.append(outcome.error)
            outcome = run_task(function, task_input)
        outcome = dataclasses.replace(outcome, retried=tuple(earlier))
    node = os.environ.get("AZ_BATCH_NODE_ID")
    if node:
        outcome = dataclasses.replace(outcome, node=node)
    task_id = os.environ.get("AZ_BATCH_TASK_ID", "")
    data = sign_outcome(
        node_key_path(), job_id, task_id, node or "", payload_to_bytes(encode_outcome(outcome))
    )
    path = os.path.join(working_dir, BATCH_FILES["outcome"])
    tmp = f"{path}.partial-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return 0


def _retries_setting(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0
