"""The client's view of a running job: a ``concurrent.futures.Future`` with task states.

A backend runs a :class:`~azhpc.core.spec.JobSpec` and reports what happens to each task by
calling the ``task_*`` methods of the :class:`Job` (the :class:`JobEvents` protocol). The job
keeps Batch-shaped records per task, exposes plain counters (:attr:`Job.progress`) that
displays observe, and, when every task has completed, gathers the results in input order or
collects the failures into one :class:`~azhpc.errors.TaskError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from azhpc.core.outcome import RemoteError, TaskOutcome
from azhpc.core.states import JobState, TaskResult, TaskState
from azhpc.errors import CompositeTaskError, GatherError, JobCancelledError, TaskError

if TYPE_CHECKING:
    from azhpc.core.spec import JobSpec

__all__ = ["Job", "JobEvents", "Progress", "TaskInfo"]


class JobEvents(Protocol):
    """What a backend tells a job about its tasks. Every method is safe to call from any thread."""

    def task_preparing(self, task_id: str, *, node: str) -> None:
        """The task was handed to ``node``, which is preparing to run it (downloading inputs)."""

    def task_running(self, task_id: str, *, node: str) -> None:
        """The task started on ``node``."""

    def task_retrying(self, task_id: str, *, error: RemoteError, requeue: bool = False) -> None:
        """The attempt failed (or, with ``requeue``, its node was lost); the task runs again."""

    def task_completed(self, task_id: str, outcome: TaskOutcome) -> None:
        """The task finished for good, successfully or not."""

    def job_failed(self, error: BaseException) -> None:
        """The job's remaining tasks cannot run (e.g. no node of its pool can): it ends with
        ``error``."""


@dataclass(frozen=True)
class Progress:
    """Counts of a job's tasks by state, as displays show them.

    Attributes
    ----------
    total
        Tasks in the job.
    queued, preparing, running
        Tasks waiting for a slot, being prepared, running now.
    succeeded, failed
        Tasks completed for good, by result.
    retried
        Attempts that failed and were run again (summed over tasks).
    requeued
        Attempts whose node was lost (preempted, worker died) and were run again.
    elapsed
        Seconds since the job was submitted (until it ended, once it has).
    cost_per_hour, currency
        What the job's compute costs per hour (the pool's offline estimate), or ``None`` where
        that is unknown or free (the laptop backends).
    """

    total: int
    queued: int
    preparing: int
    running: int
    succeeded: int
    failed: int
    retried: int
    requeued: int
    elapsed: float
    cost_per_hour: float | None = None
    currency: str = ""

    @property
    def cost(self) -> float | None:
        """The estimated compute cost of the job so far: the hourly rate times the elapsed
        time (``None`` without a rate)."""
        if self.cost_per_hour is None:
            return None
        return self.cost_per_hour * self.elapsed / 3600.0

    @property
    def completed(self) -> int:
        """Tasks completed, successfully or not."""
        return self.succeeded + self.failed

    @property
    def finished(self) -> bool:
        """True when every task has completed."""
        return self.completed >= self.total

    @property
    def rate(self) -> float:
        """Completed tasks per second so far."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot of one task, in Batch's terms."""

    task_id: str
    index: int
    state: TaskState
    result: TaskResult | None
    retry_count: int
    requeue_count: int
    node: str | None
    error: RemoteError | None
    output: str
    seconds: float


class _TaskRecord:
    __slots__ = (
        "error",
        "index",
        "node",
        "outcome",
        "requeue_count",
        "result",
        "retry_count",
        "state",
        "task_id",
    )

    def __init__(self, task_id: str, index: int) -> None:
        self.task_id = task_id
        self.index = index
        self.state = TaskState.ACTIVE
        self.result: TaskResult | None = None
        self.retry_count = 0
        self.requeue_count = 0
        self.node: str | None = None
        self.outcome: TaskOutcome | None = None
        self.error: RemoteError | None = None


