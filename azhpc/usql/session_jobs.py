"""U-SQL jobs on a session: :func:`run`, :func:`submit` and the :class:`UsqlJob` they return.

A :class:`UsqlJob` walks through ADLA's states — ``Accepted`` (created), ``Compiling``
(parse, bind, plan), ``Queued`` (waiting for the session and its lake), ``Running`` (the plan's
steps), ``Ended`` — and ends with ADLA's result: ``Succeeded``, ``Failed`` or ``Cancelled``.
It is a :class:`concurrent.futures.Future` of the run's
:class:`~azhpc.usql.executor.ExecutionResult`; failures are :class:`UsqlError` objects in
:attr:`UsqlJob.errors`, and ``result()`` raises the first.

Paths in scripts resolve against the session's lake, through its
:meth:`~azhpc.lake.Lake.filesystem` (:func:`script_lake`), so ``/Samples/Data/SearchLog.tsv``
means the same on every profile. REDUCE groups run through
:class:`PoolRunGroups`: cut into ``parallelism`` contiguous batches, one task each, with the
sorted input staged once for the whole job (``parallelism=1`` runs them in this process).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import azhpc.usql as usql
from azhpc.config import resolve_settings
from azhpc.errors import ConfigError
from azhpc.session import current_session
from azhpc.usql.errors import ErrorCode, UsqlError
from azhpc.usql.jobs import JobResult, JobState, StageEvent, StageProgress, stage_progress
from azhpc.usql.reduce_tasks import PoolRunGroups

if TYPE_CHECKING:
    import os

    import pandas as pd

    from azhpc.core.job import Job
    from azhpc.lake import Lake, RootedFileSystem
    from azhpc.session import Session
    from azhpc.usql.executor import ExecutionResult

__all__ = ["StageStatus", "UsqlJob", "UsqlProgress", "run", "script_lake", "submit"]


def script_lake(
    lake: Lake | RootedFileSystem | str | os.PathLike[str] | None = None,
    pool: Session | None = None,
) -> RootedFileSystem:
    """The filesystem a script's lake paths resolve in.

    Parameters
    ----------
    lake : Lake, RootedFileSystem, str or Path, optional
        A :class:`~azhpc.lake.Lake` (its :meth:`~azhpc.lake.Lake.filesystem`), a
        :class:`~azhpc.lake.RootedFileSystem`, or a local folder (the lake rooted there).
    pool : Session, optional
        When ``lake`` is not given: the session whose lake it is (default: the current one).
        A session without a lake falls back to the ``local`` profile's folder
        (``$AZHPC_LAKE_ROOT`` or ``~/.azhpc/lake``, from :mod:`azhpc.config`).

    Returns
    -------
    RootedFileSystem
    """
    from azhpc.lake.rooted import (  # lazy: fsspec, only when files are touched
        RootedFileSystem,
        rooted_filesystem,
    )

    if lake is not None:
        return rooted_filesystem(lake)

    session_lake = current_session(pool).lake
    if session_lake is not None:
        return session_lake.filesystem()

    return RootedFileSystem(resolve_settings("local").lake_root)


# --------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class StageStatus:
    """One step of a job's plan as the job saw it.

    Attributes
    ----------
    step_id, kind, label
        The plan step (``kind``: extract, query, reduce, output).
    state : str
        ``"waiting"``, ``"running"``, ``"done"`` or ``"failed"``.
    rows : int or None
        Rows written (OUTPUT) or produced (REDUCE), when known.
    groups : int or None
        REDUCE groups.
    seconds : float
        How long the step ran.
    tasks_done, tasks_total : int
        REDUCE on a pool: tasks finished and tasks of the step's scatter job.
    """

    step_id: int
    kind: str
    label: str
    state: str = "waiting"
    rows: int | None = None
    groups: int | None = None
    seconds: float = 0.0
    tasks_done: int = 0
    tasks_total: int = 0


@dataclass(frozen=True)
class UsqlProgress:
    """A snapshot of a job's progress (what displays read).

    Attributes
    ----------
    state : JobState
    steps_done, steps_total : int
        Plan steps finished, and in the plan (0 before compiling ends).
    current : str or None
        The label of the step running now.
    rows : int
        Rows written by OUTPUT steps so far.
    tasks_done, tasks_total : int
        Tasks of the running REDUCE's scatter job (0 when none).
    elapsed : float
        Seconds since the job was accepted.
    """

    state: JobState
    steps_done: int
    steps_total: int
    current: str | None
    rows: int
    tasks_done: int
    tasks_total: int
    elapsed: float


class _Cancelled(Exception):
    pass


class _Tracker(StageProgress):
    """Feeds the executor's events into the job's stage table (and forwards them)."""

    def __init__(self, job: UsqlJob, forward: StageProgress | None) -> None:
        self.job = job
        self.forward = forward

    def connection_opened(self, connection: Any) -> None:
        self.job._connection = connection

    def stage_started(self, event: StageEvent) -> None:
        if self.job._cancel.is_set():
            raise _Cancelled
        self.job._update(event.step_id, state="running")
        self.job._current = event.label
        if self.forward is not None:
            self.forward.stage_started(event)

    def stage_finished(self, event: StageEvent) -> None:
        tasks = {}
        with self.job._lock:
            scatter, self.job._scatter = self.job._scatter, None
        if scatter is not None:
            tasks = {
                "tasks_done": scatter.progress.completed,
                "tasks_total": scatter.progress.total,
            }
        self.job._update(
            event.step_id,
            state="done",
            rows=event.rows,
            groups=event.groups,
            seconds=event.seconds,
            **tasks,
        )
        self.job._current = None
        if self.forward is not None:
            self.forward.stage_finished(event)

    def stage_failed(self, event: StageEvent, error: BaseException) -> None:
        self.job._update(event.step_id, state="failed")
        self.job._current = None
        if self.forward is not None:
            self.forward.stage_failed(event, error)


class UsqlJob(Future):
    """A U-SQL job on a session, with ADLA's states and results.

    A ``concurrent.futures.Future``: ``result(timeout)`` returns the
    :class:`~azhpc.usql.executor.ExecutionResult` or raises the job's first
    :class:`UsqlError` (a cancelled job raises one with code ``E_AZHPC_USQL_CANCELLED``).

    Attributes
    ----------
    job_id : str
        ``usql-YYYYmmdd-HHMMSS-xxxxxx``.
    name : str
        The script's name, used in error positions (``SCRIPT:LINE:COL``).
    parallelism : int
        How many tasks REDUCE steps are cut into (ADLA's AUs).
    """

    def __init__(
        self,
        script: str,
        *,
        params: Mapping[str, object] | None = None,
        parallelism: int = 1,
        pool: Session | None = None,
        name: str | None = None,
        lake: Lake | RootedFileSystem | str | os.PathLike[str] | None = None,
        keep: Iterable[str] = (),
        progress: StageProgress | bool | None = None,
    ) -> None:
        super().__init__()
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise ConfigError(
                f"parallelism must be a whole number >= 1 (REDUCE tasks; 1 runs in this "
                f"process), got {parallelism!r}"
            )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.job_id = f"usql-{stamp}-{uuid.uuid4().hex[:6]}"
        self.name = name or "script.usql"
        self.script = script
        self.params = dict(params or {})
        self.parallelism = parallelism
        self.keep = tuple(keep)
        self._pool = pool
        self._lake = lake
        self._forward = stage_progress(progress)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._adla_state = JobState.ACCEPTED
        self._outcome = JobResult.NONE
        self._errors: list[UsqlError] = []
        self._stages: list[StageStatus] = []
        self._current: str | None = None
        self._connection: Any = None
        self._scatter: Job | None = None
        self._accepted = time.monotonic()
        self._ended: float | None = None
        self.execution: ExecutionResult | None = None
        self.set_running_or_notify_cancel()

    def __repr__(self) -> str:
        return (
            f"<UsqlJob {self.job_id} {self.name!r} state={self._adla_state.value} "
            f"result={self._outcome.value}>"
        )

    # -- what users read ----------------------------------------------------------------------

    @property
    def state(self) -> JobState:
        """ADLA's job state: Accepted, Compiling, Queued, Running or Ended."""
        return self._adla_state

    @property
    def outcome(self) -> JobResult:
        """ADLA's job result: ``NONE`` until Ended, then Succeeded, Failed or Cancelled."""
        return self._outcome

    @property
    def errors(self) -> list[UsqlError]:
        """The job's errors (empty unless it Failed or was Cancelled)."""
        with self._lock:
            return list(self._errors)

    @property
    def stages(self) -> list[StageStatus]:
        """One :class:`StageStatus` per plan step, in plan order."""
        with self._lock:
            stages = list(self._stages)
            scatter = self._scatter
        if scatter is not None:
            p = scatter.progress
            stages = [
                replace(s, tasks_done=p.completed, tasks_total=p.total)
                if s.kind == "reduce" and s.state == "running"
                else s
                for s in stages
            ]
        return stages

    @property
    def progress(self) -> UsqlProgress:
        """Counts of steps done / total, the running step, rows written, tasks of a REDUCE."""
        stages = self.stages
        running = [s for s in stages if s.state == "running"]
        end = self._ended if self._ended is not None else time.monotonic()
        return UsqlProgress(
            state=self._adla_state,
            steps_done=sum(s.state == "done" for s in stages),
            steps_total=len(stages),
            current=self._current,
            rows=sum(s.rows or 0 for s in stages if s.kind == "output" and s.state == "done"),
            tasks_done=sum(s.tasks_done for s in running),
            tasks_total=sum(s.tasks_total for s in running),
            elapsed=end - self._accepted,
        )

    @property
    def outputs(self) -> dict[str, int]:
        """Lake path of each OUTPUT written to its row count (empty unless Succeeded)."""
        return dict(self.execution.outputs) if self.execution is not None else {}

    def rowset(self, name: str) -> pd.DataFrame:
        """A rowset named in ``keep=`` (or read by an OUTPUT) as a DataFrame."""
        self.raise_for_errors()
        assert self.execution is not None
        return self.execution.rowset(name)

    def wait(self, timeout: float | None = None) -> UsqlJob:
        """Wait until the job has Ended (or ``timeout`` seconds); never raises its errors.

        Raises
        ------
        TimeoutError
            The job has not ended within ``timeout``.
        """
        import concurrent.futures

        done, _ = concurrent.futures.wait([self], timeout=timeout)
        if not done:
            raise TimeoutError(f"U-SQL job {self.job_id} has not ended after {timeout} s")
        return self

    def raise_for_errors(self, timeout: float | None = None) -> UsqlJob:
        """Wait for the job; raise its first :class:`UsqlError` unless it Succeeded."""
        self.wait(timeout)
        if self._errors:
            raise self._errors[0]
        return self

    def cancel(self) -> bool:
        """Ask the job to stop: a running query is interrupted, a running REDUCE's tasks stop.

        Returns ``False`` when the job has already ended. The job then ends as
        ``Ended``/``Cancelled`` and no OUTPUT is written.
        """
        with self._lock:
            if self.done():
                return False
            self._cancel.set()
            connection, scatter = self._connection, self._scatter
        if connection is not None:
            try:
                connection.interrupt()
            except Exception:  # the query may have just finished
                pass
        if scatter is not None:
            scatter.cancel()
        return True

    def cancelled(self) -> bool:
        """True when the job Ended as Cancelled."""
        return self._outcome is JobResult.CANCELLED

    # -- running ------------------------------------------------------------------------------

    def _update(self, step_id: int, **changes: Any) -> None:
        with self._lock:
            for i, stage in enumerate(self._stages):
                if stage.step_id == step_id:
                    self._stages[i] = replace(stage, **changes)

    def _on_scatter(self, job: Job) -> None:
        with self._lock:
            self._scatter = job
        if self._cancel.is_set():
            job.cancel()

    def _end(self, outcome: JobResult, error: UsqlError | None = None) -> None:
        with self._lock:
            if error is not None:
                self._errors.append(error)
            self._outcome = outcome
            self._adla_state = JobState.ENDED
            self._ended = time.monotonic()
            self._connection = None
        if error is None:
            self.set_result(self.execution)
        else:
            self.set_exception(error)

    def _cancelled_error(self) -> UsqlError:
        return UsqlError(ErrorCode.CANCELLED, f"job {self.job_id} was cancelled", script=self.name)

    def _run(self) -> None:
        """Compile and execute; every outcome ends the job (never raises)."""

        try:
            self._adla_state = JobState.COMPILING
            try:
                compiled = usql.compile(
                    self.script, params=self.params, name=self.name, keep=self.keep
                )
            except UsqlError as error:
                self._end(JobResult.FAILED, error)
                return
            with self._lock:
                self._stages = [
                    StageStatus(s.id, s.kind.value, s.label) for s in compiled.plan.steps
                ]
            if self._cancel.is_set():
                raise _Cancelled
            self._adla_state = JobState.QUEUED
            session = None
            if self._lake is None or self.parallelism > 1:
                session = current_session(self._pool)
            lake = script_lake(self._lake, session)
            runner = None
            if session is not None:
                runner = PoolRunGroups(
                    session, self.parallelism, name=self.name, on_job=self._on_scatter
                )
            if self._cancel.is_set():
                raise _Cancelled
            self._adla_state = JobState.RUNNING
            self.execution = usql.execute(
                compiled,
                lake=lake,
                run_groups=runner,
                progress=_Tracker(self, self._forward),
                keep_connection=bool(self.keep),
            )
            if self._cancel.is_set():
                self.execution.close()
                raise _Cancelled
            self._end(JobResult.SUCCEEDED)
        except _Cancelled:
            self._end(JobResult.CANCELLED, self._cancelled_error())
        except UsqlError as error:
            if self._cancel.is_set():
                self._end(JobResult.CANCELLED, self._cancelled_error())
            else:
                self._end(JobResult.FAILED, error)
        except BaseException as error:  # the job must end whatever happened
            if self._cancel.is_set():
                self._end(JobResult.CANCELLED, self._cancelled_error())
                return
            wrapped = UsqlError(
                ErrorCode.INTERNAL, f"{type(error).__name__}: {error}", script=self.name
            )
            wrapped.__cause__ = error
            self._end(JobResult.FAILED, wrapped)


def submit(
    script: str,
    *,
    params: Mapping[str, object] | None = None,
    parallelism: int = 1,
    pool: Session | None = None,
    name: str | None = None,
    lake: Lake | RootedFileSystem | str | os.PathLike[str] | None = None,
    keep: Iterable[str] = (),
    progress: StageProgress | bool | None = None,
) -> UsqlJob:
    """Start a U-SQL job in a background thread; return the running :class:`UsqlJob`.

    Parameters
    ----------
    script : str
        The U-SQL text.
    params : mapping, optional
        Values of ``DECLARE EXTERNAL`` variables (ADLA's job parameters); names with or
        without ``@``.
    parallelism : int
        ADLA's AUs: REDUCE groups are cut into this many tasks on the session's backend
        (``1``: run in this process).
    pool : Session, optional
        The session (default: the default one). Its lake is where paths resolve.
    name : str, optional
        The script's name in error positions (default ``script.usql``).
    lake : Lake, RootedFileSystem, str or Path, optional
        Resolve paths here instead of in the session's lake: another lake, its filesystem, or
        a local folder (the CLI's ``--lake-root``).
    keep : iterable of str
        Rowsets to keep for :meth:`UsqlJob.rowset` (``--show`` of ``%%usql``).
    progress : StageProgress or bool, optional
        Also receives the executor's per-step events; ``True`` prints a line per step to
        stderr, ``False`` or ``None`` nothing.

    Returns
    -------
    UsqlJob
        Running; ``job.wait()`` waits, ``job.result()`` waits and raises on failure.

    Examples
    --------
    >>> job = azhpc.usql.submit(text, parallelism=2)  # doctest: +SKIP
    >>> job.wait().outcome  # doctest: +SKIP
    <JobResult.SUCCEEDED: 'Succeeded'>
    """
    job = UsqlJob(
        script,
        params=params,
        parallelism=parallelism,
        pool=pool,
        name=name,
        lake=lake,
        keep=keep,
        progress=progress,
    )
    threading.Thread(target=job._run, name=f"azhpc-{job.job_id}", daemon=True).start()
    return job


def run(
    script: str,
    *,
    params: Mapping[str, object] | None = None,
    parallelism: int = 1,
    pool: Session | None = None,
    name: str | None = None,
    lake: Lake | RootedFileSystem | str | os.PathLike[str] | None = None,
    keep: Iterable[str] = (),
    progress: StageProgress | bool | None = None,
) -> UsqlJob:
    """Run a U-SQL job to its end in this thread; return the finished :class:`UsqlJob`.

    Parameters are those of :func:`submit`.

    Returns
    -------
    UsqlJob
        Ended and Succeeded: ``job.outputs`` maps each OUTPUT path to its row count.

    Raises
    ------
    UsqlError
        The job Failed (compile or run time error) or was Cancelled. Use :func:`submit`
        and ``job.wait()`` to keep the failed job (its states, stages and errors).

    Examples
    --------
    >>> job = azhpc.usql.run('@r = SELECT * FROM (VALUES (1)) AS T(a); '
    ...                      'OUTPUT @r TO "/o.csv" USING Outputters.Csv();')  # doctest: +SKIP
    >>> job.outputs  # doctest: +SKIP
    {'/o.csv': 1}
    """
    job = UsqlJob(
        script,
        params=params,
        parallelism=parallelism,
        pool=pool,
        name=name,
        lake=lake,
        keep=keep,
        progress=progress,
    )
    job._run()
    if job._errors:
        raise job._errors[0]
    return job
