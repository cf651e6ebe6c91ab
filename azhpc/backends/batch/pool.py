"""Batch pools that live as long as their owner: ``azhpc.Pool``.

``with azhpc.Pool("demo", "Standard_D2s_v5", nodes=2) as pool:`` creates the pool (or reuses
one of that id), waits for its nodes while showing their states, checks that the environment
the start task recorded matches this client, runs the block's jobs on it, and deletes the pool
it created when the block ends, Ctrl-C included. Pools made outside a ``with`` block are
deleted by :meth:`Pool.close`, and at interpreter exit (SIGTERM included). The lifecycle itself
is :class:`~azhpc.backends.batch.lifecycle.BatchPool`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azhpc.backends.batch.account import BatchError
from azhpc.backends.batch.backend import BatchBackend
from azhpc.backends.batch.lifecycle import BatchPool
from azhpc.errors import ConfigError, EnvironmentMismatchError, PoolStartError
from azhpc.pools.spec import PoolSpec
from azhpc.session import Session, current_session

if TYPE_CHECKING:
    from azhpc.pools.estimate import CostEstimate
    from azhpc.pools.spec import PoolSpec

__all__ = ["EnvironmentMismatchError", "Pool", "PoolStartError"]


class Pool(Session):
    """A Batch pool as a session: ``with azhpc.Pool(...) as pool: pool.map(...)``.

    Parameters
    ----------
    spec
        A :class:`~azhpc.pools.PoolSpec`, or a pool id: with ``vm_size`` (and ``nodes=`` etc.)
        a spec is built from the keyword arguments; without, the pool must exist already.
    vm_size
        The VM size, when ``spec`` is an id.
    session
        The session whose Batch account and lake the pool uses (default: the default session,
        which must be on the ``emulated`` or ``azure`` profile).
    keep
        Do not delete the pool at the end (it keeps costing money).
    job_scoped
        Give each job its own pool, which Batch creates with the job and deletes when the job
        ends, even if this process is gone by then (an auto pool). The spec's id becomes the
        prefix of the pools' ids; each job waits for its pool's nodes.
    timeout
        Seconds to wait for usable nodes.
    progress, progress_after
        As for :func:`azhpc.connect`; ``progress`` also governs the node-state lines.
    **spec_options
        ``PoolSpec`` keyword arguments (``nodes``, ``spot_nodes``, ``task_slots_per_node``,
        ``requirements``, ``max_cost_per_hour``, ...).

    Examples
    --------
    >>> azhpc.connect("emulated")                                         # doctest: +SKIP
    >>> with azhpc.Pool("demo", "Standard_D2s_v5", nodes=2) as pool:       # doctest: +SKIP
    ...     print(pool.estimate())
    ...     pool.map(abs, [-1, -2, 3])
    [1, 2, 3]
    """

    def __init__(
        self,
        spec: PoolSpec | str,
        vm_size: str | None = None,
        *,
        session: Session | None = None,
        keep: bool = False,
        job_scoped: bool = False,
        timeout: float | None = None,
        progress: bool | None = None,
        progress_after: float = 1.0,
        **spec_options: Any,
    ) -> None:

        parent = current_session(session)
        if not isinstance(parent.backend, BatchBackend):
            raise ConfigError(
                f"Batch pools need a Batch account, and the {parent.profile!r} session has none: "
                "connect with azhpc.connect('emulated') (the local Batch emulator) or "
                "azhpc.connect('azure') with the account's URL in AZHPC_BATCH_URL or in "
                "batch_url of [profiles.azure] in the config file (connect() takes no batch_url)"
            )
        if isinstance(spec, PoolSpec):
            if vm_size is not None or spec_options:
                raise ConfigError("give either a PoolSpec or a pool id with its options, not both")
            pool_spec: PoolSpec | None = spec
            pool_id = spec.pool_id
        elif isinstance(spec, str):
            pool_id = spec
            pool_spec = PoolSpec(spec, vm_size, **spec_options) if vm_size is not None else None
            if vm_size is None and spec_options:
                raise ConfigError(
                    f"options {', '.join(sorted(spec_options))} need vm_size= too (they describe "
                    "a pool to create); to reuse an existing pool give only its id"
                )
        else:
            raise ConfigError(f"spec must be a PoolSpec or a pool id, got {type(spec).__name__}")
        account = parent.backend.account
        self.spec = pool_spec
        self.batch_pool = BatchPool(
            account,
            pool_spec,
            pool_id=pool_id,
            keep=keep,
            show=progress,
            timeout=timeout,
            job_scoped=job_scoped,
        )
        backend = BatchBackend(
            account,
            self.batch_pool,
            parent.lake,
            parent.store,
            poll_interval=parent.backend.poll_interval,
        )
        super().__init__(
            backend,
            settings=parent.settings,
            lake=parent.lake,
            store=parent.store,
            progress=progress if progress is not None else parent.progress,
            progress_after=progress_after,
            owns_lake=False,
        )
        self.backend: BatchBackend = backend

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<azhpc.Pool {self.pool_id!r} account={self.backend.account.account_name!r} ({state})>"
        )

    def __enter__(self) -> Pool:
        self.start()
        return self

    @property
    def pool_id(self) -> str:
        """The Batch pool's id."""
        return self.batch_pool.pool_id

    def start(self) -> Pool:
        """Create or reuse the pool and wait for its nodes (jobs do this on their own)."""
        try:
            self.batch_pool.ensure()
        except BaseException:
            self.close()
            raise
        return self

    def estimate(self) -> CostEstimate:
        """The pool's cost per hour at its target size, offline (see ``PoolSpec.estimate``)."""
        estimate = self.batch_pool.cost_estimate()
        if estimate is None:
            raise ConfigError(
                f"pool {self.pool_id!r} was opened by id and has not been looked up yet (or its "
                "size has no price): call pool.start() first, or build a PoolSpec to estimate it"
            )
        return estimate

    def nodes(self) -> dict[str, str]:
        """Each node's state, by node id (Batch's states: idle, running, preempted, ...).

        Job-scoped: the nodes of the latest job's pool (``{}`` before the first job)."""
        pool = self.batch_pool
        if not pool.job_scoped:
            return pool.node_states()
        if not pool.job_pools:
            return {}
        latest = list(pool.job_pools.values())[-1]
        try:
            return latest.node_states()
        except BatchError as error:
            if error.code == "PoolNotFound":
                return {}  # the job has ended and Batch deleted its pool
            raise

    def delete(self) -> None:
        """Close this pool session and delete the Batch pool, whoever created it."""
        self.close()
        if self.batch_pool.job_scoped:
            return  # each job's pool went with its job
        if not self.batch_pool.created or self.batch_pool.keep:
            self.batch_pool.delete()
