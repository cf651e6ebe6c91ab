"""The Batch emulator's in-memory state: pools, nodes, jobs and tasks, and their JSON shapes.

Every object keeps the body it was created from (``spec``) plus the fields the service owns
(state, times, counts). ``to_json`` renders the REST shape of api-version 2025-06-01 (the shape
the ``azure-batch`` 15.x SDK deserializes). All mutation happens under :attr:`Store.lock`.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import subprocess
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azhpc.emulator.batch.guard import ProcessGuard

__all__ = [
    "AllocationState",
    "ApiError",
    "Job",
    "JobState",
    "Node",
    "NodeState",
    "Pool",
    "PoolState",
    "Store",
    "Task",
    "TaskAttempt",
    "TaskState",
    "Throttle",
    "rfc3339",
    "utcnow",
]


class PoolState(enum.StrEnum):
    """``BatchPoolState``."""

    ACTIVE = "active"
    DELETING = "deleting"


class AllocationState(enum.StrEnum):
    """``AllocationState``."""

    STEADY = "steady"
    RESIZING = "resizing"
    STOPPING = "stopping"


class NodeState(enum.StrEnum):
    """The ``BatchNodeState`` values the emulator uses."""

    CREATING = "creating"
    STARTING = "starting"
    WAITING_FOR_START_TASK = "waitingforstarttask"
    IDLE = "idle"
    RUNNING = "running"
    START_TASK_FAILED = "starttaskfailed"
    PREEMPTED = "preempted"
    UNUSABLE = "unusable"
    REBOOTING = "rebooting"
    LEAVING_POOL = "leavingpool"


#: Node states in which a node takes tasks.
SCHEDULABLE = frozenset({NodeState.IDLE, NodeState.RUNNING})


class JobState(enum.StrEnum):
    """``BatchJobState``."""

    ACTIVE = "active"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    DELETING = "deleting"


class TaskState(enum.StrEnum):
    """``BatchTaskState``."""

    ACTIVE = "active"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"


class ApiError(Exception):
    """A Batch error response: HTTP status, Batch error code and message.

    ``values`` are the body's ``values`` (key, value) pairs (``QueryParameterName``, ...);
    ``headers`` extra response headers (``Retry-After`` of a throttled request).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        values: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.values = list(values)
        self.headers = dict(headers or {})


@dataclass
class Throttle:
    """Fault injection: the next ``count`` requests of an operation are refused with ``status``
    (429 or 503) and a ``Retry-After`` of ``retry_after`` seconds."""

    status: int
    count: int
    retry_after: int

    def error(self) -> ApiError:
        """The refusal, in Batch's words ("Batch status and error codes": ``ServerBusy`` is
        503; ``TooManyRequests`` 429), with its ``Retry-After`` header ("Error handling and
        detection in Azure Batch": throttling errors are 429 or 503 with Retry-After)."""
        if self.status == 503:
            code, message = "ServerBusy", "The server is currently unable to receive requests."
        else:
            code, message = "TooManyRequests", "The server is receiving too many requests."
        return ApiError(
            self.status,
            code,
            f"{message} Please retry your request.",
            headers={"Retry-After": str(self.retry_after)},
        )


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def rfc3339(t: dt.datetime | None) -> str | None:
    """``2025-06-01T12:00:00.123456Z`` (what Batch sends), or ``None``."""
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _etag() -> str:
    return f'"0x{uuid.uuid4().hex[:15].upper()}"'


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass
class _Resource:
    """What pools, jobs and tasks share: id, the create body, times and ETag."""

    id: str
    spec: dict[str, Any]
    creation_time: dt.datetime = field(default_factory=utcnow)
    last_modified: dt.datetime = field(default_factory=utcnow)
    etag: str = field(default_factory=_etag)

    def touch(self) -> None:
        """Record a modification (new ETag, lastModified)."""
        self.last_modified = utcnow()
        self.etag = _etag()


