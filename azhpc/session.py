"""Sessions: a profile and the backend that runs its tasks.

``azhpc.connect()`` opens a session and makes it the default one, which ``azhpc.map`` and
friends use when no ``pool=`` is given. The first call that needs a session opens a default
``local`` one (one worker per core) on its own. Sessions close at ``with``-block exit, on
``close()``, and at interpreter exit, Ctrl-C included; closing cancels unfinished jobs and
stops every worker.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from azhpc import config, scatter
from azhpc.backends.registry import backend_factory
from azhpc.config import Settings
from azhpc.core import at_exit
from azhpc.core.job import Job
from azhpc.emulator.azurite import Azurite
from azhpc.emulator.state import discover
from azhpc.errors import ConfigError, SessionStoppedError
from azhpc.lake.lake import Lake
from azhpc.staging import JobStore, PersistingEvents

if TYPE_CHECKING:
    from azhpc.backends.base import Backend
    from azhpc.config import Settings
    from azhpc.core.job import Job
    from azhpc.core.outcome import TaskOutcome
    from azhpc.core.spec import JobSpec
    from azhpc.lake.lake import Lake
    from azhpc.staging import JobStore

__all__ = ["PROFILES", "Session", "connect", "current_session"]

#: The kinds of profile azhpc knows (see :mod:`azhpc.config`).
PROFILES = ("local", "emulated", "azure")

#: The lake folder where durable jobs are kept.
JOBS_FOLDER = "/.azhpc"

_default: Session | None = None
_default_lock = threading.Lock()


class Session:
    """A connection to compute: a profile's settings, its lake, its job store and its backend.

    Use :func:`connect` to open one. A session is a context manager; leaving the block closes
    it. Its methods are the scatter API bound to this session (``session.map(...)`` is
    ``azhpc.map(..., session=session)``).

    Parameters
    ----------
    backend
        The backend that runs the tasks.
    settings
        The profile's resolved :class:`~azhpc.config.Settings` (default: the embedded
        ``local`` profile's).
    lake
        The profile's Data Lake (:class:`~azhpc.lake.Lake`), or ``None``.
    store
        Where durable jobs are kept (a :class:`~azhpc.staging.JobStore`), or ``None``: then
        jobs live only in this process and :func:`azhpc.attach` cannot find them.
    progress
        Show progress while waiting: ``True``, ``False``, or ``None`` to decide by where the
        code runs (widget in Jupyter, text bar in a terminal, nothing when output is a file).
    progress_after
        Seconds a job must run before its progress shows, so that quick jobs print nothing.
    owns_lake
        Close the lake with the session (``False`` when the lake is shared with another
        session, as an :class:`azhpc.Pool` shares its parent's).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        settings: Settings | None = None,
        lake: Lake | None = None,
        store: JobStore | None = None,
        progress: bool | None = None,
        progress_after: float = 1.0,
        owns_lake: bool = True,
    ) -> None:

        self.settings = settings if settings is not None else Settings()
        self.backend = backend
        self.lake = lake
        self.store = store
        self.progress = progress
        self.progress_after = progress_after
        self.owns_lake = owns_lake
        self._jobs: weakref.WeakSet[Job] = weakref.WeakSet()
        self._closed = False
        self._pid = os.getpid()
        at_exit.release_at_exit(self, "close")

    @property
    def profile(self) -> str:
        """The profile's kind: ``"local"``, ``"emulated"`` or ``"azure"``."""
        return self.settings.profile

    def __repr__(self) -> str:
        parts = " ".join(f"{k}={v!r}" for k, v in self.backend.describe().items())
        state = "closed" if self._closed else "stopped" if self.stopped else "open"
        return f"<azhpc.Session profile={self.profile!r} {parts} ({state})>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once the session runs no more jobs: it was closed, or it stopped (see
        :attr:`stopped`)."""
        return self._closed or self.stopped is not None

    @property
    def stopped(self) -> str | None:
        """Why the session runs no more jobs although it was not closed, or ``None``.

        Its backend stopped (the local scheduler thread died), or this process is a fork of
        the one that opened it: a fork has the session's objects but not its threads.
        """
        if os.getpid() != self._pid:
            return f"it was opened by process {self._pid}; this process is a fork of it"
        return self.backend.stopped

    def _check_open(self) -> None:
        """Raise the error that says why no job can run here, if none can."""
        if self._closed:
            raise ConfigError("this session is closed; open a new one with azhpc.connect()")
        stopped = self.stopped
        if stopped is not None:
            raise SessionStoppedError(
                f"this session runs no more jobs: {stopped}. Open a new one with "
                "azhpc.connect() (the default session is replaced on its own)"
            )

    @property
    def total_slots(self) -> int:
        """How many tasks can run at once."""
        return self.backend.total_slots

    def close(self) -> None:
        """Cancel unfinished jobs and release the backend (stops every worker). Idempotent."""
        global _default
        if self._closed:
            return
        self._closed = True
        at_exit.forget(self)
        if os.getpid() != self._pid:
            return  # a fork's copy: the workers, pools and lake are the parent's to release
        for job in list(self._jobs):
            if not job.done():
                job.cancel()
        try:
            self.backend.close()
        finally:
            if self.owns_lake and self.lake is not None:
                self.lake.close()
        with _default_lock:
            if _default is self:
                _default = None

    def run_job(self, spec: JobSpec, gather: Callable[[list[Any]], Any]) -> Job:
        """Hand a job to the backend and return its :class:`~azhpc.core.job.Job`."""

        self._check_open()
        job = Job(spec, gather=gather, canceller=self.backend.cancel)
        self._jobs.add(job)
        if self.store is None:
            self.backend.submit(spec, job)
        elif self.backend.stores_outcomes:
            self.store.save_job(spec, gather)
            self.backend.submit(spec, job)
        else:
            self.store.save_job(spec, gather)
            self.backend.submit(spec, PersistingEvents(job, self.store, spec.job_id))
        self._record_cost_rate(job)
        return job

    def _record_cost_rate(self, job: Job) -> None:
        rate = self.backend.cost_per_hour()
        if rate is not None:
            job.set_cost_rate(*rate)

    def resume_job(
        self,
        spec: JobSpec,
        runnable: JobSpec,
        gather: Callable[[list[Any]], Any],
        finished: dict[str, TaskOutcome],
    ) -> Job:
        """Rebuild a durable job: ``finished`` outcomes count as done, ``runnable`` runs.

        Used by :func:`azhpc.attach`; ``spec`` names every task of the job.
        """

        self._check_open()
        job = Job(spec, gather=gather, canceller=self.backend.cancel)
        self._jobs.add(job)
        for task_id, outcome in finished.items():
            job.task_completed(task_id, outcome)
        if runnable.tasks:
            plain = self.store is None or self.backend.stores_outcomes
            events = job if plain else PersistingEvents(job, self.store, spec.job_id)
            self.backend.submit(runnable, events)
        self._record_cost_rate(job)
        return job

    # -- the scatter API, bound to this session -------------------------------------------------

    def map(self, fn: Callable[[Any], Any], iterable: Iterable[Any], **options: Any) -> Any:
        """:func:`azhpc.map` on this session."""
        return scatter.map(self, fn, iterable, **options)

    def map_partitions(self, fn: Callable[[Any], Any], df: Any, **options: Any) -> Any:
        """:func:`azhpc.map_partitions` on this session."""
        return scatter.map_partitions(self, fn, df, **options)

    def map_blocks(self, fn: Callable[[Any], Any], array: Any, **options: Any) -> Any:
        """:func:`azhpc.map_blocks` on this session."""
        return scatter.map_blocks(self, fn, array, **options)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """:func:`azhpc.submit` on this session."""
        return scatter.submit(self, fn, args, kwargs)

    def submit_map(self, fn: Callable[[Any], Any], iterable: Iterable[Any], **options: Any) -> Job:
        """:func:`azhpc.submit_map` on this session: ``map(..., block=False)``."""
        return scatter.map(self, fn, iterable, block=False, **options)

    def attach(self, job_id: str) -> Job:
        """:func:`azhpc.attach` on this session."""
        return scatter.attach(self, job_id)


def connect(
    profile: str | None = None,
    *,
    workers: int | None = None,
    slots: int | None = None,
    backend: str | None = None,
    progress: bool | None = None,
    progress_after: float = 1.0,
    lake_root: str | None = None,
    account_name: str | None = None,
    container: str | None = None,
    account_key: str | None = None,
    connection_string: str | None = None,
    sas_token: str | None = None,
    credential: Any = None,
    durable: bool | None = None,
    **unknown: Any,
) -> Session:
    """Open a session and make it the default one.

    Settings not given here come from ``AZHPC_*`` environment variables, then the config file
    (``AZHPC_CONFIG``, else ``~/.config/azhpc/config.toml``), then defaults; see
    :func:`azhpc.config.resolve_settings` and ``docs/lake.md``.

    Parameters
    ----------
    profile
        ``"local"`` (worker processes here, the lake in a folder; the default),
        ``"emulated"`` (the lake on Azurite and tasks on azhpc's Batch emulator, both on
        127.0.0.1, started here or shared with ``azhpc emulator start``, stopped when the
        session closes), ``"azure"`` (Azure Batch, the lake on ADLS Gen2 / Blob Storage), or
        the name of
        a ``[profiles.NAME]`` table of the config file. Default: ``AZHPC_PROFILE``, else the
        config file's ``default``, else ``"local"``.
    workers
        Worker processes of the local backend; default: one per CPU core.
    slots
        Tasks each worker runs at once; default 1.
    backend
        The name of a registered backend (:func:`azhpc.backends.register_backend`):
        ``"local"`` (worker processes), ``"debug"`` (every task in the calling thread, so
        ``breakpoint()`` and pdb work inside tasks), ``"batch"`` (Azure Batch, or its emulator
        on ``emulated``), or one a package registered. Default: ``"local"`` on the ``local``
        profile, ``"batch"`` otherwise; ``connect("azure", backend="local")`` gives the Azure
        lake with local workers.
    progress, progress_after
        See :class:`Session`.
    lake_root
        ``local``: the lake's folder (default ``~/.azhpc/lake``).
    account_name, container
        ``azure``: storage account and container (``emulated``: container only); the
        container defaults to ``"azhpc"``.
    account_key, connection_string, sas_token, credential
        ``azure``: how to authenticate; none of them means azure-identity's
        ``DefaultAzureCredential``. Held as secrets: never shown in reprs, logs or errors.
    durable
        Keep every job in the lake (``/.azhpc``: payloads, manifest, outcomes, sealed with a
        key that stays on this machine), so that :func:`azhpc.attach` can gather it from
        another process without running finished tasks again. Default: on for ``emulated``
        and ``azure``, off for ``local`` (where it costs a write per task for little gain).

    Returns
    -------
    Session
        The new default session; use it as a context manager to close it at block exit.
        ``session.lake`` is its :class:`~azhpc.lake.Lake`.

    Raises
    ------
    ConfigError
        Unknown profile, backend, keyword argument or setting (the message lists the valid
        ones), or compute the profile does not have yet.
    azhpc.lake.LakeAuthError, azhpc.lake.LakeUnreachableError
        ``emulated``/``azure``: the lake refused the credentials or could not be reached
        (checked once at connect).
    azhpc.emulator.AzuriteNotFoundError
        ``emulated``: Azurite is not installed (``npm ci`` in the project, or ``./dev test``).

    Examples
    --------
    >>> import azhpc
    >>> with azhpc.connect(workers=2) as session:
    ...     session.map(abs, [-1, -2, 3])
    [1, 2, 3]
    """

    if unknown:
        defaults = config.Settings()
        params = inspect.signature(connect).parameters
        valid = ", ".join(
            f"{name}={getattr(defaults, name, p.default)!r}"
            for name, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in config.SECRET_SETTINGS
        )
        raise ConfigError(
            f"connect() got unknown argument(s) {', '.join(sorted(unknown))}; "
            f"valid ones (with defaults): profile='local', {valid}, "
            f"{', '.join(config.SECRET_SETTINGS)} (secrets, default None)"
        )
    settings = config.resolve_settings(
        profile,
        workers=workers,
        slots=slots,
        lake_root=lake_root,
        account_name=account_name,
        container=container,
        account_key=account_key,
        connection_string=connection_string,
        sas_token=sas_token,
        credential=credential,
    )
    if backend is None:
        backend = "local" if settings.profile == "local" else "batch"
        if settings.profile == "azure" and not settings.batch_url:
            raise ConfigError(
                f"the azure profile {settings.name!r} has no Batch account: set batch_url "
                f"({settings.where('batch_url')}) for Azure Batch compute, or use "
                f"azhpc.connect({settings.name!r}, backend='local') for the Azure lake with "
                "tasks in local worker processes"
            )
    factory = backend_factory(backend)
    if durable is None:
        durable = settings.profile != "local"
    lake = _open_lake(settings)
    try:
        store = None
        if durable:
            store = JobStore(lake.filesystem(), JOBS_FOLDER)
        instance = factory(settings, lake, store)
    except BaseException:
        lake.close()
        raise
    session = Session(
        instance,
        settings=settings,
        lake=lake,
        store=store,
        progress=progress,
        progress_after=progress_after,
    )
    _make_default(session)
    return session


def _open_lake(settings: Settings) -> Lake:
    """The profile's lake; ``emulated`` starts Azurite (owned by the lake) and its container,
    or uses the one ``azhpc emulator start`` runs."""

    if settings.profile == "local":
        return Lake(settings)
    emulator = None
    owned = False
    if settings.profile == "emulated":
        running = discover()
        if running is not None:
            emulator = Azurite.attach(running.azurite_port)
        else:
            emulator, owned = Azurite().start(), True
    lake = Lake(settings, emulator=emulator, owns_emulator=owned)
    try:
        if emulator is not None:
            lake.ensure_container()
        else:
            lake.check()
    except BaseException:
        lake.close()
        raise
    return lake


def _make_default(session: Session) -> None:
    global _default
    with _default_lock:
        _default = session


def current_session(session: Session | None = None, *, pool: Session | None = None) -> Session:
    """``session`` if given, else the default session (opening a ``local`` one if there is none).

    ``pool=`` is the same argument under the name the scatter functions had first (and that
    reads well when an :class:`azhpc.Pool` is passed); give one or the other.
    """
    global _default
    if session is not None and pool is not None and session is not pool:
        raise ConfigError("give the session as session= or as pool=, not both")
    chosen, keyword = (session, "session") if session is not None else (pool, "pool")
    if chosen is not None:
        if not isinstance(chosen, Session):
            raise ConfigError(
                f"{keyword}= takes an azhpc Session (from azhpc.connect()) or an azhpc.Pool, "
                f"got {type(chosen).__name__}"
            )
        chosen._check_open()
        return chosen
    with _default_lock:
        found = _default
    if found is None or found.closed:
        found = connect()
    return found


def _forget_default_in_child() -> None:
    """After ``fork()``, in the child: the parent's default session is not this process's.

    Its scheduler thread and workers stayed in the parent, so the child's first call opens
    its own session instead of waiting forever on the copy. The lock is new too: another
    thread may have held it at the fork.
    """
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_in_child)


def default_session() -> Session | None:
    """The default session if one is open, without opening one."""
    with _default_lock:
        found = _default
    return None if found is None or found.closed else found
