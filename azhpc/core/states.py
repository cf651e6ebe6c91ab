"""Task and job states, in Azure Batch's own words.

A task goes ``active`` (queued) -> ``preparing`` -> ``running`` -> ``completed``; a completed
task's :class:`TaskResult` says whether it succeeded. A task that fails and may be retried goes
back to ``active`` with its retry count raised; a task whose node is taken away (preempted, or a
worker process that died) is requeued, which Batch counts separately.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobState", "TaskResult", "TaskState"]


class TaskState(StrEnum):
    """Where a task is in its life (Batch ``TaskState``)."""

    ACTIVE = "active"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"


class TaskResult(StrEnum):
    """How a completed task ended (Batch ``TaskExecutionResult``)."""

    SUCCESS = "success"
    FAILURE = "failure"


class JobState(StrEnum):
    """Where a job is in its life (the subset of Batch ``JobState`` azhpc uses)."""

    ACTIVE = "active"
    TERMINATING = "terminating"
    COMPLETED = "completed"