class Job(Future):
    """A submitted job: a ``concurrent.futures.Future`` of its gathered result.

    ``result()`` returns what the scatter form gathers (a list for ``map``, a frame for
    ``map_partitions``, ...) or raises :class:`~azhpc.errors.TaskError` when tasks failed.
    ``cancel()`` cancels the whole job, running tasks included.

    Attributes
    ----------
    job_id
        The job's id.
    name
        A readable name (``"map(square)"``).
    """

    def __init__(
        self,
        spec: JobSpec,
        *,
        gather: Callable[[list[Any]], Any],
        canceller: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.job_id = spec.job_id
        self.name = spec.name
        self._gather = gather
        self._canceller = canceller
        self._lock = threading.Lock()
        self._records = [_TaskRecord(t.task_id, t.index) for t in spec.tasks]
        self._by_id = {r.task_id: r for r in self._records}
        self._counts = {state: 0 for state in TaskState}
        self._counts[TaskState.ACTIVE] = len(self._records)
        self._succeeded = 0
        self._failed = 0
        self._retried = 0
        self._requeued = 0
        self._submitted = time.monotonic()
        self._ended: float | None = None
        self._cost_rate: tuple[float, str] | None = None
        self._state = JobState.ACTIVE
        self._finishing = False
        self._cancel_requested = False
        if not self._records:
            self._finish()

    # -- what displays and users read -----------------------------------------------------

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"<Job {self.job_id} {self.name}: {p.succeeded}/{p.total} succeeded, "
            f"{p.failed} failed, {p.running} running, {p.queued} queued>"
        )

    @property
    def state(self) -> JobState:
        """The job's state: active until every task completed or it was cancelled."""
        return self._state

    @property
    def progress(self) -> Progress:
        """Counts of the tasks by state (cheap: plain counters)."""
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            return Progress(
                total=len(self._records),
                queued=self._counts[TaskState.ACTIVE],
                preparing=self._counts[TaskState.PREPARING],
                running=self._counts[TaskState.RUNNING],
                succeeded=self._succeeded,
                failed=self._failed,
                retried=self._retried,
                requeued=self._requeued,
                elapsed=end - self._submitted,
                cost_per_hour=self._cost_rate[0] if self._cost_rate else None,
                currency=self._cost_rate[1] if self._cost_rate else "",
            )

    def set_cost_rate(self, per_hour: float, currency: str) -> None:
        """Record what the job's compute costs per hour; displays then show the cost so far."""
        with self._lock:
            self._cost_rate = (float(per_hour), currency)

    @property
    def tasks(self) -> list[TaskInfo]:
        """A snapshot of every task, in input order."""
        with self._lock:
            return [self._info(r) for r in self._records]

    def task(self, task_id: str) -> TaskInfo:
        """A snapshot of one task."""
        with self._lock:
            return self._info(self._by_id[task_id])

    def first_failure(self) -> TaskInfo | None:
        """The first task (in input order) with an error so far, failed or being retried."""
        with self._lock:
            for record in self._records:
                if record.error is not None:
                    return self._info(record)
        return None

    @property
    def output(self) -> str:
        """What the completed tasks printed, in input order."""
        with self._lock:
            return "".join(r.outcome.output for r in self._records if r.outcome is not None)

    @staticmethod
    def _info(r: _TaskRecord) -> TaskInfo:
        outcome = r.outcome
        return TaskInfo(
            task_id=r.task_id,
            index=r.index,
            state=r.state,
            result=r.result,
            retry_count=r.retry_count,
            requeue_count=r.requeue_count,
            node=r.node,
            error=r.error,
            output=outcome.output if outcome else "",
            seconds=outcome.seconds if outcome else 0.0,
        )

    def running(self) -> bool:
        """True while some task is running."""
        with self._lock:
            return self._counts[TaskState.RUNNING] > 0 and not self.done()

    def cancel(self) -> bool:
        """Cancel the job: queued tasks never start and running tasks are stopped.

        Returns ``False`` when the job had already finished, ``True`` once it is cancelled
        (again ``True`` for a job cancelled before, as ``concurrent.futures`` says).
        """
        with self._lock:
            if self._cancel_requested:
                return True
            if self._finishing:
                return False
            self._finishing = True
            self._cancel_requested = True
            self._state = JobState.TERMINATING
        if self._canceller is not None:
            self._canceller(self.job_id)
        with self._lock:
            self._state = JobState.COMPLETED
            self._ended = time.monotonic()
        super().cancel()
        # A cancelled Future is "done" for concurrent.futures.wait() and as_completed() only
        # once its waiters are told (an executor does this when it would have started the
        # call): without it, Executor.shutdown() after a cancel waited forever.
        self.set_running_or_notify_cancel()
        return True

    def exception_if_cancelled(self) -> JobCancelledError:
        """The error raised by waiting code when this job was cancelled."""
        return JobCancelledError(f"job {self.job_id} ({self.name}) was cancelled")

    # -- JobEvents: called by the backend -----------------------------------------------------

    def _move(self, record: _TaskRecord, state: TaskState) -> None:
        self._counts[record.state] -= 1
        self._counts[state] += 1
        record.state = state

    def task_preparing(self, task_id: str, *, node: str) -> None:
        """The task was handed to ``node``, which is preparing to run it."""
        with self._lock:
            record = self._by_id[task_id]
            if record.state is TaskState.COMPLETED:
                return
            record.node = node
            self._move(record, TaskState.PREPARING)

    def task_running(self, task_id: str, *, node: str) -> None:
        """The task started on ``node``."""
        with self._lock:
            record = self._by_id[task_id]
            if record.state is TaskState.COMPLETED:
                return
            record.node = node
            self._move(record, TaskState.RUNNING)

    def task_retrying(self, task_id: str, *, error: RemoteError, requeue: bool = False) -> None:
        """The attempt failed or its node was lost; the task is queued to run again."""
        with self._lock:
            record = self._by_id[task_id]
            if record.state is TaskState.COMPLETED:
                return
            record.error = error
            if requeue:
                record.requeue_count += 1
                self._requeued += 1
            else:
                record.retry_count += 1
                self._retried += 1
            self._move(record, TaskState.ACTIVE)

    def task_completed(self, task_id: str, outcome: TaskOutcome) -> None:
        """The task finished for good; when it is the last one, the job's result is set."""
        with self._lock:
            record = self._by_id[task_id]
            if record.state is TaskState.COMPLETED or self._finishing:
                return
            record.outcome = outcome
            record.node = outcome.node or record.node
            record.result = outcome.result
            if outcome.ok:
                self._succeeded += 1
            else:
                record.error = outcome.error
                self._failed += 1
            self._move(record, TaskState.COMPLETED)
            last = self._succeeded + self._failed == len(self._records)
            if last:
                self._finishing = True
        if last:
            self._finish()

    def job_failed(self, error: BaseException) -> None:
        """The backend cannot run the remaining tasks: the job ends now with ``error`` (tasks
        that finished keep their outcomes, in :meth:`tasks`)."""
        with self._lock:
            if self._finishing:
                return
            self._finishing = True
            self._state = JobState.COMPLETED
            self._ended = time.monotonic()
        self.set_exception(error)

    # -- the end ----------------------------------------------------------------------------

    def _finish(self) -> None:
        with self._lock:
            self._finishing = True
            self._ended = time.monotonic()
            self._state = JobState.COMPLETED
            records = list(self._records)
        failures = [self._task_error(r) for r in records if r.outcome and not r.outcome.ok]
        if failures:
            error: TaskError = (
                failures[0]
                if len(failures) == 1
                else CompositeTaskError(failures, total_tasks=len(records))
            )
            self.set_exception(error)
            return
        values = [r.outcome.value for r in records if r.outcome is not None]
        try:
            result = self._gather(values)
        except Exception as exc:
            gather_error = GatherError(
                f"all {len(records)} tasks of job {self.job_id} succeeded, but their results "
                f"could not be put together: {type(exc).__name__}: {exc}. Return values of "
                "one kind (all DataFrames, all arrays of matching shape) or use azhpc.map to "
                "get a plain list."
            )
            gather_error.__cause__ = exc
            self.set_exception(gather_error)
            return
        self.set_result(result)

    def _task_error(self, record: _TaskRecord) -> TaskError:
        error = record.error
        assert error is not None  # a failed outcome always carries its error
        return TaskError(
            record.task_id,
            error.type_name,
            error.message,
            error.traceback,
            job_id=self.job_id,
            remote_exception=error.exception,
            node=record.node or "",
            attempts=1 + record.retry_count + record.requeue_count,
        )
