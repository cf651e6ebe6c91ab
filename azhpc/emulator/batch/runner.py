"""Tasks come alive: task scheduling and local execution (node life: ``node_life.py``).

Each emulated node is a folder (``<root>/<pool>/<node>/``, Batch's layout: ``startup/``,
``shared/``, ``workitems/<job>/job-1/<task>/{stdout.txt,stderr.txt,wd/}``). Start tasks and
tasks run there as ``bash -c commandLine`` processes, each in its own process group so that
preemption, removal and ``stop()`` can kill them with everything they started.

One scheduler thread hands active tasks to nodes with free task slots (Spread: the node with
the most free slots first); each attempt runs in its own thread. An attempt cancelled by a
preemption/removal never writes its outcome: the task has already been requeued.

Nodes boot, run their start tasks, are preempted, removed and resized by
:class:`~azhpc.emulator.batch.node_life.NodeLife`, the engine's node half; autoscaled pools are
sampled and their formulas evaluated by ``schedule.py``, which resizes them through
:meth:`Engine.resize`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azhpc.emulator.batch.guard import ProcessGuard
from azhpc.emulator.batch.identity import identity_failure
from azhpc.emulator.batch.model import (
    SCHEDULABLE,
    Job,
    JobState,
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
from azhpc.emulator.batch.multi_instance import start_multi_instance
from azhpc.emulator.batch.node_life import NodeLife
from azhpc.emulator.batch.processes import (
    kill,
    node_info,
    run_process,
    task_environment,
)
from azhpc.emulator.batch.schedule import AutoscaleSchedule
from azhpc.emulator.batch.transfer import (
    TransferError,
    download_resource_files,
    upload_output_files,
)

__all__ = ["Engine", "Timings"]


@dataclass(frozen=True)
class Timings:
    """How long the emulated service takes for things that take minutes on Azure (seconds)."""

    #: ``creating`` -> ``starting``: VM allocation.
    allocate: float = 0.05
    #: ``starting`` -> start task / ``idle``: boot.
    boot: float = 0.05
    #: How long a preempted node stays ``preempted`` before it comes back.
    preempted: float = 0.3
    #: ``deleting`` pool / job -> gone.
    delete: float = 0.05
    #: How long a minute of the service's autoscale clock lasts: samples (every 30 s of it),
    #: their one-minute delay, ``TimeInterval_*`` and ``autoScaleEvaluationInterval`` (at least
    #: 5 minutes on Batch) are measured on that clock.
    autoscale_minute: float = 0.04


class Engine(NodeLife):
    """Runs an emulated account's nodes and tasks against its :class:`Store`."""

    def __init__(self, store: Store, account_name: str, base_url: str, timings: Timings) -> None:
        self.store = store
        self.account_name = account_name
        self.base_url = base_url
        self.timings = timings
        self._threads: list[threading.Thread] = []
        self._scheduler = threading.Thread(
            target=self._schedule_loop, name="batch-emulator-scheduler", daemon=True
        )
        #: Autoscaled pools: their samples and periodic evaluation (``schedule.py``).
        self.autoscale = AutoscaleSchedule(self, timings.autoscale_minute)
        #: Per pool: the node deallocation option of its latest resize, and the nodes that
        #: leave once their running tasks complete.
        self._deallocation: dict[str, str] = {}
        self._draining: dict[str, set[str]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler and autoscale threads (and a process guard, if the launcher
        gave none)."""
        if self.store.guard is None:
            self.store.guard = ProcessGuard()
        self._scheduler.start()
        self.autoscale.start()

    def stop(self) -> None:
        """Stop scheduling, kill every task and start task process, join the threads."""
        store = self.store
        with store.lock:
            store.stopping.set()
            for pool in store.pools.values():
                for node in pool.nodes.values():
                    node.generation += 1
                    self._cancel_node_work(node, requeue=False)
            store.changed.notify_all()
        self._scheduler.join(timeout=5)
        self.autoscale.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self.store.guard is not None:
            self.store.guard.close()

    def _spawn(self, target: Any, *args: Any, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _after(self, seconds: float) -> bool:
        """Wait ``seconds`` of emulated work; False when the emulator is stopping."""
        return not self.store.stopping.wait(seconds)

    # -- jobs and tasks -------------------------------------------------------------------------

    def end_job(self, job: Job, *, delete: bool, reason: str = "UserTerminate") -> None:
        """Terminate (or delete) a job. Caller holds the lock.

        Running tasks are killed and completed (``failureInfo.code`` ``TaskEnded``); active
        tasks stay active but are never scheduled (the service's documented behaviour).
        """
        job.set_state(JobState.DELETING if delete else JobState.TERMINATING)
        job.queue.clear()
        for task in job.tasks.values():
            attempt = task.attempt
            if attempt is not None:
                attempt.cancelled = True
                self.kill_attempt(attempt)
                self.release(attempt)
                task.attempt = None
            if task.state in (TaskState.RUNNING, TaskState.PREPARING):
                task.execution_info.update(
                    {
                        "endTime": rfc3339(utcnow()),
                        "result": "failure",
                        "failureInfo": {
                            "category": "usererror",
                            "code": "TaskEnded",
                            "message": "The task was ended because its job was terminated",
                        },
                    }
                )
                task.set_state(TaskState.COMPLETED)
        self.store.changed.notify_all()
        self._spawn(self._finish_job, job, delete, reason, name=f"end-{job.id}")

    def _finish_job(self, job: Job, delete: bool, reason: str) -> None:
        self._after(self.timings.delete)
        with self.store.lock:
            if self.store.jobs.get(job.id) is not job:
                return
            if delete:
                del self.store.jobs[job.id]
            else:
                job.end_time = utcnow()
                job.terminate_reason = reason
                job.set_state(JobState.COMPLETED)
            self._end_auto_pool(job)

    def _end_auto_pool(self, job: Job) -> None:
        """A job has ended: delete its auto pool unless ``keepAlive``. Caller holds the lock."""
        if job.auto_pool_id is None or job.auto_pool_kept:
            return
        pool = self.store.pools.get(job.auto_pool_id)
        if pool is not None and pool.state != PoolState.DELETING:
            self.delete_pool(pool)

    def _node_of(self, attempt: TaskAttempt) -> Node | None:
        pool = self.store.pools.get(attempt.pool_id)
        return pool.nodes.get(attempt.node_id) if pool else None

    def kill_attempt(self, attempt: TaskAttempt) -> None:
        """Kill every process of an attempt (all nodes of a multi-instance task)."""
        for process in [attempt.process, *attempt.processes]:
            kill(process)

    def release(self, attempt: TaskAttempt) -> None:
        """Free the slots an attempt holds on each of its nodes. Caller holds the lock."""
        pool = self.store.pools.get(attempt.pool_id)
        for node_id in attempt.nodes:
            node = pool.nodes.get(node_id) if pool else None
            if node is None:
                continue
            if node.running.get((attempt.job_id, attempt.task_id)) is attempt:
                del node.running[(attempt.job_id, attempt.task_id)]
            if not node.running and node.state == NodeState.RUNNING:
                node.set_state(NodeState.IDLE)
            if pool is not None:
                self._leave_if_drained(pool, node)

    def _schedule_loop(self) -> None:
        store = self.store
        with store.lock:
            while not store.stopping.is_set():
                self._assign()
                store.changed.wait(timeout=0.5)

    def _assign(self) -> None:
        for job in list(self.store.jobs.values()):
            if job.state != JobState.ACTIVE or not job.queue:
                continue
            pool = self.store.pools.get(job.pool_id or "")
            if pool is None or pool.state != PoolState.ACTIVE:
                continue
            leaving = self._draining.get(pool.id, set())
            nodes = [
                n for n in pool.nodes.values() if n.state in SCHEDULABLE and n.id not in leaving
            ]
            waiting: list[str] = []  # tasks that wait for particular nodes; the others go on
            while job.queue and nodes:
                task = job.tasks.get(job.queue[0])
                if task is None or task.state != TaskState.ACTIVE or task.attempt is not None:
                    job.queue.popleft()
                    continue
                placement = self._place(pool, nodes, task)
                if placement is None:
                    if task.instances > 1 or task.affinity_node is not None:
                        waiting.append(job.queue.popleft())
                        continue
                    break
                job.queue.popleft()
                if task.instances > 1:
                    start_multi_instance(self, job, task, pool, placement)
                else:
                    self._start_attempt(job, task, pool, placement[0])
            job.queue.extendleft(reversed(waiting))

    @staticmethod
    def _place(pool: Pool, nodes: list[Node], task: Task) -> list[Node] | None:
        """The node(s) to run ``task`` on now, or ``None`` to wait.

        A multi-instance task takes ``numberOfInstances`` idle nodes, and only on a pool with
        inter-node communication and one task slot per node (elsewhere it stays active for
        ever, as on Batch). A task with an affinity for a usable node waits for that node
        (Batch may place it elsewhere when the node is busy); others take the least-loaded
        node (spread).
        """
        slots = pool.task_slots_per_node
        if task.instances > 1:
            if not pool.spec.get("enableInterNodeCommunication") or slots != 1:
                return None
            free = sorted((n for n in nodes if not n.running), key=lambda n: n.id)
            return free[: task.instances] if len(free) >= task.instances else None
        preferred = next((n for n in nodes if n.id == task.affinity_node), None)
        if preferred is not None:
            fits = slots - preferred.used_slots() >= task.required_slots
            return [preferred] if fits else None
        node = max(nodes, key=lambda n: (slots - n.used_slots(), n.id))
        return [node] if slots - node.used_slots() >= task.required_slots else None

    def _start_attempt(self, job: Job, task: Task, pool: Pool, node: Node) -> None:
        attempt = TaskAttempt(
            job_id=job.id, task_id=task.id, node_id=node.id, pool_id=pool.id,
            slots=task.required_slots,
        )  # fmt: skip
        task.attempt = attempt
        node.running[(job.id, task.id)] = attempt
        node.set_state(NodeState.RUNNING)
        info = task.execution_info
        for key in ("endTime", "exitCode", "result", "failureInfo"):
            info.pop(key, None)
        info["startTime"] = rfc3339(utcnow())
        task.node_info = node_info(self.base_url, pool, node, job, task)
        task.task_dir = node.root / "workitems" / job.id / "job-1" / task.id
        task.set_state(TaskState.RUNNING)
        env = task_environment(
            self.account_name, self.base_url, pool, node, job, task, task.task_dir
        )
        self._spawn(
            self._run_attempt, attempt, dict(task.spec), task.task_dir, env, node,
            identity_failure(pool, task.spec), name=f"task-{job.id}-{task.id}",
        )  # fmt: skip

    def _run_attempt(
        self, attempt: TaskAttempt, spec: dict[str, Any], folder: Path, env: dict[str, str],
        node: Node, refused: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        working_dir = folder / "wd"
        working_dir.mkdir(parents=True, exist_ok=True)
        if refused is not None:  # its user identity is no account of the pool
            self._finish_attempt(attempt, None, refused)
            return
        failure: dict[str, Any] | None = None
        code: int | None = None
        try:
            download_resource_files(spec.get("resourceFiles") or [], working_dir)
            code = run_process(
                self.store, spec["commandLine"], working_dir, folder, env, attempt=attempt
            )
            if code is None or attempt.cancelled:
                return
            if code != 0:
                failure = {
                    "category": "usererror",
                    "code": "FailureExitCode",
                    "message": "The task process exited with an unexpected exit code",
                    "details": [{"name": "Message", "value": f"The task exited with code {code}"}],
                }
            upload_output_files(spec.get("outputFiles") or [], working_dir, succeeded=code == 0)
        except TransferError as e:
            failure = {"category": "usererror", "code": e.code, "message": str(e)}
        except OSError as e:
            failure = {"category": "servererror", "code": "TaskStartFailed", "message": str(e)}
        self._finish_attempt(attempt, code, failure)

    def _finish_attempt(
        self, attempt: TaskAttempt, code: int | None, failure: dict[str, Any] | None
    ) -> None:
        store = self.store
        with store.lock:
            if attempt.cancelled:
                return
            node = self._node_of(attempt)
            if node is not None:
                node.total_tasks_run += 1
                node.total_tasks_succeeded += failure is None
            self.release(attempt)
            job = store.jobs.get(attempt.job_id)
            task = job.tasks.get(attempt.task_id) if job else None
            if job is None or task is None or task.attempt is not attempt:
                store.changed.notify_all()
                return
            task.attempt = None
            info = task.execution_info
            retries = int(info.get("retryCount", 0))
            if failure is not None and (task.max_retries == -1 or retries < task.max_retries):
                info["retryCount"] = retries + 1
                info["lastRetryTime"] = rfc3339(utcnow())
                task.set_state(TaskState.ACTIVE)
                job.queue.appendleft(task.id)
            else:
                info.update(
                    {"endTime": rfc3339(utcnow()), "exitCode": code},
                )
                info["result"] = "failure" if failure else "success"
                if failure:
                    info["failureInfo"] = failure
                task.set_state(TaskState.COMPLETED)
                self._maybe_complete_job(job)
            store.changed.notify_all()

    def _maybe_complete_job(self, job: Job) -> None:
        if job.spec.get("onAllTasksComplete", "noaction").lower() != "terminatejob":
            return
        if job.state == JobState.ACTIVE and all(
            t.state == TaskState.COMPLETED for t in job.tasks.values()
        ):
            job.end_time = utcnow()
            job.terminate_reason = "AllTasksComplete"
            job.set_state(JobState.COMPLETED)
            self._end_auto_pool(job)
