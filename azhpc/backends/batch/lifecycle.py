"""The lifecycle of one Batch pool through the SDK: :class:`BatchPool`.

Create the pool from a spec or reuse one by id (or, job-scoped, let Batch create one per job),
wait for its nodes while printing their states, name the nodes whose start task failed, read
and check the environment the start task recorded (those three in
:mod:`~azhpc.backends.batch.pool_nodes`), and delete a pool this process created — also at
interpreter exit and on SIGTERM. :class:`azhpc.Pool` (``pools/pool.py``) is the session
users hold; this module is what it drives.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.account import call_batch
from azhpc.backends.batch.pool_body import (
    ownership_metadata,
    resolve_idle_shutdown,
    to_batch_pool,
)
from azhpc.backends.batch.pool_nodes import (
    BROKEN,
    ON_THE_WAY,
    USABLE,
    NodeStatus,
    PoolNodes,
    _enum,
    check_environment,
)
from azhpc.errors import BatchError, ConfigError, PoolStartError
from azhpc.pools.autoscale import MIN_EVALUATION_MINUTES, Autoscale
from azhpc.pools.catalog import price_table
from azhpc.pools.estimate import estimate_cost
from azhpc.progress import choose_view

if TYPE_CHECKING:
    from azhpc.backends.batch.account import BatchAccount
    from azhpc.backends.batch.node_wheel import WheelStager
    from azhpc.pools.estimate import CostEstimate
    from azhpc.pools.spec import PoolSpec

__all__ = [
    "BROKEN",
    "ON_THE_WAY",
    "USABLE",
    "BatchPool",
    "NodeStatus",
    "check_environment",
    "deletion_poll_seconds",
]

#: Batch's limit on ``autoPoolIdPrefix``.
AUTO_POOL_PREFIX_LENGTH = 20
#: Seconds between two looks at a pool Batch is deleting. On Azure deletion takes minutes
#: (nodes are deallocated first: "Pools - Delete Pool", learn.microsoft.com), so asking more
#: often only adds load; the emulator deletes in a fraction of a second.
DELETION_POLL_SECONDS = 15.0
EMULATED_DELETION_POLL_SECONDS = 0.1
#: How long :meth:`BatchPool.ensure` waits for a pool of the same id to finish being deleted.
DELETION_WAIT_SECONDS = 30 * 60.0


def deletion_poll_seconds(account: BatchAccount) -> float:
    """Seconds between polls while Batch deletes a pool of ``account`` (fast on the emulator)."""
    return EMULATED_DELETION_POLL_SECONDS if account.emulated else DELETION_POLL_SECONDS


class BatchPool(PoolNodes):
    """One Batch pool's lifecycle, through the SDK: create or reuse, wait, check, delete.

    Parameters
    ----------
    account
        The Batch account.
    spec
        What the pool should be; ``None`` to use an existing pool of id ``pool_id`` only.
    pool_id
        The pool's id (default ``spec.pool_id``).
    keep
        Leave a pool this object created in place at :meth:`release` (it keeps costing money).
    show
        Print the node states while waiting (``None``: unless the output is not a terminal or
        notebook).
    timeout
        Seconds to wait for usable nodes (default: 10 minutes; 60 s on the emulator).
    job_scoped
        Give every job its own pool: Batch creates it with the job (an auto pool,
        ``poolLifetimeOption`` ``job``) and deletes it when the job ends, even if this client
        is gone by then. ``spec.pool_id`` becomes the prefix of the pools' ids.
    """

    def __init__(
        self,
        account: BatchAccount,
        spec: PoolSpec | None,
        *,
        pool_id: str | None = None,
        keep: bool = False,
        show: bool | None = None,
        timeout: float | None = None,
        job_scoped: bool = False,
    ) -> None:
        if spec is None and pool_id is None:
            raise ConfigError("a pool needs a PoolSpec or the id of an existing pool")
        if job_scoped and (spec is None or keep):
            raise ConfigError(
                "a job-scoped pool is created by Batch with each job and deleted when the job "
                "ends: it needs a PoolSpec (or vm_size=), and cannot be kept (drop keep=True, or "
                "use a normal pool)"
            )
        self.account = account
        self.job_scoped = job_scoped
        #: The pools Batch created for this object's jobs (job-scoped only), by Batch job id.
        self.job_pools: dict[str, BatchPool] = {}
        self._for_job: str | None = None
        self.spec = spec
        self.pool_id = pool_id or spec.pool_id  # type: ignore[union-attr]
        self.keep = keep
        self.show = show
        self.timeout = timeout if timeout is not None else (60.0 if account.emulated else 600.0)
        self.created = False
        self.environment: dict[str, Any] | None = None
        self._slots_per_node = spec.task_slots_per_node if spec is not None else 1
        self._target = (spec.nodes + spec.spot_nodes) if spec is not None else 1
        #: An autoscaled pool has nodes only while tasks are pending (see :meth:`ensure_usable`).
        self.autoscaled = spec is not None and spec.autoscale is not None
        #: Its autoScaleEvaluationInterval, in seconds (as pool_body.to_batch_pool sets it).
        self._autoscale_interval = 60.0 * MIN_EVALUATION_MINUTES
        if spec is not None and isinstance(spec.autoscale, Autoscale):
            self._target = spec.autoscale.max_nodes
            self._autoscale_interval = 60.0 * spec.autoscale.interval_minutes
        self._started = False
        self._ready = False
        self._released = False
        self._adopted_size: tuple[str, int, int] | None = None
        #: Stages the client's azhpc wheel for the start task (the Batch backend sets it; the
        #: nodes of a real account get azhpc from it).
        self.wheel_stager: WheelStager | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "ready" if self._ready else ("released" if self._released else "not started")
        return f"<BatchPool {self.pool_id!r} ({state})>"

    @property
    def total_slots(self) -> int:
        """Task slots of the pool at its target size."""
        return max(1, self._target) * self._slots_per_node

    @property
    def slots_per_node(self) -> int:
        """Task slots of one node."""
        return self._slots_per_node

    def _call(self, what: str, call: Any) -> Any:

        return call_batch(self.account, what, call)

    # -- starting -------------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the pool exists in the account (a pool being deleted still does)."""
        return self.pool_state() is not None

    def pool_state(self) -> str | None:
        """The pool's state (``"active"`` or ``"deleting"``), or ``None`` when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self.account.client()

        def state() -> str | None:
            # Get Pool rather than the HEAD of Pool Exists: a HEAD 404 has no body, which the
            # SDK reports with a logged traceback.
            try:
                pool = client.get_pool(self.pool_id, select=["id", "state"])
            except ResourceNotFoundError:
                return None
            return _enum(pool.state) if pool.state is not None else "active"

        return self._call(f"check for pool {self.pool_id!r}", state)  # type: ignore[no-any-return]

    def _node_setup(self) -> dict[str, Any]:
        """How the start task gets azhpc: every node (on Azure and on the emulator alike)
        installs the client's wheel from the lake.

        Raises
        ------
        ConfigError
            A pool with no :attr:`wheel_stager` (no lake to stage it in).
        """
        if self.wheel_stager is None:
            raise ConfigError(
                f"pool {self.pool_id!r}: its nodes install the client's azhpc from the lake, "
                "and this pool has none; create it through a session (azhpc.Pool or "
                "azhpc.connect) on the emulated or azure profile"
            )
        return {
            "wheel": self.wheel_stager.resource_file(),
            "wheel_sha256": self.wheel_stager.sha256(),
        }

    def pool_info(self) -> dict[str, Any]:
        """The ``poolInfo`` of a job on this pool: its id, or (job-scoped) the specification of
        the auto pool Batch creates with the job."""
        if not self.job_scoped:
            return {"poolId": self.pool_id}
        body = to_batch_pool(
            self.spec,  # type: ignore[arg-type]
            **self._node_setup(),
            metadata=ownership_metadata(),
        )
        del body["id"]
        return {
            "autoPoolSpecification": {
                "autoPoolIdPrefix": self.pool_id[:AUTO_POOL_PREFIX_LENGTH],
                "poolLifetimeOption": "job",
                "keepAlive": False,
                "pool": body,
            }
        }

    def ensure(self) -> None:
        """Make the pool ready: create or reuse it, wait for nodes, check their environment.

        A job-scoped pool has nothing to prepare before a job: see :meth:`ensure_job_pool`.
        """
        with self._lock:
            if self._ready or self.job_scoped:
                return
            if self._released:
                raise ConfigError(f"pool {self.pool_id!r} was deleted; open a new azhpc.Pool")
            if not self._started:
                self._start()
                self._started = True
            if self.autoscaled:
                # Its formula asks for nodes only once tasks are pending: waiting for a node
                # here would wait for ever. The backend adds a job's tasks, then calls
                # ensure_usable().
                self._say(f"pool {self.pool_id!r} autoscales: nodes start once tasks are pending")
                return
            self.ensure_usable()

    def ensure_usable(self) -> None:
        """Wait for a usable node and check the environment its start task recorded (once).

        :meth:`ensure` does this for a pool of fixed size. An autoscaled pool grows only when
        tasks are pending, so the backend calls this after adding a job's tasks; the wait then
        allows one autoscale evaluation interval more than ``timeout`` (on Azure).

        Raises
        ------
        PoolStartError
            No usable node in time (for an autoscaled pool the message quotes the last
            autoscale evaluation), or every node's start task failed.
        EnvironmentMismatchError
            The nodes were prepared for another Python, cloudpickle or azhpc.
        """
        with self._lock:
            if self._ready or self.job_scoped:
                return
            nodes = self._wait_for_nodes()
            self.environment = self._read_environment(nodes)
            check_environment(self.environment, self.pool_id)
            self._ready = True

    def _start(self) -> None:
        """Create the pool, adopt an existing one, or (job-scoped) note the one Batch made."""
        if self._for_job is not None:
            self._say(
                f"pool {self.pool_id!r} created by Batch for job {self._for_job!r}, "
                f"deleted when the job ends: {self.spec.estimate().summary_line()}"  # type: ignore[union-attr]
            )
        else:
            state = self.pool_state()
            if state == "deleting":
                # A pool of this id is still being deleted (a cell run again right after the
                # pool was deleted): Batch refuses every write to it with 409
                # PoolBeingDeleted, so wait until it is gone and create it again.
                state = self._wait_out_deletion()
            if state is None:
                self._create()
            else:
                self._adopt()

    def ensure_job_pool(self, batch_job_id: str, pool_id: str) -> BatchPool:
        """Wait for the auto pool Batch created for a job (job-scoped pools), check its nodes'
        environment, and return it."""
        with self._lock:
            if self._released:
                raise ConfigError(f"pool {self.pool_id!r} was closed; open a new azhpc.Pool")
            child = self.job_pools.get(batch_job_id)
            if child is None:
                child = BatchPool(
                    self.account, self.spec, pool_id=pool_id, show=self.show, timeout=self.timeout
                )
                child._for_job = batch_job_id
                self.job_pools[batch_job_id] = child
        child.ensure()
        return child

    def _create(self) -> None:
        from azure.batch import models

        if self.spec is None:
            raise ConfigError(
                f"there is no pool {self.pool_id!r} in the Batch account "
                f"{self.account.account_name!r}: give its VM size and node count to create it, "
                f"e.g. azhpc.Pool({self.pool_id!r}, 'Standard_D2s_v5', nodes=2)"
            )
        idle = resolve_idle_shutdown(self.spec, emulated=self.account.emulated)
        body = to_batch_pool(
            self.spec,
            **self._node_setup(),
            metadata=ownership_metadata(),
            idle_shutdown_minutes=idle,
        )
        guard = f"; to zero nodes after {idle} minutes without tasks" if idle else ""
        self._say(f"creating pool {self.pool_id!r}: {self.spec.estimate().summary_line()}{guard}")

        def create() -> None:
            self.account.client().create_pool(models.BatchPoolCreateOptions(body))

        try:
            self._call(f"create pool {self.pool_id!r}", create)
        except BatchError as error:
            if error.code != "PoolBeingDeleted":
                raise
            # Deleted between our look and the create (e.g. by another client): wait, retry.
            self._wait_out_deletion()
            self._call(f"create pool {self.pool_id!r}", create)
        self.created = True
        _register(self)

    def _wait_out_deletion(self) -> str | None:
        """Wait until the pool Batch is deleting is gone (polling it rarely on Azure); return
        its state then (``None``, or ``"active"`` if someone created it again meanwhile)."""
        self._say(
            f"pool {self.pool_id!r} is still being deleted; waiting until it is gone to create "
            "it again (deleting a pool takes a few minutes on Azure)"
        )
        deadline = time.monotonic() + DELETION_WAIT_SECONDS
        pause = deletion_poll_seconds(self.account)
        while (state := self.pool_state()) == "deleting":
            if time.monotonic() > deadline:
                raise PoolStartError(
                    f"pool {self.pool_id!r} is still being deleted after "
                    f"{DELETION_WAIT_SECONDS / 60:.0f} minutes; try again later, or use another "
                    "pool id"
                )
            time.sleep(pause)  # polling the service: Batch deletes the pool on its own
        return state

    def _adopt(self) -> None:
        pool = self._call(
            f"get pool {self.pool_id!r}",
            lambda: self.account.client().get_pool(self.pool_id),
        )
        self._slots_per_node = int(pool.task_slots_per_node or 1)
        self._target = int(
            (pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0)
        )
        self.autoscaled = bool(pool.enable_auto_scale)
        if pool.auto_scale_evaluation_interval is not None:
            self._autoscale_interval = pool.auto_scale_evaluation_interval.total_seconds()
        self._adopted_size = (
            str(pool.vm_size or ""),
            int(pool.target_dedicated_nodes or 0),
            int(pool.target_low_priority_nodes or 0),
        )
        self._say(
            f"using the existing pool {self.pool_id!r} ({pool.vm_size}, {self._target} node(s))"
        )

    def cost_estimate(self) -> CostEstimate | None:
        """The pool's cost per hour: from its spec, or from what the service reported for a
        pool adopted by id; ``None`` when neither is known yet or the size has no price."""
        if self.spec is not None:
            return self.spec.estimate()
        if self._adopted_size is None:
            return None

        vm_size, dedicated, spot = self._adopted_size
        size = price_table().get(vm_size)
        return estimate_cost(size, dedicated, spot) if size is not None else None

    # -- ending ---------------------------------------------------------------------------------

    def release(self) -> None:
        """Delete the pool if this object created it (unless ``keep``). Idempotent.

        Job-scoped: Batch deletes each job's pool once the job has ended (the backend ends
        them first); on the emulator, wait until they are gone."""
        with self._lock:
            if self._released:
                return
            self._released = True
            _unregister(self)
            if self.job_scoped:
                for child in self.job_pools.values():
                    child._wait_until_gone()
                return
            if self.created and not self.keep:
                self.delete()
            elif self.created:
                self._say(
                    f"pool {self.pool_id!r} is kept (keep=True): it costs money until deleted"
                )

    def delete(self) -> None:
        """Delete the pool now (whoever created it); on the emulator, wait until it is gone.

        On Azure the call returns once Batch has accepted the deletion (which then takes
        minutes; the SDK's poller looks every :data:`DELETION_POLL_SECONDS`). A pool that is
        already being deleted, or is gone, is fine."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self.account.client()
        pollers = []

        def delete() -> None:
            try:
                pollers.append(
                    client.begin_delete_pool(
                        self.pool_id,
                        # The SDK's poller sleeps this long between its Get Pool calls; 0 (as
                        # before) made it ask the service in a tight loop for minutes.
                        polling_interval=deletion_poll_seconds(self.account),
                    )
                )
            except ResourceNotFoundError:
                pass

        try:
            self._call(f"delete pool {self.pool_id!r}", delete)
        except BatchError as error:
            if error.code != "PoolBeingDeleted":  # deleted already by someone else
                raise
        self._ready = False
        if self.account.emulated:
            if pollers:
                pollers[0].wait(timeout=30)
            self._wait_until_gone()
        self._say(f"pool {self.pool_id!r} deleted")

    def _wait_until_gone(self) -> None:
        """On the emulator, wait (briefly) until the service has deleted the pool."""
        if self.account.emulated:
            deadline = time.monotonic() + 30
            while self.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # the emulator deletes in the background

    def _say(self, text: str) -> None:
        if self.show is False:
            return
        if self.show is None and not (sys.stderr.isatty() or _in_notebook()):
            return
        print(f"azhpc: {text}", file=sys.stderr, flush=True)


def _in_notebook() -> bool:

    return choose_view(None) == "widget"


# -- pools deleted with their owner ---------------------------------------------------------------

_live: set[BatchPool] = set()
_live_lock = threading.Lock()
_sigterm_installed = False


def _register(pool: BatchPool) -> None:
    global _sigterm_installed
    with _live_lock:
        _live.add(pool)
        if not _sigterm_installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                # By default SIGTERM ends Python without running atexit, which would leave the
                # pool running; make it an ordinary exit instead.
                signal.signal(signal.SIGTERM, _exit_on_sigterm)
            _sigterm_installed = True


def _unregister(pool: BatchPool) -> None:
    with _live_lock:
        _live.discard(pool)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
