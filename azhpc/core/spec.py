"""Job and task specifications: what a backend is asked to run."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from azhpc.core.payload import Payload

__all__ = ["JobSpec", "Placement", "TaskSpec", "new_job_id"]


def new_job_id(prefix: str = "azhpc") -> str:
    """A job id valid for Azure Batch: letters, digits, hyphens; unique enough to never clash."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class TaskSpec:
    """One task of a job.

    Attributes
    ----------
    task_id
        Unique within the job (``task-00000``, ...).
    index
        Position in the job; results are gathered in this order.
    input
        The task's serialized input.
    """

    task_id: str
    index: int
    input: Payload


@dataclass(frozen=True)
class Placement:
    """Where a job's tasks run on a Batch pool, and what they take along (``run_on_pool``).

    Attributes
    ----------
    affinity
        Per task (in order): the ``affinityId`` of the node it must run on; each such task
        takes all of its node's slots.
    instances
        More than 1: the job's single task is a multi-instance (MPI) task across that many
        nodes.
    coordination
        The multi-instance task's coordination command (runs on every node first).
    files
        A lake path (``fs`` path in the job store's filesystem) of a file every task gets as
        :data:`APP_ARCHIVE` in its working folder (in the shared task folder of every node,
        for a multi-instance task).
    """

    affinity: tuple[str, ...] = ()
    instances: int = 1
    coordination: str | None = None
    files: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As plain JSON (stored in a durable job's manifest)."""
        return {
            "affinity": list(self.affinity),
            "instances": self.instances,
            "coordination": self.coordination,
            "files": self.files,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Placement:
        """The inverse of :meth:`to_json`."""
        return cls(
            affinity=tuple(str(a) for a in data.get("affinity") or ()),
            instances=int(data.get("instances") or 1),
            coordination=data.get("coordination"),
            files=data.get("files"),
        )


#: The file name the application archive of a :class:`Placement` gets on the nodes.
APP_ARCHIVE = "azhpc-app.tar.gz"


@dataclass(frozen=True)
class JobSpec:
    """A job: one function applied to the inputs of its tasks.

    Attributes
    ----------
    job_id
        Unique id (see :func:`new_job_id`).
    name
        A readable name for displays (``"map(square)"``).
    function
        The serialized function every task calls with its input.
    shared
        An input every task shares (staged once per job, like Batch's job-wide resource
        files); when set, each task calls ``function(shared, input)``.
    tasks
        The tasks, in gather order.
    retries
        How many times a task whose function raised is run again.
    max_worker_losses
        How many times a task may take its worker down (killed, out of memory) before it
        fails with :class:`azhpc.errors.WorkerLostError`.
    placement
        Batch only: pin tasks to nodes, run one multi-instance task, ship application files.
    """

    job_id: str
    name: str
    function: Payload
    tasks: tuple[TaskSpec, ...]
    retries: int = 0
    max_worker_losses: int = 3
    shared: Payload | None = None
    placement: Placement | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    @staticmethod
    def task_id(index: int) -> str:
        """The id of the task at ``index``."""
        return f"task-{index:05d}"
