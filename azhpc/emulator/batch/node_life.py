"""Nodes come alive and go in the Batch emulator's :class:`~azhpc.emulator.batch.runner.Engine`:
allocation, boot and start tasks, preemption, unusable nodes, removal, pool resizes and pool
deletion.

A node's start task runs in the node's folder (``<root>/<pool>/<node>/startup/``) as a
``bash -c commandLine`` process in its own process group, so that preemption, removal and
``stop()`` can kill it with everything it started; a node's tasks are requeued (or ended) when
the node goes.

Autoscaled pools are sampled and their formulas evaluated by ``schedule.py``, which resizes
them through :meth:`NodeLife.resize`.

Shrinking follows the node deallocation option (``$NodeDeallocationOption`` of the formula;
``requeue`` otherwise), as the formula page describes it: ``requeue`` stops the tasks of the
removed nodes and queues them again, ``terminate`` ends them, ``taskcompletion`` and
``retaineddata`` let the running tasks finish (those nodes take no new task) and remove each node
when it has none; the pool stays ``resizing`` until then. Nodes without tasks go first.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

from azhpc.emulator.batch.model import (
    AllocationState,
    Job,
    Node,
    NodeState,
    Pool,
    PoolState,
    Store,
    Task,
    TaskAttempt,
    TaskState,
    rfc3339,
    utcnow,
)
from azhpc.emulator.batch.processes import (
    environment_settings,
    kill,
    node_environment,
    run_process,
)
from azhpc.emulator.batch.transfer import TransferError, download_resource_files

if TYPE_CHECKING:
    from azhpc.emulator.batch.runner import Timings
    from azhpc.emulator.batch.schedule import AutoscaleSchedule

__all__ = ["NodeLife"]


class NodeLife:
    """The node half of the emulator's :class:`~azhpc.emulator.batch.runner.Engine`: boot,
    start tasks, preemption, removal, resizes, pool deletion.

    A mixin: it works on the engine's state, declared here.
    """

    store: Store
    account_name: str
    base_url: str
    timings: Timings
    autoscale: AutoscaleSchedule
    #: Per pool: the node deallocation option of its latest resize, and the nodes that
    #: leave once their running tasks complete.
    _deallocation: dict[str, str]
    _draining: dict[str, set[str]]

    if TYPE_CHECKING:

        def _spawn(self, target: Any, *args: Any, name: str) -> None: ...

        def _after(self, seconds: float) -> bool: ...

        def kill_attempt(self, attempt: TaskAttempt) -> None: ...

        def release(self, attempt: TaskAttempt) -> None: ...

        def _maybe_complete_job(self, job: Job) -> None: ...

    def add_nodes(self, pool: Pool, dedicated: int, low_priority: int) -> None:
        """Allocate nodes (``creating``) and boot them. Caller holds the lock."""
        for is_dedicated, count in ((True, dedicated), (False, low_priority)):
            for _ in range(count):
                pool.node_counter += 1
                node_id = f"tvmps_{pool.node_counter:04d}_{'d' if is_dedicated else 'p'}"
                root = self.store.root / pool.id / node_id
                node = Node(id=node_id, pool_id=pool.id, is_dedicated=is_dedicated, root=root)
                # Loopback addresses, each node its own (Linux routes all of 127.0.0.0/8 to lo):
                # MPI's host list names distinct hosts, as a real pool's does.
                node.ip_address = f"127.0.{pool.node_counter // 250}.{pool.node_counter % 250 + 1}"
                pool.nodes[node_id] = node
                self.boot(pool, node)

    def boot(self, pool: Pool, node: Node, *, delay: float = 0.0) -> None:
        """(Re)start a node's life: allocation, boot, start task. Caller holds the lock."""
        node.generation += 1
        self._spawn(self._boot, pool, node, node.generation, delay, name=f"boot-{node.id}")

    def _alive(self, pool: Pool, node: Node, generation: int) -> bool:
        return (
            not self.store.stopping.is_set()
            and node.generation == generation
            and self.store.pools.get(pool.id) is pool
            and pool.nodes.get(node.id) is node
        )

    def _boot(self, pool: Pool, node: Node, generation: int, delay: float) -> None:
        store = self.store
        if not self._after(delay + self.timings.allocate):
            return
        with store.lock:
            if not self._alive(pool, node, generation):
                return
            node.set_state(NodeState.STARTING)
        if not self._after(self.timings.boot):
            return
        with store.lock:
            if not self._alive(pool, node, generation):
                return
            node.last_boot_time = utcnow()
            (node.root / "shared").mkdir(parents=True, exist_ok=True)
            start_task = pool.spec.get("startTask")
            wait = bool(start_task) and start_task.get("waitForSuccess", True) is not False
            if not start_task:
                node.set_state(NodeState.IDLE)
                store.changed.notify_all()
                return
            node.set_state(NodeState.WAITING_FOR_START_TASK if wait else NodeState.IDLE)
            store.changed.notify_all()
            failing = pool.fail_start_task_nodes
            force_fail = pool.fail_start_task and (failing is None or node.id in failing)
        succeeded = self._run_start_task(pool, node, generation, start_task, force_fail)
        with store.lock:
            if not self._alive(pool, node, generation):
                return
            if wait:
                node.set_state(NodeState.IDLE if succeeded else NodeState.START_TASK_FAILED)
            store.changed.notify_all()

    def _run_start_task(
        self, pool: Pool, node: Node, generation: int, spec: dict[str, Any], force_fail: bool
    ) -> bool:
        folder = node.root / "startup"
        working_dir = folder / "wd"
        working_dir.mkdir(parents=True, exist_ok=True)
        (node.root / "shared").mkdir(parents=True, exist_ok=True)
        env = node_environment(self.account_name, self.base_url, pool, node)
        env.update(
            {"AZ_BATCH_TASK_DIR": str(folder), "AZ_BATCH_TASK_WORKING_DIR": str(working_dir)}
        )
        env.update(environment_settings(spec))

        def started(process: subprocess.Popen[bytes]) -> None:
            node.start_task_process = process

        max_retries = int(spec.get("maxTaskRetryCount") or 0)
        retry = 0
        info: dict[str, Any] = {"state": "running", "startTime": rfc3339(utcnow()), "retryCount": 0}
        while True:
            with self.store.lock:
                if not self._alive(pool, node, generation):
                    return False
                node.start_task_info = dict(info)
            failure: dict[str, Any] | None = None
            try:
                download_resource_files(spec.get("resourceFiles") or [], working_dir)
                command = (
                    "echo 'start task failed: fault injected by the Batch emulator' >&2; exit 1"
                    if force_fail
                    else spec["commandLine"]
                )
                code = run_process(self.store, command, working_dir, folder, env, started=started)
            except TransferError as e:
                code = None
                failure = {"category": "usererror", "code": e.code, "message": str(e)}
            if code is not None and code != 0:
                failure = {
                    "category": "usererror",
                    "code": "FailureExitCode",
                    "message": "The task process exited with an unexpected exit code",
                    "details": [{"name": "Message", "value": f"The task exited with code {code}"}],
                }
            info.update({"state": "completed", "endTime": rfc3339(utcnow()), "exitCode": code})
            info["result"] = "failure" if failure else "success"
            if failure:
                info["failureInfo"] = failure
            else:
                info.pop("failureInfo", None)
            if failure is None or (max_retries != -1 and retry >= max_retries):
                with self.store.lock:
                    if self._alive(pool, node, generation):
                        node.start_task_info = {k: v for k, v in info.items() if v is not None}
                return failure is None
            retry += 1
            info.update({"retryCount": retry, "lastRetryTime": rfc3339(utcnow())})

    def _cancel_node_work(self, node: Node, *, requeue: bool) -> None:
        """Kill a node's task and start task processes; requeue its tasks. Caller holds lock."""
        kill(node.start_task_process)
        for (job_id, task_id), attempt in list(node.running.items()):
            attempt.cancelled = True
            self.kill_attempt(attempt)
            if len(attempt.nodes) > 1:  # a multi-instance task loses all its nodes' work
                self.release(attempt)
            job = self.store.jobs.get(job_id)
            task = job.tasks.get(task_id) if job else None
            if requeue and job is not None and task is not None and task.attempt is attempt:
                self._requeue(job, task)
        node.running.clear()
        self.store.changed.notify_all()

    def _requeue(self, job: Job, task: Task) -> None:
        task.attempt = None
        task.node_info = None
        info = task.execution_info
        info["requeueCount"] = int(info.get("requeueCount", 0)) + 1
        info["lastRequeueTime"] = rfc3339(utcnow())
        task.set_state(TaskState.ACTIVE)
        job.queue.appendleft(task.id)

    def preempt(self, pool: Pool, node: Node, *, come_back: bool = True) -> None:
        """Preempt a node: requeue its tasks, ``preempted``, then boot again. Caller holds lock."""
        self._cancel_node_work(node, requeue=True)
        node.generation += 1
        node.set_state(NodeState.PREEMPTED)
        if come_back:
            self.boot(pool, node, delay=self.timings.preempted)

    def make_unusable(self, node: Node) -> None:
        """Make a node ``unusable``: its tasks are requeued elsewhere. Caller holds the lock."""
        self._cancel_node_work(node, requeue=True)
        node.generation += 1
        node.set_state(NodeState.UNUSABLE)

    def remove_node(self, pool: Pool, node: Node) -> None:
        """Take a node out of its pool, requeueing its tasks. Caller holds the lock."""
        self._draining.get(pool.id, set()).discard(node.id)
        self._cancel_node_work(node, requeue=True)
        node.generation += 1
        node.set_state(NodeState.LEAVING_POOL)
        del pool.nodes[node.id]

    def resize(
        self, pool: Pool, dedicated: int, low_priority: int, *, deallocation: str = "requeue"
    ) -> None:
        """Move a pool towards new targets; ``steady`` once nodes are allocated/removed.

        ``deallocation`` is the node deallocation option for nodes that must go (see the
        module's docstring). Caller holds the lock.
        """
        pool.target_dedicated, pool.target_low_priority = dedicated, low_priority
        self._deallocation[pool.id] = deallocation
        pool.set_allocation_state(AllocationState.RESIZING)
        pool.resize_generation += 1
        self._spawn(self._resize, pool, pool.resize_generation, name=f"resize-{pool.id}")

    def _resize(self, pool: Pool, generation: int) -> None:
        if not self._after(self.timings.allocate):
            return
        with self.store.lock:
            if pool.resize_generation != generation or self.store.pools.get(pool.id) is not pool:
                return
            if pool.state != PoolState.ACTIVE:
                return
            option = self._deallocation.get(pool.id, "requeue")
            draining = self._draining.setdefault(pool.id, set())
            for is_dedicated, target in (
                (True, pool.target_dedicated),
                (False, pool.target_low_priority),
            ):
                nodes = [n for n in pool.nodes.values() if n.is_dedicated == is_dedicated]
                excess = len(nodes) - target
                if excess <= 0:
                    draining.difference_update(n.id for n in nodes)  # they all stay
                    self.add_nodes(
                        pool, -excess if is_dedicated else 0, 0 if is_dedicated else -excess
                    )
                    continue
                # Nodes without tasks (idle, booting, broken) leave first, then the least busy.
                nodes.sort(key=lambda n: (len(n.running), n.state == NodeState.RUNNING, n.id))
                draining.difference_update(n.id for n in nodes[excess:])
                for node in nodes[:excess]:
                    if node.running and option in ("taskcompletion", "retaineddata"):
                        draining.add(node.id)  # leaves when its tasks complete (release)
                    elif option == "terminate":
                        self._terminate_node_tasks(node)
                        self.remove_node(pool, node)
                    else:
                        self.remove_node(pool, node)
            if not draining:
                pool.set_allocation_state(AllocationState.STEADY)
            self.store.changed.notify_all()

    def deallocation(self, pool: Pool) -> str:
        """The node deallocation option of the pool's latest resize (``requeue`` by default)."""
        return self._deallocation.get(pool.id, "requeue")

    def _terminate_node_tasks(self, node: Node) -> None:
        """``terminate``: a leaving node's running tasks end now, as failed. Caller holds lock.

        The formula page says only "Terminates tasks immediately and removes them from the job
        queue"; the emulator completes them with ``failureInfo.code`` ``TaskEnded``.
        """
        for (job_id, task_id), attempt in list(node.running.items()):
            job = self.store.jobs.get(job_id)
            task = job.tasks.get(task_id) if job else None
            if job is None or task is None or task.attempt is not attempt:
                continue
            attempt.cancelled = True
            self.kill_attempt(attempt)
            self.release(attempt)
            task.attempt = None
            task.execution_info.update(
                {
                    "endTime": rfc3339(utcnow()),
                    "result": "failure",
                    "failureInfo": {
                        "category": "ServerError",
                        "code": "TaskEnded",
                        "message": "The task was ended because its node left the pool",
                    },
                }
            )
            task.set_state(TaskState.COMPLETED)
            self._maybe_complete_job(job)

    def _leave_if_drained(self, pool: Pool, node: Node) -> None:
        """A node waiting for its tasks to complete before leaving: leave once it has none."""
        draining = self._draining.get(pool.id)
        if not draining or node.id not in draining or node.running:
            return
        if pool.nodes.get(node.id) is node:
            self.remove_node(pool, node)
        draining.discard(node.id)
        if not draining and pool.state == PoolState.ACTIVE:
            pool.set_allocation_state(AllocationState.STEADY)

    def delete_pool(self, pool: Pool) -> None:
        """``deleting``: kill the nodes' work (tasks requeued), then drop the pool."""
        pool.state = PoolState.DELETING
        pool.state_transition_time = utcnow()
        pool.touch()
        pool.resize_generation += 1
        self.autoscale.disable(pool)
        for node in list(pool.nodes.values()):
            self.remove_node(pool, node)
        self._draining.pop(pool.id, None)
        self._deallocation.pop(pool.id, None)
        self._spawn(self._forget_pool, pool, name=f"delete-{pool.id}")

    def _forget_pool(self, pool: Pool) -> None:
        self._after(self.timings.delete)
        with self.store.lock:
            if self.store.pools.get(pool.id) is pool:
                del self.store.pools[pool.id]
