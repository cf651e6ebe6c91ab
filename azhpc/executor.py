"""``azhpc.Executor``: the ``concurrent.futures.Executor`` interface over a session."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from azhpc import scatter, splitting
from azhpc.core.calls import ApplyEach
from azhpc.errors import ConfigError, ExecutorShutdownError
from azhpc.session import Session, current_session

if TYPE_CHECKING:
    from azhpc.core.job import Job

__all__ = ["Executor", "ExecutorShutdownError"]


class Executor(concurrent.futures.Executor):
    """Run calls on an azhpc session through the standard executor interface.

    Every ``submit`` is one job with one task and returns its :class:`~azhpc.core.job.Job`,
    a ``concurrent.futures.Future``; ``map`` runs all calls as one chunked job.

    Parameters
    ----------
    session, pool
        The session (or :class:`azhpc.Pool`; one or the other); default: the default session
        (opened when needed).
    retries
        How many more times a task whose function raised is run.

    Examples
    --------
    >>> import azhpc
    >>> with azhpc.Executor() as ex:
    ...     ex.submit(sum, [1, 2, 3]).result()
    6
    """

    def __init__(
        self,
        session: Session | None = None,
        *,
        pool: Session | None = None,
        retries: int = 0,
    ) -> None:
        if session is not None and pool is not None and session is not pool:
            raise ConfigError("give the session as session= or as pool=, not both")
        self._chosen = session if session is not None else pool
        self._retries = retries
        self._shutdown = False
        self._jobs: list[Job] = []

    def _session(self) -> Session:
        if self._shutdown:
            raise ExecutorShutdownError("cannot schedule new work after shutdown()")
        return current_session(self._chosen)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """Start ``fn(*args, **kwargs)``; return its Job (a Future)."""
        job = scatter.submit(self._session(), fn, args, kwargs, retries=self._retries)
        self._jobs = [j for j in self._jobs if not j.done()] + [job]
        return job

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like ``concurrent.futures.Executor.map``: results in order, as one azhpc job.

        ``chunksize=1`` (the standard default) lets azhpc choose chunks itself. A failed
        call raises :class:`azhpc.TaskError` when iteration reaches the results.
        """
        scatter.check_callable(fn, "Executor.map")
        chunksize = splitting.whole_number("chunksize", chunksize)
        columns = [scatter.items_of(it, "Executor.map", "iterables") for it in iterables]
        session = self._session()
        items = list(zip(*columns, strict=False))
        size = (
            chunksize
            if chunksize > 1
            else splitting.auto_chunksize(len(items), session.total_slots)
        )
        job = scatter.run_pieces(
            session,
            ApplyEach(fn, star=True),
            splitting.chunk(items, size),
            name=f"Executor.map({getattr(fn, '__name__', 'fn')})",
            gather=splitting.flatten,
            retries=self._retries,
        )
        self._jobs.append(job)

        def results() -> Iterator[Any]:
            try:
                yield from job.result(timeout=timeout)
            finally:
                job.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; optionally cancel pending jobs and wait for the others.

        ``cancel_futures=True`` cancels the jobs none of whose tasks has started, as the
        standard executors cancel the calls they have not started; running jobs finish
        (``job.cancel()`` stops one that runs).
        """
        self._shutdown = True
        if cancel_futures:
            for job in self._jobs:
                if not job.done() and job.progress.running == 0:
                    job.cancel()
        if wait:
            concurrent.futures.wait(self._jobs)
        self._jobs = []
