"""A backend a user's own package could register: every task on one background thread.

It stands in for a third-party plug-in in the tests: ``conftest.py`` registers it by dotted
path (``register_backend("threads", "threads_backend:create_backend")``), so it is imported
only when ``connect(backend="threads")`` first asks for it, and the scatter conformance suite
runs on it like on the built-in backends. It uses only the public contract: ``Backend``,
``JobSpec``/``JobEvents`` and the worker's ``run_task``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from typing import Any, ClassVar

from azhpc.backends.base import Backend
from azhpc.core.job import JobEvents
from azhpc.core.payload import decode
from azhpc.core.spec import JobSpec, TaskSpec
from azhpc.core.worker import encode_outcome, run_task

#: How many times the factory was called (the tests check the registry really used it).
created = 0


class ThreadsBackend(Backend):
    """Runs tasks one at a time on a background thread, with the job's retries."""

    name: ClassVar[str] = "threads"

    def __init__(self) -> None:
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="threads")
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, spec: JobSpec, events: JobEvents) -> None:
        function = decode(spec.function)
        if spec.shared is not None:
            function = functools.partial(function, decode(spec.shared))
        for task in spec.tasks:
            self._thread.submit(self._run, spec, function, task, events)

    def _run(self, spec: JobSpec, function: Any, task: TaskSpec, events: JobEvents) -> None:
        for attempt in range(spec.retries + 1):
            with self._lock:
                if spec.job_id in self._cancelled:
                    return
            events.task_running(task.task_id, node="thread")
            outcome = decode(encode_outcome(run_task(function, decode(task.input))))
            if outcome.ok or attempt == spec.retries or outcome.error is None:
                events.task_completed(task.task_id, outcome)
                return
            events.task_retrying(task.task_id, error=outcome.error)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)


def create_backend(settings: Any, lake: Any, store: Any) -> ThreadsBackend:
    """The factory ``azhpc.connect(backend="threads")`` calls through the registry."""
    global created
    created += 1
    return ThreadsBackend()
