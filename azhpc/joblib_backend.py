"""A joblib parallel backend named ``"azhpc"``, so joblib (and scikit-learn) run on a session.

>>> import joblib, azhpc
>>> with joblib.parallel_config(backend="azhpc"):
...     joblib.Parallel()(joblib.delayed(abs)(-i) for i in range(3))
[0, 1, 2]

Register it once per process with :func:`azhpc.register_joblib_backend` (as ipyparallel's
``register_joblib_backend``): ``import azhpc`` never imports joblib. Pass ``session=`` (or
``pool=``) to ``parallel_config`` for another session than the default one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase

from azhpc import scatter
from azhpc.errors import TaskError
from azhpc.session import Session, current_session

if TYPE_CHECKING:
    from azhpc.core.job import Job

__all__ = ["AzhpcBackend", "register"]


class AzhpcBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend: every batch of calls is one azhpc job with one task."""

    supports_retrieve_callback = True
    supports_timeout = True
    default_n_jobs = -1

    def __init__(
        self, session: Session | None = None, pool: Session | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._session_given = session
        self._pool = pool
        self._jobs: list[Job] = []

    def _session(self) -> Session:
        return current_session(self._session_given, pool=self._pool)

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        slots = self._session().total_slots
        if n_jobs is None or n_jobs < 0:
            return slots
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel: Any = None, **kwargs: Any) -> int:
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def submit(self, func: Any, callback: Any = None) -> Job:
        job = scatter.submit(self._session(), func)
        self._jobs = [j for j in self._jobs if not j.done()] + [job]
        if callback is not None:
            job.add_done_callback(callback)
        return job

    def retrieve_result_callback(self, out: Job) -> Any:
        try:
            return out.result()
        except TaskError as error:
            # joblib users expect the function's own exception; keep the remote traceback.
            # (Not a remote KeyboardInterrupt or SystemExit: here it would look like the
            # user's Ctrl-C or an exit of this process.)
            if isinstance(error.remote_exception, Exception):
                raise error.remote_exception from error
            raise

    def abort_everything(self, ensure_ready: bool = True) -> None:
        for job in self._jobs:
            job.cancel()
        self._jobs = []


def register(name: str = "azhpc", *, make_default: bool = False) -> None:
    """Register :class:`AzhpcBackend` with joblib under ``name``."""
    from joblib import register_parallel_backend

    register_parallel_backend(name, AzhpcBackend, make_default=make_default)
