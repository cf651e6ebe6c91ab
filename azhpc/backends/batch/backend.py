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
5. One thread polls every active job (:mod:`azhpc.backends.batch.watch`): one ``Get Task
   Counts`` request, and when they changed, one ``List Tasks`` of the unfinished tasks plus
   those completed since the last poll, 1000 per page, filtered on the properties Batch
   documents as filterable only (retries and requeues are read from each listed task's
   ``executionInfo``). Tasks that left the list are complete: their outcomes are read from
   the lake, their seals checked, and only then unpickled.
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
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from azhpc.backends.base import Backend
from azhpc.backends.batch.account import BatchAccount, BatchError, call_batch
from azhpc.backends.batch.node_wheel import WheelStager
from azhpc.backends.batch.task_bodies import TaskBodies
from azhpc.backends.batch.watch import PAGE_SIZE, READ_CONCURRENCY, JobWatch, Run, _enum
from azhpc.core.worker import JOB_ID_VARIABLE
from azhpc.errors import ConfigError
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
#: Seconds between the status requests of a long-running operation (terminate, delete) on
#: Azure: the SDK's own default. On the emulator the operations take milliseconds.
LRO_INTERVAL = 5.0
_EMULATED_LRO_INTERVAL = 0.05


class BatchBackend(JobWatch, Backend):
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
        self._runs: dict[str, Run] = {}
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
        run = Run(
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
