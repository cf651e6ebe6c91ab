"""Job and task specifications: what a backend is asked to run."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from azhpc.core.payload import Payload

__all__ = ["JobSpec", "TaskSpec", "new_job_id"]


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
    """

    job_id: str
    name: str
    function: Payload
    tasks: tuple[TaskSpec, ...]
    retries: int = 0
    max_worker_losses: int = 3
    shared: Payload | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    @staticmethod
    def task_id(index: int) -> str:
        """The id of the task at ``index``."""
        return f"task-{index:05d}"
