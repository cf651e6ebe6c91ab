"""The backend contract: what every compute backend provides to the scatter engine.

A backend runs jobs. It has one required method, :meth:`Backend.submit`, which starts the
job's tasks and reports what happens to each through the job's :class:`~azhpc.core.job.JobEvents`
methods, from any thread. Everything else has a harmless default. Capabilities are class-level
flags that callers check instead of ``isinstance``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from azhpc.core.job import JobEvents
    from azhpc.core.spec import JobSpec

__all__ = ["Backend"]


class Backend(ABC):
    """Base class of compute backends.

    Attributes
    ----------
    name
        The registry name (``"local"``, ``"debug"``, ``"batch"``).
    runs_in_caller
        Tasks run in the calling thread, during :meth:`submit` (a debugger can step into them).
    stores_outcomes
        The nodes write each task's outcome to the session's job store themselves, so the
        session must not store it again.
    remote_nodes
        Tasks run on other machines: the user's own modules are pickled by value with the
        function (they are not importable there).
    """

    name: ClassVar[str] = "abstract"
    runs_in_caller: ClassVar[bool] = False
    stores_outcomes: ClassVar[bool] = False
    remote_nodes: ClassVar[bool] = False

    @abstractmethod
    def submit(self, spec: JobSpec, events: JobEvents) -> None:
        """Start running ``spec``'s tasks; report each task's progress to ``events``.

        Must not block until the tasks finish (unless :attr:`runs_in_caller`). Retries follow
        ``spec.retries``; a task whose worker is lost is run again up to
        ``spec.max_worker_losses`` times.
        """

    @property
    def total_slots(self) -> int:
        """How many tasks can run at once."""
        return 1

    def cost_per_hour(self) -> tuple[float, str] | None:
        """What the backend's compute costs per hour and in which currency, or ``None`` when
        it is free or unknown (displays then show no cost)."""
        return None

    @property
    def stopped(self) -> str | None:
        """Why the backend runs no more jobs although it was not closed (its scheduler
        thread died, or this process is a fork of its owner), or ``None`` while it works."""
        return None

    def cancel(self, job_id: str) -> None:  # noqa: B027 - a harmless default hook
        """Stop the job's queued and running tasks."""

    def close(self) -> None:  # noqa: B027 - a harmless default hook
        """Release every resource (processes, pools, temporary files). Idempotent."""

    def describe(self) -> dict[str, Any]:
        """What a ``Session`` repr shows about this backend (never a secret)."""
        return {"backend": self.name, "slots": self.total_slots}