@dataclass
class Node:
    """A compute node of a pool; its tasks run as local processes in ``root``."""

    id: str
    pool_id: str
    is_dedicated: bool
    root: Path
    state: NodeState = NodeState.CREATING
    state_transition_time: dt.datetime = field(default_factory=utcnow)
    allocation_time: dt.datetime = field(default_factory=utcnow)
    last_boot_time: dt.datetime | None = None
    ip_address: str = "10.0.0.4"
    #: Task attempts running on this node, by (job id, task id).
    running: dict[tuple[str, str], TaskAttempt] = field(default_factory=dict)
    total_tasks_run: int = 0
    total_tasks_succeeded: int = 0
    start_task_info: dict[str, Any] | None = None
    start_task_process: subprocess.Popen[bytes] | None = None
    #: Bumped whenever the node is preempted, rebooted or removed: boot threads of an older
    #: generation stop touching it.
    generation: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def set_state(self, state: NodeState) -> None:
        """Change state and stamp the transition time."""
        if self.state != state:
            self.state = state
            self.state_transition_time = utcnow()

    def used_slots(self) -> int:
        """Task slots taken by running tasks."""
        return sum(a.slots for a in self.running.values())

    def to_json(self, base_url: str, pool: Pool) -> dict[str, Any]:
        """The ``BatchNode`` REST shape."""
        return _drop_none(
            {
                "id": self.id,
                "url": f"{base_url}/pools/{self.pool_id}/nodes/{self.id}",
                "state": self.state.value,
                "schedulingState": "enabled",
                "stateTransitionTime": rfc3339(self.state_transition_time),
                "lastBootTime": rfc3339(self.last_boot_time),
                "allocationTime": rfc3339(self.allocation_time),
                "ipAddress": self.ip_address,
                "affinityId": f"TVM:{self.id}",
                "vmSize": pool.vm_size,
                "totalTasksRun": self.total_tasks_run,
                "runningTasksCount": len(self.running),
                "runningTaskSlotsCount": self.used_slots(),
                "totalTasksSucceeded": self.total_tasks_succeeded,
                "recentTasks": [
                    {
                        "taskUrl": f"{base_url}/jobs/{job_id}/tasks/{task_id}",
                        "jobId": job_id,
                        "taskId": task_id,
                        "taskState": TaskState.RUNNING.value,
                    }
                    for job_id, task_id in self.running
                ],
                "startTask": pool.spec.get("startTask"),
                "startTaskInfo": self.start_task_info,
                "errors": self.errors or None,
                "isDedicated": self.is_dedicated,
                "nodeAgentInfo": {
                    "version": "1.12.0-emulated",
                    "lastUpdateTime": rfc3339(self.allocation_time),
                },
                "virtualMachineInfo": {
                    "imageReference": (pool.spec.get("virtualMachineConfiguration") or {}).get(
                        "imageReference", {}
                    )
                },
            }
        )


