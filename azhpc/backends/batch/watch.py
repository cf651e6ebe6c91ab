"""Watching the Batch jobs of a :class:`~azhpc.backends.batch.backend.BatchBackend`: polling
their tasks, passing each task's news on (started, retried, requeued), gathering the outcomes
of completed tasks, explaining tasks that ended without one, ending a job whose pool can never
run its tasks, and learning the nodes' signing keys through the Batch API.

:class:`JobWatch` is the backend's half that does this (a mixin: it shares the backend's runs,
lock, client and job ending); :class:`Run` is one watched job.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.account import BatchError
from azhpc.backends.batch.pool_body import ENVIRONMENT_RECORD
from azhpc.backends.batch.pool_nodes import BROKEN, USABLE
from azhpc.core.outcome import RemoteError, TaskOutcome
from azhpc.core.states import TaskResult
from azhpc.errors import PoolStartError, WorkerLostError

if TYPE_CHECKING:
    import concurrent.futures

    from azhpc.backends.batch.account import BatchAccount
    from azhpc.backends.batch.lifecycle import BatchPool
    from azhpc.core.job import JobEvents
    from azhpc.core.spec import JobSpec
    from azhpc.staging import JobStore

__all__ = ["PAGE_SIZE", "READ_CONCURRENCY", "JobWatch", "Run", "task_filter"]

logger = logging.getLogger("azhpc")

#: Tasks per page of a List Tasks request.
PAGE_SIZE = 1000
#: Outcome blobs read at once.
READ_CONCURRENCY = 16
#: How much of a failed task's stderr reaches the user.
STDERR_TAIL = 2000
#: Poll with a full List Tasks at least every this many polls, even when counts look unchanged
#: (Batch's task counts can lag behind).
FULL_LIST_EVERY = 10
#: Tasks completed this long before the last poll are still listed (clock differences between
#: this machine and the service); an outcome found without its listing is still gathered.
_CLOCK_MARGIN = dt.timedelta(seconds=10)

_SELECT = ["id", "state", "stateTransitionTime", "executionInfo", "nodeInfo"]


def _odata_time(t: dt.datetime) -> str:
    return "datetime'" + t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def task_filter(since: dt.datetime) -> str:
    """The ``$filter`` of a poll: unfinished tasks, and tasks completed since ``since``.

    Only what "OData filters in Azure Batch" (learn.microsoft.com/rest/api/batchservice/
    odata-filters-in-batch, "List tasks") lists as filterable: ``state`` with ``eq`` and
    ``stateTransitionTime`` with ``ge``. Retry and requeue counts are not filterable; they come
    from the ``executionInfo`` of the listed tasks.

    Parameters
    ----------
    since
        Tasks completed at or after this time (the service's clock) are listed too.

    Returns
    -------
    str
        The OData filter.
    """
    unfinished = " or ".join(f"state eq '{state}'" for state in ("active", "preparing", "running"))
    return f"{unfinished} or (state eq 'completed' and stateTransitionTime ge {_odata_time(since)})"


@dataclass
class _Seen:
    state: str = "active"
    node: str | None = None
    retries: int = 0
    requeues: int = 0


@dataclass
class Run:
    """A Batch job the backend watches: its tasks still pending and what was seen of them."""

    spec: JobSpec
    events: JobEvents
    batch_job_id: str
    pending: set[str]
    seen: dict[str, _Seen] = field(default_factory=dict)
    last_counts: tuple[int, ...] | None = None
    polls_since_list: int = 0
    last_poll: dt.datetime | None = None
    cancelled: bool = False
    #: The pool the tasks run on (the job's own pool when job-scoped).
    pool: BatchPool | None = None
    #: ``time.monotonic()`` of the last look at the pool's nodes while no task ran.
    pool_checked: float = 0.0
    #: Looks in a row that found every node of the pool broken.
    broken_looks: int = 0


class JobWatch:
    """The polling half of :class:`~azhpc.backends.batch.backend.BatchBackend`: one thread
    polls every active job, passes the tasks' news on and gathers their outcomes.

    A mixin: it works on the backend's state, declared here.
    """

    account: BatchAccount
    pool: BatchPool | None
    store: JobStore
    poll_interval: float | None
    _runs: dict[str, Run]
    _lock: threading.Lock
    #: Nodes whose signing key this backend has learned (through the Batch API).
    _learned: set[tuple[str, str]]
    _wake: threading.Event
    _closed: bool
    _poller: threading.Thread | None
    _readers: concurrent.futures.ThreadPoolExecutor

    if TYPE_CHECKING:

        def _client(self) -> Any: ...

        def _call(self, what: str, call: Any) -> Any: ...

        def _terminate(self, batch_job_id: str) -> None: ...

        def _delete(self, batch_job_id: str) -> None: ...

    def _ensure_poller(self) -> None:
        if self.poll_interval is None:
            return
        with self._lock:
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(
                    target=self._poll_loop, name="azhpc-batch-poll", daemon=True
                )
                self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closed:
            with self._lock:
                runs = [r for r in self._runs.values() if not r.cancelled]
            interval = self.poll_interval
            if interval is None:
                return
            if not runs:
                self._wake.wait(timeout=interval)
                self._wake.clear()
                with self._lock:
                    if not self._runs:
                        return
                continue
            for run in runs:
                try:
                    self._poll(run)
                except Exception as error:  # one bad poll must not end the watch
                    logger.warning(
                        "polling job %s failed (%s: %s); trying again",
                        run.batch_job_id,
                        type(error).__name__,
                        str(error).splitlines()[0] if str(error) else "",
                    )
            self._wake.wait(timeout=interval)
            self._wake.clear()

    def poll_once(self, job_id: str) -> None:
        """Poll one job now (what the polling thread does each interval)."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is not None:
            self._poll(run)

    def _poll(self, run: Run) -> None:
        client = self._client()
        started = dt.datetime.now(dt.UTC)
        counts = self._call(
            f"get the task counts of job {run.batch_job_id!r}",
            lambda: client.get_job_task_counts(run.batch_job_id),
        ).task_counts
        key = (counts.active, counts.running, counts.completed, counts.failed)
        run.polls_since_list += 1
        if key == run.last_counts and run.polls_since_list < FULL_LIST_EVERY:
            return
        query = task_filter((run.last_poll or started) - _CLOCK_MARGIN)
        listed = self._call(
            f"list the tasks of job {run.batch_job_id!r}",
            lambda: list(
                client.list_tasks(
                    run.batch_job_id, filter=query, select=_SELECT, max_results=PAGE_SIZE
                )
            ),
        )
        if counts.running == 0 and counts.active > 0 and self._pool_is_broken(run):
            return
        run.last_counts, run.polls_since_list, run.last_poll = key, 0, started
        by_id = {t.id: t for t in listed}
        completed: list[tuple[str, Any]] = []
        for task_id in list(run.pending):
            task = by_id.get(task_id)
            if task is None or _enum(task.state) == "completed":
                completed.append((task_id, task))
                continue
            self._observe(run, task_id, task)
        if completed:
            self._complete(run, completed)

    def _pool_is_broken(self, run: Run) -> bool:
        """While tasks wait and none runs, look at the pool's nodes now and then; when every
        node is broken (start task failed, unusable) twice in a row, or the pool is gone, the
        tasks can never run: end the job with :class:`~azhpc.errors.PoolStartError`."""
        pool = run.pool
        now = time.monotonic()
        if pool is None or now - run.pool_checked < self._pool_check_seconds():
            return False
        run.pool_checked = now
        try:
            states = pool.node_states()
        except BatchError as error:
            if error.code != "PoolNotFound":
                raise
            message = (
                f"pool {pool.pool_id!r} was deleted while job {run.spec.job_id} waited for it; "
                "open the pool again (azhpc.Pool) and azhpc.attach(job_id) the job"
            )
        else:
            broken = [node for node, state in states.items() if state in BROKEN]
            if not states or len(broken) < len(states):
                run.broken_looks = 0
                return False
            run.broken_looks += 1
            if run.broken_looks < 2:
                return False
            message = (
                pool._broken_message(broken, states, fatal=True)
                + f"\nso the {len(run.pending)} waiting task(s) of job {run.spec.job_id} can "
                "never run; fix the start task (or the requirements) and run the job again "
                "(azhpc.attach(job_id) keeps the tasks that finished)"
            )
        # The job fails first, and the run is marked: a poll racing this one (waiting code
        # polls too) must not read the tasks the termination completes as lost workers.
        run.cancelled = True
        with self._lock:
            self._runs.pop(run.spec.job_id, None)
        run.events.job_failed(PoolStartError(message))
        self._terminate(run.batch_job_id)
        return True

    def _pool_check_seconds(self) -> float:
        """How often a waiting job looks at its pool's nodes: every 10 polls, at least 1 s."""
        return max(1.0, 10 * (self.poll_interval or 0.0))

    def _observe(self, run: Run, task_id: str, task: Any) -> None:
        """Pass a still-unfinished task's news on: started, retried, requeued (preempted)."""
        seen = run.seen.setdefault(task_id, _Seen())
        info = task.execution_info
        retries = int(getattr(info, "retry_count", 0) or 0) if info else 0
        requeues = int(getattr(info, "requeue_count", 0) or 0) if info else 0
        self._report_attempts(run, task_id, seen, retries, requeues)
        state = _enum(task.state)
        node = getattr(task.node_info, "node_id", None) if task.node_info else None
        if state in ("running", "preparing") and (seen.state != state or seen.node != node):
            if state == "preparing":
                run.events.task_preparing(task_id, node=node or "?")
            else:
                run.events.task_running(task_id, node=node or "?")
        seen.state, seen.node = state, node
        # Learn the node's key while it is there: a node may be gone (scaled down, preempted,
        # its job's pool deleted) by the time its outcome is read.
        pool = run.pool
        if state == "running" and node and pool and (pool.pool_id, node) not in self._learned:
            self._learn_node_key(node, pools=[pool])

    def _learn_pool_keys(self, pool: BatchPool) -> None:
        """Learn the signing key of every usable node of ``pool`` not learned yet."""
        try:
            states = pool.node_states()
        except BatchError:
            return  # learned later, when an outcome names the node
        for node_id, state in states.items():
            if state in USABLE and (pool.pool_id, node_id) not in self._learned:
                self._learn_node_key(node_id, pools=[pool])

    def _learn_node_key(self, node_id: str, *, pools: list[BatchPool] | None = None) -> bool:
        """Learn the signing key of node ``node_id`` of this backend's pools through the Batch
        API (the node's environment record, which only the node writes) into the key ring;
        whether the node was found. (A reimaged node has a new key: asked again, this looks
        again.)"""
        if pools is None:
            pools = [] if self.pool is None else [self.pool, *self.pool.job_pools.values()]
        client = self._client()
        for pool in pools:
            try:
                record = b"".join(
                    client.download_node_file(pool.pool_id, node_id, f"shared/{ENVIRONMENT_RECORD}")
                )
                public = bytes.fromhex(json.loads(record)["node_key"])
            except Exception:  # not a node of this pool (or gone): try the next pool
                continue
            where = f"{self.account.account_name}/{pool.pool_id}/{node_id}"
            self.store.keys.trust_node_key(public, where)
            self._learned.add((pool.pool_id, node_id))
            return True
        return False

    def _report_attempts(
        self, run: Run, task_id: str, seen: _Seen, retries: int, requeues: int
    ) -> None:
        while seen.requeues < requeues:
            seen.requeues += 1
            message = f"node {seen.node or '?'} was preempted or lost; Batch requeued the task"
            run.events.task_retrying(
                task_id, error=RemoteError("azhpc.errors.NodeLost", message, message), requeue=True
            )
        while seen.retries < retries:
            seen.retries += 1
            message = (
                f"the worker process of task {task_id} died ({seen.retries} of at most "
                f"{run.spec.max_worker_losses} times: killed, out of memory, or a crash in "
                "native code); Batch runs the task again"
            )
            run.events.task_retrying(
                task_id, error=RemoteError("azhpc.errors.WorkerLostError", message, message)
            )

    def _complete(self, run: Run, completed: list[tuple[str, Any]]) -> None:
        futures = {
            task_id: self._readers.submit(self.store.read_outcome, run.spec.job_id, task_id)
            for task_id, _ in completed
        }
        for task_id, task in completed:
            if run.cancelled:
                return
            seen = run.seen.setdefault(task_id, _Seen())
            info = task.execution_info if task is not None else None
            if info is not None:
                retries = int(getattr(info, "retry_count", 0) or 0)
                requeues = int(getattr(info, "requeue_count", 0) or 0)
                self._report_attempts(run, task_id, seen, retries, requeues)
            try:
                outcome = futures[task_id].result()
            except Exception as error:  # a damaged or forged outcome: refused, not unpickled
                outcome = TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(error))
            if outcome is None:
                outcome = self._lost(run, task_id, task)
            for error in outcome.retried:  # the function raised; the worker ran it again
                run.events.task_retrying(task_id, error=error)
            run.pending.discard(task_id)
            run.events.task_completed(task_id, outcome)
        if not run.pending:
            with self._lock:
                self._runs.pop(run.spec.job_id, None)
            self._delete(run.batch_job_id)

    def _lost(self, run: Run, task_id: str, task: Any) -> TaskOutcome:
        """A completed task without an outcome: its process died; say how, with stderr's end."""
        client = self._client()
        if task is None:
            task = self._call(
                f"get task {task_id!r}",
                lambda: client.get_task(run.batch_job_id, task_id, select=_SELECT),
            )
        info = task.execution_info
        code = getattr(info, "exit_code", None) if info else None
        failure = getattr(info, "failure_info", None) if info else None
        why = f"exit code {code}" if code is not None else "no exit code"
        if failure is not None:
            why += f"; {getattr(failure, 'code', '')}: {getattr(failure, 'message', '')}"
        stderr = self.store.read_log(run.spec.job_id, task_id, "stderr.txt")
        tail = stderr[-STDERR_TAIL:].decode(errors="replace") if stderr else "(no stderr)"
        node = getattr(task.node_info, "node_id", None) if task.node_info else None
        retried = int(getattr(info, "retry_count", 0) or 0) if info else 0
        times = (
            f" Its worker died {retried + 1} times, so it is not retried again: check the "
            "task's memory use, or use a VM size with more memory per task slot."
            if retried
            else ""
        )
        error = WorkerLostError(
            f"task {task_id} of job {run.spec.job_id} ended without a result on node "
            f"{node or '?'} ({why}).{times} The end of its stderr:\n{tail}"
        )
        return TaskOutcome(TaskResult.FAILURE, error=RemoteError.capture(error), node=node or "")


def _enum(value: Any) -> str:
    """An SDK enum member (or plain string) as Batch's lower-case REST value."""
    return str(getattr(value, "value", value)).lower()
