"""A local backend node: one long-lived worker process, run as ``python -m azhpc.worker node``.

The client and the node talk over the node's stdin/stdout pipes in length-prefixed pickle
frames. Small task inputs and results travel in the frame; large ones travel as payload files
in a shared-memory folder (``/dev/shm``), which the reader maps instead of copying.

Messages, client -> node::

    ("hello", {"node": str, "sys_path": [...], "scratch": folder})
    ("function", digest, pickle_bytes)
    ("shared", job_id, ref)                 # the job's shared input, before its first task
    ("task", job_id, task_id, attempt, digest, ref)
    ("forget", digest, job_id)

node -> client::

    ("ready", pid)
    ("done", job_id, task_id, attempt, ref)

where ``ref`` is ``("inline", stream, [buffers])`` or ``("file", path)``. The node exits when
its stdin closes, and (Linux) when its parent dies.
"""

from __future__ import annotations

import functools
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from typing import Any, BinaryIO

from azhpc.core.outcome import RemoteError, TaskOutcome, hide_traceback_frames
from azhpc.core.payload import Payload, read_payload_file, write_payload_file
from azhpc.core.states import TaskResult
from azhpc.core.worker import encode_outcome, rebuild, run_task
from azhpc.errors import SerializationError

__all__ = ["INLINE_LIMIT", "from_ref", "read_frame", "serve", "to_ref", "write_frame"]

#: Payloads whose out-of-band buffers are larger than this travel as files, not in frames.
INLINE_LIMIT = 1 << 20

_HEADER = struct.Struct("<Q")

hide_traceback_frames(__file__)  # a task's traceback starts in the user's code, not here


def write_frame(out: BinaryIO, message: tuple[Any, ...]) -> None:
    """Write one length-prefixed pickle frame and flush it."""
    data = pickle.dumps(message, protocol=5)
    out.write(_HEADER.pack(len(data)))
    out.write(data)
    out.flush()


def read_frame(inp: BinaryIO) -> tuple[Any, ...] | None:
    """Read one frame; ``None`` at end of stream."""
    header = inp.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = inp.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def to_ref(payload: Payload, path: str) -> tuple[Any, ...]:
    """Describe ``payload`` for a frame: inline when small, else written to ``path``."""
    if payload.buffer_bytes <= INLINE_LIMIT:
        return ("inline", payload.data, [bytes(b) for b in payload.buffers])
    write_payload_file(path, payload)
    return ("file", path)


def from_ref(ref: tuple[Any, ...], *, unlink: bool = False) -> Payload:
    """Rebuild the payload a :func:`to_ref` described (mapping, not copying, a file)."""
    if ref[0] == "inline":
        # bytearray, not bytes: objects rebuilt from the buffers must be writable.
        return Payload(ref[1], tuple(memoryview(bytearray(b)) for b in ref[2]))
    payload = read_payload_file(ref[1])
    if unlink:
        os.unlink(ref[1])
    return payload


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def serve(inp: BinaryIO, out: BinaryIO, *, parent_pid: int | None = None) -> None:
    """Run the node loop on the given protocol streams until the input closes."""
    hello = read_frame(inp)
    if hello is None or hello[0] != "hello":
        return
    config = hello[1]
    for entry in reversed(config.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    scratch = config["scratch"]
    node = config["node"]
    slots = int(config.get("slots", 1))

    raw_functions: dict[str, bytes] = {}
    functions: dict[str, Any] = {}
    shared_refs: dict[str, tuple[Any, ...]] = {}
    shared: dict[str, Any] = {}
    shared_lock = threading.Lock()
    tasks: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    send_lock = threading.Lock()

    def read_loop() -> None:
        while True:
            message = read_frame(inp)
            if message is None:
                os._exit(0)  # the client closed our stdin or died: nothing left to do
            kind = message[0]
            if kind == "function":
                raw_functions[message[1]] = message[2]
            elif kind == "shared":
                shared_refs[message[1]] = message[2]
            elif kind == "forget":
                raw_functions.pop(message[1], None)
                functions.pop(message[1], None)
                shared_refs.pop(message[2], None)
                shared.pop(message[2], None)
            elif kind == "task":
                tasks.put(message)

    def work_loop() -> None:
        while True:
            message = tasks.get()
            if message is None:
                return
            _, job_id, task_id, attempt, digest, ref = message
            # Whatever user data raises here (SystemExit from a __reduce__ included) becomes
            # the task's failure: an error escaping would end this slot's thread, and the
            # task would never report.
            try:
                function = functions.get(digest)
                if function is None:
                    raw = raw_functions[digest]
                    function = functions[digest] = rebuild(raw, what="the job's function")
                if job_id in shared_refs:
                    with shared_lock:  # map and rebuild it once per job, whatever the slots
                        if job_id not in shared:
                            shared[job_id] = rebuild(
                                from_ref(shared_refs[job_id]), what="the job's shared input"
                            )
                    function = functools.partial(function, shared[job_id])
                task_input = rebuild(from_ref(ref), what=f"the input of {task_id}")
            except SerializationError as exc:  # the task's failure, not the worker's death
                outcome = TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(exc))
            except BaseException as exc:  # e.g. SystemExit raised while unpickling
                outcome = _failure(f"the function or input of {task_id} could not be rebuilt", exc)
            else:
                try:
                    outcome = run_task(function, task_input)
                except BaseException as exc:  # KeyboardInterrupt raised by the task itself
                    outcome = _failure(f"{task_id} raised", exc)
            try:
                payload = encode_outcome(outcome)
            except BaseException as exc:
                payload = encode_outcome(
                    _failure(f"the result of {task_id} could not be pickled", exc)
                )
            result = to_ref(
                payload, os.path.join(scratch, f"out-{node}-{job_id}-{task_id}-{attempt}")
            )
            with send_lock:
                write_frame(out, ("done", job_id, task_id, attempt, result))

    threading.Thread(target=read_loop, name="azhpc-node-reader", daemon=True).start()
    with send_lock:
        write_frame(out, ("ready", os.getpid()))
    for _ in range(slots - 1):
        threading.Thread(target=work_loop, name="azhpc-node-slot", daemon=True).start()
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)  # the parent died before we asked to die with it
    work_loop()


def _failure(what: str, exc: BaseException) -> TaskOutcome:
    """The outcome of a task that failed on the worker outside its function's own call."""
    error = SerializationError(f"{what} on the worker: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(error))


def main() -> None:
    """Entry point of ``python -m azhpc.worker node``: take over stdin/stdout for the protocol."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the client's to handle
    _die_with_parent()
    parent = int(os.environ.get("AZHPC_PARENT_PID", "0")) or None
    # The protocol owns the original stdin/stdout; whatever a task writes to fd 1 goes to
    # stderr instead, and nothing a task reads from fd 0 can steal protocol bytes.
    inp = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(inp, out, parent_pid=parent)