@dataclass
class Pool(_Resource):
    """A pool: its create body, target sizes and nodes."""

    state: PoolState = PoolState.ACTIVE
    state_transition_time: dt.datetime = field(default_factory=utcnow)
    allocation_state: AllocationState = AllocationState.STEADY
    allocation_state_transition_time: dt.datetime = field(default_factory=utcnow)
    target_dedicated: int = 0
    target_low_priority: int = 0
    enable_auto_scale: bool = False
    auto_scale_formula: str | None = None
    auto_scale_run: dict[str, Any] | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    #: Fault injection: every start task on this pool fails (exit code 1) until cleared.
    fail_start_task: bool = False
    #: The nodes whose start task fails (``None``: every node, while ``fail_start_task``).
    fail_start_task_nodes: set[str] | None = field(default_factory=set)
    node_counter: int = 0
    resize_generation: int = 0
    #: ``time.monotonic()`` of the last accepted Pool_EnableAutoScale request.
    last_enable_auto_scale: float | None = None

    @property
    def vm_size(self) -> str:
        """The VM size from the create body."""
        return str(self.spec.get("vmSize", ""))

    @property
    def task_slots_per_node(self) -> int:
        """``taskSlotsPerNode`` (default 1)."""
        return int(self.spec.get("taskSlotsPerNode") or 1)

    def set_allocation_state(self, state: AllocationState) -> None:
        """Change allocation state and stamp the transition time."""
        if self.allocation_state != state:
            self.allocation_state = state
            self.allocation_state_transition_time = utcnow()
            self.touch()

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The ``BatchPool`` REST shape."""
        out = dict(self.spec)
        # The accounts' passwords and SSH keys are secrets ("x-ms-secret" in BatchService.json)
        # that the service does not send back, and a UserAccount without its (required)
        # password is no valid one: the emulator leaves the accounts out.
        out.pop("userAccounts", None)
        dedicated = sum(1 for n in self.nodes.values() if n.is_dedicated)
        out.update(
            {
                "id": self.id,
                "url": f"{base_url}/pools/{self.id}",
                "eTag": self.etag,
                "lastModified": rfc3339(self.last_modified),
                "creationTime": rfc3339(self.creation_time),
                "state": self.state.value,
                "stateTransitionTime": rfc3339(self.state_transition_time),
                "allocationState": self.allocation_state.value,
                "allocationStateTransitionTime": rfc3339(self.allocation_state_transition_time),
                "vmSize": self.vm_size,
                "currentDedicatedNodes": dedicated,
                "currentLowPriorityNodes": len(self.nodes) - dedicated,
                "targetDedicatedNodes": self.target_dedicated,
                "targetLowPriorityNodes": self.target_low_priority,
                "enableAutoScale": self.enable_auto_scale,
                "taskSlotsPerNode": self.task_slots_per_node,
                "enableInterNodeCommunication": bool(self.spec.get("enableInterNodeCommunication")),
                "taskSchedulingPolicy": self.spec.get("taskSchedulingPolicy")
                or {"nodeFillType": "spread"},
            }
        )
        if self.enable_auto_scale:
            out["autoScaleFormula"] = self.auto_scale_formula
            out["autoScaleEvaluationInterval"] = self.spec.get(
                "autoScaleEvaluationInterval", "PT15M"
            )
            if self.auto_scale_run:
                out["autoScaleRun"] = self.auto_scale_run
        else:
            out.pop("autoScaleFormula", None)
            out.pop("autoScaleEvaluationInterval", None)
            out.setdefault("resizeTimeout", "PT15M")
        return out


@dataclass
class TaskAttempt:
    """One run of a task on a node; cancelled by preemption, removal, termination or stop."""

    job_id: str
    task_id: str
    node_id: str
    pool_id: str
    slots: int
    cancelled: bool = False
    process: subprocess.Popen[bytes] | None = None
    #: Every process the attempt started (a multi-instance task runs one per node at once).
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: The nodes a multi-instance task holds, primary first (``(node_id,)`` otherwise).
    node_ids: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[str, ...]:
        """The ids of the nodes this attempt holds."""
        return self.node_ids or (self.node_id,)


@dataclass
class Task(_Resource):
    """A task of a job."""

    job_id: str = ""
    state: TaskState = TaskState.ACTIVE
    state_transition_time: dt.datetime = field(default_factory=utcnow)
    previous_state: TaskState | None = None
    previous_state_transition_time: dt.datetime | None = None
    execution_info: dict[str, Any] = field(
        default_factory=lambda: {"retryCount": 0, "requeueCount": 0}
    )
    node_info: dict[str, Any] | None = None
    #: The node folder the task last ran in (its files are served from there).
    task_dir: Path | None = None
    attempt: TaskAttempt | None = None
    #: A multi-instance task's subtasks (``BatchSubtask`` REST shapes), primary first.
    subtasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def instances(self) -> int:
        """``multiInstanceSettings.numberOfInstances`` (1 for an ordinary task)."""
        settings = self.spec.get("multiInstanceSettings") or {}
        return int(settings.get("numberOfInstances") or 1) if settings else 1

    @property
    def affinity_node(self) -> str | None:
        """The node ``affinityInfo.affinityId`` prefers (``TVM:<node id>``), if any."""
        affinity = (self.spec.get("affinityInfo") or {}).get("affinityId") or ""
        return affinity.removeprefix("TVM:") or None

    @property
    def required_slots(self) -> int:
        """``requiredSlots`` (default 1)."""
        return int(self.spec.get("requiredSlots") or 1)

    @property
    def max_retries(self) -> int:
        """``constraints.maxTaskRetryCount`` (default 0; -1 means no limit)."""
        return int((self.spec.get("constraints") or {}).get("maxTaskRetryCount") or 0)

    def set_state(self, state: TaskState) -> None:
        """Change state, remembering the previous one."""
        if self.state != state:
            self.previous_state = self.state
            self.previous_state_transition_time = self.state_transition_time
            self.state = state
            self.state_transition_time = utcnow()
            self.touch()

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The ``BatchTask`` REST shape."""
        out = dict(self.spec)
        constraints = {"maxWallClockTime": "P10675199DT2H48M5.4775807S", "retentionTime": "P7D"}
        constraints.update(self.spec.get("constraints") or {})
        constraints.setdefault("maxTaskRetryCount", 0)
        out.update(
            {
                "id": self.id,
                "url": f"{base_url}/jobs/{self.job_id}/tasks/{self.id}",
                "eTag": self.etag,
                "creationTime": rfc3339(self.creation_time),
                "lastModified": rfc3339(self.last_modified),
                "state": self.state.value,
                "stateTransitionTime": rfc3339(self.state_transition_time),
                "constraints": constraints,
                "requiredSlots": self.required_slots,
                "executionInfo": _drop_none(dict(self.execution_info)),
                "multiInstanceSettings": None,
            }
        )
        if self.previous_state is not None:
            out["previousState"] = self.previous_state.value
            out["previousStateTransitionTime"] = rfc3339(self.previous_state_transition_time)
        if self.node_info:
            out["nodeInfo"] = self.node_info
        return _drop_none(out)


