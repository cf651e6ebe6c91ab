"""The debug backend: runs every task in the calling thread, during ``submit``.

Use it to step into a task with pdb, or to see a failure without any process boundary::

    with azhpc.connect(backend="debug") as session:
        session.map(fn, items)        # fn runs right here; breakpoint() works

Payloads still go through cloudpickle, so what works here serializes on a real pool too.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar

from azhpc.backends.base import Backend
from azhpc.core.payload import decode
from azhpc.core.worker import encode_outcome, run_task

if TYPE_CHECKING:
    from azhpc.core.job import JobEvents
    from azhpc.core.spec import JobSpec

__all__ = ["DebugBackend", "create_backend"]


class DebugBackend(Backend):
    """Runs tasks one after another in the caller's thread."""

    name: ClassVar[str] = "debug"
    runs_in_caller: ClassVar[bool] = True

    def __init__(self) -> None:
        self._cancelled: set[str] = set()

    def submit(self, spec: JobSpec, events: JobEvents) -> None:
        function = decode(spec.function)
        if spec.shared is not None:
            function = functools.partial(function, decode(spec.shared))
        for task in spec.tasks:
            if spec.job_id in self._cancelled:
                return
            task_input = decode(task.input)
            events.task_running(task.task_id, node="debug")
            for attempt in range(1, spec.retries + 2):
                outcome = run_task(function, task_input, echo_output=True, in_caller=True)
                # The return value must survive the trip back, as it must on a real pool.
                outcome = decode(encode_outcome(outcome))
                if outcome.ok or attempt > spec.retries:
                    events.task_completed(task.task_id, outcome)
                    break
                assert outcome.error is not None
                events.task_retrying(task.task_id, error=outcome.error)
                events.task_running(task.task_id, node="debug")

    def cancel(self, job_id: str) -> None:
        self._cancelled.add(job_id)


def create_backend(settings: Any, lake: Any, store: Any) -> DebugBackend:
    """The registry's factory: a debug backend runs on any profile and needs nothing."""
    return DebugBackend()
