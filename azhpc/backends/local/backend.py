"""The local backend: a pool of long-lived worker processes ("nodes") on this machine.

One scheduler thread owns everything: it starts the nodes, hands each free task slot the next
queued task, reads results as they arrive, retries failed tasks, and replaces a node that dies
(killed, out of memory), running its tasks again elsewhere. Other threads talk to it only
through a command queue, so no state is shared between threads.

Large inputs and results move through payload files in a shared-memory folder, mapped rather
than copied (see :mod:`azhpc.backends.local.node`). Closing the backend stops every node;
nodes also exit on their own when the client process dies.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import selectors
import shutil
import signal
import sys
import threading
import traceback
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from azhpc.backends.base import Backend
from azhpc.backends.local.node import from_ref, to_ref
from azhpc.backends.local.scratch import make_scratch_folder
from azhpc.backends.local.workers import EXIT_GRACE, NodeProcess, WorkerProcesses, kill_process
from azhpc.core.outcome import RemoteError, TaskOutcome
from azhpc.core.payload import decode
from azhpc.core.states import TaskResult
from azhpc.errors import ConfigError, SerializationError, SessionStoppedError, WorkerLostError

if TYPE_CHECKING:
    from azhpc.core.job import JobEvents
    from azhpc.core.spec import JobSpec

__all__ = ["LocalBackend", "create_backend"]

#: After this many nodes in a row die before they are ready, stop starting new ones.
STARTUP_FAILURES_LIMIT = 3


@dataclass
class _JobRun:
    spec: JobSpec
    events: JobEvents
    refs: dict[str, tuple[Any, ...]]
    shared_ref: tuple[Any, ...] | None = None
    attempts: collections.Counter[str] = field(default_factory=collections.Counter)
    losses: collections.Counter[str] = field(default_factory=collections.Counter)
    remaining: int = 0


class LocalBackend(WorkerProcesses, Backend):
    """Worker processes on this machine.

    Parameters
    ----------
    workers
        How many worker processes ("nodes"); default: one per CPU core.
    slots
        Tasks each worker runs at once (in threads; useful for I/O-bound tasks). Default 1.
    python
        The Python executable for the workers; default: the client's own.
    """

    name: ClassVar[str] = "local"

    def __init__(
        self, *, workers: int | None = None, slots: int = 1, python: str | None = None
    ) -> None:
        if workers is None:
            workers = os.cpu_count() or 1
        for label, value in (("workers", workers), ("slots", slots)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{label} must be a whole number >= 1, got {value!r}")
        self.workers = workers
        self.slots = slots
        self.python = python or sys.executable
        self._scratch = make_scratch_folder()
        self._commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._closed = False
        self._stopped: str | None = None
        self._pid = os.getpid()
        self._node_ids = itertools.count(1)
        self._stage_ids = itertools.count()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="azhpc-local", daemon=True)
        self._finalizer = weakref.finalize(
            self, _release, self._scratch, (self._wake_r, self._wake_w), self._pid
        )
        # At interpreter exit the session's close() releases these, after stopping the nodes;
        # running it earlier (finalize's own exit hook) would cut the scheduler's wake pipe.
        # The finalizer is only for a backend dropped without close(): once finalize's exit
        # hook has run, calling it does nothing, so close() releases by hand (see close).
        self._finalizer.atexit = False
        self._thread.start()

    # -- the client-side API (any thread) -----------------------------------------------------

    @property
    def total_slots(self) -> int:
        return self.workers * self.slots

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "workers": self.workers, "slots": self.slots}

    @property
    def stopped(self) -> str | None:
        """Why this backend runs no more jobs although nobody closed it, or ``None``.

        Set when the scheduler thread died, or in a process forked from the one that
        started it (the fork has the backend's objects but not its thread or workers).
        """
        if os.getpid() != self._pid:
            return f"it belongs to process {self._pid}; this process is a fork of it"
        return self._stopped

    def submit(self, spec: JobSpec, events: JobEvents) -> None:
        self._check_open()
        refs = {}
        for task in spec.tasks:
            path = os.path.join(self._scratch, f"in-{spec.job_id}-{next(self._stage_ids)}")
            refs[task.task_id] = to_ref(task.input, path)
        shared_ref = None
        if spec.shared is not None:
            shared_ref = to_ref(spec.shared, os.path.join(self._scratch, f"shared-{spec.job_id}"))
        run = _JobRun(spec, events, refs, shared_ref=shared_ref, remaining=len(spec.tasks))
        self._send(("submit", run))
        if self._stopped is not None:  # the scheduler died meanwhile: nobody reads the queue
            self._answer_commands_after_stop()

    def cancel(self, job_id: str) -> None:
        if self._closed or self.stopped is not None:
            return
        if threading.current_thread() is self._thread:
            # From a job's done-callback, which runs on the scheduler thread: act now,
            # rather than wait for ourselves.
            self._cancel(job_id)
            return
        done = threading.Event()
        self._send(("cancel", job_id, done))
        done.wait(timeout=30)

    def close(self) -> None:
        if self._closed:
            return
        if os.getpid() != self._pid:
            self._closed = True  # the workers and the scratch folder are the parent's
            return
        if threading.current_thread() is self._thread:
            raise ConfigError(
                "a session cannot be closed from a job's done-callback; close it from the "
                "code that waits for the job"
            )
        self._closed = True
        if self._thread.is_alive():
            done = threading.Event()
            self._send(("close", done))
            done.wait(timeout=EXIT_GRACE + 10)
            self._thread.join(timeout=5)
        # Not self._finalizer(): after weakref.finalize's own exit hook (which runs before
        # azhpc's, at interpreter exit) a finalizer call is a no-op, and the folder stayed.
        if self._finalizer.detach() is not None:
            _release(self._scratch, (self._wake_r, self._wake_w), self._pid)

    def node_pids(self) -> list[int]:
        """The process ids of the live worker processes (for diagnostics and tests)."""
        if self._closed or self.stopped is not None:
            return []
        reply: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        self._send(("pids", reply))
        return reply.get(timeout=30)

    def _check_open(self) -> None:
        stopped = self.stopped
        if stopped is not None:
            raise SessionStoppedError(
                f"this session's local backend runs no more jobs: {stopped}. "
                "Open a new session with azhpc.connect()"
            )
        if self._closed:
            raise ConfigError("this session is closed; open a new one with azhpc.connect()")

    def _send(self, command: tuple[Any, ...]) -> None:
        self._commands.put(command)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # -- the scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a bug here must fail the jobs, not hang them
            self._stopped = f"its scheduler thread stopped: {type(exc).__name__}: {exc}"
            self._fatal = f"the local scheduler stopped: {type(exc).__name__}: {exc}"
            self._fail_queued(self._fatal, everything=True)
            self._answer_commands_after_stop()
            for node in list(self._nodes):
                kill_process(node.proc)
            raise

    def _answer_commands_after_stop(self) -> None:
        """Once the scheduler has stopped, fail the jobs and release the callers still in the
        command queue (any thread may call this; each command is taken once)."""
        reason = self._fatal or "the local scheduler stopped"
        error = RemoteError.capture(WorkerLostError(reason))
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            kind = command[0]
            if kind == "submit":
                run: _JobRun = command[1]
                for task in run.spec.tasks:
                    try:
                        outcome = TaskOutcome(TaskResult.FAILURE, error=error)
                        run.events.task_completed(task.task_id, outcome)
                    except BaseException:
                        _report_callback_error(run.spec.job_id)
            elif kind == "cancel":
                command[2].set()
            elif kind == "close":
                command[1].set()
            elif kind == "pids":
                command[1].put([])

    def _serve(self) -> None:
        self._nodes: list[NodeProcess] = []
        self._jobs: dict[str, _JobRun] = {}
        self._queue: collections.deque[tuple[str, str]] = collections.deque()
        self._fatal: str | None = None
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._startup_failures = 0
        for _ in range(self.workers):
            self._spawn()
        closing: threading.Event | None = None
        while closing is None:
            for key, _ in self._selector.select():
                if key.data is None:
                    os.read(self._wake_r, 4096)
                    closing = self._handle_commands()
                elif not key.data[0].alive:
                    continue  # lost earlier in this batch of events
                elif key.data[1] == "out":
                    self._read_node(key.data[0])
                else:
                    self._read_stderr(key.data[0])
            self._dispatch()
        self._shutdown()
        closing.set()

    def _handle_commands(self) -> threading.Event | None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return None
            kind = command[0]
            if kind == "submit":
                run: _JobRun = command[1]
                self._jobs[run.spec.job_id] = run
                self._queue.extend((run.spec.job_id, t.task_id) for t in run.spec.tasks)
            elif kind == "cancel":
                self._cancel(command[1])
                command[2].set()
            elif kind == "pids":
                command[1].put([n.proc.pid for n in self._nodes if n.alive])
            elif kind == "close":
                return command[1]

    def _dispatch(self) -> None:
        while self._queue:
            node = max(self._nodes, key=lambda n: n.free, default=None)
            if node is None and self._fatal:
                # No node will start again: fail what waits, including a task put back
                # below because its node died while taking it.
                self._fail_queued(self._fatal)
                return
            if node is None or node.free <= 0:
                return
            job_id, task_id = self._queue.popleft()
            run = self._jobs.get(job_id)
            if run is None:
                continue
            digest = run.spec.function.digest()
            if digest not in node.functions:
                if not self._write(node, ("function", digest, run.spec.function.data)):
                    self._queue.appendleft((job_id, task_id))
                    continue
                node.functions.add(digest)
            if run.shared_ref is not None and job_id not in node.shared_jobs:
                if not self._write(node, ("shared", job_id, run.shared_ref)):
                    self._queue.appendleft((job_id, task_id))
                    continue
                node.shared_jobs.add(job_id)
            run.attempts[task_id] += 1
            attempt = run.attempts[task_id]
            node.running[(job_id, task_id)] = attempt
            message = ("task", job_id, task_id, attempt, digest, run.refs[task_id])
            if self._write(node, message):
                run.events.task_running(task_id, node=node.node_id)

    def _task_done(
        self, node: NodeProcess, job_id: str, task_id: str, attempt: int, ref: Any
    ) -> None:
        node.running.pop((job_id, task_id), None)
        self._dispatch()  # keep the node busy before decoding this result
        run = self._jobs.get(job_id)
        try:
            outcome: TaskOutcome = decode(from_ref(ref, unlink=True))
        except BaseException as exc:  # user data: SystemExit from a __reduce__ included
            if run is None:
                return
            error = SerializationError(
                f"the result of {task_id} could not be rebuilt in the client: "
                f"{type(exc).__name__}: {exc}. Return plain data (numbers, lists, dicts, "
                "frames, arrays) or classes importable on both sides."
            )
            outcome = TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(error))
        if run is None:
            return  # the job was cancelled meanwhile
        if not outcome.ok and run.attempts[task_id] <= run.spec.retries:
            assert outcome.error is not None
            run.events.task_retrying(task_id, error=outcome.error)
            self._queue.append((job_id, task_id))
            return
        self._complete(run, task_id, outcome)

    def _complete(self, run: _JobRun, task_id: str, outcome: TaskOutcome) -> None:
        ref = run.refs.pop(task_id, None)
        if ref is not None and ref[0] == "file":
            _unlink(ref[1])
        run.remaining -= 1
        if run.remaining <= 0:
            self._forget(run)
        try:
            run.events.task_completed(task_id, outcome)
        except BaseException:  # a done-callback's error (SystemExit too) is the caller's
            _report_callback_error(run.spec.job_id)

    def _forget(self, run: _JobRun) -> None:
        job_id = run.spec.job_id
        self._jobs.pop(job_id, None)
        for ref in [*run.refs.values(), run.shared_ref]:
            if ref is not None and ref[0] == "file":
                _unlink(ref[1])
        digest = run.spec.function.digest()
        in_use = any(r.spec.function.digest() == digest for r in self._jobs.values())
        for node in self._nodes:
            if node.alive and (job_id in node.shared_jobs or digest in node.functions):
                node.shared_jobs.discard(job_id)
                if not in_use:
                    node.functions.discard(digest)
                self._write(node, ("forget", "" if in_use else digest, job_id))

    def _lost(self, node: NodeProcess, *, killed_for_cancel: bool = False) -> None:
        """A node died (or its pipe broke): run its tasks again elsewhere and replace it.

        With ``killed_for_cancel`` the node was stopped on purpose to cancel a job: its other
        tasks are requeued without counting against them.
        """
        if not node.alive:
            return
        node.alive = False
        for stream in (node.proc.stdout, node.proc.stderr):
            try:
                self._selector.unregister(stream)
            except (KeyError, ValueError):
                pass
        kill_process(node.proc)
        self._drain_stderr(node)
        code = node.proc.returncode
        self._nodes.remove(node)
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"exit code {code}"
        )
        if not node.ready and not killed_for_cancel:
            # A node we killed ourselves (to cancel a job) before it said it was ready did
            # not fail to start: counting it would stop the pool after a few quick cancels.
            self._startup_failures += 1
        for (job_id, task_id), _ in list(node.running.items()):
            run = self._jobs.get(job_id)
            if run is None:
                continue
            if killed_for_cancel:
                error = RemoteError("azhpc.errors.WorkerLostError", "node stopped", "")
                run.events.task_retrying(task_id, error=error, requeue=True)
                self._queue.appendleft((job_id, task_id))
                continue
            run.losses[task_id] += 1
            message = (
                f"worker {node.node_id} (pid {node.proc.pid}) died while running {task_id} "
                f"({how}; out of memory, a crash in native code, or a kill)"
            )
            error = RemoteError("azhpc.errors.WorkerLostError", message, message + "\n")
            if run.losses[task_id] > run.spec.max_worker_losses:
                final = WorkerLostError(
                    f"{message}; it took its worker down {run.losses[task_id]} times, so it "
                    "is not retried again. Check the task's memory use, or give it more "
                    "memory per worker with fewer workers: azhpc.connect(workers=N)."
                )
                outcome = TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(final))
                self._complete(run, task_id, outcome)
            else:
                run.events.task_retrying(task_id, error=error)
                self._queue.appendleft((job_id, task_id))
        node.running.clear()
        for stream in (node.proc.stdin, node.proc.stdout, node.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self._closed:
            return
        if self._startup_failures >= STARTUP_FAILURES_LIMIT:
            tail = node.stderr_tail.decode(errors="replace").strip()
            self._fatal = (
                f"local workers cannot start ({self.python} -m azhpc.worker node: {how}). "
                f"Their last words:\n{tail or '(nothing)'}\nCheck that azhpc is installed "
                "for that Python."
            )
            return  # _dispatch fails what is queued once no node is left
        self._spawn()

    def _fail_queued(self, reason: str, *, everything: bool = False) -> None:
        error = RemoteError.capture(WorkerLostError(reason))
        queued, self._queue = getattr(self, "_queue", ()), collections.deque()
        if everything:
            queued = [
                (run.spec.job_id, task_id)
                for run in list(getattr(self, "_jobs", {}).values())
                for task_id in list(run.refs)
            ]
        for job_id, task_id in queued:
            run = self._jobs.get(job_id)
            if run is not None:
                self._complete(run, task_id, TaskOutcome(TaskResult.FAILURE, error=error))

    def _cancel(self, job_id: str) -> None:
        run = self._jobs.pop(job_id, None)
        if run is None:
            return
        self._queue = collections.deque(e for e in self._queue if e[0] != job_id)
        for node in list(self._nodes):
            if any(key[0] == job_id for key in node.running):
                for key in [k for k in node.running if k[0] == job_id]:
                    del node.running[key]
                self._lost(node, killed_for_cancel=True)  # other jobs' tasks run again
        self._forget(run)


def create_backend(settings: Any, lake: Any, store: Any) -> LocalBackend:
    """The registry's factory: ``settings.workers`` processes (default: one per core) with
    ``settings.slots`` task slots each. Runs on every profile (the lake is not its concern)."""
    return LocalBackend(workers=settings.workers, slots=settings.slots)


def _report_callback_error(job_id: str) -> None:
    """Print the traceback of an error raised while a job was told of a completed task
    (a done-callback's, usually), and keep the scheduler running."""
    try:
        print(f"azhpc: error in a done-callback of job {job_id}:", file=sys.stderr)
        traceback.print_exc()
    except Exception:  # a closed or odd stderr must not stop the scheduler
        pass


def _release(scratch: str, fds: tuple[int, ...], owner: int) -> None:
    if os.getpid() == owner:  # a forked child must not delete its parent's payload files
        shutil.rmtree(scratch, ignore_errors=True)
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
