"""The Azure Batch backend: one Batch job per scatter, run through the ``azure-batch`` SDK.

How a job runs:

1. The session has already stored the job's payloads in the lake (content-addressed, once:
   :class:`~azhpc.staging.JobStore`) and its manifest. A Batch job is created on the pool,
   with the job's HMAC key in its environment.
2. Tasks are added with the SDK's ``create_tasks`` (at most 100 per request, several requests
   at once). Each task's ResourceFiles are its payloads, read through read-only SAS URLs that
   expire; it runs ``python -m azhpc.worker batch`` with the pool's recorded interpreter.
3. The node seals the outcome with the job's key; OutputFiles upload it (write-only SAS) to
   ``jobs/<job>/outcomes/<task>`` in the lake when the task completes, and stderr/stdout to
   ``jobs/<job>/logs/<task>/`` when it fails.
4. Once every task is added, the job is switched to ``onAllTasksComplete: terminatejob`` (it
   is created with ``noaction``: Batch counts a job without tasks as having all its tasks
   complete, so a job created with ``terminatejob`` could end before its tasks are added).
5. One thread polls every active job: one ``Get Task Counts`` request, and when they changed,
   one ``List Tasks`` of the unfinished tasks plus those completed since the last poll, 1000
   per page, filtered on the properties Batch documents as filterable only (retries and
   requeues are read from each listed task's ``executionInfo``). Tasks that left the list are
   complete: their outcomes are read from the lake, their seals checked, and only then
   unpickled.
6. Once every outcome is gathered, the Batch job is deleted (Batch limits how many jobs an
   account holds); a job whose client died is left for ``azhpc.attach()``.

Retries: a function that raised is run again by the worker itself, in the same process, up to
the job's ``retries`` times (the outcome lists the earlier errors, reported here as retries);
a worker process that died (killed, out of memory, a native crash: no outcome, a non-zero
exit) is retried by Batch (``maxTaskRetryCount`` = the job's ``max_worker_losses``, 3), as the
local backend replaces a dead worker; a task whose node was preempted is requeued by Batch
without counting as a retry, and shows as requeued in the progress.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from azhpc.backends.base import Backend
from azhpc.backends.batch.account import BatchAccount, BatchError, call_batch
from azhpc.backends.batch.lifecycle import BROKEN, USABLE
from azhpc.backends.batch.node_wheel import WheelStager
from azhpc.backends.batch.pool_body import ENVIRONMENT_RECORD
from azhpc.backends.batch.task_bodies import TaskBodies
from azhpc.core.outcome import RemoteError, TaskOutcome
from azhpc.core.states import TaskResult
from azhpc.core.worker import JOB_ID_VARIABLE
from azhpc.errors import ConfigError, PoolStartError, WorkerLostError
from azhpc.lake.sas import SasSigner

if TYPE_CHECKING:
    from azhpc.backends.batch.lifecycle import BatchPool
    from azhpc.core.job import JobEvents
    from azhpc.core.spec import JobSpec
    from azhpc.lake.lake import Lake
    from azhpc.staging import JobStore

__all__ = ["BatchBackend"]

logger = logging.getLogger("azhpc")

#: Add-collection requests in flight at once.
SUBMIT_CONCURRENCY = 8
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
#: Seconds between the status requests of a long-running operation (terminate, delete) on
#: Azure: the SDK's own default. On the emulator the operations take milliseconds.
LRO_INTERVAL = 5.0
_EMULATED_LRO_INTERVAL = 0.05

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
class _Run:
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


class BatchBackend(Backend):
    """Tasks run as Azure Batch tasks on a pool (Azure, or azhpc's Batch emulator).

    Parameters
    ----------
    account
        The Batch account.
    pool
        The pool the jobs run on; made ready (created, nodes started, environment checked) on
        the first submit. ``None``: submitting raises, asking for ``azhpc.Pool``.
    lake
        The lake holding payloads and outcomes (the nodes reach it through SAS URLs).
    store
        The session's durable job store in that lake.
    poll_interval
        Seconds between two polls of the service; ``None``: no polling thread (call
        :meth:`poll_once`).
    owned
        What the backend started for itself and stops after everything else at :meth:`close`
        (the emulated profile's Batch emulator).
    """

    name: ClassVar[str] = "batch"
    #: Nodes store the outcomes themselves; the session must not store them again.
    stores_outcomes: ClassVar[bool] = True
    #: Nodes are other machines: the user's own modules travel with the functions.
    remote_nodes: ClassVar[bool] = True

    def __init__(
        self,
        account: BatchAccount,
        pool: BatchPool | None,
        lake: Lake,
        store: JobStore,
        *,
        poll_interval: float | None = 1.0,
        owned: Sequence[Any] = (),
    ) -> None:

        self.account = account
        self.pool = pool
        self.lake = lake
        self.store = store
        self.poll_interval = poll_interval
        #: What this backend started and stops last at close (the emulated profile's emulator).
        self._owned = list(owned)
        self._signer = SasSigner(lake)
        self._bodies = TaskBodies(self._signer, store, pool)
        if pool is not None and pool.wheel_stager is None:
            # The nodes install the client's azhpc from the lake (the emulator's too: they are
            # clean machines, emulator/batch/node_image.py). The
            # signer's SAS lives as long as it allows (DEFAULT_LIFETIME): nodes joining the
            # pool later download the wheel with the URL given at its creation.
            pool.wheel_stager = WheelStager(store.fs, self._signer, root=store.root)
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        #: Nodes whose signing key this backend has learned (through the Batch API).
        self._learned: set[tuple[str, str]] = set()
        store.node_key_sources.append(self._learn_node_key)
        self._wake = threading.Event()
        self._closed = False
        self._poller: threading.Thread | None = None
        self._adopted: set[str] = set()
        self._readers = concurrent.futures.ThreadPoolExecutor(
            READ_CONCURRENCY, thread_name_prefix="azhpc-batch-read"
        )

    # -- what the session sees ------------------------------------------------------------------

    @property
    def total_slots(self) -> int:
        return self.pool.total_slots if self.pool is not None else 1

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "account": self.account.account_name,
            "pool": self.pool.pool_id if self.pool is not None else None,
        }

    def batch_job_id(self, job_id: str) -> str | None:
        """The Batch job running azhpc job ``job_id`` now (``None`` once it has ended here)."""
        with self._lock:
            run = self._runs.get(job_id)
        return run.batch_job_id if run is not None else None

    def cost_per_hour(self) -> tuple[float, str] | None:
        estimate = self.pool.cost_estimate() if self.pool is not None else None
        if estimate is None or estimate.per_hour is None:
            return None
        return estimate.per_hour, estimate.currency

    def _client(self) -> Any:
        return self.account.client()

    def _call(self, what: str, call: Any) -> Any:
        return call_batch(self.account, what, call)

    # -- submitting -----------------------------------------------------------------------------

    def submit(self, spec: JobSpec, events: JobEvents) -> None:
        if self._closed:
            raise ConfigError("this session is closed; open a new one with azhpc.connect()")
        if self.pool is None:
            raise ConfigError(
                "this session has no Batch pool to run tasks on: open one with "
                "`with azhpc.Pool('my-pool', 'Standard_D2s_v5', nodes=2) as pool:` and pass "
                "pool=pool (or call pool.map(...))"
            )
        self.pool.ensure()
        manifest = self.store.manifest(spec.job_id)
        batch_job_id = self._create_or_adopt_job(spec)
        job_pool = None
        if self.pool.job_scoped:
            try:
                job_pool = self.pool.ensure_job_pool(batch_job_id, self._job_pool_id(batch_job_id))
            except BaseException:
                self._terminate(batch_job_id)  # Batch deletes the job's pool with it
                raise
        existing = self._existing_tasks(batch_job_id) if batch_job_id in self._adopted else set()
        digests = {task_id: digest for task_id, _, digest in manifest.tasks}
        tasks = [
            self._bodies.body(spec, manifest, task, digests[task.task_id])
            for task in spec.tasks
            if task.task_id not in existing
        ]
        run = _Run(
            spec,
            events,
            batch_job_id,
            pending={t.task_id for t in spec.tasks},
            pool=job_pool or self.pool,
        )
        with self._lock:
            self._runs[spec.job_id] = run
        try:
            self._add_tasks(batch_job_id, tasks)
            # An autoscaled pool grows only once tasks are pending: its first node, and the
            # check of the environment it recorded, can be waited for only now.
            (job_pool or self.pool).ensure_usable()
            # The nodes' signing keys, while the nodes are surely there (a job's own pool goes
            # with the job, maybe before its outcomes are read).
            self._learn_pool_keys(job_pool or self.pool)
        except BaseException:
            with self._lock:
                self._runs.pop(spec.job_id, None)
            self._terminate(batch_job_id)
            raise
        self._terminate_when_all_complete(batch_job_id)
        self._ensure_poller()
        self._wake.set()

    def _create_or_adopt_job(self, spec: JobSpec) -> str:
        """Create the Batch job; if it exists already (attach), adopt it while it is active."""
        from azure.batch import models

        attempt = 0
        while True:
            batch_job_id = spec.job_id if attempt == 0 else f"{spec.job_id}-r{attempt}"
            body = {
                "id": batch_job_id,
                "displayName": spec.name[:1024],
                "poolInfo": self.pool.pool_info(),  # type: ignore[union-attr]
                # Not terminatejob yet: "if a Job contains no Tasks, then all Tasks are
                # considered complete" (BatchJobCreateOptions.onAllTasksComplete, BatchService.json
                # 2025-06-01), so the job could end before its tasks are added.
                # _terminate_when_all_complete switches it once they all are.
                "onAllTasksComplete": "noaction",
                "commonEnvironmentSettings": [
                    # No secret: the nodes sign outcomes with keys of their own, for this job
                    # id and the task's (core/node_signing.py; docs/security.md).
                    {"name": JOB_ID_VARIABLE, "value": spec.job_id},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                ],
                "metadata": [{"name": "azhpc-job", "value": spec.job_id}],
            }
            try:
                self._call(
                    f"create job {batch_job_id!r}",
                    lambda body=body: self._client().create_job(models.BatchJobCreateOptions(body)),
                )
                return batch_job_id
            except BatchError as error:
                if error.code != "JobExists":
                    raise
            job = self._call(
                f"get job {batch_job_id!r}",
                lambda batch_job_id=batch_job_id: self._client().get_job(
                    batch_job_id, select=["id", "state"]
                ),
            )
            if _enum(job.state) == "active":
                self._adopted.add(batch_job_id)
                return batch_job_id
            attempt += 1  # ended (e.g. cancelled): the unfinished tasks run in a new Batch job

    def _terminate_when_all_complete(self, batch_job_id: str) -> None:
        """Switch the job to ``onAllTasksComplete: terminatejob`` now that every task is added,
        as the spec advises, so the job (and a job-scoped pool) ends even if this client dies.

        When every task has already completed, Batch (and the emulator) ends the job on the
        switch; a job that has ended meanwhile (cancelled) is left as it is. Either way this
        client deletes the job once it has gathered the outcomes.
        """
        from azure.batch import models

        try:
            self._call(
                f"switch job {batch_job_id!r} to end when its tasks are complete",
                lambda: self._client().update_job(
                    batch_job_id,
                    models.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"),
                ),
            )
        except BatchError as error:
            if error.code not in ("JobNotFound", "JobCompleted", "JobBeingDeleted"):
                logger.warning(
                    "Batch job %s will not end by itself (%s); azhpc ends it once its outcomes "
                    "are gathered",
                    batch_job_id,
                    error,
                )

    def _job_pool_id(self, batch_job_id: str) -> str:
        """The id of the pool Batch created for a job on an auto pool."""
        job = self._call(
            f"get job {batch_job_id!r}",
            lambda: self._client().get_job(batch_job_id, select=["id", "executionInfo"]),
        )
        pool_id = job.execution_info.pool_id if job.execution_info is not None else None
        if not pool_id:
            raise BatchError(
                f"Batch reported no pool for job {batch_job_id!r}; look at the job in the "
                "Azure portal (its pool may have failed to allocate)",
                code="NoAutoPool",
            )
        return str(pool_id)

    def _existing_tasks(self, batch_job_id: str) -> set[str]:
        return {
            task.id
            for task in self._call(
                f"list the tasks of job {batch_job_id!r}",
                lambda: list(
                    self._client().list_tasks(batch_job_id, select=["id"], max_results=PAGE_SIZE)
                ),
            )
        }

    def _add_tasks(self, batch_job_id: str, tasks: list[dict[str, Any]]) -> None:
        if not tasks:
            return
        from azure.batch import models

        bodies = [models.BatchTaskCreateOptions(t) for t in tasks]
        try:
            self._call(
                f"add {len(bodies)} task(s) to job {batch_job_id!r}",
                lambda: self._client().create_tasks(
                    batch_job_id, bodies, max_concurrency=SUBMIT_CONCURRENCY
                ),
            )
        except BatchError:
            raise
        except Exception as error:  # CreateTasksError: some tasks were refused
            failures = getattr(error, "failure_tasks", None) or []
            first = failures[0] if failures else None
            detail = (
                f"{first.task_id}: {getattr(first.error, 'code', '')} "
                f"{getattr(first.error, 'message', '')}"
                if first is not None
                else type(error).__name__
            )
            raise BatchError(
                f"Batch refused {len(failures) or 'some'} of the {len(bodies)} task(s) of job "
                f"{batch_job_id!r} (first: {detail}); the job was cancelled, nothing was run"
            ) from None

    # -- polling --------------------------------------------------------------------------------

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

    def _poll(self, run: _Run) -> None:
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

    def _pool_is_broken(self, run: _Run) -> bool:
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
        with self._lock:
            self._runs.pop(run.spec.job_id, None)
        self._terminate(run.batch_job_id)
        run.events.job_failed(PoolStartError(message))
        return True

    def _pool_check_seconds(self) -> float:
        """How often a waiting job looks at its pool's nodes: every 10 polls, at least 1 s."""
        return max(1.0, 10 * (self.poll_interval or 0.0))

    def _observe(self, run: _Run, task_id: str, task: Any) -> None:
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
        self, run: _Run, task_id: str, seen: _Seen, retries: int, requeues: int
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

    def _complete(self, run: _Run, completed: list[tuple[str, Any]]) -> None:
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

    def _lost(self, run: _Run, task_id: str, task: Any) -> TaskOutcome:
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

    # -- ending ---------------------------------------------------------------------------------

    def _lro_interval(self) -> float:
        """Seconds between the status requests of a terminate or delete: the SDK's 5 s on
        Azure (polling without a pause would hammer the service), 50 ms on the emulator."""
        return _EMULATED_LRO_INTERVAL if self.account.emulated else LRO_INTERVAL

    def _terminate(self, batch_job_id: str) -> None:
        from azure.batch.models._models import BatchJobTerminateOptions

        try:
            self._call(
                f"terminate job {batch_job_id!r}",
                lambda: self._client().begin_terminate_job(
                    batch_job_id,
                    options=BatchJobTerminateOptions(termination_reason="azhpc: cancelled"),
                    polling_interval=self._lro_interval(),
                ),
            )
        except BatchError as error:
            if error.code not in ("JobNotFound", "JobCompleted", "JobTerminating"):
                logger.warning("could not end Batch job %s: %s", batch_job_id, error)

    def _delete(self, batch_job_id: str) -> None:
        """Delete a Batch job whose outcomes this client has gathered (its tasks go with it).

        The service deletes in the background; the SDK's poller watches it at
        :meth:`_lro_interval`, and nothing here waits for it.
        """
        try:
            self._call(
                f"delete job {batch_job_id!r}",
                lambda: self._client().begin_delete_job(
                    batch_job_id, polling_interval=self._lro_interval()
                ),
            )
        except BatchError as error:
            if error.code not in ("JobNotFound", "JobBeingDeleted"):
                logger.warning("could not delete Batch job %s: %s", batch_job_id, error)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            run = self._runs.pop(job_id, None)
        if run is not None:
            run.cancelled = True
            self._terminate(run.batch_job_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            run.cancelled = True
            self._terminate(run.batch_job_id)
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=10)
        self._readers.shutdown(wait=False, cancel_futures=True)
        if self._learn_node_key in self.store.node_key_sources:
            self.store.node_key_sources.remove(self._learn_node_key)
        try:
            if self.pool is not None:
                self.pool.release()
        finally:
            self._signer.close()
            for resource in reversed(self._owned):
                resource.stop()


def _enum(value: Any) -> str:
    """An SDK enum member (or plain string) as Batch's lower-case REST value."""
    return str(getattr(value, "value", value)).lower()