@dataclass
class Job(_Resource):
    """A job: its create body, state and tasks (in insertion order)."""

    state: JobState = JobState.ACTIVE
    state_transition_time: dt.datetime = field(default_factory=utcnow)
    previous_state: JobState | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    #: Ids of active tasks waiting for a node, in scheduling order.
    queue: collections.deque[str] = field(default_factory=collections.deque)
    end_time: dt.datetime | None = None
    terminate_reason: str | None = None
    #: The id of the pool the service created for ``poolInfo.autoPoolSpecification``.
    auto_pool_id: str | None = None

    @property
    def pool_id(self) -> str | None:
        """``poolInfo.poolId``, or the id of the job's auto pool."""
        return (self.spec.get("poolInfo") or {}).get("poolId") or self.auto_pool_id

    @property
    def auto_pool_kept(self) -> bool:
        """Whether the auto pool outlives the job (``autoPoolSpecification.keepAlive``)."""
        auto = (self.spec.get("poolInfo") or {}).get("autoPoolSpecification") or {}
        return bool(auto.get("keepAlive"))

    def set_state(self, state: JobState) -> None:
        """Change state, remembering the previous one."""
        if self.state != state:
            self.previous_state = self.state
            self.state = state
            self.state_transition_time = utcnow()
            self.touch()

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The ``BatchJob`` REST shape."""
        out = dict(self.spec)
        out.update(
            {
                "id": self.id,
                "url": f"{base_url}/jobs/{self.id}",
                "eTag": self.etag,
                "lastModified": rfc3339(self.last_modified),
                "creationTime": rfc3339(self.creation_time),
                "state": self.state.value,
                "stateTransitionTime": rfc3339(self.state_transition_time),
                "priority": self.spec.get("priority", 0),
                "maxParallelTasks": self.spec.get("maxParallelTasks", -1),
                "allowTaskPreemption": bool(self.spec.get("allowTaskPreemption")),
                "usesTaskDependencies": bool(self.spec.get("usesTaskDependencies")),
                "onAllTasksComplete": self.spec.get("onAllTasksComplete", "noaction"),
                "onTaskFailure": self.spec.get("onTaskFailure", "noaction"),
                "constraints": self.spec.get("constraints")
                or {"maxWallClockTime": "P10675199DT2H48M5.4775807S", "maxTaskRetryCount": 0},
                "executionInfo": _drop_none(
                    {
                        "startTime": rfc3339(self.creation_time),
                        "endTime": rfc3339(self.end_time),
                        "poolId": self.pool_id,
                        "terminateReason": self.terminate_reason,
                    }
                ),
            }
        )
        if self.previous_state is not None:
            out["previousState"] = self.previous_state.value
        return _drop_none(out)


class Store:
    """All of an emulated account's state, guarded by one re-entrant lock.

    ``changed`` (a condition on ``lock``) is notified whenever something the scheduler cares
    about changes: a task added or finished, a node becoming ready, a job ending.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.pools: dict[str, Pool] = {}
        self.jobs: dict[str, Job] = {}
        self.request_counts: collections.Counter[str] = collections.Counter()
        #: Fault injection: throttled requests still to answer, by REST operation id.
        self.throttles: dict[str, Throttle] = {}
        self.stopping = threading.Event()
        #: Kills the node processes still running if this process dies (``guard.py``).
        self.guard: ProcessGuard | None = None

    def take_throttle(self, operation: str) -> ApiError | None:
        """The throttling error for one request of ``operation``, if one is injected."""
        with self.lock:
            throttle = self.throttles.get(operation) or self.throttles.get("*")
            if throttle is None:
                return None
            throttle.count -= 1
            if throttle.count <= 0:
                key = operation if operation in self.throttles else "*"
                del self.throttles[key]
            return throttle.error()

    def pool(self, pool_id: str) -> Pool:
        """The pool, or a 404 ``PoolNotFound``."""
        pool = self.pools.get(pool_id)
        if pool is None:
            raise ApiError(404, "PoolNotFound", "The specified pool does not exist.")
        return pool

    def node(self, pool_id: str, node_id: str) -> Node:
        """The node, or a 404 ``NodeNotFound``."""
        node = self.pool(pool_id).nodes.get(node_id)
        if node is None:
            raise ApiError(404, "NodeNotFound", "The specified node does not exist.")
        return node

    def job(self, job_id: str) -> Job:
        """The job, or a 404 ``JobNotFound``."""
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "JobNotFound", "The specified job does not exist.")
        return job

    def task(self, job_id: str, task_id: str) -> Task:
        """The task, or a 404 ``TaskNotFound``."""
        task = self.job(job_id).tasks.get(task_id)
        if task is None:
            raise ApiError(404, "TaskNotFound", "The specified task does not exist.")
        return task
