"""The worker processes ("nodes") of the local backend: starting them (their environment,
thread limits, the hello), writing frames to their stdin, reading frames and stderr from their
pipes, and stopping them at close. What the messages mean, which task goes where and what
happens when a node dies is the scheduler's (:mod:`azhpc.backends.local.backend`).
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azhpc.backends.local.node import write_frame
from azhpc.version import PACKAGE_FOLDER

if TYPE_CHECKING:
    import itertools

__all__ = ["EXIT_GRACE", "NodeProcess", "WorkerProcesses", "echo_stderr", "kill_process"]

#: Seconds to wait for nodes to exit on their own at close before killing them.
EXIT_GRACE = 2.0
#: How much of a node's stderr to keep for error messages.
STDERR_TAIL = 4096

_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@dataclass
class NodeProcess:
    """One worker process, its pipes' unread bytes and what it runs and holds."""

    node_id: str
    proc: subprocess.Popen[bytes]
    slots: int
    ready: bool = False
    alive: bool = True
    running: dict[tuple[str, str], int] = field(default_factory=dict)
    functions: set[str] = field(default_factory=set)
    shared_jobs: set[str] = field(default_factory=set)
    buffer: bytearray = field(default_factory=bytearray)
    stderr_tail: bytearray = field(default_factory=bytearray)

    @property
    def free(self) -> int:
        return self.slots - len(self.running) if self.alive else 0


class WorkerProcesses:
    """The process half of :class:`~azhpc.backends.local.backend.LocalBackend`: start, write
    to, read from and stop its nodes. Runs on the scheduler thread only.

    A mixin: it works on the backend's state, declared here.
    """

    workers: int
    slots: int
    python: str
    _scratch: str
    _node_ids: itertools.count[int]
    _nodes: list[NodeProcess]
    _selector: selectors.BaseSelector
    _startup_failures: int

    if TYPE_CHECKING:

        def _task_done(
            self, node: NodeProcess, job_id: str, task_id: str, attempt: int, ref: Any
        ) -> None: ...

        def _lost(self, node: NodeProcess, *, killed_for_cancel: bool = False) -> None: ...

    def _spawn(self) -> None:
        node_id = f"node-{next(self._node_ids)}"
        env = dict(os.environ)
        share = str(max(1, (os.cpu_count() or 1) // self.workers))
        for var in _THREAD_VARS:
            env.setdefault(var, share)
        package_root = os.path.dirname(PACKAGE_FOLDER)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        env["AZHPC_PARENT_PID"] = str(os.getpid())
        proc = subprocess.Popen(
            [self.python, "-m", "azhpc.worker", "node"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C is for the client, not the workers
        )
        node = NodeProcess(node_id, proc, self.slots)
        assert proc.stdout is not None and proc.stderr is not None
        self._selector.register(proc.stdout, selectors.EVENT_READ, (node, "out"))
        self._selector.register(proc.stderr, selectors.EVENT_READ, (node, "err"))
        self._nodes.append(node)
        hello = {
            "node": node_id,
            "sys_path": [p for p in sys.path if p],
            "scratch": self._scratch,
            "slots": self.slots,
        }
        self._write(node, ("hello", hello))

    def _write(self, node: NodeProcess, message: tuple[Any, ...]) -> bool:
        try:
            assert node.proc.stdin is not None
            write_frame(node.proc.stdin, message)
            return True
        except (BrokenPipeError, OSError):
            self._lost(node)
            return False

    def _read_node(self, node: NodeProcess) -> None:
        assert node.proc.stdout is not None
        chunk = os.read(node.proc.stdout.fileno(), 1 << 20)
        if not chunk:
            self._lost(node)
            return
        node.buffer += chunk
        while len(node.buffer) >= 8:
            (size,) = struct.unpack_from("<Q", node.buffer)
            if len(node.buffer) < 8 + size:
                break
            message = pickle.loads(bytes(node.buffer[8 : 8 + size]))
            del node.buffer[: 8 + size]
            if message[0] == "ready":
                node.ready = True
                self._startup_failures = 0
            elif message[0] == "done":
                self._task_done(node, *message[1:])

    def _read_stderr(self, node: NodeProcess) -> None:
        assert node.proc.stderr is not None
        chunk = os.read(node.proc.stderr.fileno(), 1 << 16)
        if not chunk:
            self._selector.unregister(node.proc.stderr)
            return
        echo_stderr(node, chunk)

    def _drain_stderr(self, node: NodeProcess) -> None:
        """Keep what a dead node wrote to stderr but was not read yet (its last words).

        The stdout EOF that reports the death can come before the stderr bytes are read; the
        pipe is read without blocking, since a child of the node may still hold it open.
        """
        stream = node.proc.stderr
        if stream is None or stream.closed:
            return
        fd = stream.fileno()
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            echo_stderr(node, chunk)

    def _shutdown(self) -> None:
        for node in self._nodes:
            if node.proc.stdin is not None:
                try:
                    node.proc.stdin.close()
                except OSError:
                    pass
        for node in self._nodes:
            try:
                node.proc.wait(timeout=EXIT_GRACE)
            except subprocess.TimeoutExpired:
                kill_process(node.proc)
            for stream in (node.proc.stdout, node.proc.stderr):
                if stream is not None:
                    stream.close()
        self._nodes.clear()
        self._selector.close()


def echo_stderr(node: NodeProcess, chunk: bytes) -> None:
    """Keep the tail of what a node wrote to stderr, and pass it on to the client's stderr."""
    node.stderr_tail = (node.stderr_tail + chunk)[-STDERR_TAIL:]
    try:
        sys.stderr.write(chunk.decode(errors="replace"))
    except Exception:  # a closed or odd stderr must not stop the scheduler
        pass


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    proc.wait()
