"""Sessions: a profile and the backend that runs its tasks.

``azhpc.connect()`` opens a session and makes it the default one, which ``azhpc.map`` and
friends use when no ``pool=`` is given. The first call that needs a session opens a default
``local`` one (one worker per core) on its own. Sessions close at ``with``-block exit, on
``close()``, and at interpreter exit, Ctrl-C included; closing cancels unfinished jobs and
stops every worker.
"""

from __future__ import annotations

import atexit
import inspect
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from azhpc.errors import ConfigError

if TYPE_CHECKING:
    from azhpc.backends.base import Backend
    from azhpc.core.job import Job
    from azhpc.core.outcome import TaskOutcome
    from azhpc.core.spec import JobSpec
    from azhpc.executor import Executor
    from azhpc.staging import JobStore

__all__ = ["PROFILES", "Session", "connect", "current_session"]

#: The kinds of profile azhpc knows (see :mod:`azhpc.config`).
PROFILES = ("local", "emulated", "azure")

#: The lake folder where durable jobs are kept.
JOBS_FOLDER = "/.azhpc"

_default: Session | None = None
_default_lock = threading.Lock()
_open_sessions: weakref.WeakSet[Session] = weakref.WeakSet()


class Session:
    """A connection to compute: a profile and its backend.

    Use :func:`connect` to open one. A session is a context manager; leaving the block closes
    it. Its methods are the scatter API bound to this session (``session.map(...)`` is
    ``azhpc.map(..., pool=session)``).

    Parameters
    ----------
    profile
        The profile's name (``"local"``).
    backend
        The backend that runs the tasks.
    progress
        Show progress while waiting: ``True``, ``False``, or ``None`` to decide by where the
        code runs (widget in Jupyter, text bar in a terminal, nothing when output is a file).
    progress_after
        Seconds a job must run before its progress shows, so that quick jobs print nothing.
    lake
        The profile's Data Lake (an object with a ``close()``), or ``None``.
    store
        Where durable jobs are kept (a :class:`~azhpc.staging.JobStore`), or ``None``: then
        jobs live only in this process and :func:`azhpc.attach` cannot find them.
    """

    def __init__(
        self,
        profile: str,
        backend: Backend,
        *,
        progress: bool | None = None,
        progress_after: float = 1.0,
        lake: Any = None,
        store: JobStore | None = None,
        owns_lake: bool = True,
    ) -> None:
        self.profile = profile
        self.owns_lake = owns_lake
        self.backend = backend
        self.lake = lake
        self.store = store
        self.progress = progress
        self.progress_after = progress_after
        self._jobs: weakref.WeakSet[Job] = weakref.WeakSet()
        #: Closed after the backend and before the lake (e.g. the Batch emulator).
        self._owned: list[Any] = []
        #: The Batch account of a session whose tasks run on Batch, else ``None``.
        self.batch_account: Any = None
        self._closed = False
        _open_sessions.add(self)

    def __repr__(self) -> str:
        parts = " ".join(f"{k}={v!r}" for k, v in self.backend.describe().items())
        state = "closed" if self._closed else "open"
        return f"<azhpc.Session profile={self.profile!r} {parts} ({state})>"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once the session is closed."""
        return self._closed

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
        for job in list(self._jobs):
            if not job.done():
                job.cancel()
        try:
            self.backend.close()
        finally:
            for closable in reversed(self._owned):
                closable.stop() if hasattr(closable, "stop") else closable.close()
            if self.owns_lake and self.lake is not None and hasattr(self.lake, "close"):
                self.lake.close()
        with _default_lock:
            if _default is self:
                _default = None

    def run_job(self, spec: JobSpec, gather: Callable[[list[Any]], Any]) -> Job:
        """Hand a job to the backend and return its :class:`~azhpc.core.job.Job`."""
        from azhpc.core.job import Job

        if self._closed:
            raise ConfigError("this session is closed; open a new one with azhpc.connect()")
        job = Job(spec, gather=gather, canceller=self.backend.cancel)
        self._jobs.add(job)
        if self.store is None:
            self.backend.submit(spec, job)
        elif getattr(self.backend, "stores_outcomes", False):
            self.store.save_job(spec, gather)
            self.backend.submit(spec, job)
        else:
            from azhpc.staging import PersistingEvents

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
        from azhpc.core.job import Job
        from azhpc.staging import PersistingEvents

        if self._closed:
            raise ConfigError("this session is closed; open a new one with azhpc.connect()")
        job = Job(spec, gather=gather, canceller=self.backend.cancel)
        self._jobs.add(job)
        for task_id, outcome in finished.items():
            job.task_completed(task_id, outcome)
        if runnable.tasks:
            plain = self.store is None or getattr(self.backend, "stores_outcomes", False)
            events = job if plain else PersistingEvents(job, self.store, spec.job_id)
            self.backend.submit(runnable, events)
        self._record_cost_rate(job)
        return job

    # -- the scatter API, bound to this session -------------------------------------------------

    def map(self, fn: Callable[[Any], Any], iterable: Iterable[Any], **options: Any) -> Any:
        """:func:`azhpc.map` on this session."""
        from azhpc import scatter

        return scatter.map(fn, iterable, pool=self, **options)

    def map_partitions(self, fn: Callable[[Any], Any], df: Any, **options: Any) -> Any:
        """:func:`azhpc.map_partitions` on this session."""
        from azhpc import scatter

        return scatter.map_partitions(fn, df, pool=self, **options)

    def map_blocks(self, fn: Callable[[Any], Any], array: Any, **options: Any) -> Any:
        """:func:`azhpc.map_blocks` on this session."""
        from azhpc import scatter

        return scatter.map_blocks(fn, array, pool=self, **options)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        """:func:`azhpc.submit` on this session."""
        from azhpc import scatter

        return scatter.submit_call(fn, args, kwargs, pool=self)

    def submit_map(self, fn: Callable[[Any], Any], iterable: Iterable[Any], **options: Any) -> Job:
        """:func:`azhpc.submit_map` on this session."""
        from azhpc import scatter

        return scatter.submit_map(fn, iterable, pool=self, **options)

    def executor(self, *, retries: int = 0) -> Executor:
        """A ``concurrent.futures.Executor`` running on this session."""
        from azhpc.executor import Executor

        return Executor(self, retries=retries)


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
        ``"emulated"`` (the lake on Azurite, started on 127.0.0.1 and stopped when the
        session closes; tasks still run in local worker processes until the Batch REST
        emulator arrives), ``"azure"`` (the lake on ADLS Gen2 / Blob Storage), or the name of
        a ``[profiles.NAME]`` table of the config file. Default: ``AZHPC_PROFILE``, else the
        config file's ``default``, else ``"local"``.
    workers
        Worker processes of the local backend; default: one per CPU core.
    slots
        Tasks each worker runs at once; default 1.
    backend
        ``"local"`` (worker processes) or ``"debug"`` (every task in the calling thread,
        so ``breakpoint()`` and pdb work inside tasks). Default: the profile's own compute.
        The ``azure`` profile's own compute, Azure Batch, arrives with the Batch backend; until
        then ``connect("azure", backend="local")`` gives the Azure lake with local workers.
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
    from azhpc import config

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
    if backend == "batch":
        session = _connect_batch(settings, progress, progress_after, durable)
        session.settings = settings
        _make_default(session)
        return session
    from azhpc.backends import backend_class

    cls = backend_class(backend)
    if backend == "local":
        instance = cls(workers=settings.workers, slots=settings.slots)
    elif backend == "debug":
        instance = cls()
    else:
        raise ConfigError(f"backend {backend!r} does not run on the {settings.profile!r} profile")
    try:
        lake = _open_lake(settings, _running_emulators(settings))
    except BaseException:
        instance.close()
        raise
    if durable is None:
        durable = settings.profile != "local"
    store = None
    if durable:
        from azhpc.staging import JobStore

        store = JobStore(lake.filesystem(), JOBS_FOLDER)
    session = Session(
        settings.profile,
        instance,
        progress=progress,
        progress_after=progress_after,
        lake=lake,
        store=store,
    )
    session.settings = settings
    _make_default(session)
    return session


#: The VM size of the emulated profile's own pool (any size of the price table would do).
EMULATED_VM_SIZE = "Standard_D2s_v5"


def _connect_batch(
    settings: Any, progress: bool | None, progress_after: float, durable: bool | None
) -> Session:
    """A session whose tasks run on Azure Batch, or on the Batch emulator (``emulated``).

    ``emulated`` starts Azurite and the Batch emulator (closed with the session) and gives the
    session a pool of its own (``workers`` nodes, ``slots`` task slots each), created when the
    first job needs it and deleted when the session closes. On ``azure`` jobs run on an
    ``azhpc.Pool``.
    """
    import secrets

    from azhpc.backends.batch import BatchBackend
    from azhpc.backends.batch_account import BatchAccount
    from azhpc.pools.lifecycle import BatchPool
    from azhpc.pools.spec import PoolSpec
    from azhpc.staging import JobStore

    if settings.profile == "local":
        raise ConfigError(
            "the batch backend needs a lake Batch nodes can reach: connect to the 'emulated' "
            "or 'azure' profile"
        )
    if durable is False:
        raise ConfigError(
            "Batch jobs always keep their inputs and outcomes in the lake (the nodes read and "
            "write them there); leave durable= unset"
        )
    owned: list[Any] = []
    running = _running_emulators(settings)
    lake = _open_lake(settings, running)
    try:
        if settings.profile == "emulated":
            from azhpc.config import Secret
            from azhpc.emulator import BatchEmulator

            if running is not None:
                emulator = BatchEmulator.attach(
                    running.batch_url, running.batch_account_name, running.batch_account_key
                )
            else:
                emulator = BatchEmulator().start()
                owned.append(emulator)
            account = BatchAccount(
                emulator.url,
                emulator.account_name,
                key=Secret(emulator.account_key),
                emulator=emulator,
                where="the emulator's own key",
            )
            spec = PoolSpec(
                f"azhpc-session-{secrets.token_hex(3)}",
                EMULATED_VM_SIZE,
                nodes=settings.workers or 2,
                task_slots_per_node=settings.slots,
            )
            pool: BatchPool | None = BatchPool(account, spec, show=progress)
            poll_interval = 0.2
        else:
            account = BatchAccount(
                settings.batch_url.rstrip("/"),
                settings.batch_account_name
                or settings.batch_url.split("//", 1)[-1].split(".", 1)[0],
                key=settings.batch_account_key,
                credential=settings.credential,
                where=settings.where("batch_account_key"),
            )
            pool, poll_interval = None, 2.0
        store = JobStore(lake.filesystem(), JOBS_FOLDER)
        backend = BatchBackend(account, pool, lake, store, poll_interval=poll_interval)
    except BaseException:
        for closable in reversed(owned):
            closable.close() if hasattr(closable, "close") else closable.stop()
        lake.close()
        raise
    session = Session(
        settings.profile,
        backend,
        progress=progress,
        progress_after=progress_after,
        lake=lake,
        store=store,
    )
    session._owned.extend(owned)
    session.batch_account = account
    return session


def _running_emulators(settings: Any) -> Any:
    """The emulators ``azhpc emulator start`` runs, for the ``emulated`` profile (or ``None``:
    the session starts its own)."""
    if settings.profile != "emulated":
        return None
    from azhpc.emulator.state import discover

    return discover()


def _open_lake(settings: Any, running: Any = None) -> Any:
    """The profile's lake; ``emulated`` starts Azurite (owned by the lake) and its container,
    or uses the one ``azhpc emulator start`` runs (``running``)."""
    from azhpc.lake import Lake

    if settings.profile == "local":
        return Lake(settings)
    emulator = None
    owned = False
    if settings.profile == "emulated":
        from azhpc.emulator import Azurite

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


def current_session(pool: Session | None = None) -> Session:
    """``pool`` if given, else the default session (opening a ``local`` one if there is none)."""
    global _default
    if pool is not None:
        if not isinstance(pool, Session):
            raise ConfigError(
                f"pool= takes an azhpc Session (from azhpc.connect()), got {type(pool).__name__}"
            )
        if pool.closed:
            raise ConfigError("this session is closed; open a new one with azhpc.connect()")
        return pool
    with _default_lock:
        session = _default
    if session is None or session.closed:
        session = connect()
    return session


def _close_all() -> None:
    for session in list(_open_sessions):
        try:
            session.close()
        except Exception:  # at exit, one failing session must not keep the others open
            pass


atexit.register(_close_all)
